"""The audit log for privacy officers: newest first, filtered, 50 to a page.

Filters: the action (a prefix: ``case.`` gives every case action), the actor (a prefix:
``staff:tanaka``), and a range of Japan dates. Pages go back by id (``?before=``), so a
deep page costs what the first does (:mod:`bot.db.audit_log` reads it). Looking at the
log is itself audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from bot.console.context import OFFICER, allow, console_of, staff_of
from bot.console.views import render
from bot.core.japan_time import JST
from bot.db.audit import audit
from bot.db.audit_log import PAGE_SIZE, AuditPage, AuditSearch, audit_page

MAX_FILTER_CHARS = 64


@dataclass(frozen=True)
class AuditFilter:
    """What the officer asked for."""

    action: str = ""
    actor: str = ""
    since: date | None = None
    until: date | None = None
    before: int | None = None

    def params(self, **changes: Any) -> dict[str, str]:
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

    def search(self) -> AuditSearch:
        """The rows this filter asks for: its Japan dates as a range of instants."""
        return AuditSearch(
            action=self.action,
            actor=self.actor,
            since=_start_of(self.since) if self.since else None,
            until=_start_of(self.until + timedelta(days=1)) if self.until else None,
            before=self.before,
        )


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=JST)


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


@allow(OFFICER)
async def audit_log(request: web.Request) -> web.StreamResponse:
    """``GET /audit``: the audit log with its filters (privacy officers)."""
    console = console_of(request)
    staff = staff_of(request)
    wanted, problems = parse_filter(request.query)
    now = console.now()

    def load(session: Session) -> AuditPage:
        page = audit_page(session, wanted.search(), PAGE_SIZE)
        audit(
            session,
            now,
            "console.viewed",
            f"staff:{staff.name}",
            page="audit",
            filters=wanted.params(),
        )
        return page

    page = await console.unit(load)
    return render(
        request,
        "audit.html",
        rows=page.rows,
        wanted=wanted,
        problems=problems,
        next_query=wanted.params(before=page.next_before) if page.next_before else None,
        first_query=wanted.params(before="") if wanted.before else None,
    )


def routes() -> list[web.RouteDef]:
    """The audit log route."""
    return [web.get("/audit", audit_log)]
