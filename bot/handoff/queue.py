"""The staff queue: the open escalations, waiting ones first, a page at a time.

The queue lists the waiting escalations oldest first, then those in progress, 50 to a
page (the staff console's ``/queue``). Each page costs two counts and two short index
range scans of ``ix_escalations_status_created_at`` (ids only, then the rows of those
ids), whatever the number of escalations.

Plain reads: the caller passes the session (one unit of work) and the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot.db.models import Escalation, EscalationStatus

PAGE_SIZE = 50

WAITING = EscalationStatus.WAITING.value
IN_PROGRESS = EscalationStatus.IN_PROGRESS.value


@dataclass(frozen=True)
class QueueRow:
    """One escalation in the queue."""

    id: int
    status: str
    reason: str
    channel: str | None
    created_at: datetime
    waiting: timedelta
    assigned_staff: str | None
    claimed_at: datetime | None
    verified: bool


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue: waiting ones first (oldest first), then those in progress."""

    waiting: list[QueueRow]
    in_progress: list[QueueRow]
    page: int
    pages: int
    waiting_count: int
    in_progress_count: int


def _count(session: Session, status: str) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Escalation).where(Escalation.status == status)
        ).scalar_one()
    )


def queue_ids_statement(status: str, offset: int, limit: int) -> Select:
    """The ids of one status's slice of the queue, oldest first.

    Ids only: the index (status, created_at) answers it without reading the rows it
    skips (on SQLite the id is part of every index), so a deep page costs little more
    than the first.
    """
    return (
        select(Escalation.id)
        .where(Escalation.status == status)
        .order_by(Escalation.created_at, Escalation.id)
        .offset(offset)
        .limit(limit)
    )


def _ids(session: Session, status: str, offset: int, limit: int) -> list[int]:
    return list(session.execute(queue_ids_statement(status, offset, limit)).scalars())


def _rows(session: Session, ids: list[int], now: datetime) -> list[QueueRow]:
    if not ids:
        return []
    found = {
        row.id: row
        for row in session.execute(select(Escalation).where(Escalation.id.in_(ids))).scalars()
    }
    return [
        QueueRow(
            id=row.id,
            status=row.status,
            reason=row.reason,
            channel=row.channel,
            created_at=row.created_at,
            waiting=now - row.created_at,
            assigned_staff=row.assigned_staff,
            claimed_at=row.claimed_at,
            verified=row.member_id is not None,
        )
        for row in (found[i] for i in ids if i in found)
    ]


def queue_page(session: Session, now: datetime, page: int, size: int = PAGE_SIZE) -> QueuePage:
    """Page ``page`` (from 1) of the open escalations: waiting first, then in progress.

    Args:
        session: the unit of work.
        now: the current time, for the waiting times.
        page: the page asked for; clamped to the pages there are.
        size: escalations per page.
    """
    waiting_count = _count(session, WAITING)
    in_progress_count = _count(session, IN_PROGRESS)
    pages = max(1, math.ceil((waiting_count + in_progress_count) / size))
    page = min(max(1, page), pages)
    offset = (page - 1) * size
    waiting_ids = _ids(session, WAITING, offset, size) if offset < waiting_count else []
    room = size - len(waiting_ids)
    progress_ids = (
        _ids(session, IN_PROGRESS, max(0, offset - waiting_count), room) if room > 0 else []
    )
    return QueuePage(
        waiting=_rows(session, waiting_ids, now),
        in_progress=_rows(session, progress_ids, now),
        page=page,
        pages=pages,
        waiting_count=waiting_count,
        in_progress_count=in_progress_count,
    )
