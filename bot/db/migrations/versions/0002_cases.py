"""Formal requests as cases: drafts, cases, their append-only history, case numbers.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# A case's history is evidence (when a request arrived, who extended or decided it and
# why: 39条 counts from the arrival), so the database itself refuses to rewrite it.
_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
    BEGIN SELECT RAISE(ABORT, 'case_events is append-only: UPDATE rejected'); END
    """,
    """
    CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
    BEGIN SELECT RAISE(ABORT, 'case_events is append-only: DELETE rejected'); END
    """,
]
_POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION case_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'case_events is append-only: ' || TG_OP || ' rejected',
            ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER case_events_no_update_delete BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION case_events_append_only()
    """,
    """
    CREATE TRIGGER case_events_no_truncate BEFORE TRUNCATE ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION case_events_append_only()
    """,
]

_CASE_TYPES = (
    "'purpose_notice', 'disclosure', 'correction', 'suspension', 'third_party_stop', "
    "'mailing_opt_out'"
)
_ROLES = "'self', 'legal_guardian', 'appointed_agent'"
_OUTCOMES = (
    "'disclosed', 'partially_disclosed', 'not_disclosed', 'not_held', 'corrected', "
    "'partially_corrected', 'not_corrected', 'suspended', 'partially_suspended', "
    "'alternative_measure', 'not_suspended', 'stopped', 'not_stopped', 'notified', "
    "'not_notified', 'accepted', 'not_accepted'"
)


def _timestamp(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    """Create the case tables, their indexes and the history's append-only triggers."""
    op.create_table(
        "case_number_sequences",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name="pk_case_number_sequences"),
    )

    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(20), nullable=False),
        sa.Column("draft_id", sa.String(32), nullable=True),
        sa.Column("case_type", sa.String(24), nullable=False),
        sa.Column("target", sa.String(24), nullable=True),
        sa.Column("requester_member_id", sa.Integer(), nullable=False),
        sa.Column("subject_member_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("agent_name", sa.String(128), nullable=True),
        sa.Column("agent_contact", sa.String(255), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("wrong_text", sa.Text(), nullable=True),
        sa.Column("right_text", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        _timestamp("received_at", nullable=False),
        sa.Column("period_days", sa.Integer(), nullable=True),
        sa.Column("max_extension_days", sa.Integer(), nullable=False),
        _timestamp("due_at"),
        _timestamp("awaiting_since"),
        sa.Column("paused_days", sa.Integer(), nullable=False),
        sa.Column("extended_days", sa.Integer(), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("fee_kind", sa.String(16), nullable=False),
        sa.Column("fee_amount_yen", sa.Integer(), nullable=True),
        sa.Column("fee_source", sa.String(255), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("legal_ground", sa.Text(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        _timestamp("decided_at"),
        _timestamp("closed_at"),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.UniqueConstraint("case_number", name="uq_cases_case_number"),
        sa.UniqueConstraint("draft_id", name="uq_cases_draft_id"),
        sa.ForeignKeyConstraint(
            ["requester_member_id"], ["members.id"], name="fk_cases_requester_member_id_members"
        ),
        sa.ForeignKeyConstraint(
            ["subject_member_id"], ["members.id"], name="fk_cases_subject_member_id_members"
        ),
        sa.CheckConstraint(f"case_type IN ({_CASE_TYPES})", name=op.f("ck_cases_case_type")),
        sa.CheckConstraint(
            "target IS NULL OR target IN ('retained_data', 'third_party_records', 'receipts')",
            name=op.f("ck_cases_target"),
        ),
        sa.CheckConstraint(
            "(case_type = 'disclosure') = (target IS NOT NULL)",
            name=op.f("ck_cases_target_for_disclosure"),
        ),
        sa.CheckConstraint(f"role IN ({_ROLES})", name=op.f("ck_cases_role")),
        sa.CheckConstraint(
            "role <> 'appointed_agent' OR agent_name IS NOT NULL",
            name=op.f("ck_cases_agent_name"),
        ),
        sa.CheckConstraint(
            "method IS NULL OR method IN ('electronic', 'paper')", name=op.f("ck_cases_method")
        ),
        sa.CheckConstraint(
            "status IN ('received', 'awaiting_documents', 'under_review', 'extended', "
            "'decided', 'closed', 'withdrawn')",
            name=op.f("ck_cases_status"),
        ),
        sa.CheckConstraint(
            "fee_kind IN ('none_by_law', 'free', 'fixed', 'detailed_rules', 'unpublished')",
            name=op.f("ck_cases_fee_kind"),
        ),
        sa.CheckConstraint(
            f"outcome IS NULL OR outcome IN ({_OUTCOMES})", name=op.f("ck_cases_outcome")
        ),
        sa.CheckConstraint(
            "status <> 'decided' OR outcome IS NOT NULL", name=op.f("ck_cases_decided_outcome")
        ),
        sa.CheckConstraint(
            "extended_days >= 0 AND extended_days <= max_extension_days",
            name=op.f("ck_cases_extension_cap"),
        ),
        sa.CheckConstraint("paused_days >= 0", name=op.f("ck_cases_paused_days")),
    )
    # What makes a member's case list and the staff's work list index range scans
    # with a LIMIT, however many cases the table holds (see bench/cases.py).
    op.create_index(
        "ix_cases_requester_member_id_received_at",
        "cases",
        ["requester_member_id", "received_at"],
    )
    op.create_index(
        "ix_cases_subject_member_id_received_at", "cases", ["subject_member_id", "received_at"]
    )
    op.create_index(
        "ix_cases_status_due_at_received_at", "cases", ["status", "due_at", "received_at"]
    )

    op.create_table(
        "case_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        _timestamp("at", nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_events_case_id_cases"),
    )
    op.create_index("ix_case_events_case_id_id", "case_events", ["case_id", "id"])

    op.create_table(
        "case_drafts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("session_key", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("case_type", sa.String(24), nullable=False),
        sa.Column("requester_member_id", sa.Integer(), nullable=False),
        sa.Column("subject_member_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("target", sa.String(24), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("wrong_text", sa.Text(), nullable=True),
        sa.Column("right_text", sa.Text(), nullable=True),
        sa.Column("agent_name", sa.String(128), nullable=True),
        sa.Column("agent_contact", sa.String(255), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        _timestamp("created_at", nullable=False),
        _timestamp("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_drafts"),
        sa.ForeignKeyConstraint(
            ["requester_member_id"],
            ["members.id"],
            name="fk_case_drafts_requester_member_id_members",
        ),
        sa.ForeignKeyConstraint(
            ["subject_member_id"], ["members.id"], name="fk_case_drafts_subject_member_id_members"
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_drafts_case_id_cases"),
        sa.CheckConstraint(
            "status IN ('open', 'confirmed', 'duplicate', 'discarded')",
            name=op.f("ck_case_drafts_status"),
        ),
        sa.CheckConstraint(f"case_type IN ({_CASE_TYPES})", name=op.f("ck_case_drafts_case_type")),
        sa.CheckConstraint(f"role IN ({_ROLES})", name=op.f("ck_case_drafts_role")),
    )
    op.create_index("ix_case_drafts_sender_id", "case_drafts", ["sender_id"])

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
        op.execute("DROP TRIGGER IF EXISTS case_events_no_truncate ON case_events")
        op.execute("DROP TRIGGER IF EXISTS case_events_no_update_delete ON case_events")
        op.execute("DROP FUNCTION IF EXISTS case_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS case_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS case_events_no_delete")
    for table in ("case_drafts", "case_events", "cases", "case_number_sequences"):
        op.drop_table(table)
