"""The app database's tables.

SQLAlchemy 1.4 declarative with ``Mapped[...]`` annotations, so that the move to 2.0's
``mapped_column`` is mechanical. The schema itself is created by the Alembic migrations
in ``bot/db/migrations``; a test checks that these models and the migrations agree.

Timestamps are stored as UTC without a zone (``timestamp without time zone`` on
PostgreSQL, text on SQLite) and come back as aware UTC datetimes; naive datetimes are
refused on the way in, so a local clock can never be mistaken for UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declarative_base
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: Alembic can then alter or drop them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
Base: Any = declarative_base(metadata=metadata)


class UtcDateTime(TypeDecorator):
    """An aware UTC datetime in Python, a zone-less UTC timestamp in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Convert an aware datetime to naive UTC; refuse naive ones."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Mark the stored naive UTC value as UTC."""
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Relationship(str, Enum):
    """A member's place in the insurance: 本人 or 被扶養者."""

    INSURED = "insured"
    DEPENDANT = "dependant"


class VerificationStatus(str, Enum):
    """Where one verification attempt stands."""

    PENDING_CODE = "pending_code"
    VERIFIED = "verified"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    LOCKED = "locked"


class LockoutKind(str, Enum):
    """What a failure counter and lock are kept for."""

    MEMBER = "member"  # a member number (記号・番号), by its keyed hash
    SENDER = "sender"  # a conversation, by its sender id


def _in(column: str, enum: type[Enum]) -> str:
    values = ", ".join(f"'{item.value}'" for item in enum)
    return f"{column} IN ({values})"


