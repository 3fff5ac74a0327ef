"""Retention: personal data that has served its purpose is deleted, on a schedule.

The SQL tracker store keeps every conversation as typed (birth dates, member numbers,
phone numbers), which the staff console needs while a hand-off is worked; nothing
needs it for ever. :func:`purge` deletes

- tracker events older than ``transcript_days`` (default 90), by age: a conversation
  that goes on loses its old turns, a silent one goes whole; except conversations with
  a hand-off still waiting or in progress;
- request drafts the member never confirmed, after ``draft_hours`` (default 24): the
  typed text is wiped and the draft marked discarded, as when the member says 「やめる」;
- verification failures and counted verification events (SMS sent, wrong codes) older
  than ``failure_days`` (30; the limits look back a day at most) and lockouts that
  ended that long ago;
- console sessions that ended or went idle that long ago, and console sign-in counts
  with no failure that long, no wait running and no sign-in in the last 90 days;
- website-chat sessions (their resume secrets' hashes) unseen for ``transcript_days``:
  their conversation is gone or going with them.

- outbound messages: the phone number of every finished SMS (sent, failed or unknown)
  is masked (``090-****-5678``) at the first purge after it is finished, and finished
  rows are deleted after ``outbox_days`` (365);
- staff replies of closed hand-offs after ``staff_message_days`` (365), and audit rows
  after ``audit_days`` (1825, five years); None keeps them for ever.

Cases, their history and escalations are records the organization must keep and are not
touched. One audit row (``retention.purged``) gives the counts. The worker
(``python -m bot.worker``) runs it every ``RETENTION_PURGE_MINUTES``; ``python -m
bot.db purge`` runs it by hand; ``make run`` also runs it at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.cases.drafts import wipe_text
from bot.channels.web_sessions import purge_web_sessions
from bot.db.audit import audit
from bot.db.models import (
    AuditLog,
    CaseDraft,
    DraftStatus,
    Escalation,
    EscalationStatus,
    OutboundMessage,
    OutboundStatus,
    SignInThrottle,
    StaffMessage,
    StaffSession,
    VerificationEvent,
    VerificationFailure,
    VerificationLockout,
)
from bot.db.session import engine_for, session_factory
from bot.handoff.escalations import OPEN_STATUSES
from bot.handoff.transcripts import EVENTS
from bot.identity.parsing import mask_phone
from bot.outbound.sender import SMS
from bot.settings import Settings
from bot.staff.accounts import KNOWN_ADDRESS_DAYS

_SENDER_BATCH = 500
_EVENT_BATCH = 5000
S = OutboundStatus


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept."""

    transcript_days: int = 90
    draft_hours: int = 24
    failure_days: int = 30
    outbox_days: int | None = 365
    staff_message_days: int | None = 365
    audit_days: int | None = 1825


@dataclass(frozen=True)
class PurgeResult:
    """What one purge deleted (counts only)."""

    conversations: int = 0
    events: int = 0
    drafts: int = 0
    failures: int = 0
    verification_events: int = 0
    lockouts: int = 0
    staff_sessions: int = 0
    signin_throttles: int = 0
    web_sessions: int = 0
    outbound_masked: int = 0
    outbound_deleted: int = 0
    staff_messages: int = 0
    audit_rows: int = 0


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def silent_conversations(tracker: Engine, cutoff: datetime) -> list[str]:
    """Sender ids whose newest tracker event is older than ``cutoff``.

    Returns an empty list when the tracker store has no ``events`` table yet (the rasa
    server creates it on its first start).
    """
    if not sa.inspect(tracker).has_table("events"):
        return []
    query = (
        sa.select(EVENTS.c.sender_id)
        .group_by(EVENTS.c.sender_id)
        .having(sa.func.max(EVENTS.c.timestamp) < cutoff.timestamp())
    )
    with tracker.connect() as connection:
        return [row[0] for row in connection.execute(query)]


