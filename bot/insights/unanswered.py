"""The member messages the assistant did not understand, masked and grouped.

Two kinds: messages the NLU did not understand (the assistant asked again) and
messages answered that the policy does not say it (:mod:`bot.insights.events`). Each
is masked by :func:`bot.handoff.transcripts.member_message`, exactly as a transcript
masks it (dates, phone numbers, 記号・番号, codes, e-mail addresses, the names the NLU
tagged); nothing leaves this module in clear.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.engine import Connection

from bot.core.japan_time import jst_timestamp
from bot.handoff.transcripts import member_message
from bot.insights import events
from bot.insights.period import Period
from bot.insights.similarity import group_indices

PAGE_LIMIT = 200  # newest messages of each kind on the page
EXPORT_LIMIT = 1000  # ... in the CSV export (2,000 messages: a 16 MB similarity matrix)
KIND_LABELS = {"fallback": "聞き返し", "not_stated": "方針に記載なし"}
CSV_HEADER = ("group", "kind", "at_jst", "message_masked", "conversation")


@dataclass(frozen=True)
class Unanswered:
    """One member message, masked."""

    event_id: int
    at: datetime  # aware, UTC
    kind: str  # "fallback" | "not_stated"
    text: str  # masked

    @property
    def kind_label(self) -> str:
        """The kind in Japanese."""
        return KIND_LABELS[self.kind]

    @property
    def link(self) -> str:
        """The console page of its (masked) conversation."""
        return f"/insights/messages/{self.event_id}"


@dataclass(frozen=True)
class Group:
    """Messages that say nearly the same thing, newest first."""

    number: int  # 1, 2, ... in the order shown
    messages: tuple[Unanswered, ...]


def unanswered_messages(
    connection: Connection,
    period: Period,
    *,
    limit: int = PAGE_LIMIT,
    public_numbers: Sequence[str] = (),
) -> list[Unanswered]:
    """The masked messages of ``period``, newest first (``limit`` of each kind at most)."""
    rows = events.fallback_messages(connection, period, limit)
    rows += events.not_stated_messages(connection, period, limit)
    found: dict[int, Unanswered] = {}
    for row in rows:
        line = member_message(row.event_id, row.timestamp, row.data, public_numbers=public_numbers)
        if line is None or row.event_id in found:
            continue
        found[row.event_id] = Unanswered(
            event_id=row.event_id,
            at=datetime.fromtimestamp(row.timestamp, timezone.utc),
            kind=row.kind,
            text=line.masked_text,
        )
    return sorted(found.values(), key=lambda item: (item.at, item.event_id), reverse=True)


def grouped(messages: Sequence[Unanswered]) -> list[Group]:
    """``messages`` (newest first) in groups of similar ones, largest group first."""
    indices = group_indices([message.text for message in messages])
    return [
        Group(number, tuple(messages[index] for index in group))
        for number, group in enumerate(indices, start=1)
    ]


def to_csv(groups: Sequence[Group]) -> str:
    """The groups as CSV (masked text only), one row per message."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for group in groups:
        for message in group.messages:
            writer.writerow(
                [
                    group.number,
                    message.kind,
                    jst_timestamp(message.at),
                    _cell(message.text),
                    message.link,
                ]
            )
    return out.getvalue()


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