class Member(Base):
    """An insured person (本人) or a dependant (被扶養者): each verifies as themself.

    A dependant shares 記号・番号 with the insured person; the birth date tells them
    apart, which is why (記号, 番号, 生年月日) is unique and is the verification key.
    """

    __tablename__ = "members"
    __table_args__ = (
        sa.UniqueConstraint("symbol", "number", "birth_date"),
        sa.CheckConstraint(_in("relationship", Relationship), name="relationship"),
        sa.CheckConstraint(
            "(relationship = 'insured' AND insured_id IS NULL)"
            " OR (relationship = 'dependant' AND insured_id IS NOT NULL)",
            name="insured_id",
        ),
        sa.Index(None, "insured_id"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    insurer_number: Mapped[str | None] = sa.Column(sa.String(8))  # 保険者番号
    symbol: Mapped[str] = sa.Column(sa.String(16), nullable=False)  # 記号
    number: Mapped[str] = sa.Column(sa.String(16), nullable=False)  # 番号
    name: Mapped[str] = sa.Column(sa.String(64), nullable=False)  # 氏名
    name_kana: Mapped[str] = sa.Column(sa.String(64), nullable=False)  # 氏名カナ
    birth_date: Mapped[date] = sa.Column(sa.Date, nullable=False)
    phone: Mapped[str | None] = sa.Column(sa.String(20))  # E.164; codes go here
    acquired_on: Mapped[date] = sa.Column(sa.Date, nullable=False)  # 資格取得日
    lost_on: Mapped[date | None] = sa.Column(sa.Date)  # 資格喪失日
    relationship: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    insured_id: Mapped[int | None] = sa.Column(sa.Integer, sa.ForeignKey("members.id"))


class Verification(Base):
    """One verification attempt of one conversation (sender id + Rasa session).

    The code is never stored: only an HMAC of it with the app secret and the row's salt.
    At most one live code per member, enforced by a partial unique index.
    """

    __tablename__ = "verifications"
    __table_args__ = (
        sa.CheckConstraint(_in("status", VerificationStatus), name="status"),
        sa.Index(None, "sender_id", "session_key"),
        sa.Index(
            "uq_verifications_live_code_per_member",
            "member_id",
            unique=True,
            sqlite_where=sa.text("status = 'pending_code'"),
            postgresql_where=sa.text("status = 'pending_code'"),
        ),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    sender_id: Mapped[str] = sa.Column(sa.String(255), nullable=False)
    session_key: Mapped[str] = sa.Column(sa.String(255), nullable=False)
    channel: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    member_id: Mapped[int | None] = sa.Column(sa.Integer, sa.ForeignKey("members.id"))
    status: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    code_salt: Mapped[str | None] = sa.Column(sa.String(32))
    code_hash: Mapped[str | None] = sa.Column(sa.String(64))
    code_expires_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    code_wrong_attempts: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0)
    codes_sent: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    verified_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    last_seen_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)


class VerificationFailure(Base):
    """One failed verification (factor mismatch or dead code), counted for lockout.

    The member number is kept only as a keyed hash: numbers people tried that belong to
    nobody are not stored in clear.
    """

    __tablename__ = "verification_failures"
    __table_args__ = (
        sa.Index(None, "member_key_hash", "at"),
        sa.Index(None, "sender_id", "at"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    member_key_hash: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    sender_id: Mapped[str] = sa.Column(sa.String(255), nullable=False)
    at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)


class VerificationLockout(Base):
    """The lock state of one member number or one sender.

    One row per key. Its row lock serializes the failure counting of that key (so two
    concurrent failures can never both see "2 so far"), and ``locked_until`` is the
    lock itself; failures before the end of a lock do not count towards the next one.
    """

    __tablename__ = "verification_lockouts"
    __table_args__ = (sa.CheckConstraint(_in("kind", LockoutKind), name="kind"),)

    kind: Mapped[str] = sa.Column(sa.String(8), primary_key=True)
    key: Mapped[str] = sa.Column(sa.String(255), primary_key=True)
    locked_until: Mapped[datetime | None] = sa.Column(UtcDateTime)


# --- verification limits per member number (revision 0006) -------------------------


class VerificationEventKind(str, Enum):
    """What a verification event counts towards (see :class:`VerificationEvent`)."""

    CODE_SENT = "code_sent"  # one SMS issued: the daily cap per number, the global rate
    WRONG_CODE = "wrong_code"  # one wrong code entry: the tries of the number's codes
    CODE_DEAD = "code_dead"  # the tries ran out: wrong codes before it count no more
    VERIFIED = "verified"  # a code matched: wrong codes before it count no more


class VerificationEvent(Base):
    """One SMS issued or one code entry, counted per member number in every conversation.

    The limits of :mod:`bot.identity.verification` are counted from these rows, so they hold
    across conversations, channels and action server replicas. The member number is kept
    only as the same keyed hash as in ``verification_failures``; nothing else about the
    member or the conversation is stored (the audit log has that).
    """

    __tablename__ = "verification_events"
    __table_args__ = (
        sa.CheckConstraint(_in("kind", VerificationEventKind), name="kind"),
        # Per number: SMS in the last 24 hours, wrong codes since the last reset.
        sa.Index(None, "member_key_hash", "kind", "at"),
        # All numbers: SMS in the last minute (the global rate).
        sa.Index(None, "kind", "at"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    member_key_hash: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    kind: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)


class AuditLog(Base):
    """Append-only record of every verification step and every read of personal data.

    UPDATE and DELETE are rejected by database triggers (see the first migration).
    ``detail`` never holds birth dates, phone numbers or member numbers in clear.
    ``member_id`` has no foreign key on purpose: erasing a member must not require
    touching (or be blocked by) the audit trail.
    """

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index(None, "member_id"), sa.Index(None, "at"))

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    actor: Mapped[str] = sa.Column(
        sa.String(64), nullable=False
    )  # member:<id> | system | staff:<id>
    action: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    member_id: Mapped[int | None] = sa.Column(sa.Integer)
    sender_id: Mapped[str | None] = sa.Column(sa.String(255))
    channel: Mapped[str | None] = sa.Column(sa.String(64))
    detail: Mapped[dict[str, Any]] = sa.Column(sa.JSON, nullable=False)


class OutboundStatus(str, Enum):
    """Where one outbound message stands (``bot.outbound.outbox``).

    ``pending`` rows wait for their ``next_attempt_at``; a deliverer claims one
    (``sending``, committed) before it calls the carrier, then marks it ``sent`` or, after
    the last try, ``failed``. A row left in ``sending`` past its lease (its deliverer
    died) becomes ``unknown`` for SMS, which are never sent twice, and ``pending`` again
    for LINE, whose retry key makes a second push harmless.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


class OutboundMessage(Base):
    """Every message sent to a member: the outbox and the record of what became of it.

    Written in the transaction of the change it announces and sent after that commits
    (``bot.outbound``). ``text`` is what may be kept (a verification code masked);
    ``payload`` is what the carrier needs (the clear text, the LINE user id), kept only
    until the row is finished. ``retry_key`` is the row's own uuid, sent to LINE as
    ``X-Line-Retry-Key``.
    """

    __tablename__ = "outbound_messages"
    __table_args__ = (
        sa.CheckConstraint(_in("status", OutboundStatus), name="status"),
        # The deliverers' query: due pending rows, and sending rows past their lease.
        sa.Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    channel: Mapped[str] = sa.Column(sa.String(16), nullable=False)  # sms | line ...
    to: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    text: Mapped[str] = sa.Column(sa.Text, nullable=False)
    status: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    sent_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    error: Mapped[str | None] = sa.Column(sa.Text)
    retry_key: Mapped[str | None] = sa.Column(sa.String(36), unique=True)
    purpose: Mapped[str | None] = sa.Column(sa.String(32))  # verification_code | case_...
    member_id: Mapped[int | None] = sa.Column(sa.Integer)
    payload: Mapped[str | None] = sa.Column(sa.Text)  # JSON; NULL once finished
    attempts: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    expires_at: Mapped[datetime | None] = sa.Column(UtcDateTime)  # not sent after this
    claimed_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    claimed_by: Mapped[str | None] = sa.Column(sa.String(96))


class EscalationStatus(str, Enum):
    """Where a hand-off to staff stands."""

    WAITING = "waiting"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class StaffRole(str, Enum):
    """What a staff account may do."""

    AGENT = "agent"
    PRIVACY_OFFICER = "privacy_officer"
    ADMIN = "admin"


class Escalation(Base):
    """A conversation or a matter handed to staff (a request for a person, a lock...).

    At most one escalation per sender is waiting or in progress (``bot.handoff.escalations``).
    """

    __tablename__ = "escalations"
    __table_args__ = (
        sa.CheckConstraint(_in("status", EscalationStatus), name="status"),
        sa.Index(None, "status", "created_at"),
        sa.Index(None, "sender_id"),
        # The hand-offs of the last hour, whatever their status (bot.handoff.escalations limits).
        sa.Index(None, "created_at"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    reason: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    sender_id: Mapped[str | None] = sa.Column(sa.String(255))
    channel: Mapped[str | None] = sa.Column(sa.String(64))
    member_id: Mapped[int | None] = sa.Column(sa.Integer, sa.ForeignKey("members.id"))
    status: Mapped[str] = sa.Column(
        sa.String(16),
        nullable=False,
        default=EscalationStatus.WAITING.value,
        server_default=EscalationStatus.WAITING.value,
    )
    note: Mapped[str | None] = sa.Column(sa.Text)
    assigned_staff: Mapped[str | None] = sa.Column(sa.String(64))
    claimed_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    closed_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    # Whether this hand-off paused the conversation in Rasa (a lockout does not): only
    # then must closing it resume the conversation, and a new session pause it again.
    paused: Mapped[bool] = sa.Column(
        sa.Boolean, nullable=False, default=False, server_default=sa.false()
    )


class StaffAccount(Base):
    """A staff member who works escalations and cases; the password only as scrypt hash."""

    __tablename__ = "staff_accounts"
    __table_args__ = (sa.CheckConstraint(_in("role", StaffRole), name="role"),)

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    name: Mapped[str] = sa.Column(sa.String(64), nullable=False, unique=True)
    role: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    password_salt: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    password_hash: Mapped[str] = sa.Column(sa.String(128), nullable=False)
    active: Mapped[bool] = sa.Column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    last_login_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    # Who created the account: the administrator's name (console) or ``cli:<os user>``;
    # NULL for accounts made before revision 0007. Sign-in throttling is kept apart, in
    # ``signin_throttles`` (no per-account lock that anyone could trigger).
    created_by: Mapped[str | None] = sa.Column(sa.String(64))


class StaffSession(Base):
    """A signed-in console session; the cookie holds a token, the row only its SHA-256."""

    __tablename__ = "staff_sessions"
    __table_args__ = (sa.Index(None, "account_id"),)

    id: Mapped[str] = sa.Column(sa.String(64), primary_key=True)  # sha256(token) hex
    account_id: Mapped[int] = sa.Column(
        sa.Integer, sa.ForeignKey("staff_accounts.id"), nullable=False
    )
    csrf_token: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = sa.Column(UtcDateTime)


class SignInThrottle(Base):
    """Failed console sign-ins of one key, and until when its next attempt is refused.

    Three kinds of key (``bot.staff.accounts``): a name typed (``address_key`` empty), a
    client address (``name_key`` empty), and a name at an address. Both are HMACs with
    the console's key: the table tells neither which names exist (every name typed is
    counted alike) nor a password someone typed into the name field. The row lock
    serializes the counting of its key across console replicas.
    """

    __tablename__ = "signin_throttles"

    name_key: Mapped[str] = sa.Column(sa.String(64), primary_key=True)
    address_key: Mapped[str] = sa.Column(sa.String(64), primary_key=True)
    failures: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0, server_default="0")
    last_failed_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    blocked_until: Mapped[datetime | None] = sa.Column(UtcDateTime)
    # Name-at-address rows: the account last signed in from here (a known address).
    last_success_at: Mapped[datetime | None] = sa.Column(UtcDateTime)


class StaffMessage(Base):
    """A reply staff wrote to a member in an escalated conversation.

    The console stores it, then asks the rasa server to run the relay action, which
    sends every undelivered message of the sender on the member's channel and sets
    ``delivered_at``.
    """

    __tablename__ = "staff_messages"
    __table_args__ = (
        sa.Index(None, "sender_id", "delivered_at"),
        sa.Index(None, "escalation_id"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    escalation_id: Mapped[int] = sa.Column(
        sa.Integer, sa.ForeignKey("escalations.id"), nullable=False
    )
    sender_id: Mapped[str] = sa.Column(sa.String(255), nullable=False)
    staff: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    text: Mapped[str] = sa.Column(sa.Text, nullable=False)
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = sa.Column(UtcDateTime)


class WebSession(Base):
    """A website-chat session the channel issued (``bot/channels/web_sessions.py``).

    The id is the conversation's native id (the sender id is ``web:<id>``) and is no
    credential: staff see it. Continuing the session takes the resume secret, of which
    only the SHA-256 is kept; it changes on every resume. ``socket_id`` is the socket
    that holds the session now, so that a resume can end the one before.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (sa.Index(None, "last_seen_at"),)  # the retention purge

    id: Mapped[str] = sa.Column(sa.String(32), primary_key=True)  # uuid4 hex
    secret_hash: Mapped[str] = sa.Column(sa.String(64), nullable=False)  # sha256 hex
    socket_id: Mapped[str | None] = sa.Column(sa.String(64))
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)