def purge_transcripts(tracker: Engine, senders: list[str], keep: set[str]) -> tuple[int, int]:
    """Delete every tracker event of ``senders`` except those in ``keep``.

    Returns:
        (conversations, events) deleted.
    """
    doomed = [sender for sender in senders if sender not in keep]
    events = 0
    for batch in _batches(doomed, _SENDER_BATCH):
        with tracker.begin() as connection:
            result = connection.execute(sa.delete(EVENTS).where(EVENTS.c.sender_id.in_(batch)))
            events += max(result.rowcount or 0, 0)
    return len(doomed), events


def purge_events_by_age(tracker: Engine, cutoff: datetime, keep: set[str]) -> int:
    """Delete tracker events older than ``cutoff`` of every sender not in ``keep``.

    In batches of ids, each its own transaction, so that the rasa servers writing the
    table are never held up for long.

    Returns:
        How many events were deleted.
    """
    if not sa.inspect(tracker).has_table("events"):
        return 0
    old = EVENTS.c.timestamp < cutoff.timestamp()
    if keep:
        old = sa.and_(old, EVENTS.c.sender_id.not_in(sorted(keep)))
    deleted = 0
    while True:
        with tracker.begin() as connection:
            ids = list(
                connection.execute(sa.select(EVENTS.c.id).where(old).limit(_EVENT_BATCH)).scalars()
            )
            if not ids:
                return deleted
            result = connection.execute(sa.delete(EVENTS).where(EVENTS.c.id.in_(ids)))
            deleted += max(result.rowcount or 0, 0)


def _purge_outbox_and_records(
    session: Session, now: datetime, policy: RetentionPolicy
) -> dict[str, int]:
    finished = [S.SENT.value, S.FAILED.value, S.UNKNOWN.value]
    counts = {"outbound_masked": 0, "outbound_deleted": 0, "staff_messages": 0}
    counts["audit_rows"] = 0
    if policy.outbox_days is not None:
        counts["outbound_deleted"] = _count(
            session.execute(
                sa.delete(OutboundMessage).where(
                    OutboundMessage.status.in_(finished),
                    OutboundMessage.created_at < now - timedelta(days=policy.outbox_days),
                )
            )
        )
    for row in session.execute(
        sa.select(OutboundMessage).where(
            OutboundMessage.channel == SMS,
            OutboundMessage.status.in_(finished),
            OutboundMessage.to != "",
            OutboundMessage.to.not_like("%*%"),
        )
    ).scalars():
        row.to = mask_phone(row.to)
        counts["outbound_masked"] += 1
    if policy.staff_message_days is not None:
        closed = sa.select(Escalation.id).where(Escalation.status == EscalationStatus.CLOSED.value)
        counts["staff_messages"] = _count(
            session.execute(
                sa.delete(StaffMessage)
                .where(
                    StaffMessage.created_at < now - timedelta(days=policy.staff_message_days),
                    StaffMessage.escalation_id.in_(closed),
                )
                .execution_options(synchronize_session=False)
            )
        )
    if policy.audit_days is not None:
        counts["audit_rows"] = _count(
            session.execute(
                sa.delete(AuditLog).where(AuditLog.at < now - timedelta(days=policy.audit_days))
            )
        )
    return counts


def _count(result: Any) -> int:
    return max(int(result.rowcount or 0), 0)


def _open_hand_off_senders(session: Session) -> set[str]:
    return set(
        session.execute(
            sa.select(Escalation.sender_id).where(
                Escalation.status.in_(OPEN_STATUSES), Escalation.sender_id.is_not(None)
            )
        ).scalars()
    )


