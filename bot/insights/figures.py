"""Every figure of the overview, computed from the events table and the app database.

Nothing personal is in a :class:`Figures`: counts by day, week, channel, intent, case
type and status only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from bot.cases.types import OPEN_STATUSES
from bot.db.models import AuditLog, Case, CaseStatus, Escalation, OutboundMessage, Verification
from bot.insights import events
from bot.insights.period import Period, day_of_number, week_of

CHANNELS = ("socketio", "line", "rest", "other")
TOP_INTENTS = 8
OTHER = "other"
DEADLINE_SOON = timedelta(days=7)
VERIFICATION_STEPS = ("started", "completed", "failed", "locked")
# The audit rows that count as a step (``bot.identity.verification``); a start is a
# ``verifications`` row (one per submission of 記号・番号 and birth date).
VERIFICATION_ACTIONS = {
    "verification.succeeded": "completed",
    "verification.failed": "failed",
    "verification.locked": "locked",
}
DEADLINES = ("overdue", "soon", "later", "paused", "none")


@dataclass
class Figures:
    """The overview of one period.

    Attributes:
        period: the days covered.
        now: when they were computed (aware).
        messages: members' messages per day, by channel (lists aligned with ``period.days``).
        conversations: conversations with a member's message per day, by channel.
        intents: members' messages per week, by intent (the most asked, then ``other``;
            lists aligned with ``period.weeks``).
        weekly_messages: members' messages per week.
        fallbacks: messages the NLU did not understand, per week.
        not_stated: answers that the policy does not say it, per week.
        handoffs: conversations handed to staff (escalations opened), per week.
        verification: verification steps in the period, by step.
        sms: SMS sent per day.
        open_cases: open cases by (type, status).
        deadlines: open cases by deadline: overdue, due within 7 days, later, clock
            stopped (awaiting documents), no due date.
    """

    period: Period
    now: datetime
    messages: dict[str, list[int]] = field(default_factory=dict)
    conversations: dict[str, list[int]] = field(default_factory=dict)
    intents: dict[str, list[int]] = field(default_factory=dict)
    weekly_messages: list[int] = field(default_factory=list)
    fallbacks: list[int] = field(default_factory=list)
    not_stated: list[int] = field(default_factory=list)
    handoffs: list[int] = field(default_factory=list)
    verification: dict[str, int] = field(default_factory=dict)
    sms: list[int] = field(default_factory=list)
    open_cases: dict[tuple[str, str], int] = field(default_factory=dict)
    deadlines: dict[str, int] = field(default_factory=dict)

    def share(self, counts: list[int]) -> list[float | None]:
        """``counts`` per week as a share of that week's messages (None: no messages)."""
        return [
            (count / total if total else None)
            for count, total in zip(counts, self.weekly_messages, strict=True)
        ]


def _by_day(period: Period, counts: Mapping[date, int]) -> list[int]:
    return [counts.get(day, 0) for day in period.days]


def _by_week(period: Period, counts: Mapping[date, int]) -> list[int]:
    weekly: Counter[date] = Counter()
    for day, count in counts.items():
        weekly[week_of(day)] += count
    return [weekly.get(week, 0) for week in period.weeks]


def message_figures(connection: Connection, figures: Figures) -> None:
    """Fill in members' messages by channel and intent, the fallbacks and not-stated answers."""
    period = figures.period
    messages: dict[str, Counter[date]] = defaultdict(Counter)
    intents: dict[str, Counter[date]] = defaultdict(Counter)
    fallbacks: Counter[date] = Counter()
    total: Counter[date] = Counter()
    for row in events.message_counts(connection, period):
        day = day_of_number(row.day)
        messages[row.channel][day] += row.count
        total[day] += row.count
        intent = row.intent or "unknown"
        intents[intent][day] += row.count
        if row.intent == events.FALLBACK_INTENT:
            fallbacks[day] += row.count
    figures.messages = {channel: _by_day(period, messages[channel]) for channel in CHANNELS}
    ranked = sorted(intents, key=lambda name: (-sum(intents[name].values()), name))
    top, rest = ranked[:TOP_INTENTS], ranked[TOP_INTENTS:]
    figures.intents = {name: _by_week(period, intents[name]) for name in top}
    if rest:
        other: Counter[date] = Counter()
        for name in rest:
            other.update(intents[name])
        figures.intents[OTHER] = _by_week(period, other)
    figures.weekly_messages = _by_week(period, total)
    figures.fallbacks = _by_week(period, fallbacks)
    not_stated = {
        day_of_number(n): count for n, count in events.not_stated_counts(connection, period)
    }
    figures.not_stated = _by_week(period, not_stated)