# --- formal requests as cases (開示等の請求) -----------------------------------------


class CaseType(str, Enum):
    """What a formal request asks for (APPI 32–35条, plus household-mailing opt-out)."""

    PURPOSE_NOTICE = "purpose_notice"  # 利用目的の通知
    DISCLOSURE = "disclosure"  # 開示
    CORRECTION = "correction"  # 訂正・追加・削除
    SUSPENSION = "suspension"  # 利用停止・消去
    THIRD_PARTY_STOP = "third_party_stop"  # 第三者提供の停止
    MAILING_OPT_OUT = "mailing_opt_out"  # 世帯あて送付への同意の撤回


class DisclosureTarget(str, Enum):
    """What a disclosure request is about."""

    RETAINED_DATA = "retained_data"  # 保有個人データ (33条1項)
    THIRD_PARTY_RECORDS = "third_party_records"  # 第三者提供記録 (33条5項)
    RECEIPTS = "receipts"  # レセプト


class Method(str, Enum):
    """How the member wants the disclosure (33条1項: the requester chooses)."""

    ELECTRONIC = "electronic"
    PAPER = "paper"


class RequesterRole(str, Enum):
    """Who the requester is to the person the request is about."""

    SELF = "self"
    LEGAL_GUARDIAN = "legal_guardian"  # 法定代理人 of a minor dependant
    APPOINTED_AGENT = "appointed_agent"  # 任意代理人 (委任状)


