"""Conversation transcripts for staff, read from Rasa's SQL tracker store.

Rasa keeps every event of every conversation in its ``events`` table (one row per
event: ``id``, ``sender_id`` (indexed), ``type_name``, ``timestamp``, ``intent_name``,
``action_name`` and ``data``, the event as JSON). A transcript is the readable part of
one sender's events: what the member wrote, what the assistant and staff answered,
and system lines for pauses, resumptions, new sessions and restarts.

Personal values are masked: every line is split into plain text and *fields*, and a
field shows only its label (``［生年月日］``). The detectors are those of
:mod:`bot.identity.redact` (dates, 和暦 included; phone numbers; 記号・番号 and other long
numbers, 6-digit codes among them), plus e-mail addresses, the names the NLU tagged as
``person_name`` and the names the caller knows (the verified member's and their
dependants'), which are masked in every line, the assistant's included. The clear
value of a field is returned only by :func:`reveal_field`, one field at a time, so that
the caller can audit each look.

Every call is one query served by Rasa's index on ``sender_id``: a page is the
``limit`` newest events of the sender before an event id (``ORDER BY id DESC LIMIT
n``), read back in order. Its cost depends on the conversation's length (a few ms for
thousands of events), not on the size of the table (measured with 1,000,000 events).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import QueuePool

from bot.core.sessions import continued_from
from bot.core.text import normalize_with_spans
from bot.identity.redact import DATE_MASK, PHONE_MASK, personal_spans

# Rasa's table (rasa.core.tracker_store.SQLTrackerStore.SQLEvent), read-only here.
EVENTS = sa.Table(
    "events",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)

USER, BOT = "user", "bot"
SYSTEM_TEXTS = {
    "pause": "会話を一時停止しました（担当者対応）",
    "resume": "会話を再開しました（アシスタントが応答します）",
    "session_started": "新しいセッションが始まりました",
    "restart": "会話が最初からやり直されました",
}
# Only these event types make lines; the others (actions, slots, forms) stay out of
# the query, so that a page of ``limit`` rows is about ``limit`` lines.
SHOWN_TYPES = (USER, BOT, *SYSTEM_TEXTS)
MAX_LIMIT = 1000

# kind -> Japanese label
LABELS = {
    "name": "氏名",
    "email": "メールアドレス",
    "birth_date": "生年月日",
    "date": "日付",
    "phone": "電話番号",
    "member_number": "記号・番号",
    "code": "認証コード",
    "number": "番号",
}
# Entities the NLU extracts from members' messages, and the kind each is masked as.
ENTITY_KINDS = {
    "person_name": "name",
    "birth_date": "birth_date",
    "phone_number": "phone",
    "member_id": "member_number",
}
# Where spans overlap, the merged field takes the kind of the strongest (lowest).
_PRIORITY = {"name": 0, "email": 1, "date": 2, "phone": 3, "number": 4, "entity": 5}

# Not in bot.identity.redact, which masks what reaches logs: addresses are matched on the
# NFKC-folded text (＠ → @). Linear: the classes on either side of @ cannot overlap it.
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# A date with a year (西暦4桁, 年, an era letter) in a member's message is a birth date;
# without one (4月1日) it is some other date.
_YEAR_IN_DATE = re.compile(r"[0-9]{4}|年|[A-Za-z]")
_LABEL_BEFORE = re.compile(r"(?:記号|番号)[^0-9]{0,6}$")
_SIX_DIGITS = re.compile(r"[0-9]{6}")
_NAME_SEPARATORS = re.compile(r"[\s\u3000]+")


class TranscriptError(Exception):
    """An unknown event or field, or an event of another conversation."""


@dataclass(frozen=True)
class Field:
    """One personal value in a line, masked unless revealed."""

    index: int  # position among the fields of its line (0, 1, ...)
    kind: str  # a key of LABELS
    label: str  # Japanese label, e.g. "生年月日"
    masked: str  # what is shown instead, e.g. "［生年月日］"


@dataclass(frozen=True)
class Segment:
    """Plain text (``field`` None) or a masked field (``text`` None)."""

    text: str | None
    field: Field | None


@dataclass(frozen=True)
class TranscriptLine:
    """One line of a transcript."""

    event_id: int
    at: datetime  # aware, UTC
    speaker: str  # "member" | "assistant" | "staff" | "system"
    staff: str | None  # for speaker == "staff": the staff member's name
    segments: tuple[Segment, ...]
    buttons: tuple[str, ...] = ()  # titles of the buttons the assistant offered

    @property
    def masked_text(self) -> str:
        """The line as shown, fields replaced by their masks."""
        return "".join(
            segment.field.masked if segment.field is not None else segment.text or ""
            for segment in self.segments
        )


@dataclass(frozen=True)
class Transcript:
    """A page of one conversation's lines."""

    sender_id: str
    lines: list[TranscriptLine]  # oldest first
    earlier_before: int | None  # pass as before_event_id for the page before; None: none


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def tracker_engine(url: str) -> Engine:
    """The process's engine for reading the tracker store at ``url``, made on first use.

    Not the app's engine (:func:`bot.db.session.engine_for`): that one opens every
    SQLite transaction with ``BEGIN IMMEDIATE``, which would make each read wait for,
    and hold up, the rasa server's writes.

    Args:
        url: the SQLAlchemy URL of Rasa's tracker store (``settings.tracker_url``).
    """
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                engine = sa.create_engine(
                    parsed,
                    future=True,
                    hide_parameters=True,
                    poolclass=QueuePool,
                    connect_args={"check_same_thread": False, "timeout": 30},
                )
            else:
                engine = sa.create_engine(
                    parsed, future=True, hide_parameters=True, pool_pre_ping=True
                )
            _engines[url] = engine
        return engine


