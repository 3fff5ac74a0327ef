"""Reading the audit log: newest first, filtered, a page at a time.

The reading counterpart of :mod:`bot.db.audit` (its one writer), for privacy officers
(the staff console's ``/audit``). Pages go back by id (``before``), so a deep page costs
what the first does.

Plain reads: the caller passes the session (one unit of work).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.models import AuditLog

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditSearch:
    """Which audit rows to read.

    Attributes:
        action: a prefix of the action (``case.`` gives every case action); empty: any.
        actor: a prefix of the actor (``staff:tanaka``); empty: anybody.
        since: only rows at or after this time.
        until: only rows before this time.
        before: only rows with a smaller id (the next page of a previous one).
    """

    action: str = ""
    actor: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None


@dataclass(frozen=True)
class AuditRow:
    """One audit row as shown."""

    id: int
    at: datetime
    actor: str
    action: str
    member_id: int | None
    channel: str | None
    conversation: str | None  # the start of the sender id only
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditPage:
    """One page of audit rows, newest first.

    Attributes:
        rows: the rows.
        next_before: the ``before`` of the next (older) page; None when this is the last.
    """

    rows: list[AuditRow]
    next_before: int | None


def audit_page(session: Session, search: AuditSearch, size: int = PAGE_SIZE) -> AuditPage:
    """One page of audit rows matching ``search``, newest first.

    Args:
        session: the unit of work.
        search: what to read.
        size: rows per page.
    """
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(size + 1)
    if search.action:
        query = query.where(AuditLog.action.startswith(search.action, autoescape=True))
    if search.actor:
        query = query.where(AuditLog.actor.startswith(search.actor, autoescape=True))
    if search.since:
        query = query.where(AuditLog.at >= search.since)
    if search.until:
        query = query.where(AuditLog.at < search.until)
    if search.before:
        query = query.where(AuditLog.id < search.before)
    # One row more than a page: whether there is an older page.
    found = list(session.execute(query).scalars())
    more = len(found) > size
    rows = [
        AuditRow(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            member_id=row.member_id,
            channel=row.channel,
            conversation=(row.sender_id[:6] + "…") if row.sender_id else None,
            detail=dict(row.detail or {}),
        )
        for row in found[:size]
    ]
    return AuditPage(rows=rows, next_before=rows[-1].id if more and rows else None)
