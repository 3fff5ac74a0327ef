"""One escalation as staff work it: the record, whom it is about, the replies not yet sent.

What the staff console's escalation page shows besides the transcript: the escalation,
the verified member's name (the page masks it), the names to mask in the conversation
(the member's family) and the staff replies stored but not yet delivered to the member.

Plain reads: the caller passes the session (one unit of work) and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.db.models import Escalation, Member, StaffMessage


@dataclass(frozen=True)
class PendingMessage:
    """A staff reply stored but not yet delivered to the member."""

    id: int
    staff: str
    text: str
    created_at: datetime


@dataclass(frozen=True)
class EscalationDetail:
    """Everything the escalation page shows besides the transcript."""

    id: int
    status: str
    reason: str
    channel: str | None
    sender_id: str | None
    member_id: int | None
    member_name: str | None  # shown masked
    created_at: datetime
    waiting: timedelta
    assigned_staff: str | None
    claimed_at: datetime | None
    closed_at: datetime | None
    note: str | None
    paused: bool
    known_names: tuple[str, ...]
    pending: tuple[PendingMessage, ...]


def known_names(session: Session, member_id: int | None) -> tuple[str, ...]:
    """The names to mask in a verified member's conversation.

    The member's own, their dependants' and, for a dependant, the insured person's and
    the other dependants': a family talks about each other.

    Args:
        session: the unit of work.
        member_id: the verified member, or None (nobody verified: no names).
    """
    if member_id is None:
        return ()
    member = session.get(Member, member_id)
    if member is None:
        return ()
    family = member.insured_id or member.id
    names = session.execute(
        select(Member.name).where(or_(Member.id == family, Member.insured_id == family))
    ).scalars()
    return tuple(dict.fromkeys([member.name, *names]))


def _pending(session: Session, escalation_id: int) -> tuple[PendingMessage, ...]:
    rows = session.execute(
        select(StaffMessage)
        .where(StaffMessage.escalation_id == escalation_id, StaffMessage.delivered_at.is_(None))
        .order_by(StaffMessage.id)
    ).scalars()
    return tuple(
        PendingMessage(id=row.id, staff=row.staff, text=row.text, created_at=row.created_at)
        for row in rows
    )


def escalation_detail(
    session: Session, escalation_id: int, now: datetime
) -> EscalationDetail | None:
    """One escalation with the verified member's name and the undelivered replies.

    Args:
        session: the unit of work.
        escalation_id: the escalation.
        now: the current time, for how long a waiting escalation has waited.

    Returns:
        The escalation as of now (re-read even if the session holds it), or None when
        there is no such escalation.
    """
    # Even if the session already holds the row: the page shows it as stored now.
    row = session.get(Escalation, escalation_id, populate_existing=True)
    if row is None:
        return None
    member = session.get(Member, row.member_id) if row.member_id is not None else None
    return EscalationDetail(
        id=row.id,
        status=row.status,
        reason=row.reason,
        channel=row.channel,
        sender_id=row.sender_id,
        member_id=row.member_id,
        member_name=member.name if member is not None else None,
        created_at=row.created_at,
        waiting=(row.claimed_at or row.closed_at or now) - row.created_at,
        assigned_staff=row.assigned_staff,
        claimed_at=row.claimed_at,
        closed_at=row.closed_at,
        note=row.note,
        paused=bool(row.paused),
        known_names=known_names(session, row.member_id),
        pending=_pending(session, row.id),
    )
