"""Verification limits per member number across conversations: the verification_events table.

Every SMS issued and every code entry that counts is one row, keyed by the member
number's keyed hash: the daily SMS cap per number, the global SMS rate and the tries of
a number's codes are counted from it (see ``bot/identity/verification.py``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create verification_events with the indexes its counts use."""
    op.create_table(
        "verification_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_key_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verification_events"),
        sa.CheckConstraint(
            "kind IN ('code_sent', 'wrong_code', 'code_dead', 'verified')",
            name=op.f("ck_verification_events_kind"),
        ),
    )
    # Per number: SMS in the last 24 hours, wrong codes since the last reset.
    op.create_index(
        "ix_verification_events_member_key_hash_kind_at",
        "verification_events",
        ["member_key_hash", "kind", "at"],
    )
    # All numbers: SMS in the last minute.
    op.create_index("ix_verification_events_kind_at", "verification_events", ["kind", "at"])


def downgrade() -> None:
    """Drop verification_events."""
    op.drop_index("ix_verification_events_kind_at", "verification_events")
    op.drop_index("ix_verification_events_member_key_hash_kind_at", "verification_events")
    op.drop_table("verification_events")
