"""Escalations: conversations and matters handed over to staff.

Plain service functions: the caller passes the session (one unit of work) and the
clock. A sender has at most one escalation that is waiting or in progress: a second
trigger while one is open returns that one. Every change is written to the audit log
(actor ``system`` for what the assistant does, ``staff:<name>`` for staff).

Statuses: ``waiting`` (nobody has it) → ``in_progress`` (claimed by one staff member)
→ ``closed``; ``hand_back`` ends the staff's part of a conversation (the assistant
answers again) and closes the escalation.

An escalation made by the hand-off dialog also pauses the conversation in Rasa (the
assistant stays silent while staff have it): it is recorded as ``paused``. Closing
such an escalation, by ``hand_back`` or ``close``, resumes the conversation; while it
is open, a new Rasa session of the conversation is paused again
(:func:`keeps_conversation_paused`, used by the custom ``action_session_start``).

Hand-offs the member sets off from the conversation (:data:`HANDOFF_REASONS`) go
through :func:`hand_off`, which keeps the staff queue from being flooded: at most
``per_conversation`` new ones per conversation (channel identity) in any 24 hours and
``per_hour`` across all conversations in any hour (:class:`HandoffLimits`), counted
from the ``escalations`` table, so the limits hold across action server replicas.
Past either, nothing is queued and the caller tells the member to contact the window.
An escalation already open for the conversation is reused and costs nothing. The
escalations the system opens (lockouts, cases) do not count and are never refused.

Every ``Escalation`` row is made here (:func:`escalate` for a conversation,
:func:`escalate_member` for what the system escalates about a member), so every one
obeys these rules and is audited as ``escalation.opened``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.conversation import Conversation
from bot.db.audit import audit
from bot.db.models import Escalation, EscalationStatus

logger = logging.getLogger(__name__)

OPEN_STATUSES = (EscalationStatus.WAITING.value, EscalationStatus.IN_PROGRESS.value)

# Why a conversation was handed over (the ``reason`` column).
REASONS = (
    "member_request",
    "complaint",
    "repeated_fallback",
    "verification_locked",
    "case_needs_person",
    "case_notification_failed",
)
# The reasons a member sets off from the conversation (the hand-off dialog): only these
# count towards, and are held back by, the hand-off limits.
HANDOFF_REASONS = ("member_request", "complaint", "repeated_fallback")
# The reasons the system escalates on its own about a member (:func:`escalate_member`).
SYSTEM_REASONS = tuple(reason for reason in REASONS if reason not in HANDOFF_REASONS)
# A PostgreSQL advisory lock key: new hand-offs are counted one transaction at a time,
# so two at once cannot both see room for one more. (SQLite: every transaction already
# holds the write lock from its start, see bot.db.session.)
_HANDOFF_LOCK_KEY = 0x68616E646F6666  # "handoff"


class EscalationError(Exception):
    """A staff command that cannot be done (unknown escalation, wrong status...)."""


@dataclass(frozen=True)
class EscalationView:
    """What staff and the dialog see of one escalation."""

    id: int
    reason: str
    status: str
    sender_id: str | None
    channel: str | None
    member_id: int | None
    created_at: datetime
    assigned_staff: str | None
    claimed_at: datetime | None
    closed_at: datetime | None
    note: str | None
    waiting: timedelta | None = None  # in the queue only: how long it has waited
    created: bool = False  # escalate(): True when this call opened it
    paused: bool = False  # it paused the conversation in Rasa


def _view(row: Escalation, *, now: datetime | None = None, created: bool = False) -> EscalationView:
    return EscalationView(
        id=row.id,
        reason=row.reason,
        status=row.status,
        sender_id=row.sender_id,
        channel=row.channel,
        member_id=row.member_id,
        created_at=row.created_at,
        assigned_staff=row.assigned_staff,
        claimed_at=row.claimed_at,
        closed_at=row.closed_at,
        note=row.note,
        waiting=(now - row.created_at) if now is not None else None,
        created=created,
        paused=bool(row.paused),
    )


def _open_row(session: Session, sender_id: str, *, lock: bool = False) -> Escalation | None:
    query = (
        select(Escalation)
        .where(Escalation.sender_id == sender_id, Escalation.status.in_(OPEN_STATUSES))
        .order_by(Escalation.id)
        .limit(1)
    )
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalars().first()


def open_escalation_for(session: Session, sender_id: str) -> EscalationView | None:
    """The sender's escalation that is waiting or in progress, if any.

    Args:
        session: the unit of work.
        sender_id: the conversation's sender id.

    Returns:
        The open escalation, or None.
    """
    row = _open_row(session, sender_id)
    return None if row is None else _view(row)


def keeps_conversation_paused(session: Session, sender_id: str) -> bool:
    """Whether the sender's conversation must stay paused: a paused hand-off is open.

    Args:
        session: the unit of work.
        sender_id: the conversation's sender id.
    """
    row = _open_row(session, sender_id)
    return row is not None and bool(row.paused)


def escalate(
    session: Session,
    conversation: Conversation,
    reason: str,
    now: datetime,
    member_id: int | None = None,
    note: str | None = None,
    pause: bool = False,
) -> EscalationView:
    """Hand the conversation to staff, or return the escalation already open for it.

    Args:
        session: the unit of work.
        conversation: the conversation (sender id and channel are recorded).
        reason: one of :data:`REASONS`.
        now: the current time (aware).
        member_id: the verified member, if any.
        note: an internal note for staff (no personal values).
        pause: the caller pauses the conversation in Rasa (recorded as ``paused``,
            also on an escalation already open, e.g. one a lockout opened).

    Returns:
        The escalation; ``created`` tells whether this call opened it.

    Raises:
        ValueError: for an unknown reason.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown escalation reason: {reason}")
    existing = _open_row(session, conversation.sender_id, lock=True)
    if existing is not None:
        if pause and not existing.paused:
            existing.paused = True
        return _view(existing)
    return _open(session, conversation, reason, now, member_id, note, pause)


