"""Console sessions (bot.staff.sessions) on both backends: create, check, touch, end, expire."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from bot.db.models import AuditLog, StaffRole, StaffSession
from bot.staff.accounts import create_account, set_active
from bot.staff.sessions import (
    ABSOLUTE_LIMIT,
    check_session,
    create_session,
    end_session,
    end_sessions_of,
    token_hash,
    touch_session,
)

NOW = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
IDLE = timedelta(minutes=30)
PASSWORD = "correct horse battery"


def account(sessions, name: str = "tanaka", role: str = "agent") -> int:
    with sessions.begin() as session:
        return create_account(session, name, role, PASSWORD, NOW).id


def start(sessions, account_id: int, now: datetime = NOW) -> str:
    with sessions.begin() as session:
        token, _ = create_session(session, account_id, now)
    return token


def check(sessions, token: str, now: datetime, touch: bool = True):
    with sessions.begin() as session:
        return check_session(session, token, now, IDLE, touch=touch)


def actions(sessions) -> list[str]:
    with sessions.begin() as session:
        return list(session.execute(sa.select(AuditLog.action).order_by(AuditLog.id)).scalars())


def test_only_the_hash_of_the_token_is_stored(sessions):
    tanaka = account(sessions)
    token = start(sessions, tanaka)
    with sessions.begin() as session:
        [row] = session.execute(sa.select(StaffSession)).scalars().all()
    assert row.id == hashlib.sha256(token.encode()).hexdigest() == token_hash(token)
    assert token not in (row.id, row.csrf_token) and len(token) >= 43
    checked = check(sessions, token, NOW)
    assert checked.view is not None and checked.view.name == "tanaka"
    assert checked.view.role is StaffRole.AGENT and checked.view.csrf_token == row.csrf_token
    # Two sessions never share a token or a CSRF token.
    other = start(sessions, tanaka)
    assert other != token
    assert check(sessions, other, NOW).view.csrf_token != row.csrf_token


def test_unknown_and_malformed_tokens(sessions):
    account(sessions)
    for token in ("", "nope", "x" * 500):
        assert check(sessions, token, NOW).reason == "unknown"


def test_the_idle_limit_counts_from_the_last_activity(sessions):
    token = start(sessions, account(sessions))
    assert check(sessions, token, NOW + timedelta(minutes=29)).view is not None
    # Not touched: a poll does not count as activity.
    assert check(sessions, token, NOW + timedelta(minutes=50), touch=False).view is not None
    assert check(sessions, token, NOW + timedelta(minutes=59)).reason == "expired"
    assert check(sessions, token, NOW).reason == "ended"  # never revived
    assert actions(sessions).count("staff.session_expired") == 1


def test_touch_keeps_a_session_alive_until_the_absolute_limit(sessions):
    token = start(sessions, account(sessions))
    with sessions.begin() as session:
        session_id = token_hash(token)
    moment = NOW
    while moment + timedelta(minutes=20) < NOW + ABSOLUTE_LIMIT:
        moment += timedelta(minutes=20)
        with sessions.begin() as session:
            touch_session(session, session_id, moment)
    assert check(sessions, token, moment).view is not None
    assert check(sessions, token, NOW + ABSOLUTE_LIMIT).reason == "expired"
    with sessions.begin() as session:
        row = session.execute(
            sa.select(AuditLog).where(AuditLog.action == "staff.session_expired")
        ).scalar_one()
    assert row.detail["limit"] == "absolute" and row.actor == "staff:tanaka"


def test_ending_sessions(sessions):
    tanaka, sato = account(sessions), account(sessions, "sato")
    first, second, others = start(sessions, tanaka), start(sessions, tanaka), start(sessions, sato)
    with sessions.begin() as session:
        ended = end_session(session, first, NOW)
        assert ended is not None and ended.name == "tanaka"
        assert end_session(session, first, NOW) is None  # once
    assert check(sessions, first, NOW).reason == "ended"
    with sessions.begin() as session:
        assert end_sessions_of(session, tanaka, NOW, except_id=token_hash(second)) == 0
        assert end_sessions_of(session, tanaka, NOW) == 1
    assert check(sessions, second, NOW).reason == "ended"
    assert check(sessions, others, NOW).view is not None
    assert actions(sessions).count("staff.logout") == 1


def test_a_deactivated_account_loses_its_sessions(sessions):
    tanaka = account(sessions)
    token = start(sessions, tanaka)
    account(sessions, "kanri", "admin")
    with sessions.begin() as session:
        set_active(session, tanaka, False, "kanri", NOW)
    assert check(sessions, token, NOW).reason == "ended"
