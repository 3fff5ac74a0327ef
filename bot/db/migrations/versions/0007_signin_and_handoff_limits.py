"""Console sign-in throttling per address, account creator, hand-off limits.

- ``signin_throttles``: failed sign-ins counted per name, per client address and per
  name at an address (keyed HMACs), with growing waits instead of a lock.
- ``staff_accounts.created_by``; the per-account lock (``failed_logins``,
  ``locked_until``), which anyone who knew a name could trigger, is dropped.
- ``ix_escalations_created_at``: the hand-offs of the last hour, counted for the limit
  across all conversations.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add signin_throttles, staff_accounts.created_by and the escalations index."""
    op.create_table(
        "signin_throttles",
        sa.Column("name_key", sa.String(64), nullable=False),
        sa.Column("address_key", sa.String(64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_failed_at", sa.DateTime(), nullable=True),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name_key", "address_key", name="pk_signin_throttles"),
    )
    # recreate="never": SQLite (3.35+) drops a column in place. Copying the table, as
    # batch mode otherwise does, would drop staff_accounts, which staff_sessions refers
    # to: refused with foreign keys on as soon as anyone has a session.
    with op.batch_alter_table("staff_accounts", recreate="never") as batch:
        batch.add_column(sa.Column("created_by", sa.String(64), nullable=True))
        batch.drop_column("failed_logins")
        batch.drop_column("locked_until")
    op.create_index("ix_escalations_created_at", "escalations", ["created_at"])


def downgrade() -> None:
    """Undo :func:`upgrade` (every account comes back unlocked)."""
    op.drop_index("ix_escalations_created_at", "escalations")
    with op.batch_alter_table("staff_accounts", recreate="never") as batch:
        batch.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch.drop_column("created_by")
    op.drop_table("signin_throttles")