def _open(
    session: Session,
    conversation: Conversation | None,
    reason: str,
    now: datetime,
    member_id: int | None,
    note: str | None,
    pause: bool,
) -> EscalationView:
    """Open a new escalation (waiting) and audit it: the one place a row is made."""
    row = Escalation(
        created_at=now,
        reason=reason,
        sender_id=conversation.sender_id if conversation else None,
        channel=conversation.channel if conversation else None,
        member_id=member_id,
        status=EscalationStatus.WAITING.value,
        note=note,
        paused=pause,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        now,
        "escalation.opened",
        "system",
        member_id=member_id,
        conversation=conversation,
        escalation_id=row.id,
        reason=reason,
    )
    return _view(row, created=True)


def _add_note(row: Escalation, note: str) -> None:
    """Append ``note`` as a line of its own: a reused escalation collects them."""
    row.note = f"{row.note}\n{note}" if row.note else note


def escalate_member(
    session: Session,
    reason: str,
    now: datetime,
    note: str,
    *,
    member_id: int | None,
    member_ids: Sequence[int] | None = None,
    conversation: Conversation | None = None,
) -> EscalationView:
    """Tell staff about a member, once: add ``note`` to an open escalation, else open one.

    For what the system escalates on its own (a lockout, a notification that could not
    be sent): staff get one open escalation per member and reason, and the conversation
    keeps its one open escalation. The open escalation reused is, in this order, one
    with this ``reason`` about any of ``member_ids``, or else the conversation's (as
    :func:`escalate` reuses it); ``note`` becomes a line of it. Otherwise a new
    escalation is opened (waiting, not pausing the conversation) with ``note`` and
    audited as ``escalation.opened``. These are never refused: no hand-off limit
    applies. The caller serializes concurrent calls about one member (e.g. by holding
    that member's row or lockout rows), so two of them cannot both open one.

    Args:
        session: the unit of work.
        reason: one of :data:`SYSTEM_REASONS`.
        now: the current time (aware).
        note: one line for staff (no personal values).
        member_id: the member it is about (recorded on a new escalation), if known.
        member_ids: the members whose open escalation of this reason is reused;
            by default ``member_id`` alone.
        conversation: the conversation it happened in (sender id and channel are
            recorded), if any.

    Returns:
        The escalation; ``created`` tells whether this call opened it.

    Raises:
        ValueError: for a reason that is not a system's escalation.
    """
    if reason not in SYSTEM_REASONS:
        raise ValueError(f"not a system escalation reason: {reason}")
    if member_ids is None:
        member_ids = [] if member_id is None else [member_id]
    keys = list(member_ids)
    existing: Escalation | None = None
    if keys:
        existing = (
            session.execute(
                select(Escalation)
                .where(
                    Escalation.status.in_(OPEN_STATUSES),
                    Escalation.reason == reason,
                    Escalation.member_id.in_(keys),
                )
                .order_by(Escalation.id)
                .limit(1)
                .with_for_update()
            )
            .scalars()
            .first()
        )
    if existing is None and conversation is not None:
        existing = _open_row(session, conversation.sender_id, lock=True)
    if existing is not None:
        _add_note(existing, note)
        return _view(existing)
    return _open(session, conversation, reason, now, member_id, note, pause=False)


