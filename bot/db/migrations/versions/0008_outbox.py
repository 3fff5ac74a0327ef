"""The outbox: outbound messages are written before they are sent.

``outbound_messages`` gains what a deliverer needs to send a row after the transaction
that wrote it commits, and to send it once: the status ``pending``/``sending``/
``unknown`` beside ``sent``/``failed``, a retry key (uuid), the attempts made and when
the next is due, until when a message is worth sending, who claimed it and when, what
it is for and for which member, and the payload (the clear text and address, NULL once
the row is finished). Existing rows keep their status.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NEW_STATUSES = "status IN ('pending', 'sending', 'sent', 'failed', 'unknown')"
OLD_STATUSES = "status IN ('sent', 'failed')"


def upgrade() -> None:
    """Add the outbox columns, widen the status check and index the deliverers' query."""
    # SQLite changes a check constraint by copying the table; nothing refers to it.
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("retry_key", sa.String(36), nullable=True))
        batch.add_column(sa.Column("purpose", sa.String(32), nullable=True))
        batch.add_column(sa.Column("member_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(96), nullable=True))
        batch.drop_constraint(op.f("ck_outbound_messages_status"), type_="check")
        batch.create_check_constraint("status", NEW_STATUSES)
        batch.create_unique_constraint(op.f("uq_outbound_messages_retry_key"), ["retry_key"])
    op.create_index(
        "ix_outbound_messages_status_next_attempt_at",
        "outbound_messages",
        ["status", "next_attempt_at"],
    )


def downgrade() -> None:
    """Undo :func:`upgrade`; rows not yet sent are recorded as failed."""
    op.drop_index("ix_outbound_messages_status_next_attempt_at", "outbound_messages")
    op.execute(
        "UPDATE outbound_messages SET status = 'failed' WHERE status NOT IN ('sent', 'failed')"
    )
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_constraint(op.f("uq_outbound_messages_retry_key"), type_="unique")
        batch.drop_constraint(op.f("ck_outbound_messages_status"), type_="check")
        batch.create_check_constraint("status", OLD_STATUSES)
        for column in (
            "claimed_by", "claimed_at", "expires_at", "next_attempt_at", "attempts",
            "payload", "member_id", "purpose", "retry_key",
        ):  # fmt: skip
            batch.drop_column(column)
