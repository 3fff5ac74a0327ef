"""What Rasa's ``events`` table says about the period, and the indexes that keep it fast.

Rasa writes one row per event (:data:`bot.handoff.transcripts.EVENTS`); the columns
``type_name``, ``timestamp``, ``intent_name`` and ``sender_id`` hold all the overview
needs of a member's message, so it never reads the ``data`` JSON of the period:

- a member's message is a ``user`` event; its channel is the conversation id's prefix
  (``web:``, ``line:``, ``rest:``, set by the channel itself, see
  :mod:`bot.core.conversation`), its topic the intent;
- a message the NLU did not understand (the assistant asks again, ``action_clarify``)
  has the intent ``nlu_fallback`` (Rasa's FallbackClassifier, ``config.yml``);
- an answer that the policy does not say it is a ``bot`` event whose metadata holds
  ``"answer_kind": "not_stated"``: the actions add it to every such reply
  (:data:`bot.policy.answers.NOT_STATED`, ``actions/common.py``).

Two indexes serve these queries (:func:`ensure_indexes`; the tracker store creates
them when it starts, :class:`bot.redacting_tracker_store.RedactingSQLTrackerStore`):
``(type_name, timestamp, intent_name, sender_id)``, which answers every count of
members' messages from the index alone, and a partial index of the not-stated answers,
a few rows among a million.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.handoff.transcripts import EVENTS
from bot.insights.period import DAY_S, EPOCH_DAY, JST_OFFSET_S, Period

logger = logging.getLogger(__name__)

FALLBACK_INTENT = "nlu_fallback"
NOT_STATED_MARK = '%"answer_kind": "not_stated"%'
# Written out, not bound: a partial index serves only a query that repeats its condition.
# Only a bot event's metadata holds the pair with bare quotes: in a member's text JSON
# escapes them (\"), so the condition needs no type_name, and without one the planner
# cannot prefer the (type_name, timestamp) index, which would read every bot event.
NOT_STATED_CONDITION = f"data LIKE '{NOT_STATED_MARK}'"
INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_events_insights_time "
    "ON events (type_name, timestamp, intent_name, sender_id)",
    f"CREATE INDEX IF NOT EXISTS ix_events_insights_not_stated ON events (timestamp) "
    f"WHERE {NOT_STATED_CONDITION}",
)
# The conversation id's first four characters name its channel.
PREFIX_CHANNELS = {"web:": "socketio", "line": "line", "rest": "rest"}


def ensure_indexes(engine: Engine) -> None:
    """Create the overview's indexes on Rasa's ``events`` table if they are missing.

    Idempotent and cheap once they exist; creating them on a large table takes a
    while (seconds per million events), once.
    """
    with engine.begin() as connection:
        if not sa.inspect(connection).has_table("events"):
            return
        for statement in INDEXES:
            connection.execute(sa.text(statement))


def _day(connection: Connection) -> Any:
    """The JST day number of an event's ``timestamp`` (days since 1970-01-01 in Japan)."""
    shifted = (EVENTS.c.timestamp + JST_OFFSET_S) / DAY_S
    if connection.dialect.name == "sqlite":
        # Unix times are positive: truncating is flooring.
        return sa.cast(shifted, sa.Integer)
    return sa.func.floor(shifted)


def _in(period: Period) -> Any:
    return sa.and_(
        EVENTS.c.timestamp >= period.start.timestamp(), EVENTS.c.timestamp < period.end.timestamp()
    )


def channel_of_prefix(prefix: str | None) -> str:
    """The channel of a conversation id's first four characters (``other`` if none)."""
    return PREFIX_CHANNELS.get(prefix or "", "other")


@dataclass(frozen=True)
class MessageCount:
    """Members' messages of one day, channel and intent."""

    day: int  # JST day number
    channel: str
    intent: str | None
    count: int


def _days(period: Period) -> list[tuple[int, float]]:
    """Each day of ``period``: its JST day number and the Unix time it starts."""
    first = (period.first - EPOCH_DAY).days
    return [
        (first + offset, (first + offset) * DAY_S - JST_OFFSET_S)
        for offset in range(len(period.days))
    ]


_START, _END = sa.bindparam("start"), sa.bindparam("end")
_PREFIX = sa.func.substr(EVENTS.c.sender_id, 1, 4).label("prefix")
_MEMBER_DAY = sa.and_(
    EVENTS.c.type_name == "user", EVENTS.c.timestamp >= _START, EVENTS.c.timestamp < _END
)
# One statement per day, each a short range of the covering index grouped by the
# database: sorting a day's rows at a time is cheaper than grouping the whole period by
# an expression of the time (on SQLite, 90 days of 120,000 messages: 275 against 400 ms
# for the counts, 150 against 300 ms for the conversations, the machine loaded alike).
_MESSAGES = (
    sa.select(_PREFIX, EVENTS.c.intent_name, sa.func.count().label("n"))
    .where(_MEMBER_DAY)
    .group_by(_PREFIX, EVENTS.c.intent_name)
)
_CONVERSATIONS = (
    sa.select(_PREFIX, sa.func.count(sa.distinct(EVENTS.c.sender_id)).label("n"))
    .where(_MEMBER_DAY)
    .group_by(_PREFIX)
)


