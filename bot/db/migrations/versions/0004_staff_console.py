"""The staff console: sign-in sessions, login throttling, staff replies, paused hand-offs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add staff_sessions and staff_messages; lockout columns; escalations.paused."""
    with op.batch_alter_table("staff_accounts") as batch:
        batch.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(
            sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    # Hand-offs opened before this revision that paused their conversation (the reasons
    # that pause): closing them must resume the conversation.
    op.execute(
        "UPDATE escalations SET paused = TRUE WHERE status IN ('waiting', 'in_progress') "
        "AND reason IN ('member_request', 'complaint', 'repeated_fallback')"
    )

    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_staff_sessions"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["staff_accounts.id"],
            name="fk_staff_sessions_account_id_staff_accounts",
        ),
    )
    op.create_index("ix_staff_sessions_account_id", "staff_sessions", ["account_id"])

    op.create_table(
        "staff_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("staff", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_staff_messages"),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.id"],
            name="fk_staff_messages_escalation_id_escalations",
        ),
    )
    op.create_index(
        "ix_staff_messages_sender_id_delivered_at",
        "staff_messages",
        ["sender_id", "delivered_at"],
    )
    op.create_index("ix_staff_messages_escalation_id", "staff_messages", ["escalation_id"])


def downgrade() -> None:
    """Undo :func:`upgrade`."""
    op.drop_index("ix_staff_messages_escalation_id", "staff_messages")
    op.drop_index("ix_staff_messages_sender_id_delivered_at", "staff_messages")
    op.drop_table("staff_messages")
    op.drop_index("ix_staff_sessions_account_id", "staff_sessions")
    op.drop_table("staff_sessions")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("paused")
    with op.batch_alter_table("staff_accounts") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("failed_logins")