@dataclass(frozen=True)
class HandoffLimits:
    """How many new hand-offs the members may set off (``HANDOFF_MAX_*`` settings).

    Attributes:
        per_conversation: new ones per conversation in any ``conversation_window``.
        per_hour: new ones across all conversations in any ``overall_window``.
        conversation_window: 24 hours.
        overall_window: one hour.
    """

    per_conversation: int = 3
    per_hour: int = 30
    conversation_window: timedelta = timedelta(days=1)
    overall_window: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class Handoff:
    """What :func:`hand_off` did: the escalation, or which limit refused a new one.

    ``refused`` is ``conversation`` (this conversation had its share) or ``overall``
    (all conversations together had theirs); ``escalation`` is then None.
    """

    escalation: EscalationView | None
    refused: str | None = None


def _serialize_handoffs(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_HANDOFF_LOCK_KEY)))


def _handoffs_since(session: Session, since: datetime, sender_id: str | None = None) -> int:
    query = (
        select(func.count())
        .select_from(Escalation)
        .where(Escalation.created_at > since, Escalation.reason.in_(HANDOFF_REASONS))
    )
    if sender_id is not None:
        query = query.where(Escalation.sender_id == sender_id)
    return int(session.execute(query).scalar_one())


def hand_off(
    session: Session,
    conversation: Conversation,
    reason: str,
    now: datetime,
    limits: HandoffLimits,
    member_id: int | None = None,
) -> Handoff:
    """Hand the conversation to staff and pause it, within the limits.

    An escalation already open for the conversation is returned (and marked paused)
    whatever the counts: it adds nothing to the queue. Otherwise a new one is opened
    only while the conversation has had fewer than ``limits.per_conversation`` new
    hand-offs in the last 24 hours and all conversations fewer than
    ``limits.per_hour`` in the last hour.

    Args:
        session: the unit of work.
        conversation: the conversation (sender id and channel are recorded).
        reason: one of :data:`HANDOFF_REASONS`.
        now: the current time (aware).
        limits: the limits.
        member_id: the verified member, if any.

    Returns:
        The escalation, or the limit that refused it (nothing was queued then).

    Raises:
        ValueError: for a reason that is not a member's hand-off.
    """
    if reason not in HANDOFF_REASONS:
        raise ValueError(f"not a hand-off reason: {reason}")
    _serialize_handoffs(session)
    if _open_row(session, conversation.sender_id) is None:
        mine = _handoffs_since(session, now - limits.conversation_window, conversation.sender_id)
        if mine >= limits.per_conversation:
            logger.warning(
                "hand-off refused: %d in this conversation within %s",
                mine,
                limits.conversation_window,
            )
            return Handoff(None, "conversation")
        everyone = _handoffs_since(session, now - limits.overall_window)
        if everyone >= limits.per_hour:
            logger.warning(
                "hand-off refused: %d across all conversations within %s",
                everyone,
                limits.overall_window,
            )
            return Handoff(None, "overall")
    view = escalate(session, conversation, reason, now, member_id=member_id, pause=True)
    return Handoff(view)


