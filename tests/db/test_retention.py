"""Retention purge on real databases (SQLite and PostgreSQL) with Rasa's own events table."""

from __future__ import annotations

import json
import threading
import time
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
    OutboundMessage,
    SignInThrottle,
    StaffAccount,
    StaffMessage,
    StaffSession,
    VerificationEvent,
    VerificationFailure,
    WebSession,
)
from bot.db.session import engine_for, session_factory
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


# --- by age, the outbox, staff replies and the audit log (the worker's schedule) -----


def test_old_events_go_by_age_even_in_a_conversation_that_goes_on(demo, tracker_store):
    add_events(tracker_store, "ongoing", NOW - timedelta(days=120), count=4)
    add_events(tracker_store, "ongoing", NOW - timedelta(days=1), count=2)
    result = purge(demo, tracker_store, NOW)
    assert senders(tracker_store) == {"ongoing": 2}
    assert (result.conversations, result.events) == (0, 4)
    with tracker_store.connect() as connection:
        oldest = connection.execute(sa.select(sa.func.min(EVENTS.c.timestamp))).scalar_one()
    assert oldest >= (NOW - timedelta(days=90)).timestamp()


def test_finished_sms_have_the_phone_masked_and_old_rows_go(demo, tracker_store):
    from bot.outbound.outbox import Carriers
    from bot.outbound.sender import AFTER_COMMIT_KEY, LINE, SMS, enqueue

    class Recorder:
        def send(self, to: str, text: str) -> None:
            pass

    with demo.begin() as session:
        enqueue(session, SMS, "+819012345678", "sent", NOW, carriers=Carriers(Recorder()))
        old = enqueue(session, SMS, "+818022223333", "old", NOW - timedelta(days=400))
        waiting = enqueue(session, SMS, "+819011112222", "waiting", NOW)
        enqueue(session, LINE, "hashed-line-user", "line", NOW, carriers=Carriers(Recorder()))
        session.info[AFTER_COMMIT_KEY] = session.info[AFTER_COMMIT_KEY][:1]  # only the first
    with demo.begin() as session:
        session.execute(
            sa.update(OutboundMessage)
            .where(OutboundMessage.id == old.message_id)
            .values(status="failed", payload=None)
        )
    result = purge(demo, tracker_store, NOW)
    with demo.begin() as session:
        rows = {row.text: row for row in session.execute(sa.select(OutboundMessage)).scalars()}
    assert set(rows) == {"sent", "waiting", "line"}  # the finished one of 400 days went
    assert (rows["sent"].status, rows["sent"].to) == ("sent", "090-****-5678")
    assert rows["waiting"].to == "+819011112222"  # still needed to send it
    assert rows["line"].to == "hashed-line-user"  # not a phone number
    assert (result.outbound_masked, result.outbound_deleted) == (1, 1)
    assert waiting.message_id in {row.id for row in rows.values()}
    again = purge(demo, tracker_store, NOW)
    assert again.outbound_masked == 0  # masked once


def test_staff_replies_of_closed_hand_offs_and_old_audit_rows_follow_their_periods(
    demo, tracker_store
):
    with demo.begin() as session:
        views = []
        for sender, days in (("closed", 400), ("open", 400), ("recent", 10)):
            view = escalations.escalate(
                session,
                Conversation(sender_id=sender, session_key="s", channel="socketio"),
                "member_request",
                NOW - timedelta(days=days),
            )
            views.append(view)
            session.add(
                StaffMessage(
                    escalation_id=view.id,
                    sender_id=sender,
                    staff="tanaka",
                    text="ご連絡ありがとうございます",
                    created_at=NOW - timedelta(days=days),
                )
            )
        escalations.close(session, views[0].id, "tanaka", None, NOW - timedelta(days=399))
        escalations.close(session, views[2].id, "tanaka", None, NOW - timedelta(days=9))
        session.add(
            AuditLog(at=NOW - timedelta(days=1900), actor="system", action="old", detail={})
        )
    result = purge(demo, tracker_store, NOW, RetentionPolicy(staff_message_days=365))
    with demo.begin() as session:
        kept = set(session.execute(sa.select(StaffMessage.sender_id)).scalars())
        actions = set(session.execute(sa.select(AuditLog.action)).scalars())
    assert kept == {"open", "recent"}  # an open hand-off keeps its replies
    assert (result.staff_messages, result.audit_rows) == (1, 1)
    assert "old" not in actions and "retention.purged" in actions
    kept_all = purge(demo, tracker_store, NOW, RetentionPolicy(audit_days=None))
    assert kept_all.audit_rows == 0


def test_the_worker_purges_at_start_and_delivers(migrated_url, monkeypatch, tmp_path):
    from bot.outbound.outbox import Carriers
    from bot.outbound.sender import AFTER_COMMIT_KEY, SMS, enqueue
    from bot.settings import load_settings
    from bot.worker import Worker

    sent: list[str] = []

    class Recorder:
        def send(self, to: str, text: str) -> None:
            sent.append(text)

    monkeypatch.setenv("DATABASE_URL", migrated_url)
    settings = load_settings()
    sessions = session_factory(migrated_url)
    with sessions.begin() as session:
        enqueue(session, SMS, "+819012345678", "x", datetime.now(timezone.utc), send_text="y")
        session.info.pop(AFTER_COMMIT_KEY)
    worker = Worker(settings, Carriers(Recorder()))
    runner = threading.Thread(target=worker.run)
    runner.start()
    deadline = time.monotonic() + 20
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    runner.join(20)
    assert sent == ["y"] and not runner.is_alive()
    with sessions.begin() as session:
        actions = list(session.execute(sa.select(AuditLog.action)).scalars())
    assert "retention.purged" in actions
