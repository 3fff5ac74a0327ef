"""The audit log for privacy officers: newest first, filtered, 50 to a page.

Filters: the action (a prefix: ``case.`` gives every case action), the actor (a prefix:
``staff:tanaka``), and a range of Japan dates. Pages go back by id (``?before=``), so a
deep page costs what the first does. Looking at the log is itself audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases.rules import JST
from bot.console.context import OFFICER, allow, console_of, staff_of
from bot.console.views import render
from bot.db.audit import audit
from bot.db.models import AuditLog

PAGE_SIZE = 50
MAX_FILTER_CHARS = 64


@dataclass(frozen=True)
class AuditFilter:
    """What the officer asked for."""

    action: str = ""
    actor: str = ""
    since: date | None = None
    until: date | None = None
    before: int | None = None

    def query(self, **changes: Any) -> dict[str, str]:
        """The filter as query parameters (for links), with ``changes`` applied."""
        values: dict[str, Any] = {
            "action": self.action,
            "actor": self.actor,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "before": str(self.before) if self.before else "",
        }
        values.update(changes)
        return {key: str(value) for key, value in values.items() if value}


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


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def parse_filter(query: Any) -> tuple[AuditFilter, list[str]]:
    """The filter from the query string, and the problems with it (Japanese)."""
    problems = []
    since_raw, until_raw = str(query.get("since", "")), str(query.get("until", ""))
    since, until = _day(since_raw), _day(until_raw)
    if since_raw.strip() and since is None:
        problems.append("開始日は YYYY-MM-DD の形で入力してください。")
    if until_raw.strip() and until is None:
        problems.append("終了日は YYYY-MM-DD の形で入力してください。")
    before_raw = str(query.get("before", ""))
    before = int(before_raw) if before_raw.isdigit() and len(before_raw) < 18 else None
    return (
        AuditFilter(
            action=str(query.get("action", "")).strip()[:MAX_FILTER_CHARS],
            actor=str(query.get("actor", "")).strip()[:MAX_FILTER_CHARS],
            since=since,
            until=until,
            before=before,
        ),
        problems,
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=JST)


def audit_page(
    session: Session, wanted: AuditFilter, size: int = PAGE_SIZE
) -> tuple[list[AuditRow], int | None]:
    """One page of audit rows, newest first, and the id to pass as ``before`` for the next."""
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(size + 1)
    if wanted.action:
        query = query.where(AuditLog.action.startswith(wanted.action, autoescape=True))
    if wanted.actor:
        query = query.where(AuditLog.actor.startswith(wanted.actor, autoescape=True))
    if wanted.since:
        query = query.where(AuditLog.at >= _start_of(wanted.since))
    if wanted.until:
        query = query.where(AuditLog.at < _start_of(wanted.until + timedelta(days=1)))
    if wanted.before:
        query = query.where(AuditLog.id < wanted.before)
    found = list(session.execute(query).scalars())
    more = len(found) > size
    found = found[:size]
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
        for row in found
    ]
    return rows, (rows[-1].id if more and rows else None)


@allow(OFFICER)
async def audit_log(request: web.Request) -> web.StreamResponse:
    """``GET /audit``: the audit log with its filters (privacy officers)."""
    console = console_of(request)
    staff = staff_of(request)
    wanted, problems = parse_filter(request.query)
    now = console.now()

    def load(session: Session) -> tuple[list[AuditRow], int | None]:
        page = audit_page(session, wanted)
        audit(
            session,
            now,
            "console.viewed",
            f"staff:{staff.name}",
            page="audit",
            filters=wanted.query(),
        )
        return page

    rows, next_before = await console.unit(load)
    return render(
        request,
        "audit.html",
        rows=rows,
        wanted=wanted,
        problems=problems,
        next_query=wanted.query(before=next_before) if next_before else None,
        first_query=wanted.query(before="") if wanted.before else None,
    )


def routes() -> list[web.RouteDef]:
    """The audit log route."""
    return [web.get("/audit", audit_log)]