def conversation_figures(connection: Connection, figures: Figures) -> None:
    """Fill in the conversations per day and channel."""
    conversations: dict[str, Counter[date]] = defaultdict(Counter)
    for number, channel, count in events.conversation_counts(connection, figures.period):
        conversations[channel][day_of_number(number)] += count
    figures.conversations = {
        channel: _by_day(figures.period, conversations[channel]) for channel in CHANNELS
    }


def events_figures(connection: Connection, figures: Figures) -> None:
    """Fill in everything Rasa's events say (the console runs the two parts at once)."""
    message_figures(connection, figures)
    conversation_figures(connection, figures)


def _jst_date(session: Session, column: Any) -> Any:
    """The Japan date of a stored (naive UTC) time, computed by the database."""
    if session.get_bind().dialect.name == "sqlite":
        return sa.func.date(column, "+9 hours")
    return sa.cast(column + sa.literal_column("interval '9 hours'"), sa.Date)


def _per_day(session: Session, column: Any, *conditions: Any) -> Counter[date]:
    """How many rows per Japan day of ``column`` (grouped by the database)."""
    day = _jst_date(session, column).label("day")
    rows = session.execute(sa.select(day, sa.func.count()).where(*conditions).group_by(day))
    return Counter({date.fromisoformat(str(value)): count for value, count in rows})


def app_figures(session: Session, figures: Figures) -> None:
    """Fill in what the app database says: hand-offs, verification, SMS, cases."""
    period, now = figures.period, figures.now
    start, end = period.start, period.end
    opened = _per_day(
        session, Escalation.created_at, Escalation.created_at >= start, Escalation.created_at < end
    )
    figures.handoffs = _by_week(period, opened)
    steps = dict.fromkeys(VERIFICATION_STEPS, 0)
    steps["started"] = session.execute(
        sa.select(sa.func.count())
        .select_from(Verification)
        .where(Verification.created_at >= start, Verification.created_at < end)
    ).scalar_one()
    audited = session.execute(
        sa.select(AuditLog.action, sa.func.count())
        .where(AuditLog.at >= start, AuditLog.at < end, AuditLog.action.in_(VERIFICATION_ACTIONS))
        .group_by(AuditLog.action)
    )
    for action, count in audited:
        steps[VERIFICATION_ACTIONS[action]] += count
    figures.verification = steps
    sent = _per_day(
        session,
        OutboundMessage.sent_at,
        OutboundMessage.status == "sent",
        OutboundMessage.channel == "sms",
        OutboundMessage.sent_at >= start,
        OutboundMessage.sent_at < end,
    )
    figures.sms = _by_day(period, sent)
    # Where each open case stands against its deadline, as is_overdue judges it; the
    # period stands still while documents are awaited.
    deadline = sa.case(
        (Case.status == CaseStatus.AWAITING_DOCUMENTS.value, "paused"),
        (Case.due_at.is_(None), "none"),
        (Case.due_at < now, "overdue"),
        (Case.due_at <= now + DEADLINE_SOON, "soon"),
        else_="later",
    ).label("deadline")
    rows = session.execute(
        sa.select(Case.case_type, Case.status, deadline, sa.func.count())
        .where(Case.status.in_([status.value for status in OPEN_STATUSES]))
        .group_by(Case.case_type, Case.status, deadline)
    )
    by_type: Counter[tuple[str, str]] = Counter()
    deadlines = dict.fromkeys(DEADLINES, 0)
    for case_type, status, where, count in rows:
        by_type[(case_type, status)] += count
        deadlines[where] += count
    figures.open_cases = dict(by_type)
    figures.deadlines = deadlines


def compute(session: Session, connection: Connection, now: datetime, period: Period) -> Figures:
    """The figures of ``period``; the open cases and their deadlines as of ``now``.

    Args:
        session: a unit of work on the app database.
        connection: a connection to Rasa's tracker store.
        now: the current time (aware).
        period: the days counted (``Period.ending(now, days)`` on the pages).
    """
    figures = Figures(period=period, now=now)
    events_figures(connection, figures)
    app_figures(session, figures)
    return figures
