"""Retention purge on real databases (SQLite and PostgreSQL) with Rasa's own events table."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore

from bot.core.conversation import Conversation
from bot.db.models import (
    AuditLog,
    CaseDraft,
    DraftStatus,
    Member,
    SignInThrottle,
    StaffAccount,
    StaffSession,
    VerificationEvent,
    VerificationFailure,
    WebSession,
)
from bot.db.session import engine_for
from bot.handoff import escalations
from bot.retention import RetentionPolicy, purge

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
EVENTS = SQLTrackerStore.SQLEvent.__table__


def add_events(engine: sa.engine.Engine, sender: str, last: datetime, count: int = 3) -> None:
    rows = [
        {
            "sender_id": sender,
            "type_name": "user",
            "timestamp": (last - timedelta(minutes=count - 1 - i)).timestamp(),
            "intent_name": "inform",
            "action_name": None,
            "data": json.dumps({"event": "user", "text": "昭和60年1月2日です"}),
        }
        for i in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(EVENTS.insert(), rows)


def senders(engine: sa.engine.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        query = sa.select(EVENTS.c.sender_id, sa.func.count()).group_by(EVENTS.c.sender_id)
        return {row[0]: row[1] for row in connection.execute(query)}


@pytest.fixture
def tracker_store(migrated_url):
    """Rasa's events table in the app database, as the default settings share it."""
    engine = engine_for(migrated_url)
    EVENTS.create(engine, checkfirst=True)
    return engine


def test_silent_conversations_go_recent_and_handed_off_ones_stay(demo, tracker_store):
    add_events(tracker_store, "old", NOW - timedelta(days=91))
    add_events(tracker_store, "recent", NOW - timedelta(days=89))
    add_events(tracker_store, "old-but-waiting", NOW - timedelta(days=200))
    add_events(tracker_store, "old-and-closed", NOW - timedelta(days=120))
    with demo.begin() as session:
        escalations.escalate(
            session,
            Conversation(sender_id="old-but-waiting", session_key="s", channel="socketio"),
            "member_request",
            NOW - timedelta(days=200),
        )
        closed = escalations.escalate(
            session,
            Conversation(sender_id="old-and-closed", session_key="s", channel="socketio"),
            "complaint",
            NOW - timedelta(days=120),
        )
        escalations.close(session, closed.id, "tanaka", None, NOW - timedelta(days=119))

    result = purge(demo, tracker_store, NOW)

    assert senders(tracker_store) == {"recent": 3, "old-but-waiting": 3}
    assert (result.conversations, result.events) == (2, 6)
    with demo.begin() as session:
        row = session.execute(
            sa.select(AuditLog).where(AuditLog.action == "retention.purged")
        ).scalar_one()
        assert row.detail["conversations"] == 2 and row.detail["transcript_days"] == 90
        assert "昭和" not in json.dumps(row.detail, ensure_ascii=False)


def test_a_shorter_period_and_no_events_table(demo, migrated_url):
    # Before the rasa server's first start the tracker store has no table: nothing fails.
    result = purge(demo, engine_for(migrated_url), NOW, RetentionPolicy(transcript_days=1))
    assert result.conversations == 0


def test_abandoned_drafts_are_wiped_and_old_failures_and_sessions_deleted(demo, tracker_store):
    with demo.begin() as session:
        member_id = session.execute(sa.select(Member.id).limit(1)).scalar_one()
        for draft_id, updated in (("a" * 32, NOW - timedelta(hours=25)), ("b" * 32, NOW)):
            session.add(
                CaseDraft(
                    id=draft_id,
                    sender_id="s",
                    session_key="k",
                    channel="rest",
                    status=DraftStatus.OPEN.value,
                    case_type="correction",
                    requester_member_id=member_id,
                    subject_member_id=member_id,
                    role="self",
                    scope=[],
                    wrong_text="住所が旧住所のまま",
                    right_text="新住所",
                    created_at=updated,
                    updated_at=updated,
                )
            )
        session.add(
            VerificationFailure(member_key_hash="h", sender_id="s", at=NOW - timedelta(days=31))
        )
        session.add(
            VerificationFailure(member_key_hash="h", sender_id="s", at=NOW - timedelta(days=1))
        )
        for days in (31, 1):
            session.add(
                VerificationEvent(
                    member_key_hash="h", kind="code_sent", at=NOW - timedelta(days=days)
                )
            )
        account = StaffAccount(
            name="tanaka",
            role="agent",
            password_salt="00",
            password_hash="00",
            active=True,
            created_at=NOW,
        )
        session.add(account)
        session.flush()
        for last_seen in (NOW - timedelta(days=91), NOW - timedelta(days=89)):
            session.add(
                WebSession(
                    id=uuid.uuid4().hex,
                    secret_hash="0" * 64,
                    created_at=last_seen,
                    last_seen_at=last_seen,
                )
            )
        # Forgotten: failed 31 days ago, no wait, no sign-in. Kept: a recent failure, a
        # running wait, a sign-in 60 days ago (the address is the member of staff's).
        for key, failed, blocked, success in (
            ("old", 31, None, None),
            ("failed", 1, None, None),
            ("waiting", 31, -1, None),
            ("known", 31, None, 60),
        ):
            session.add(
                SignInThrottle(
                    name_key=key,
                    address_key="a",
                    failures=3,
                    last_failed_at=NOW - timedelta(days=failed),
                    blocked_until=None if blocked is None else NOW - timedelta(days=blocked),
                    last_success_at=None if success is None else NOW - timedelta(days=success),
                )
            )
        for last_seen in (NOW - timedelta(days=40), NOW - timedelta(minutes=5)):
            session.add(
                StaffSession(
                    id=uuid.uuid4().hex,
                    account_id=account.id,
                    csrf_token="x",
                    created_at=last_seen,
                    last_seen_at=last_seen,
                )
            )

    result = purge(demo, tracker_store, NOW)

    assert (result.drafts, result.failures, result.staff_sessions) == (1, 1, 1)
    assert result.web_sessions == 1  # unseen for the 90 days of the transcripts
    assert result.verification_events == 1
    assert result.signin_throttles == 1
    with demo.begin() as session:
        drafts = {row.id: row for row in session.execute(sa.select(CaseDraft)).scalars()}
        assert drafts["a" * 32].status == "discarded"
        assert drafts["a" * 32].wrong_text is None and drafts["a" * 32].right_text is None
        assert drafts["b" * 32].status == "open" and drafts["b" * 32].wrong_text
        assert session.execute(sa.select(sa.func.count(VerificationFailure.id))).scalar() == 1
        assert session.execute(sa.select(sa.func.count()).select_from(StaffSession)).scalar() == 1
        assert session.execute(sa.select(sa.func.count()).select_from(WebSession)).scalar() == 1
        kept = set(session.execute(sa.select(SignInThrottle.name_key)).scalars())
        assert kept == {"failed", "waiting", "known"}
