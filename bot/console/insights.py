"""The privacy officer's overview: charts of what members ask and where the assistant fails.

- ``GET /insights?days=``: every figure of :mod:`bot.insights` for the last 7, 30 or
  90 days, as server-drawn SVG charts with their numbers as tables. Counts only.
- ``GET /insights/unanswered?days=``: the member messages the assistant did not
  understand or answered 「方針に記載なし」, newest first, grouped by similarity,
  masked as transcripts are; ``/insights/unanswered.csv`` exports them (masked).
- ``GET /insights/messages/{event_id}``: the (masked) conversation around one of them.

Only privacy officers. The list, its export and a conversation are audited as a
transcript is (``console.viewed`` / ``console.exported``, never a message's text).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from sqlalchemy.orm import Session

from bot.console.context import OFFICER, allow, console_of, staff_of
from bot.console.views import render
from bot.core.conversation import Conversation, channel_of
from bot.core.japan_time import jst_timestamp
from bot.db.audit import audit
from bot.handoff.detail import known_names
from bot.insights.conversation import around, conversation_member, message_sender
from bot.insights.figures import Figures, app_figures, conversation_figures, message_figures
from bot.insights.period import PERIOD_DAYS, Period, parse_days
from bot.insights.tables import all_tables
from bot.insights.unanswered import (
    EXPORT_LIMIT,
    PAGE_LIMIT,
    Group,
    grouped,
    to_csv,
    unanswered_messages,
)


def _period(request: web.Request, now: datetime) -> tuple[int, Period]:
    days = parse_days(request.query.get("days"))
    return days, Period.ending(now, days)


@allow(OFFICER)
async def overview(request: web.Request) -> web.StreamResponse:
    """``GET /insights?days=``: the charts of the period (7, 30 or 90 days)."""
    console = console_of(request)
    now = console.now()
    days, period = _period(request, now)
    figures = Figures(period=period, now=now)
    # Three worker threads at once: the events' two scans, and the app database.
    await asyncio.gather(
        console.tracker(message_figures, figures),
        console.tracker(conversation_figures, figures),
        console.unit(app_figures, figures),
    )
    return render(
        request,
        "insights.html",
        tables=all_tables(figures),
        figures=figures,
        days=days,
        choices=PERIOD_DAYS,
        computed=jst_timestamp(now),
    )


async def _groups(
    request: web.Request, page: str, action: str, limit: int
) -> tuple[int, Period, list[Group]]:
    """The period's masked messages in groups; the look is audited first."""
    console = console_of(request)
    staff = staff_of(request)
    now = console.now()
    days, period = _period(request, now)
    messages = await console.tracker(
        lambda connection: unanswered_messages(
            connection, period, limit=limit, public_numbers=console.public_numbers
        )
    )

    def record(session: Session) -> None:
        audit(
            session,
            now,
            action,
            f"staff:{staff.name}",
            page=page,
            days=days,
            messages=len(messages),
        )

    await console.unit(record)
    return days, period, await asyncio.to_thread(grouped, messages)


@allow(OFFICER)
async def unanswered(request: web.Request) -> web.StreamResponse:
    """``GET /insights/unanswered?days=``: what the assistant did not understand (audited)."""
    days, period, groups = await _groups(
        request, "insights_unanswered", "console.viewed", PAGE_LIMIT
    )
    return render(
        request,
        "insights_unanswered.html",
        groups=groups,
        count=sum(len(group.messages) for group in groups),
        days=days,
        period=period,
        choices=PERIOD_DAYS,
        page_limit=PAGE_LIMIT,
        export_limit=EXPORT_LIMIT,
    )


@allow(OFFICER)
async def unanswered_csv(request: web.Request) -> web.StreamResponse:
    """``GET /insights/unanswered.csv?days=``: the same list as CSV, masked (audited)."""
    _, period, groups = await _groups(
        request, "insights_unanswered", "console.exported", EXPORT_LIMIT
    )
    name = f"unanswered-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return web.Response(
        # With a BOM: spreadsheets then read the Japanese as UTF-8.
        body=("\ufeff" + to_csv(groups)).encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@allow(OFFICER)
async def message(request: web.Request) -> web.StreamResponse:
    """``GET /insights/messages/{event_id}``: one listed message in its conversation (audited).

    The names of a verified member are masked too when the conversation was handed to
    staff (the escalation knows who it was), as on the escalation page.
    """
    console = console_of(request)
    staff = staff_of(request)
    event_id = int(request.match_info["event_id"])
    if event_id >= 2**62:
        raise web.HTTPNotFound()
    sender_id = await console.tracker(message_sender, event_id)
    if sender_id is None:
        raise web.HTTPNotFound()
    now = console.now()

    def who(session: Session) -> tuple[str, ...]:
        member_id = conversation_member(session, sender_id)
        audit(
            session,
            now,
            "console.viewed",
            f"staff:{staff.name}",
            member_id=member_id,
            conversation=Conversation(sender_id, "", channel_of(sender_id) or "unknown"),
            page="insights_conversation",
            event_id=event_id,
        )
        return known_names(session, member_id)

    names = await console.unit(who)
    transcript = await console.tracker(around, sender_id, event_id, names, console.public_numbers)
    return render(request, "insights_message.html", transcript=transcript, event_id=event_id)


def routes() -> list[web.RouteDef]:
    """The overview routes."""
    return [
        web.get("/insights", overview),
        web.get("/insights/unanswered", unanswered),
        web.get("/insights/unanswered.csv", unanswered_csv),
        web.get(r"/insights/messages/{event_id:\d{1,19}}", message),
    ]