def queue(session: Session, now: datetime, limit: int = 100) -> list[EscalationView]:
    """The escalations waiting for staff, oldest first, with how long each has waited.

    Args:
        session: the unit of work.
        now: the current time (aware).
        limit: at most this many.
    """
    rows = session.execute(
        select(Escalation)
        .where(Escalation.status == EscalationStatus.WAITING.value)
        .order_by(Escalation.created_at, Escalation.id)
        .limit(limit)
    ).scalars()
    return [_view(row, now=now) for row in rows]


def _row(session: Session, escalation_id: int) -> Escalation:
    row = session.execute(
        select(Escalation)
        .where(Escalation.id == escalation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        raise EscalationError(f"no escalation #{escalation_id}")
    return row


def _staff_audit(
    session: Session, now: datetime, action: str, staff: str, row: Escalation, **detail: Any
) -> None:
    audit(
        session,
        now,
        action,
        f"staff:{staff}",
        member_id=row.member_id,
        escalation_id=row.id,
        **detail,
    )


def claim(session: Session, escalation_id: int, staff: str, now: datetime) -> EscalationView:
    """A staff member takes a waiting escalation.

    Raises:
        EscalationError: unknown, or not waiting (someone else has it, or it is closed).
    """
    row = _row(session, escalation_id)
    if row.status != EscalationStatus.WAITING.value:
        raise EscalationError(
            f"escalation #{escalation_id} is {row.status}"
            + (f" ({row.assigned_staff})" if row.assigned_staff else "")
        )
    row.status = EscalationStatus.IN_PROGRESS.value
    row.assigned_staff = staff
    row.claimed_at = now
    _staff_audit(session, now, "escalation.claimed", staff, row)
    return _view(row)


def close(
    session: Session,
    escalation_id: int,
    staff: str,
    note: str | None,
    now: datetime,
    resume: Callable[[str], None] | None = None,
) -> EscalationView:
    """Close an escalation that is waiting or in progress; ``note`` is kept for staff.

    A closed hand-off must not leave the member muted: when the escalation paused the
    conversation, ``resume`` is called first (as by :func:`hand_back`).

    Args:
        session: the unit of work.
        escalation_id: the escalation.
        staff: who closes it.
        note: an internal note.
        now: the current time (aware).
        resume: called with the sender id to resume a paused conversation in Rasa
            (e.g. :meth:`bot.handoff.rasa_api.RasaApi.resume`); if it raises, nothing
            changes. None: the caller resumes it, or it stays paused.

    Raises:
        EscalationError: unknown or already closed.
    """
    return _finish(session, escalation_id, staff, now, resume, note, "escalation.closed")


def hand_back(
    session: Session,
    escalation_id: int,
    staff: str,
    now: datetime,
    resume: Callable[[str], None] | None = None,
    note: str | None = None,
) -> EscalationView:
    """Give the conversation back to the assistant: resume it in Rasa, close the escalation.

    Args:
        session: the unit of work.
        escalation_id: the escalation.
        staff: who hands it back.
        now: the current time (aware).
        resume: called with the sender id to resume the conversation in Rasa (e.g.
            :meth:`bot.handoff.rasa_api.RasaApi.resume`) when the escalation paused it (a
            lockout's never did); if it raises, nothing changes.
        note: an internal note.

    Raises:
        EscalationError: unknown or already closed.
    """
    return _finish(session, escalation_id, staff, now, resume, note, "escalation.handed_back")


def _finish(
    session: Session,
    escalation_id: int,
    staff: str,
    now: datetime,
    resume: Callable[[str], None] | None,
    note: str | None,
    action: str,
) -> EscalationView:
    """Close the escalation, resuming the conversation first if it paused it."""
    row = _row(session, escalation_id)
    if row.status == EscalationStatus.CLOSED.value:
        raise EscalationError(f"escalation #{escalation_id} is already closed")
    if resume is not None and row.paused and row.sender_id:
        resume(row.sender_id)
    row.status = EscalationStatus.CLOSED.value
    row.closed_at = now
    row.assigned_staff = row.assigned_staff or staff
    if note:
        _add_note(row, note)
    _staff_audit(session, now, action, staff, row)
    return _view(row)
