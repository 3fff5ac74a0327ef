"""Escalations become hand-offs (waiting, in progress, closed; who has them); staff accounts.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STATUSES = "'waiting', 'in_progress', 'closed'"


def upgrade() -> None:
    """Add the hand-off columns, move 'open' to 'waiting', constrain statuses; staff accounts."""
    op.execute("UPDATE escalations SET status = 'waiting' WHERE status = 'open'")
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("assigned_staff", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("closed_at", sa.DateTime(), nullable=True))
        batch.alter_column(
            "status", existing_type=sa.String(16), server_default="waiting", nullable=False
        )
        batch.create_check_constraint("status", f"status IN ({_STATUSES})")
        batch.create_index("ix_escalations_sender_id", ["sender_id"])

    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_salt", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_staff_accounts"),
        sa.UniqueConstraint("name", name="uq_staff_accounts_name"),
        sa.CheckConstraint(
            "role IN ('agent', 'privacy_officer', 'admin')", name=op.f("ck_staff_accounts_role")
        ),
    )


def downgrade() -> None:
    """Undo :func:`upgrade`; waiting and in-progress escalations become 'open' again."""
    op.drop_table("staff_accounts")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_index("ix_escalations_sender_id")
        batch.drop_constraint(op.f("ck_escalations_status"), type_="check")
        batch.alter_column(
            "status", existing_type=sa.String(16), server_default=None, nullable=False
        )
        batch.drop_column("closed_at")
        batch.drop_column("claimed_at")
        batch.drop_column("assigned_staff")
    op.execute("UPDATE escalations SET status = 'open' WHERE status <> 'closed'")
