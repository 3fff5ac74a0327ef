"""The outbox: outbound messages are written before they are sent.

``outbound_messages`` gains what a deliverer needs to send a row after the transaction
that wrote it commits, and to send it once: the status ``pending``/``sending``/
``unknown`` beside ``sent``/``failed``, a retry key (uuid), the attempts made and when
the next is due, until when a message is worth sending, who claimed it and when, what
it is for and for which member, and the payload (the clear text and address, NULL once
the row is finished). Existing rows keep their status.

The audit log stays append-only, except that the retention purge may delete rows older
than a year (``AUDIT_RETENTION_DAYS``, at least 365): the triggers now let a DELETE of
such a row through and still refuse every UPDATE, every younger row's DELETE and, on
PostgreSQL, TRUNCATE.

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
# The youngest audit row the retention purge may delete (bot.settings keeps
# AUDIT_RETENTION_DAYS at or above it).
AUDIT_FLOOR_DAYS = 365

_SQLITE_AUDIT_DELETE = f"""
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    WHEN OLD.at >= datetime('now', '-{AUDIT_FLOOR_DAYS} days')
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE rejected'); END
"""
_SQLITE_AUDIT_DELETE_BEFORE = """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE rejected'); END
"""
_POSTGRES_AUDIT_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE'
           AND OLD.at < (now() AT TIME ZONE 'UTC') - interval '{AUDIT_FLOOR_DAYS} days' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION USING
            MESSAGE = 'audit_log is append-only: ' || TG_OP || ' rejected',
            ERRCODE = 'insufficient_privilege';
    END
    $$
"""
_POSTGRES_AUDIT_FUNCTION_BEFORE = """
    CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'audit_log is append-only: ' || TG_OP || ' rejected',
            ERRCODE = 'insufficient_privilege';
    END
    $$
"""


def _audit_triggers(sqlite_delete: str, postgres_function: str) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        op.execute(sqlite_delete)
    elif dialect == "postgresql":
        op.execute(postgres_function)
    else:
        raise NotImplementedError(f"no append-only triggers for {dialect}: add them here")


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
    _audit_triggers(_SQLITE_AUDIT_DELETE, _POSTGRES_AUDIT_FUNCTION)


def downgrade() -> None:
    """Undo :func:`upgrade`; rows not yet sent are recorded as failed."""
    _audit_triggers(_SQLITE_AUDIT_DELETE_BEFORE, _POSTGRES_AUDIT_FUNCTION_BEFORE)
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
