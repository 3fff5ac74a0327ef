"""The staff queue read by :mod:`bot.handoff.queue` (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from bot.db.models import Escalation
from bot.handoff.queue import queue_page

NOW = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)


def seed(sessions, statuses: list[str]) -> list[int]:
    """One escalation per status, a minute apart (the first is the oldest); their ids."""
    rows = [
        {
            "created_at": NOW - timedelta(minutes=len(statuses) - minute),
            "reason": "member_request",
            "sender_id": f"web:s{minute}",
            "channel": "socketio",
            "status": status,
            "assigned_staff": "sato" if status == "in_progress" else None,
            "claimed_at": NOW if status == "in_progress" else None,
            "member_id": None,
            "paused": False,
        }
        # Inserted newest first: the order must come from the query, not the ids.
        for minute, status in reversed(list(enumerate(statuses)))
    ]
    with sessions.begin() as session:
        session.execute(sa.insert(Escalation), rows)
        return list(
            session.execute(
                sa.select(Escalation.id).order_by(Escalation.created_at, Escalation.id)
            ).scalars()
        )


def test_waiting_oldest_first_then_in_progress_page_by_page(sessions):
    ids = seed(sessions, ["waiting", "in_progress", "waiting", "closed", "waiting"])
    with sessions.begin() as session:
        first = queue_page(session, NOW, 1, size=2)
        second = queue_page(session, NOW, 2, size=2)
    assert (first.waiting_count, first.in_progress_count, first.pages) == (3, 1, 2)
    assert [row.id for row in first.waiting] == [ids[0], ids[2]] and first.in_progress == []
    assert [row.id for row in second.waiting] == [ids[4]]
    assert [row.id for row in second.in_progress] == [ids[1]]
    assert second.in_progress[0].assigned_staff == "sato"
    assert first.waiting[0].waiting == timedelta(minutes=5)
    assert not first.waiting[0].verified


def test_pages_out_of_range_are_clamped_and_an_empty_queue_has_one_page(sessions):
    with sessions.begin() as session:
        empty = queue_page(session, NOW, 7)
    assert (empty.page, empty.pages, empty.waiting, empty.in_progress) == (1, 1, [], [])
    ids = seed(sessions, ["waiting", "waiting", "waiting"])
    with sessions.begin() as session:
        assert queue_page(session, NOW, 99, size=2).page == 2
        assert [row.id for row in queue_page(session, NOW, 0, size=2).waiting] == ids[:2]