class CaseStatus(str, Enum):
    """Where a case stands; the legal moves are in ``bot.cases.types.TRANSITIONS``."""

    RECEIVED = "received"
    AWAITING_DOCUMENTS = "awaiting_documents"
    UNDER_REVIEW = "under_review"
    EXTENDED = "extended"
    DECIDED = "decided"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class CaseOutcome(str, Enum):
    """What was decided; which outcomes fit which case type is in ``bot.cases.types``."""

    DISCLOSED = "disclosed"
    PARTIALLY_DISCLOSED = "partially_disclosed"
    NOT_DISCLOSED = "not_disclosed"
    NOT_HELD = "not_held"
    CORRECTED = "corrected"
    PARTIALLY_CORRECTED = "partially_corrected"
    NOT_CORRECTED = "not_corrected"
    SUSPENDED = "suspended"
    PARTIALLY_SUSPENDED = "partially_suspended"
    ALTERNATIVE_MEASURE = "alternative_measure"
    NOT_SUSPENDED = "not_suspended"
    STOPPED = "stopped"
    NOT_STOPPED = "not_stopped"
    NOTIFIED = "notified"
    NOT_NOTIFIED = "not_notified"
    ACCEPTED = "accepted"
    NOT_ACCEPTED = "not_accepted"


class DraftStatus(str, Enum):
    """Where a request draft stands."""

    OPEN = "open"
    CONFIRMED = "confirmed"  # became the case in ``case_id``
    DUPLICATE = "duplicate"  # the same request was already open: ``case_id`` is that case
    DISCARDED = "discarded"