def dispose_tracker_engines(url: str | None = None) -> None:
    """Close the pooled connections of ``url``'s engine (of all if None) and forget it."""
    with _engines_lock:
        for key in list(_engines) if url is None else [url]:
            engine = _engines.pop(key, None)
            if engine is not None:
                engine.dispose()


def read_transcript(
    connection: Connection,
    sender_id: str,
    *,
    before_event_id: int | None = None,
    after_event_id: int | None = None,
    limit: int = 200,
    known_names: Sequence[str] = (),
    public_numbers: Sequence[str] = (),
) -> Transcript:
    """A page of the conversation ``sender_id``, oldest line first, values masked.

    Without ``after_event_id``: the ``limit`` newest events (before ``before_event_id``
    when given). With it (polling for new lines): the ``limit`` oldest events after it,
    so that none is skipped; poll again from the last line's id.

    Args:
        connection: a connection to the tracker store (see :func:`tracker_engine`).
        sender_id: the conversation.
        before_event_id: only events with a smaller id.
        after_event_id: only events with a greater id.
        limit: at most this many events (1 to 1000).
        known_names: names to mask wherever they appear (e.g. the verified member's
            and their dependants').
        public_numbers: numbers that are never personal (the organization's published
            phone and fax), left readable wherever they appear.

    Returns:
        The page; ``earlier_before`` is set when there are earlier events than the
        page's (never for a polling call).
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = sa.select(EVENTS.c.id, EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data).where(
        EVENTS.c.sender_id == sender_id, EVENTS.c.type_name.in_(SHOWN_TYPES)
    )
    if before_event_id is not None:
        query = query.where(EVENTS.c.id < before_event_id)
    order = _order_key(connection)
    if after_event_id is not None:
        query = query.where(EVENTS.c.id > after_event_id)
        rows = list(connection.execute(query.order_by(order).limit(limit)))
        earlier_before = None
    else:
        # One row more than asked: whether anything is left before this page.
        rows = list(connection.execute(query.order_by(order.desc()).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit][::-1]
        earlier_before = rows[0].id if more and rows else None
    masks = _Masks(_names_pattern(known_names), _digit_set(public_numbers))
    lines: list[TranscriptLine] = []
    offered: dict[str, str] = {}  # payload -> title of the buttons seen so far
    for row in rows:
        line = _line(row.id, row.type_name, row.timestamp, _data(row.data), masks, offered)
        if line is not None:
            lines.append(line)
    return Transcript(sender_id=sender_id, lines=lines, earlier_before=earlier_before)


def member_message(
    event_id: int,
    timestamp: float | None,
    raw_data: str | None,
    *,
    known_names: Sequence[str] = (),
    public_numbers: Sequence[str] = (),
) -> TranscriptLine | None:
    """One member message (a ``user`` event's row) as a transcript shows it, masked.

    The same masking as :func:`read_transcript`, for lists of messages taken from many
    conversations (``bot.insights.unanswered``). None for an event without text.
    """
    masks = _Masks(_names_pattern(known_names), _digit_set(public_numbers))
    return _line(event_id, USER, timestamp, _data(raw_data), masks, {})


def _order_key(connection: Connection) -> sa.ColumnElement[Any]:
    """What a page is ordered by: the event id, so that the sender index serves it.

    SQLite's index on ``sender_id`` holds the rowid (the id) in order: it serves the
    condition and the order at once. PostgreSQL's does not, and for a long conversation
    its planner prefers walking the primary key backwards and filtering on the sender,
    which reads every newer event of every conversation: 160 ms for a conversation
    that ended a million events ago, against 1 ms through the sender index. Ordering by
    ``id + 0`` (the same order) rules that plan out, so a page costs what the
    conversation's size costs, whatever the size of the table.
    """
    if connection.dialect.name == "sqlite":
        return EVENTS.c.id
    return EVENTS.c.id + 0


def reveal_field(
    connection: Connection,
    sender_id: str,
    event_id: int,
    field_index: int,
    known_names: Sequence[str] = (),
    public_numbers: Sequence[str] = (),
) -> tuple[Field, str]:
    """The clear value of one field of one line.

    Args:
        connection: a connection to the tracker store.
        sender_id: the conversation the line must belong to.
        event_id: the line's event id.
        field_index: the field's index within the line.
        known_names: the same names as given to :func:`read_transcript`.
        public_numbers: the same numbers as given to :func:`read_transcript`.

    Returns:
        The field and its value as the member (or assistant, or staff) wrote it.

    Raises:
        TranscriptError: the event is not a line of ``sender_id``, or has no such field.
    """
    row = connection.execute(
        sa.select(EVENTS.c.type_name, EVENTS.c.data).where(
            EVENTS.c.id == event_id, EVENTS.c.sender_id == sender_id
        )
    ).first()
    if row is None or row.type_name not in (USER, BOT):
        raise TranscriptError(f"event {event_id} is not a line of this conversation")
    data = _data(row.data)
    text = data.get("text")
    if not isinstance(text, str):
        raise TranscriptError(f"event {event_id} has no text")
    member = row.type_name == USER
    entities = _entities(data) if member else []
    masks = _Masks(_names_pattern(known_names), _digit_set(public_numbers))
    for start, end, kind, index in _fields(text, entities, masks, member=member):
        if index == field_index:
            return _field(index, kind), text[start:end]
    raise TranscriptError(f"event {event_id} has no field {field_index}")


# --- events to lines -----------------------------------------------------------------


def _data(raw: str | None) -> dict[str, Any]:
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _at(timestamp: float | None) -> datetime:
    return datetime.fromtimestamp(timestamp or 0.0, timezone.utc)


def _line(
    event_id: int,
    type_name: str,
    timestamp: float | None,
    data: dict[str, Any],
    masks: _Masks,
    offered: dict[str, str],
) -> TranscriptLine | None:
    at = _at(timestamp)
    if type_name == "session_started" and continued_from(data) is not None:
        # A long conversation going on in a new Rasa session (bot/core/sessions.py):
        # nothing happened that staff should see.
        return None
    if type_name in SYSTEM_TEXTS:
        segment = Segment(text=SYSTEM_TEXTS[type_name], field=None)
        return TranscriptLine(event_id, at, "system", None, (segment,))
    text = data.get("text")
    if type_name == BOT:
        buttons = _buttons(data)
        offered.update(buttons)
        if not isinstance(text, str) or not text:
            if not buttons:
                return None
            text = ""
        metadata = data.get("metadata")
        staff = metadata.get("staff") if isinstance(metadata, dict) else None
        return TranscriptLine(
            event_id,
            at,
            "staff" if isinstance(staff, str) and staff else "assistant",
            staff if isinstance(staff, str) and staff else None,
            _segments(text, [], masks, member=False),
            tuple(buttons.values()),
        )
    if not isinstance(text, str) or not text:
        return None
    title = offered.get(text.strip())
    if title is not None:
        # A tapped button: its payload (/intent{...}) means nothing to staff.
        segment = Segment(text=f"{title}（ボタンを選択）", field=None)
        return TranscriptLine(event_id, at, "member", None, (segment,))
    segments = _segments(text, _entities(data), masks, member=True)
    return TranscriptLine(event_id, at, "member", None, segments)


def _buttons(data: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for button in (data.get("data") or {}).get("buttons") or []:
        if isinstance(button, dict) and isinstance(button.get("title"), str):
            found[str(button.get("payload", "")).strip()] = button["title"]
    return found


def _entities(data: dict[str, Any]) -> list[tuple[int, int, str]]:
    """The member's values the NLU tagged, as (start, end, kind)."""
    parse_data = data.get("parse_data")
    text = data.get("text") or ""
    found: list[tuple[int, int, str]] = []
    if not isinstance(parse_data, dict):
        return found
    for entity in parse_data.get("entities") or []:
        if not isinstance(entity, dict):
            continue
        kind = ENTITY_KINDS.get(str(entity.get("entity")))
        start, end = entity.get("start"), entity.get("end")
        if (
            kind is not None
            and isinstance(start, int)
            and isinstance(end, int)
            and 0 <= start < end <= len(text)
        ):
            found.append((start, end, kind))
    return found


# --- finding the fields ----------------------------------------------------------------


@dataclass(frozen=True)
class _Masks:
    """What is masked besides the detectors' finds, and which numbers are public."""

    names: re.Pattern[str] | None
    public_digits: frozenset[str]


def _digits(text: str) -> str:
    return "".join(char for char in normalize_with_spans(text).text if char.isdigit())


def _digit_set(numbers: Iterable[str]) -> frozenset[str]:
    return frozenset(digits for number in numbers if (digits := _digits(number)))


def _names_pattern(known_names: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for the names: whole, without spaces, and each part of 2+ letters."""
    variants: set[str] = set()
    for name in known_names:
        name = name.strip()
        if not name:
            continue
        parts = [part for part in _NAME_SEPARATORS.split(name) if part]
        variants.add(name)
        variants.add("".join(parts))
        variants.update(part for part in parts if len(part) >= 2)
    if not variants:
        return None
    # Longest first, so that 山田太郎 is one field rather than 山田 and 太郎.
    ordered = sorted(variants, key=len, reverse=True)
    return re.compile("|".join(re.escape(variant) for variant in ordered))


def _candidate_spans(
    text: str, entities: Sequence[tuple[int, int, str]], masks: _Masks
) -> list[tuple[int, int, str, int]]:
    """Every span that looks personal: (start, end, kind, priority), unmerged."""
    spans: list[tuple[int, int, str, int]] = []
    names = masks.names
    if names is not None:
        spans.extend((m.start(), m.end(), "name", _PRIORITY["name"]) for m in names.finditer(text))
    normalized = normalize_with_spans(text)
    for match in _EMAIL.finditer(normalized.text):
        start, end = normalized.original_span(match.start(), match.end())
        spans.append((start, end, "email", _PRIORITY["email"]))
    for start, end, mask in personal_spans(text):
        if mask != DATE_MASK and _digits(text[start:end]) in masks.public_digits:
            continue
        if mask == DATE_MASK:
            spans.append((start, end, "date", _PRIORITY["date"]))
        elif mask == PHONE_MASK:
            spans.append((start, end, "phone", _PRIORITY["phone"]))
        else:
            spans.append((start, end, _number_kind(text, start, end), _PRIORITY["number"]))
    spans.extend((start, end, kind, _PRIORITY["entity"]) for start, end, kind in entities)
    return spans


def _number_kind(text: str, start: int, end: int) -> str:
    """記号・番号 when labelled or written as a pair, a code when 6 digits, else a number."""
    value = normalize_with_spans(text[start:end]).text
    if _LABEL_BEFORE.search(text[max(0, start - 8) : start]):
        return "member_number"
    if _SIX_DIGITS.fullmatch(value):
        return "code"
    if any(not char.isdigit() for char in value):
        return "member_number"  # 1001-23, 1001の23
    return "number"


def _fields(
    text: str,
    entities: Sequence[tuple[int, int, str]],
    masks: _Masks,
    *,
    member: bool,
) -> list[tuple[int, int, str, int]]:
    """The fields of ``text`` in order: (start, end, kind, index).

    Overlapping candidates are merged into one field (covering all of them), whose kind
    is that of the strongest: a member number the NLU tagged as ``1001`` inside the
    pair ``1001-23`` masks the whole pair.
    """
    merged: list[list[Any]] = []  # [start, end, kind, priority]
    for start, end, kind, priority in sorted(_candidate_spans(text, entities, masks)):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[1] = max(last[1], end)
            if priority < last[3]:
                last[2], last[3] = kind, priority
            continue
        merged.append([start, end, kind, priority])
    fields = []
    for index, (start, end, kind, _) in enumerate(merged):
        if kind == "date":
            year = _YEAR_IN_DATE.search(normalize_with_spans(text[start:end]).text)
            kind = "birth_date" if member and year else "date"
        fields.append((start, end, kind, index))
    return fields


def _field(index: int, kind: str) -> Field:
    label = LABELS[kind]
    return Field(index=index, kind=kind, label=label, masked=f"［{label}］")


def _segments(
    text: str,
    entities: Sequence[tuple[int, int, str]],
    masks: _Masks,
    *,
    member: bool,
) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    cursor = 0
    for start, end, kind, index in _fields(text, entities, masks, member=member):
        if start > cursor:
            segments.append(Segment(text=text[cursor:start], field=None))
        segments.append(Segment(text=None, field=_field(index, kind)))
        cursor = end
    if cursor < len(text):
        segments.append(Segment(text=text[cursor:], field=None))
    return tuple(segments)
