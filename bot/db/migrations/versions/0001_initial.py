"""Members, verifications, lockouts, the append-only audit log, outbound messages, escalations.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The audit log is append-only, enforced by the database itself so that no code path
# (nor a console session with the app's credentials) can rewrite history quietly.
_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE rejected'); END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE rejected'); END
    """,
]
_POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'audit_log is append-only: ' || TG_OP || ' rejected',
            ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
]


def _timestamp(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    """Create the tables, indexes and the audit log's append-only triggers."""
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("insurer_number", sa.String(8), nullable=True),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("number", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("name_kana", sa.String(64), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("phone", sa.String(20), nullable=True),
        sa.Column("acquired_on", sa.Date(), nullable=False),
        sa.Column("lost_on", sa.Date(), nullable=True),
        sa.Column("relationship", sa.String(16), nullable=False),
        sa.Column("insured_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_members"),
        sa.ForeignKeyConstraint(
            ["insured_id"], ["members.id"], name="fk_members_insured_id_members"
        ),
        sa.UniqueConstraint(
            "symbol", "number", "birth_date", name="uq_members_symbol_number_birth_date"
        ),
        sa.CheckConstraint(
            "relationship IN ('insured', 'dependant')", name=op.f("ck_members_relationship")
        ),
        sa.CheckConstraint(
            "(relationship = 'insured' AND insured_id IS NULL)"
            " OR (relationship = 'dependant' AND insured_id IS NOT NULL)",
            name=op.f("ck_members_insured_id"),
        ),
    )
    op.create_index("ix_members_insured_id", "members", ["insured_id"])

    op.create_table(
        "verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("session_key", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code_salt", sa.String(32), nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=True),
        _timestamp("code_expires_at"),
        sa.Column("code_wrong_attempts", sa.Integer(), nullable=False),
        sa.Column("codes_sent", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("verified_at"),
        _timestamp("last_seen_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verifications"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name="fk_verifications_member_id_members"
        ),
        sa.CheckConstraint(
            "status IN ('pending_code', 'verified', 'failed', 'expired', 'cancelled', 'locked')",
            name=op.f("ck_verifications_status"),
        ),
    )
    op.create_index(
        "ix_verifications_sender_id_session_key", "verifications", ["sender_id", "session_key"]
    )
    # One live code per member, whatever the code path: a partial unique index.
    op.create_index(
        "uq_verifications_live_code_per_member",
        "verifications",
        ["member_id"],
        unique=True,
        sqlite_where=sa.text("status = 'pending_code'"),
        postgresql_where=sa.text("status = 'pending_code'"),
    )

    op.create_table(
        "verification_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_key_hash", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        _timestamp("at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_verification_failures"),
    )
    op.create_index(
        "ix_verification_failures_member_key_hash_at",
        "verification_failures",
        ["member_key_hash", "at"],
    )
    op.create_index(
        "ix_verification_failures_sender_id_at", "verification_failures", ["sender_id", "at"]
    )

    op.create_table(
        "verification_lockouts",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        _timestamp("locked_until"),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_verification_lockouts"),
        sa.CheckConstraint(
            "kind IN ('member', 'sender')", name=op.f("ck_verification_lockouts_kind")
        ),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("at", nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("sender_id", sa.String(255), nullable=True),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_member_id", "audit_log", ["member_id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    op.create_table(
        "outbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("to", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _timestamp("created_at", nullable=False),
        _timestamp("sent_at"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbound_messages"),
        sa.CheckConstraint(
            "status IN ('sent', 'failed')", name=op.f("ck_outbound_messages_status")
        ),
    )

    op.create_table(
        "escalations",
        sa.Column("id", sa.Integer(), nullable=False),
        _timestamp("created_at", nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=True),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_escalations"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name="fk_escalations_member_id_members"
        ),
    )
    op.create_index("ix_escalations_status_created_at", "escalations", ["status", "created_at"])

    dialect = op.get_bind().dialect.name
    triggers = {"sqlite": _SQLITE_TRIGGERS, "postgresql": _POSTGRES_TRIGGERS}.get(dialect)
    if triggers is None:
        raise NotImplementedError(f"no append-only triggers for {dialect}: add them here")
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    """Drop everything :func:`upgrade` created."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    for table in (
        "escalations",
        "outbound_messages",
        "audit_log",
        "verification_lockouts",
        "verification_failures",
        "verifications",
        "members",
    ):
        op.drop_table(table)