FEE_KINDS = ("none_by_law", "free", "fixed", "detailed_rules", "unpublished")


class CaseNumberSequence(Base):
    """The last case number given out in one (JST) year: PR-YYYY-NNNNNN.

    The row is locked while a case is created, so numbers are unique and, because the
    increment commits or rolls back with the case, gap-free.
    """

    __tablename__ = "case_number_sequences"

    year: Mapped[int] = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = sa.Column(sa.Integer, nullable=False)


class Case(Base):
    """One formal request of a member, from receipt to closing.

    The rules it is handled under (the period, the extension cap, the fee) are copied
    from the organization profile when it is received: a later profile change does not
    move the deadline of a case already running. The text the member typed (scope,
    reason, the wrong and right values, the agent's details) lives only here and in
    the draft it came from, never in logs or audit details.
    """

    __tablename__ = "cases"
    __table_args__ = (
        sa.CheckConstraint(_in("case_type", CaseType), name="case_type"),
        sa.CheckConstraint(f"target IS NULL OR {_in('target', DisclosureTarget)}", name="target"),
        sa.CheckConstraint(
            "(case_type = 'disclosure') = (target IS NOT NULL)", name="target_for_disclosure"
        ),
        sa.CheckConstraint(_in("role", RequesterRole), name="role"),
        sa.CheckConstraint(
            "role <> 'appointed_agent' OR agent_name IS NOT NULL", name="agent_name"
        ),
        sa.CheckConstraint(f"method IS NULL OR {_in('method', Method)}", name="method"),
        sa.CheckConstraint(_in("status", CaseStatus), name="status"),
        sa.CheckConstraint(
            f"fee_kind IN ({', '.join(repr(kind) for kind in FEE_KINDS)})", name="fee_kind"
        ),
        sa.CheckConstraint(f"outcome IS NULL OR {_in('outcome', CaseOutcome)}", name="outcome"),
        sa.CheckConstraint("status <> 'decided' OR outcome IS NOT NULL", name="decided_outcome"),
        sa.CheckConstraint(
            "extended_days >= 0 AND extended_days <= max_extension_days", name="extension_cap"
        ),
        sa.CheckConstraint("paused_days >= 0", name="paused_days"),
        # member_cases: a member's own requests and the requests about them, newest first.
        sa.Index(None, "requester_member_id", "received_at"),
        sa.Index(None, "subject_member_id", "received_at"),
        # list_cases: one status's cases by due date, then by receipt.
        sa.Index(None, "status", "due_at", "received_at"),
    )

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    case_number: Mapped[str] = sa.Column(sa.String(20), nullable=False, unique=True)
    # Unique: one confirmed draft makes one case, whatever the code path.
    draft_id: Mapped[str | None] = sa.Column(sa.String(32), unique=True)
    case_type: Mapped[str] = sa.Column(sa.String(24), nullable=False)
    target: Mapped[str | None] = sa.Column(sa.String(24))
    requester_member_id: Mapped[int] = sa.Column(
        sa.Integer, sa.ForeignKey("members.id"), nullable=False
    )
    subject_member_id: Mapped[int] = sa.Column(
        sa.Integer, sa.ForeignKey("members.id"), nullable=False
    )
    role: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    agent_name: Mapped[str | None] = sa.Column(sa.String(128))
    agent_contact: Mapped[str | None] = sa.Column(sa.String(255))
    scope: Mapped[list[str]] = sa.Column(sa.JSON, nullable=False)
    method: Mapped[str | None] = sa.Column(sa.String(16))
    reason: Mapped[str | None] = sa.Column(sa.Text)
    wrong_text: Mapped[str | None] = sa.Column(sa.Text)
    right_text: Mapped[str | None] = sa.Column(sa.Text)
    channel: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    sender_id: Mapped[str | None] = sa.Column(sa.String(255))
    status: Mapped[str] = sa.Column(sa.String(24), nullable=False)
    received_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    period_days: Mapped[int | None] = sa.Column(sa.Integer)
    max_extension_days: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0)
    due_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    awaiting_since: Mapped[datetime | None] = sa.Column(UtcDateTime)
    paused_days: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0)
    extended_days: Mapped[int] = sa.Column(sa.Integer, nullable=False, default=0)
    extension_reason: Mapped[str | None] = sa.Column(sa.Text)
    fee_kind: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    fee_amount_yen: Mapped[int | None] = sa.Column(sa.Integer)
    fee_source: Mapped[str | None] = sa.Column(sa.String(255))
    outcome: Mapped[str | None] = sa.Column(sa.String(32))
    legal_ground: Mapped[str | None] = sa.Column(sa.Text)
    explanation: Mapped[str | None] = sa.Column(sa.Text)
    decided_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    closed_at: Mapped[datetime | None] = sa.Column(UtcDateTime)
    updated_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)