def _purge_app_data(session: Session, now: datetime, policy: RetentionPolicy) -> dict[str, int]:
    drafts = 0
    draft_cutoff = now - timedelta(hours=policy.draft_hours)
    for row in session.execute(
        sa.select(CaseDraft).where(
            CaseDraft.status == DraftStatus.OPEN.value, CaseDraft.updated_at < draft_cutoff
        )
    ).scalars():
        wipe_text(row)
        row.status = DraftStatus.DISCARDED.value
        row.updated_at = now
        drafts += 1
    old = now - timedelta(days=policy.failure_days)
    deleted = [
        session.execute(statement).rowcount
        for statement in (
            sa.delete(VerificationFailure).where(VerificationFailure.at < old),
            # The SMS and wrong-code counts look back a day at most: a month is plenty.
            sa.delete(VerificationEvent).where(VerificationEvent.at < old),
            sa.delete(VerificationLockout).where(VerificationLockout.locked_until < old),
            sa.delete(StaffSession).where(StaffSession.last_seen_at < old),
            # Sign-in counts nobody failed on lately, with no wait running and no
            # sign-in recent enough to make the address a staff member's known one.
            sa.delete(SignInThrottle).where(
                sa.or_(
                    SignInThrottle.last_failed_at.is_(None), SignInThrottle.last_failed_at < old
                ),
                sa.or_(SignInThrottle.blocked_until.is_(None), SignInThrottle.blocked_until < now),
                sa.or_(
                    SignInThrottle.last_success_at.is_(None),
                    SignInThrottle.last_success_at < now - timedelta(days=KNOWN_ADDRESS_DAYS),
                ),
            ),
        )
    ]
    failures, events, lockouts, staff_sessions, throttles = (
        max(count or 0, 0) for count in deleted
    )
    web_sessions = purge_web_sessions(session, now - timedelta(days=policy.transcript_days))
    return {
        "drafts": drafts,
        "failures": failures,
        "verification_events": events,
        "lockouts": lockouts,
        "staff_sessions": staff_sessions,
        "signin_throttles": throttles,
        "web_sessions": web_sessions,
    }


def purge(
    sessions: sessionmaker,
    tracker: Engine | None,
    now: datetime,
    policy: RetentionPolicy = RetentionPolicy(),
) -> PurgeResult:
    """Delete what has outlived its purpose (see the module docstring).

    Three units of work, none holding the app database while the tracker store is
    written: with SQLite both may be the same file, and a second writer would wait.

    Args:
        sessions: the app database's session factory.
        tracker: the tracker store's engine, or None to leave transcripts alone.
        now: the current time (aware).
        policy: the retention periods.

    Returns:
        The counts, also written to the audit log.
    """
    conversations = events = 0
    if tracker is not None:
        with sessions.begin() as session:
            keep = _open_hand_off_senders(session)
        cutoff = now - timedelta(days=policy.transcript_days)
        # Counted before: a silent conversation is gone whole once its old events are.
        conversations = len(set(silent_conversations(tracker, cutoff)) - keep)
        events = purge_events_by_age(tracker, cutoff, keep)
    with sessions.begin() as session:
        result = PurgeResult(
            conversations=conversations,
            events=events,
            **_purge_app_data(session, now, policy),
            **_purge_outbox_and_records(session, now, policy),
        )
        audit(session, now, "retention.purged", "system", **asdict(result), **asdict(policy))
    return result


def purge_configured(
    settings: Settings, now: datetime, transcript_days: int | None = None
) -> PurgeResult:
    """:func:`purge` on the databases of ``settings`` (the launcher and the CLI).

    Args:
        settings: the app database and, through ``tracker_url``, the tracker store.
        now: the current time (aware).
        transcript_days: overrides ``settings.transcript_retention_days``.
    """
    days = transcript_days or settings.transcript_retention_days
    return purge(
        session_factory(settings.database_url),
        engine_for(settings.tracker_url),
        now,
        policy_of(settings, days),
    )


def policy_of(settings: Settings, transcript_days: int | None = None) -> RetentionPolicy:
    """The retention periods the settings give."""
    return RetentionPolicy(
        transcript_days=transcript_days or settings.transcript_retention_days,
        outbox_days=settings.outbox_retention_days,
        staff_message_days=settings.staff_message_retention_days,
        audit_days=settings.audit_retention_days,
    )
