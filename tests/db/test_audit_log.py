"""Reading the audit log with :mod:`bot.db.audit_log` (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.db.audit import audit
from bot.db.audit_log import AuditSearch, audit_page

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)


def fill(sessions) -> None:
    """Six rows an hour apart: case and console actions of two staff members."""
    with sessions.begin() as session:
        for hour, (action, actor) in enumerate(
            [
                ("case.viewed", "staff:tanaka"),
                ("console.viewed", "staff:tanaka"),
                ("case.moved", "staff:suzuki"),
                ("case_x.odd", "staff:tanaka_2"),
                ("console.revealed", "staff:suzuki"),
                ("case.decided", "staff:suzuki"),
            ]
        ):
            audit(session, T0 + timedelta(hours=hour), action, actor, hour=hour)


def hours(page) -> list[int]:
    return [row.detail["hour"] for row in page.rows]


def test_newest_first_a_page_at_a_time(sessions):
    fill(sessions)
    with sessions.begin() as session:
        first = audit_page(session, AuditSearch(), size=4)
        rest = audit_page(session, AuditSearch(before=first.next_before), size=4)
    assert hours(first) == [5, 4, 3, 2] and first.next_before == first.rows[-1].id
    assert hours(rest) == [1, 0] and rest.next_before is None


def test_prefixes_match_literally_and_times_bound_the_range(sessions):
    fill(sessions)
    with sessions.begin() as session:
        # "_" is a LIKE wildcard: escaped, it matches only itself.
        assert hours(audit_page(session, AuditSearch(action="case."))) == [5, 2, 0]
        assert hours(audit_page(session, AuditSearch(actor="staff:tanaka_"))) == [3]
        window = AuditSearch(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=4))
        assert hours(audit_page(session, window)) == [3, 2, 1]
        both = AuditSearch(action="console.", actor="staff:suzuki")
        assert hours(audit_page(session, both)) == [4]
