"""Identity verification: two factors, then a one-time code by SMS.

Plain Python over the app database; the caller passes the session and owns the
transaction (``with session_factory(url).begin() as session``). Every decision is made
here against the database: a conversation is verified only while a ``verified`` row of
its own sender id and Rasa session exists and has been used within 15 minutes.

Rules:

- 記号・番号 and 生年月日 must match one member (an insured person or a dependant, each
  verifies as themself); a mismatch looks the same whether or not the number exists,
  and so does the right pair for a locked number: no SMS, the same outcome.
- A code is 6 digits, lives 5 minutes, works only in the conversation that asked for it;
  a new code replaces the old one, and a member has at most one live code (a partial
  unique index holds that even against a bug here).
- Wrong codes are counted per member number (記号・番号, all conversations and channels,
  ``verification_events``), not per code: 3 wrong entries within 30 minutes kill every
  live code under the number and count as one failed verification. Neither a resend
  nor new factors give more tries; only that failure or a success starts them afresh.
- 3 failed verifications (mismatch or dead code) within 30 minutes, counted per member
  number and per sender, lock both for 30 minutes and write one audit row per lock;
  staff get one escalation per locked member, reused while it is open.
- SMS are counted per member number too: at most ``per_member_day`` in any 24 hours and
  ``per_minute`` across all members (:class:`SmsLimits`, from the settings); past either,
  no SMS goes out and no live code is touched.

Concurrency: before anything that may count a failure or issue a code, the rows of
``verification_lockouts`` for the member number and the sender are locked (created if
missing) in a fixed order, then the member row. On PostgreSQL those are row locks
(``SELECT ... FOR UPDATE``); on SQLite every transaction holds the database's write lock
from its start (see :mod:`bot.db.session`). So two failures can never both count as
"the second", two conversations cannot both hold a live code of the same member, and
the per-number counts are exact. The global SMS rate is counted under a transaction
advisory lock on PostgreSQL, taken last, after every row lock.

Privacy: codes are stored as HMAC-SHA256 (app secret, per-row salt), member numbers in
failure records as HMACs; audit details and log lines carry ids and statuses only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.core.conversation import Conversation
from bot.db.audit import audit
from bot.db.models import (
    LockoutKind,
    Member,
    Relationship,
    Verification,
    VerificationEvent,
    VerificationEventKind,
    VerificationFailure,
    VerificationLockout,
    VerificationStatus,
)
from bot.handoff.escalations import escalate_member
from bot.identity.parsing import MemberNumber, mask_phone
from bot.identity.parsing.member_number import HEALTH_INSURANCE_CARD
from bot.outbound.outbox import VERIFICATION_CODE, Carriers
from bot.outbound.sender import SMS, enqueue
from bot.outbound.sms import SmsSender
from bot.policy.profiles.schema import MemberIdentifier
from bot.settings import Settings, ensure_secret, load_settings

logger = logging.getLogger(__name__)

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_WRONG_CODES = 3
MAX_FAILURES = 3
FAILURE_WINDOW = timedelta(minutes=30)
LOCK_DURATION = timedelta(minutes=30)
IDLE_TIMEOUT = timedelta(minutes=15)
# Codes one verification may send (the first and two resends): a member's phone is not
# to be flooded by someone who happens to know their number and birth date.
MAX_CODES_PER_VERIFICATION = 3
SMS_DAY = timedelta(hours=24)  # the window of SmsLimits.per_member_day
SMS_RATE_WINDOW = timedelta(minutes=1)  # the window of SmsLimits.per_minute
# The PostgreSQL advisory lock that serializes the global SMS count (any fixed bigint
# nothing else in the database uses).
SMS_RATE_LOCK_KEY = 7_040_117_118_101_001
LOCK_ESCALATION_REASON = "verification_locked"

CODE_MASK = "*" * CODE_DIGITS
SMS_TEXT = "【本人確認】認証コード：{code}（5分間有効）。このコードを他人に教えないでください。"
READ_FIELDS = (
    "name",
    "member_number_masked",
    "acquired_on",
    "lost_on",
    "phone_masked",
    "dependant_names",
)


class Status(str, Enum):
    """What a verification step came to."""

    CODE_SENT = "code_sent"
    MISMATCH = "mismatch"
    LOCKED = "locked"
    VERIFIED = "verified"
    WRONG_CODE = "wrong_code"
    CODE_EXPIRED = "code_expired"
    CODE_DEAD = "code_dead"
    NO_PENDING = "no_pending"
    SMS_LIMIT = "sms_limit"  # the member number's SMS of the last 24 hours are used up
    SMS_BUSY = "sms_busy"  # the SMS of the last minute, all members, are used up


@dataclass(frozen=True)
class SmsLimits:
    """How many verification SMS may go out: per member number in 24 hours, per minute."""

    per_member_day: int = 5
    per_minute: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsLimits:
        """The limits the settings give (VERIFICATION_SMS_PER_MEMBER_DAY, ..._PER_MINUTE)."""
        return cls(
            per_member_day=settings.verification_sms_per_member_day,
            per_minute=settings.verification_sms_per_minute,
        )


@dataclass(frozen=True)
class Outcome:
    """The result of a step, with what the member may be told about it."""

    status: Status
    masked_phone: str | None = None  # CODE_SENT, e.g. "090-****-5678"
    # WRONG_CODE: code entries left for the member number; MISMATCH: failed
    # verifications left before a lock (never shown to the member).
    attempts_left: int | None = None
    locked_until: datetime | None = None  # LOCKED (aware UTC)


@dataclass(frozen=True)
class MemberView:
    """What a verified member is shown of their own record: masked where possible."""

    member_id: int
    name: str
    relationship: str
    masked_member_number: str
    acquired_on: date
    lost_on: date | None
    masked_phone: str | None
    dependant_names: tuple[str, ...]  # names only: a dependant's data is theirs


# --- values -----------------------------------------------------------------------


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(timezone.utc)


def _secret() -> bytes:
    return ensure_secret(load_settings()).encode("utf-8")


def _hmac(message: str) -> str:
    return hmac.new(_secret(), message.encode("utf-8"), hashlib.sha256).hexdigest()


def member_key_hash(symbol: str, number: str) -> str:
    """The keyed hash that failure counting and locks know a member number by."""
    return _hmac(f"member-key:{symbol.strip()}-{number.strip()}")


def _code_hash(salt: str, code: str) -> str:
    return _hmac(f"code:{salt}:{code}")


def _is_digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


# --- records ----------------------------------------------------------------------


def _audit(
    session: Session,
    now: datetime,
    action: str,
    conversation: Conversation,
    *,
    member_id: int | None = None,
    actor: str = "system",
    **detail: Any,
) -> None:
    audit(session, now, action, actor, member_id=member_id, conversation=conversation, **detail)


def _latest(
    session: Session, conversation: Conversation, lock: bool = False
) -> Verification | None:
    statement = (
        select(Verification)
        .where(
            Verification.sender_id == conversation.sender_id,
            Verification.session_key == conversation.session_key,
        )
        .order_by(Verification.id.desc())
        .limit(1)
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    row: Verification | None = session.execute(statement).scalar_one_or_none()
    return row


def _end_rows(session: Session, status: VerificationStatus, *where: Any) -> list[int]:
    """Give the rows that match ``where`` the final ``status`` and forget their codes.

    The rows are locked (oldest first, so concurrent callers lock in one order) and
    re-read, so a row another transaction just ended is seen as it is now.

    Returns:
        The ids of the rows ended.
    """
    rows = (
        session.execute(
            select(Verification)
            .where(*where)
            .order_by(Verification.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.status = status.value
        row.code_hash = None
    session.flush()
    return [row.id for row in rows]


def _end_open(
    session: Session, conversation: Conversation, status: VerificationStatus
) -> list[int]:
    """End this conversation's pending and verified rows; returns their ids."""
    return _end_rows(
        session,
        status,
        Verification.sender_id == conversation.sender_id,
        Verification.session_key == conversation.session_key,
        Verification.status.in_(
            [VerificationStatus.PENDING_CODE.value, VerificationStatus.VERIFIED.value]
        ),
    )