def message_counts(connection: Connection, period: Period) -> list[MessageCount]:
    """Members' messages in ``period`` by day, channel and intent (from the index alone)."""
    found = []
    for day, start in _days(period):
        rows = connection.execute(_MESSAGES, {"start": start, "end": start + DAY_S})
        found += [
            MessageCount(day, channel_of_prefix(row.prefix), row.intent_name, int(row.n))
            for row in rows
        ]
    return found


def conversation_counts(connection: Connection, period: Period) -> list[tuple[int, str, int]]:
    """Conversations with a member's message, by day and channel: (day, channel, count)."""
    found = []
    for day, start in _days(period):
        rows = connection.execute(_CONVERSATIONS, {"start": start, "end": start + DAY_S})
        found += [(day, channel_of_prefix(row.prefix), int(row.n)) for row in rows]
    return found


def _not_stated() -> Any:
    return sa.text(NOT_STATED_CONDITION)


def not_stated_counts(connection: Connection, period: Period) -> list[tuple[int, int]]:
    """Answers that the policy does not say it, by day: (day, count)."""
    day = _day(connection).label("day")
    query = (
        sa.select(day, sa.func.count().label("n"))
        .select_from(EVENTS)
        .where(_not_stated(), _in(period))
        .group_by(day)
    )
    return [(int(row.day), int(row.n)) for row in connection.execute(query)]


@dataclass(frozen=True)
class MessageRow:
    """One member message as stored (its text still to be masked)."""

    event_id: int
    sender_id: str
    timestamp: float
    data: str | None
    kind: str  # "fallback" | "not_stated"


def fallback_messages(connection: Connection, period: Period, limit: int) -> list[MessageRow]:
    """The newest ``limit`` member messages of ``period`` the NLU did not understand."""
    query = (
        sa.select(EVENTS.c.id, EVENTS.c.sender_id, EVENTS.c.timestamp, EVENTS.c.data)
        .where(EVENTS.c.type_name == "user", _in(period), EVENTS.c.intent_name == FALLBACK_INTENT)
        .order_by(EVENTS.c.timestamp.desc())
        .limit(limit)
    )
    return [
        MessageRow(row.id, row.sender_id, row.timestamp or 0.0, row.data, "fallback")
        for row in connection.execute(query)
    ]


def not_stated_messages(connection: Connection, period: Period, limit: int) -> list[MessageRow]:
    """The member messages of the newest ``limit`` not-stated answers of ``period``.

    Each answer's message is the sender's last ``user`` event before it, found by a
    subquery on Rasa's index on ``sender_id`` (one statement for the whole list).
    """
    answer = EVENTS.alias("answer")
    asked = EVENTS.alias("asked")
    message_id = (
        sa.select(asked.c.id)
        .where(
            asked.c.sender_id == answer.c.sender_id,
            asked.c.type_name == "user",
            asked.c.id < answer.c.id,
        )
        .order_by(_newest_first(connection, asked.c.id))
        .limit(1)
        .scalar_subquery()
    )
    in_period = sa.and_(
        answer.c.timestamp >= period.start.timestamp(), answer.c.timestamp < period.end.timestamp()
    )
    answers = (
        sa.select(message_id.label("message_id"))
        .select_from(answer)
        .where(sa.text(NOT_STATED_CONDITION.replace("data", "answer.data")), in_period)
        .order_by(answer.c.timestamp.desc())
        .limit(limit)
        .subquery()
    )
    query = (
        sa.select(EVENTS.c.id, EVENTS.c.sender_id, EVENTS.c.timestamp, EVENTS.c.data)
        .where(EVENTS.c.id.in_(sa.select(answers.c.message_id)))
        .order_by(EVENTS.c.timestamp.desc())
    )
    return [
        MessageRow(row.id, row.sender_id, row.timestamp or 0.0, row.data, "not_stated")
        for row in connection.execute(query)
    ]


def _newest_first(connection: Connection, column: Any) -> Any:
    # As in bot.handoff.transcripts: on PostgreSQL, ``id + 0`` keeps the planner on the
    # sender index instead of walking the primary key backwards through everyone's events.
    key = column if connection.dialect.name == "sqlite" else column + 0
    return key.desc()


def event_sender(connection: Connection, event_id: int) -> tuple[str, str] | None:
    """The conversation and type of one event, or None if there is no such event."""
    row = connection.execute(
        sa.select(EVENTS.c.sender_id, EVENTS.c.type_name).where(EVENTS.c.id == event_id)
    ).first()
    return None if row is None else (row.sender_id, row.type_name)