class CaseEvent(Base):
    """One change of one case, with who made it; append-only like the audit log.

    ``reason`` is the staff member's reason (an internal note unless it is an
    extension's reason, which the member is told) or the member's action.
    """

    __tablename__ = "case_events"
    __table_args__ = (sa.Index(None, "case_id", "id"),)

    id: Mapped[int] = sa.Column(sa.Integer, primary_key=True)
    case_id: Mapped[int] = sa.Column(sa.Integer, sa.ForeignKey("cases.id"), nullable=False)
    at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    actor: Mapped[str] = sa.Column(sa.String(64), nullable=False)  # member:<id> | staff:<name>
    action: Mapped[str] = sa.Column(sa.String(32), nullable=False)
    from_status: Mapped[str | None] = sa.Column(sa.String(24))
    to_status: Mapped[str] = sa.Column(sa.String(24), nullable=False)
    reason: Mapped[str | None] = sa.Column(sa.Text)
    detail: Mapped[dict[str, Any]] = sa.Column(sa.JSON, nullable=False)


class CaseDraft(Base):
    """A request being put together in a conversation, before the member confirms it.

    What the member types is stored here, not in the dialog's slots: the dialog keeps
    only the draft id. Confirming turns the draft into exactly one case (``case_id``);
    free text is wiped from the draft once it is confirmed, found a duplicate or
    discarded, so it lives in one place only.
    """

    __tablename__ = "case_drafts"
    __table_args__ = (
        sa.CheckConstraint(_in("status", DraftStatus), name="status"),
        sa.CheckConstraint(_in("case_type", CaseType), name="case_type"),
        sa.CheckConstraint(_in("role", RequesterRole), name="role"),
        sa.Index(None, "sender_id"),
    )

    id: Mapped[str] = sa.Column(sa.String(32), primary_key=True)
    sender_id: Mapped[str] = sa.Column(sa.String(255), nullable=False)
    session_key: Mapped[str] = sa.Column(sa.String(255), nullable=False)
    channel: Mapped[str] = sa.Column(sa.String(64), nullable=False)
    status: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    case_type: Mapped[str] = sa.Column(sa.String(24), nullable=False)
    requester_member_id: Mapped[int] = sa.Column(
        sa.Integer, sa.ForeignKey("members.id"), nullable=False
    )
    subject_member_id: Mapped[int] = sa.Column(
        sa.Integer, sa.ForeignKey("members.id"), nullable=False
    )
    role: Mapped[str] = sa.Column(sa.String(16), nullable=False)
    target: Mapped[str | None] = sa.Column(sa.String(24))
    scope: Mapped[list[str]] = sa.Column(sa.JSON, nullable=False)
    method: Mapped[str | None] = sa.Column(sa.String(16))
    reason: Mapped[str | None] = sa.Column(sa.Text)
    wrong_text: Mapped[str | None] = sa.Column(sa.Text)
    right_text: Mapped[str | None] = sa.Column(sa.Text)
    agent_name: Mapped[str | None] = sa.Column(sa.String(128))
    agent_contact: Mapped[str | None] = sa.Column(sa.String(255))
    case_id: Mapped[int | None] = sa.Column(sa.Integer, sa.ForeignKey("cases.id"))
    created_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = sa.Column(UtcDateTime, nullable=False)