# --- locks ------------------------------------------------------------------------


def _guards(
    session: Session, conversation: Conversation, member_key: str | None
) -> list[VerificationLockout]:
    """Create (if missing) and lock the lockout rows of the member number and sender."""
    keys = sorted(
        [(LockoutKind.SENDER.value, conversation.sender_id)]
        + ([(LockoutKind.MEMBER.value, member_key)] if member_key else [])
    )
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"verification locks are not implemented for {dialect}")
    # One at a time in sorted order: every transaction takes these locks in one order,
    # so two of them can wait for each other but never deadlock.
    for kind, key in keys:
        session.execute(
            insert(VerificationLockout).values(kind=kind, key=key).on_conflict_do_nothing()
        )
    statement = (
        select(VerificationLockout)
        .where(
            or_(
                *(
                    and_(VerificationLockout.kind == kind, VerificationLockout.key == key)
                    for kind, key in keys
                )
            )
        )
        .order_by(VerificationLockout.kind, VerificationLockout.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    guards: list[VerificationLockout] = list(session.execute(statement).scalars().all())
    return guards


def _locked_until(guards: Sequence[VerificationLockout], now: datetime) -> datetime | None:
    ends = [g.locked_until for g in guards if g.locked_until is not None and g.locked_until > now]
    return max(ends) if ends else None


def _guard(guards: Sequence[VerificationLockout], kind: LockoutKind) -> VerificationLockout:
    return next(guard for guard in guards if guard.kind == kind.value)


def _refuse_locked(
    session: Session,
    conversation: Conversation,
    now: datetime,
    until: datetime,
    step: str,
    member_id: int | None = None,
) -> Outcome:
    _audit(
        session,
        now,
        "verification.refused",
        conversation,
        member_id=member_id,
        step=step,
        reason="locked",
    )
    logger.info("verification step %s refused: locked", step)
    return Outcome(Status.LOCKED, locked_until=until)


def _count_failures(session: Session, guard: VerificationLockout, now: datetime) -> int:
    column = (
        VerificationFailure.member_key_hash
        if guard.kind == LockoutKind.MEMBER.value
        else VerificationFailure.sender_id
    )
    conditions = [column == guard.key, VerificationFailure.at > now - FAILURE_WINDOW]
    if guard.locked_until is not None:
        # Failures that led to the last lock do not count again once it has ended.
        conditions.append(VerificationFailure.at >= guard.locked_until)
    count: int = session.execute(
        select(func.count()).select_from(VerificationFailure).where(*conditions)
    ).scalar_one()
    return count


def _record_failure(
    session: Session,
    conversation: Conversation,
    guards: Sequence[VerificationLockout],
    member_key: str,
    now: datetime,
) -> tuple[int, datetime | None]:
    """Count one failed verification; returns (verifications left, lock end if locked now)."""
    session.add(
        VerificationFailure(member_key_hash=member_key, sender_id=conversation.sender_id, at=now)
    )
    session.flush()
    worst = max(_count_failures(session, guard, now) for guard in guards)
    if worst < MAX_FAILURES:
        return MAX_FAILURES - worst, None
    until = now + LOCK_DURATION
    for guard in guards:
        guard.locked_until = until
    return 0, until


def _holders(session: Session, symbol: str, number: str) -> list[int]:
    """The members under one 記号・番号: the insured person first, then their dependants."""
    ids: list[int] = list(
        session.execute(
            select(Member.id)
            .where(Member.symbol == symbol, Member.number == number)
            .order_by(Member.insured_id.is_not(None), Member.id)
        ).scalars()
    )
    return ids


def _end_live_codes(
    session: Session, member_ids: Sequence[int], status: VerificationStatus
) -> list[int]:
    """End the live codes of these members, in any conversation; returns the row ids."""
    if not member_ids:
        return []
    return _end_rows(
        session,
        status,
        Verification.member_id.in_(list(member_ids)),
        Verification.status == VerificationStatus.PENDING_CODE.value,
    )


def _lock_escalation(
    session: Session,
    conversation: Conversation,
    member_id: int | None,
    holders: Sequence[int],
    note: str,
    now: datetime,
) -> tuple[int, bool]:
    """One open escalation per locked member: reuse it, else the sender's, else open one.

    A number locked again (after its lock ended, or by a sender's lock during it) adds a
    line to the open escalation instead of another row in the staff queue; the sender's
    open escalation is reused too (one open escalation per sender). The hand-off service
    applies those rules (:func:`bot.handoff.escalations.escalate_member`). The caller
    holds the lockout rows of the number and the sender, so two locks of one member
    cannot both open one.

    Returns:
        The escalation's id and whether it was opened now.
    """
    view = escalate_member(
        session,
        LOCK_ESCALATION_REASON,
        now,
        note,
        member_id=member_id,
        member_ids=holders,
        conversation=conversation,
    )
    return view.id, view.created


def _lock_taken(
    session: Session,
    conversation: Conversation,
    row: Verification,
    member_id: int | None,
    until: datetime,
    now: datetime,
    cause: str,
    locked_member_ids: Sequence[int] = (),
) -> Outcome:
    """What happens once per lock: the rows end, staff are told, one audit row.

    ``member_id`` is the member the failing attempt was about, if known;
    ``locked_member_ids`` every member under the locked number (the insured person
    first), whose live codes (in any conversation) die with the lock. Staff get one
    escalation per locked member (see :func:`_lock_escalation`).
    """
    row.status = VerificationStatus.LOCKED.value
    row.code_hash = None
    _end_live_codes(session, locked_member_ids, VerificationStatus.LOCKED)
    about = member_id if member_id is not None else next(iter(locked_member_ids), None)
    window = int(FAILURE_WINDOW.total_seconds() // 60)
    ends = until.isoformat(timespec="seconds")
    # One line per lock, dated: a reused escalation collects them.
    note = (
        f"{now.isoformat(timespec='seconds')}: {MAX_FAILURES} failed verifications within "
        f"{window} minutes ({cause}); verification #{row.id}; locked until {ends}"
    )
    escalation_id, opened = _lock_escalation(
        session, conversation, about, locked_member_ids, note, now
    )
    _audit(
        session,
        now,
        "verification.locked",
        conversation,
        member_id=member_id,
        verification_id=row.id,
        cause=cause,
        locked_until=until.isoformat(),
        escalation_id=escalation_id,
        escalation_opened=opened,
    )
    logger.warning("verification %s: member number and sender locked (%s)", row.id, cause)
    return Outcome(Status.LOCKED, locked_until=until)


# --- counts per member number ---------------------------------------------------


def sms_limits() -> SmsLimits:
    """The SMS limits of the settings (read on every use, like the secret)."""
    return SmsLimits.from_settings(load_settings())


def _record_event(
    session: Session, member_key: str, kind: VerificationEventKind, now: datetime
) -> None:
    session.add(VerificationEvent(member_key_hash=member_key, kind=kind.value, at=now))
    session.flush()


def _count_events(session: Session, *conditions: Any) -> int:
    count: int = session.execute(
        select(func.count()).select_from(VerificationEvent).where(*conditions)
    ).scalar_one()
    return count


def _lock_sms_rate(session: Session) -> None:
    """Serialize the global SMS count across processes until this transaction ends.

    Every step that issues a code takes it after all its row locks and waits for no
    lock after it (it only inserts rows and updates rows it has locked), so it cannot
    take part in a deadlock. SQLite needs nothing: every transaction already holds the
    database's write lock from its start.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SMS_RATE_LOCK_KEY})


def _sms_refused(
    session: Session, member_key: str, now: datetime, limits: SmsLimits
) -> tuple[Status, str] | None:
    """Why no SMS may go out now (status and audit reason), or None if one may.

    The number's count is exact because the caller holds the number's lockout row.
    """
    sent_today = _count_events(
        session,
        VerificationEvent.member_key_hash == member_key,
        VerificationEvent.kind == VerificationEventKind.CODE_SENT.value,
        VerificationEvent.at > now - SMS_DAY,
    )
    if sent_today >= limits.per_member_day:
        return Status.SMS_LIMIT, "member_daily_limit"
    _lock_sms_rate(session)
    sent_lately = _count_events(
        session,
        VerificationEvent.kind == VerificationEventKind.CODE_SENT.value,
        VerificationEvent.at > now - SMS_RATE_WINDOW,
    )
    if sent_lately >= limits.per_minute:
        return Status.SMS_BUSY, "global_rate"
    return None


def _wrong_codes(session: Session, guard: VerificationLockout, now: datetime) -> int:
    """The number's wrong code entries that still count: all conversations, all codes.

    Those within the failure window, after the end of the number's last lock, and after
    its last dead code or success (which start the tries afresh); a new code does not.
    """
    member_key = guard.key
    conditions = [
        VerificationEvent.member_key_hash == member_key,
        VerificationEvent.kind == VerificationEventKind.WRONG_CODE.value,
        VerificationEvent.at > now - FAILURE_WINDOW,
    ]
    if guard.locked_until is not None:
        conditions.append(VerificationEvent.at >= guard.locked_until)
    # Ids, not times: a reset and the wrong entry that caused it share one timestamp.
    reset: int | None = session.execute(
        select(func.max(VerificationEvent.id)).where(
            VerificationEvent.member_key_hash == member_key,
            VerificationEvent.kind.in_(
                [VerificationEventKind.CODE_DEAD.value, VerificationEventKind.VERIFIED.value]
            ),
        )
    ).scalar_one()
    if reset is not None:
        conditions.append(VerificationEvent.id > reset)
    return _count_events(session, *conditions)


# --- codes ------------------------------------------------------------------------


def _issue_code(
    session: Session,
    conversation: Conversation,
    row: Verification,
    member: Member,
    member_key: str,
    sender: SmsSender,
    now: datetime,
    limits: SmsLimits | None,
) -> Outcome:
    """Kill the member's other live code, give ``row`` a new one and send it.

    Unless an SMS limit is reached: then nothing changes (no SMS, every live code,
    this row's too, stays as it was) and SMS_LIMIT or SMS_BUSY says which limit.
    """
    phone = member.phone
    if not phone:
        raise ValueError("a code needs a phone on record")
    # Locked before the limits are counted: the global count's lock must be the last
    # lock this transaction waits for (see _lock_sms_rate).
    others = (
        session.execute(
            select(Verification)
            .where(
                Verification.member_id == member.id,
                Verification.status == VerificationStatus.PENDING_CODE.value,
                Verification.id != row.id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    refused = _sms_refused(session, member_key, now, limits or sms_limits())
    if refused is not None:
        status, reason = refused
        _audit(
            session,
            now,
            "verification.sms_refused",
            conversation,
            member_id=member.id,
            verification_id=row.id,
            reason=reason,
        )
        logger.info("verification %s: no SMS sent (%s)", row.id, reason)
        return Outcome(status)
    for other in others:
        other.status = VerificationStatus.CANCELLED.value
        other.code_hash = None
        # Audited as the conversation whose code died, not the one that replaced it.
        replaced = Conversation(other.sender_id, other.session_key, other.channel)
        _audit(
            session,
            now,
            "verification.code_replaced",
            replaced,
            member_id=member.id,
            verification_id=other.id,
            replaced_by=row.id,
        )
    session.flush()  # the old code is dead before the new one exists (unique index)

    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row.code_salt = secrets.token_hex(16)
    row.code_hash = _code_hash(row.code_salt, code)
    row.code_expires_at = now + CODE_TTL
    # code_wrong_attempts is not reset: the tries are the member number's (_wrong_codes).
    row.codes_sent = (row.codes_sent or 0) + 1
    row.status = VerificationStatus.PENDING_CODE.value
    row.last_seen_at = now
    # Counted before sending: an SMS that fails at the carrier was still tried.
    _record_event(session, member_key, VerificationEventKind.CODE_SENT, now)
    # Written to the outbox with this transaction and sent once it commits: a code is
    # never sent for a change that then rolls back, nor while the locks above are held.
    # Not sent at all after the code's end; only the masked text is kept.
    delivery = enqueue(
        session,
        SMS,
        phone,
        SMS_TEXT.format(code=CODE_MASK),
        now,
        send_text=SMS_TEXT.format(code=code),
        purpose=VERIFICATION_CODE,
        member_id=member.id,
        expires_at=row.code_expires_at,
        carriers=Carriers(sms=sender),
    )
    _audit(
        session,
        now,
        "verification.code_sent",
        conversation,
        member_id=member.id,
        verification_id=row.id,
        outbound_message_id=delivery.message_id,
        codes_sent=row.codes_sent,
    )
    logger.info("verification %s: code %d sent", row.id, row.codes_sent)
    return Outcome(Status.CODE_SENT, masked_phone=mask_phone(phone))


# --- the steps --------------------------------------------------------------------


def submit_factors(
    session: Session,
    conversation: Conversation,
    symbol: str,
    number: str,
    birth_date: date,
    sender: SmsSender,
    now: datetime,
    limits: SmsLimits | None = None,
) -> Outcome:
    """Check 記号・番号 and 生年月日; on a match, send a code to the phone on record.

    Any earlier verification of this conversation ends first, verified or not. A
    locked member number answers exactly as an unknown one or a wrong birth date does
    (MISMATCH, counted as a failure of the sender, no SMS): the person asking must not
    learn that the number exists, and its member cannot go on until the lock ends.

    Args:
        session: The app database session (the caller commits).
        conversation: Who asks.
        symbol: 記号 (ASCII digits), or "" for a one-part identifier.
        number: 番号 (ASCII digits).
        birth_date: 生年月日.
        sender: Where the SMS goes out.
        now: The current time (aware).
        limits: The SMS limits; None reads them from the settings.

    Returns:
        CODE_SENT with the masked phone, MISMATCH with the verifications left before a
        lock, LOCKED (this conversation's sender is locked) with its end, or SMS_LIMIT
        or SMS_BUSY when an SMS limit is reached. CODE_SENT means the SMS is in the
        outbox: it goes out when the caller's transaction commits (see
        :mod:`bot.outbound.outbox`).
    """
    if isinstance(birth_date, datetime) or not isinstance(birth_date, date):
        raise TypeError("birth_date must be a date")
    now = _utc(now)
    symbol, number = symbol.strip(), number.strip()
    member_key = member_key_hash(symbol, number)
    guards = _guards(session, conversation, member_key)
    # Only the sender's own lock is told: it says nothing about the number typed.
    until = _locked_until([_guard(guards, LockoutKind.SENDER)], now)
    if until is not None:
        return _refuse_locked(session, conversation, now, until, "factors")
    number_locked = _locked_until([_guard(guards, LockoutKind.MEMBER)], now) is not None
    ended = _end_open(session, conversation, VerificationStatus.CANCELLED)

    member: Member | None = None
    # A one-part identifier (証書番号) has an empty 記号.
    if (symbol == "" or _is_digits(symbol)) and _is_digits(number):
        # One indexed lookup by all three factors, whether or not the number exists:
        # no separate "does this number exist" query, so no difference to observe.
        member = session.execute(
            select(Member)
            .where(
                Member.symbol == symbol,
                Member.number == number,
                Member.birth_date == birth_date,
            )
            .with_for_update()
        ).scalar_one_or_none()
    row = Verification(
        sender_id=conversation.sender_id,
        session_key=conversation.session_key,
        channel=conversation.channel,
        status=VerificationStatus.FAILED.value,
        code_wrong_attempts=0,
        codes_sent=0,
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    if member is None or not member.phone or number_locked:
        # A member without a phone cannot receive a code, and a locked number takes
        # none: to the person asking, both must look like any other mismatch (the same
        # lookup above, a failure counted alike). The audit row tells staff which.
        if number_locked:
            reason = "number_locked"
        elif member is not None:
            reason = "no_phone_on_record"
        else:
            reason = "factors_mismatch"
        left, lock_end = _record_failure(session, conversation, guards, member_key, now)
        if lock_end is not None:
            # Only now, with the outcome LOCKED whatever exists, look up who holds the
            # number: their live codes die with the lock.
            holders = _holders(session, symbol, number)
            return _lock_taken(
                session,
                conversation,
                row,
                member.id if member is not None else None,
                lock_end,
                now,
                reason,
                locked_member_ids=holders,
            )
        _audit(
            session,
            now,
            "verification.failed",
            conversation,
            member_id=member.id if member is not None else None,
            verification_id=row.id,
            reason=reason,
            verifications_left=left,
            ended=ended,
        )
        logger.info("verification %s: factors did not match", row.id)
        return Outcome(Status.MISMATCH, attempts_left=left)

    row.member_id = member.id
    _audit(
        session,
        now,
        "verification.factors_matched",
        conversation,
        member_id=member.id,
        verification_id=row.id,
        ended=ended,
    )
    return _issue_code(session, conversation, row, member, member_key, sender, now, limits)


def _member_of(session: Session, row: Verification | None) -> Member | None:
    if row is None or row.member_id is None:
        return None
    member: Member | None = session.get(Member, row.member_id)
    return member


def _pending_step(
    session: Session, conversation: Conversation, now: datetime, step: str
) -> tuple[Member | None, str | None, list[VerificationLockout], Outcome | None]:
    """What a code step (an entry or a resend) starts from, under the locks.

    The member the conversation's latest verification is for, that number's key, the
    lockout rows of the conversation and the number (locked for the rest of the step),
    and the refusal when either is locked — None when the step may go on.
    """
    member = _member_of(session, _latest(session, conversation))
    member_key = member_key_hash(member.symbol, member.number) if member else None
    guards = _guards(session, conversation, member_key)
    until = _locked_until(guards, now)
    if until is None:
        return member, member_key, guards, None
    refused = _refuse_locked(session, conversation, now, until, step, member.id if member else None)
    return member, member_key, guards, refused


def submit_code(session: Session, conversation: Conversation, code: str, now: datetime) -> Outcome:
    """Check the code the member typed against this conversation's live code.

    Wrong entries count for the member number, in every conversation and across
    resends: the third within 30 minutes (since the number's last dead code, success or
    lock) kills every live code under the number and is one failed verification.

    Returns:
        VERIFIED; WRONG_CODE with the number's entries left; CODE_DEAD after the third
        wrong entry (one failed verification); CODE_EXPIRED; LOCKED; or NO_PENDING when
        this conversation has no live code (never asked, replaced, used, cancelled).
    """
    now = _utc(now)
    member, member_key, guards, refused = _pending_step(session, conversation, now, "code")
    if refused is not None:
        return refused
    # Read again under the locks: another conversation may have replaced the code.
    row = _latest(session, conversation, lock=True)
    if (
        row is None
        or row.status != VerificationStatus.PENDING_CODE.value
        or row.code_hash is None
        or row.code_salt is None
        or row.code_expires_at is None
        or member is None
        or row.member_id != member.id
    ):
        _audit(session, now, "verification.code_refused", conversation, reason="no_pending")
        logger.info("code refused: no pending verification")
        return Outcome(Status.NO_PENDING)
    if now >= row.code_expires_at:
        row.status = VerificationStatus.EXPIRED.value
        row.code_hash = None
        _audit(
            session,
            now,
            "verification.code_expired",
            conversation,
            member_id=member.id,
            verification_id=row.id,
        )
        logger.info("verification %s: code expired", row.id)
        return Outcome(Status.CODE_EXPIRED)

    row.last_seen_at = now
    typed = code.strip()
    matches = (
        len(typed) == CODE_DIGITS
        and _is_digits(typed)
        and hmac.compare_digest(_code_hash(row.code_salt, typed), row.code_hash)
    )
    assert member_key is not None  # a member was found above
    if matches:
        row.status = VerificationStatus.VERIFIED.value
        row.verified_at = now
        row.code_hash = None  # used: it can never match again
        # The member proved it: earlier wrong entries need not count against them.
        _record_event(session, member_key, VerificationEventKind.VERIFIED, now)
        _audit(
            session,
            now,
            "verification.succeeded",
            conversation,
            member_id=member.id,
            actor=f"member:{member.id}",
            verification_id=row.id,
        )
        logger.info("verification %s: verified", row.id)
        return Outcome(Status.VERIFIED)

    row.code_wrong_attempts += 1
    _record_event(session, member_key, VerificationEventKind.WRONG_CODE, now)
    left = MAX_WRONG_CODES - _wrong_codes(session, _guard(guards, LockoutKind.MEMBER), now)
    if left > 0:
        _audit(
            session,
            now,
            "verification.code_wrong",
            conversation,
            member_id=member.id,
            verification_id=row.id,
            attempts_left=left,
        )
        logger.info("verification %s: wrong code, %d left", row.id, left)
        return Outcome(Status.WRONG_CODE, attempts_left=left)

    # The number's tries are used up: every live code under it dies (a dependant's
    # too, their tries were the same), and this is one failed verification.
    _record_event(session, member_key, VerificationEventKind.CODE_DEAD, now)
    row.status = VerificationStatus.FAILED.value
    row.code_hash = None
    holders = _holders(session, member.symbol, member.number)
    also_ended = _end_live_codes(session, holders, VerificationStatus.FAILED)
    verifications_left, lock_end = _record_failure(session, conversation, guards, member_key, now)
    if lock_end is not None:
        return _lock_taken(
            session, conversation, row, member.id, lock_end, now, "code_dead", holders
        )
    _audit(
        session,
        now,
        "verification.failed",
        conversation,
        member_id=member.id,
        verification_id=row.id,
        reason="code_dead",
        verifications_left=verifications_left,
        also_ended=also_ended,
    )
    logger.info("verification %s: code dead after %d wrong entries", row.id, MAX_WRONG_CODES)
    return Outcome(Status.CODE_DEAD)


def resend_code(
    session: Session,
    conversation: Conversation,
    sender: SmsSender,
    now: datetime,
    limits: SmsLimits | None = None,
) -> Outcome:
    """Send a new code for this conversation's verification; the old code dies.

    Possible while the factors matched and the verification has not ended otherwise
    (its code is live, expired, dead, or failed to send), up to three codes in all,
    within the SMS limits. The new code has the tries the member number has left: a
    resend gives none back.

    Args:
        session: The app database session (the caller commits).
        conversation: Who asks.
        sender: Where the SMS goes out.
        now: The current time (aware).
        limits: The SMS limits; None reads them from the settings.

    Returns:
        CODE_SENT, LOCKED, SMS_LIMIT or SMS_BUSY (the old code stays as it was), or
        NO_PENDING when there is nothing to resend.
    """
    now = _utc(now)
    member, member_key, _guards_held, refused = _pending_step(session, conversation, now, "resend")
    if refused is not None:
        return refused
    row = _latest(session, conversation, lock=True)
    resendable = (
        row is not None
        and member is not None
        and row.member_id == member.id
        and row.verified_at is None
        and row.status
        in (
            VerificationStatus.PENDING_CODE.value,
            VerificationStatus.EXPIRED.value,
            VerificationStatus.FAILED.value,
        )
        and row.codes_sent < MAX_CODES_PER_VERIFICATION
    )
    if not resendable or row is None or member is None:
        _audit(
            session, now, "verification.resend_refused", conversation, reason="nothing_to_resend"
        )
        logger.info("resend refused: nothing to resend")
        return Outcome(Status.NO_PENDING)
    locked_member = session.execute(
        select(Member).where(Member.id == member.id).with_for_update()
    ).scalar_one()
    if not locked_member.phone or member_key is None:
        return Outcome(Status.NO_PENDING)
    return _issue_code(session, conversation, row, locked_member, member_key, sender, now, limits)


def verified_member(session: Session, conversation: Conversation, now: datetime) -> Member | None:
    """The member this conversation is verified as, or None.

    Only a ``verified`` row of this sender id *and* session key counts, and only while
    it was used within the last 15 minutes; using it refreshes that. Verified rows of
    the sender's earlier sessions, and idle ones, end here (status ``expired``).
    """
    now = _utc(now)
    rows = (
        session.execute(
            select(Verification)
            .where(
                Verification.sender_id == conversation.sender_id,
                Verification.status == VerificationStatus.VERIFIED.value,
            )
            .order_by(Verification.id.desc())
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        .scalars()
        .all()
    )
    found: Verification | None = None
    for row in rows:
        if row.session_key != conversation.session_key:
            reason = "session_changed"
        elif now - row.last_seen_at >= IDLE_TIMEOUT:
            reason = "idle"
        elif found is None:
            found = row
            continue
        else:
            reason = "superseded"
        row.status = VerificationStatus.EXPIRED.value
        _audit(
            session,
            now,
            "verification.expired",
            conversation,
            member_id=row.member_id,
            verification_id=row.id,
            reason=reason,
        )
        logger.info("verification %s: ended (%s)", row.id, reason)
    if found is None:
        return None
    found.last_seen_at = now
    return _member_of(session, found)


def cancel(session: Session, conversation: Conversation, now: datetime) -> None:
    """End this conversation's verification: its live code dies, it is no longer verified."""
    now = _utc(now)
    ended = _end_open(session, conversation, VerificationStatus.CANCELLED)
    _audit(session, now, "verification.cancelled", conversation, verification_ids=ended)
    logger.info("verification cancelled (%d open rows ended)", len(ended))


def read_own_record(
    session: Session,
    conversation: Conversation,
    now: datetime,
    identifier: MemberIdentifier = HEALTH_INSURANCE_CARD,
) -> MemberView | None:
    """The verified member's own record, masked; None if the conversation is not verified.

    ``identifier`` is the organization's member identifier, which names the parts of
    the masked number.

    Every read is written to the audit log: who, which fields, when, on which channel.
    A dependant's record is a different person's data: an insured member sees only
    their dependants' names.
    """
    now = _utc(now)
    member = verified_member(session, conversation, now)
    if member is None:
        return None
    dependants: tuple[str, ...] = ()
    if member.relationship == Relationship.INSURED.value:
        dependants = tuple(
            session.execute(
                select(Member.name)
                .where(Member.insured_id == member.id)
                .order_by(Member.birth_date, Member.id)
            ).scalars()
        )
    view = MemberView(
        member_id=member.id,
        name=member.name,
        relationship=member.relationship,
        masked_member_number=MemberNumber(member.symbol, member.number).masked(identifier),
        acquired_on=member.acquired_on,
        lost_on=member.lost_on,
        masked_phone=mask_phone(member.phone) if member.phone else None,
        dependant_names=dependants,
    )
    _audit(
        session,
        now,
        "member.read",
        conversation,
        member_id=member.id,
        actor=f"member:{member.id}",
        fields=list(READ_FIELDS),
        dependants_listed=len(dependants),
    )
    logger.info("member %s read their own record", member.id)
    return view
