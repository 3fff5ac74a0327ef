"""The escalation service on a real migrated database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.core.conversation import Conversation
from bot.db.migrate import downgrade, upgrade
from bot.db.models import AuditLog, Escalation, Member
from bot.db.session import engine_for
from bot.handoff import escalations
from bot.handoff.escalations import EscalationError

NOW = datetime(2025, 11, 24, 1, 0, tzinfo=timezone.utc)


def conv(sender: str) -> Conversation:
    return Conversation(sender_id=sender, session_key="start", channel="rest")


def audit_actions(sessions) -> list[tuple[str, str]]:
    with sessions.begin() as session:
        rows = session.execute(sa.select(AuditLog).order_by(AuditLog.id)).scalars()
        return [(row.actor, row.action) for row in rows if row.action.startswith("escalation.")]


def test_escalate_once_per_sender_and_reuse_the_open_one(sessions):
    with sessions.begin() as session:
        first = escalations.escalate(session, conv("a"), "member_request", NOW)
    with sessions.begin() as session:
        again = escalations.escalate(session, conv("a"), "complaint", NOW + timedelta(minutes=1))
        assert escalations.open_escalation_for(session, "a") == again.__class__(
            **{**again.__dict__, "created": False}
        )
    assert first.created and not again.created
    assert (again.id, again.reason, again.status) == (first.id, "member_request", "waiting")
    with sessions.begin() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Escalation)).scalar() == 1
    assert audit_actions(sessions) == [("system", "escalation.opened")]


def test_unknown_reasons_are_refused(sessions):
    with sessions.begin() as session, pytest.raises(ValueError):
        escalations.escalate(session, conv("a"), "because", NOW)


def test_queue_claim_close_and_audit(sessions):
    with sessions.begin() as session:
        late = escalations.escalate(session, conv("late"), "complaint", NOW + timedelta(minutes=5))
        early = escalations.escalate(session, conv("early"), "member_request", NOW)
    with sessions.begin() as session:
        waiting = escalations.queue(session, NOW + timedelta(minutes=10))
    assert [v.id for v in waiting] == [early.id, late.id]
    assert [v.waiting for v in waiting] == [timedelta(minutes=10), timedelta(minutes=5)]

    with sessions.begin() as session:
        claimed = escalations.claim(session, early.id, "tanaka", NOW + timedelta(minutes=11))
    assert (claimed.status, claimed.assigned_staff) == ("in_progress", "tanaka")
    with sessions.begin() as session, pytest.raises(EscalationError, match="in_progress"):
        escalations.claim(session, early.id, "suzuki", NOW + timedelta(minutes=12))
    with sessions.begin() as session:
        assert [v.id for v in escalations.queue(session, NOW)] == [late.id]
        # Claimed is still open: a new trigger of that sender reuses it.
        assert escalations.escalate(session, conv("early"), "complaint", NOW).id == early.id

    with sessions.begin() as session:
        closed = escalations.close(session, early.id, "tanaka", "電話で対応", NOW)
    assert (closed.status, closed.note) == ("closed", "電話で対応")
    assert closed.closed_at == NOW
    with sessions.begin() as session, pytest.raises(EscalationError, match="closed"):
        escalations.close(session, early.id, "tanaka", None, NOW)
    with sessions.begin() as session:
        assert escalations.open_escalation_for(session, "early") is None
        fresh = escalations.escalate(session, conv("early"), "member_request", NOW)
    assert fresh.created and fresh.id != early.id
    assert ("staff:tanaka", "escalation.claimed") in audit_actions(sessions)
    assert ("staff:tanaka", "escalation.closed") in audit_actions(sessions)


def test_hand_back_resumes_the_conversation_then_closes(sessions):
    resumed: list[str] = []
    with sessions.begin() as session:
        opened = escalations.escalate(session, conv("s1"), "member_request", NOW, pause=True)
    assert opened.paused
    with sessions.begin() as session:
        view = escalations.hand_back(session, opened.id, "tanaka", NOW, resume=resumed.append)
    assert resumed == ["s1"] and view.status == "closed"
    assert ("staff:tanaka", "escalation.handed_back") in audit_actions(sessions)


@pytest.mark.parametrize("finish", ["hand_back", "close"])
def test_a_failed_resume_changes_nothing(sessions, finish):
    with sessions.begin() as session:
        opened = escalations.escalate(session, conv("s1"), "member_request", NOW, pause=True)

    def broken(sender: str) -> None:
        raise RuntimeError("rasa down")

    with pytest.raises(RuntimeError), sessions.begin() as session:
        if finish == "close":
            escalations.close(session, opened.id, "tanaka", None, NOW, resume=broken)
        else:
            escalations.hand_back(session, opened.id, "tanaka", NOW, resume=broken)
    with sessions.begin() as session:
        assert escalations.open_escalation_for(session, "s1") is not None
        assert escalations.keeps_conversation_paused(session, "s1")


def test_closing_a_paused_hand_off_resumes_the_member_a_lockout_needs_no_resume(sessions):
    resumed: list[str] = []
    with sessions.begin() as session:
        paused = escalations.escalate(session, conv("talk"), "member_request", NOW, pause=True)
        locked = escalations.escalate(session, conv("locked"), "verification_locked", NOW)
        other = escalations.escalate(session, conv("other"), "case_needs_person", NOW)
    with sessions.begin() as session:
        assert escalations.keeps_conversation_paused(session, "talk")
        assert not escalations.keeps_conversation_paused(session, "locked")
        assert not escalations.keeps_conversation_paused(session, "nobody")
        escalations.close(session, paused.id, "tanaka", "電話で対応", NOW, resume=resumed.append)
        escalations.close(session, locked.id, "tanaka", None, NOW, resume=resumed.append)
        escalations.hand_back(session, other.id, "tanaka", NOW, resume=resumed.append)
    assert resumed == ["talk"]  # only the conversation that was paused
    with sessions.begin() as session:
        assert not escalations.keeps_conversation_paused(session, "talk")


def test_a_hand_off_after_a_lockout_pauses_the_open_escalation(sessions):
    with sessions.begin() as session:
        locked = escalations.escalate(session, conv("s1"), "verification_locked", NOW)
    assert not locked.paused
    with sessions.begin() as session:
        again = escalations.escalate(session, conv("s1"), "member_request", NOW, pause=True)
    assert (again.id, again.reason, again.paused) == (locked.id, "verification_locked", True)
    with sessions.begin() as session:
        assert escalations.keeps_conversation_paused(session, "s1")


def test_unknown_statuses_are_refused_by_the_database(sessions):
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        session.add(Escalation(created_at=NOW, reason="x", status="open"))


def test_the_migration_moves_open_escalations_to_waiting(migrated_url):
    downgrade(migrated_url, "0002")
    with engine_for(migrated_url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO escalations (created_at, reason, sender_id, status) "
                "VALUES (:at, 'verification_locked', 'old', 'open')"
            ),
            {"at": datetime(2025, 11, 1)},
        )
    upgrade(migrated_url)
    with engine_for(migrated_url).begin() as connection:
        status = connection.execute(sa.text("SELECT status FROM escalations")).scalar_one()
    assert status == "waiting"


# --- hand-off limits -------------------------------------------------------------------------


def hand_off(
    sessions, sender: str, now: datetime, limits: escalations.HandoffLimits, reason="complaint"
) -> escalations.Handoff:
    with sessions.begin() as session:
        return escalations.hand_off(session, conv(sender), reason, now, limits)


def close_all(sessions, now: datetime) -> None:
    with sessions.begin() as session:
        for view in escalations.queue(session, now, 1000):
            escalations.close(session, view.id, "tanaka", None, now, resume=lambda sender: None)


def count(sessions) -> int:
    with sessions.begin() as session:
        return int(session.execute(sa.select(sa.func.count()).select_from(Escalation)).scalar())


def test_a_conversation_gets_a_few_new_hand_offs_a_day(sessions):
    limits = escalations.HandoffLimits(per_conversation=2, per_hour=100)
    first = hand_off(sessions, "web:a", NOW, limits)
    assert first.escalation is not None and first.escalation.paused and first.refused is None
    # While it is open, asking again returns it and costs nothing.
    again = hand_off(sessions, "web:a", NOW + timedelta(minutes=1), limits)
    assert again.escalation is not None and again.escalation.id == first.escalation.id
    close_all(sessions, NOW + timedelta(minutes=2))
    assert hand_off(sessions, "web:a", NOW + timedelta(hours=1), limits).escalation is not None
    close_all(sessions, NOW + timedelta(hours=1))
    refused = hand_off(sessions, "web:a", NOW + timedelta(hours=2), limits)
    assert refused == escalations.Handoff(None, "conversation")
    assert count(sessions) == 2  # nothing was queued
    # Another conversation is not affected; 24 hours after the first, room again.
    assert hand_off(sessions, "web:b", NOW + timedelta(hours=2), limits).escalation is not None
    later = hand_off(sessions, "web:a", NOW + timedelta(hours=24, seconds=1), limits)
    assert later.escalation is not None and later.escalation.created


def test_all_conversations_together_get_a_few_new_hand_offs_an_hour(sessions):
    limits = escalations.HandoffLimits(per_conversation=100, per_hour=3)
    # What the system opens (a lockout, a case) neither counts nor is ever refused.
    with sessions.begin() as session:
        for number in range(5):
            escalations.escalate(session, conv(f"line:L{number}"), "verification_locked", NOW)
    reasons = ["member_request", "complaint", "repeated_fallback"]
    for number, reason in enumerate(reasons):
        made = hand_off(sessions, f"web:flood{number}", NOW, limits, reason)
        assert made.escalation is not None and made.escalation.created
    refused = hand_off(sessions, "web:flood3", NOW + timedelta(minutes=59), limits)
    assert refused == escalations.Handoff(None, "overall")
    assert count(sessions) == 5 + 3
    with sessions.begin() as session:
        assert escalations.open_escalation_for(session, "web:flood3") is None
        locked = escalations.escalate(session, conv("line:L9"), "verification_locked", NOW)
    assert locked.created
    # A conversation whose hand-off is already open keeps it, limit or not.
    kept = hand_off(sessions, "web:flood0", NOW + timedelta(minutes=59), limits)
    assert kept.escalation is not None and not kept.escalation.created
    # An hour after they came in, there is room again (closed or not).
    assert hand_off(sessions, "web:flood3", NOW + timedelta(hours=1), limits).escalation


def test_hand_off_takes_only_a_members_reasons(sessions):
    limits = escalations.HandoffLimits()
    for reason in ("verification_locked", "case_needs_person", "anything"):
        with sessions.begin() as session, pytest.raises(ValueError):
            escalations.hand_off(session, conv("web:a"), reason, NOW, limits)


# --- what the system escalates about a member -----------------------------------------


def member_ids(sessions) -> tuple[int, int]:
    """The demo's 山田 太郎 and his dependant 山田 花子 (one 記号・番号)."""
    with sessions.begin() as session:
        ids = {name: id_ for name, id_ in session.execute(sa.select(Member.name, Member.id))}
    return ids["山田 太郎"], ids["山田 花子"]


def escalation_rows(sessions) -> list[tuple[str, str | None, int | None, str, str | None]]:
    with sessions.begin() as session:
        rows = session.execute(sa.select(Escalation).order_by(Escalation.id)).scalars()
        return [(r.reason, r.sender_id, r.member_id, r.status, r.note) for r in rows]


def test_a_system_escalation_opens_once_per_member_and_collects_notes(demo):
    taro, hanako = member_ids(demo)
    with demo.begin() as session:
        first = escalations.escalate_member(
            session, "case_notification_failed", NOW, "one", member_id=taro
        )
    with demo.begin() as session:
        again = escalations.escalate_member(
            session, "case_notification_failed", NOW, "two", member_id=taro
        )
        other_reason = escalations.escalate_member(
            session, "verification_locked", NOW, "locked", member_id=taro
        )
        other_member = escalations.escalate_member(
            session, "case_notification_failed", NOW, "three", member_id=hanako
        )
    assert first.created and not again.created and again.id == first.id
    assert other_reason.created and other_member.created
    assert escalation_rows(demo) == [
        ("case_notification_failed", None, taro, "waiting", "one\ntwo"),
        ("verification_locked", None, taro, "waiting", "locked"),
        ("case_notification_failed", None, hanako, "waiting", "three"),
    ]
    # Every new one is audited as the service's escalate() audits it; a reuse is not.
    opened_reason = "case_notification_failed"
    with demo.begin() as session:
        opened = session.execute(
            sa.select(AuditLog).where(AuditLog.action == "escalation.opened").order_by(AuditLog.id)
        ).scalars()
        rows = [(r.actor, r.member_id, r.sender_id, r.detail) for r in opened]
    assert rows == [
        ("system", taro, None, {"escalation_id": first.id, "reason": "case_notification_failed"}),
        ("system", taro, None, {"escalation_id": other_reason.id, "reason": "verification_locked"}),
        ("system", hanako, None, {"escalation_id": other_member.id, "reason": opened_reason}),
    ]
    # Once closed, the next one is news again.
    with demo.begin() as session:
        escalations.close(session, first.id, "tanaka", None, NOW)
        fresh = escalations.escalate_member(
            session, "case_notification_failed", NOW, "four", member_id=taro
        )
    assert fresh.created and fresh.id != first.id


def test_a_system_escalation_reuses_the_open_one_of_any_member_given(demo):
    taro, hanako = member_ids(demo)
    with demo.begin() as session:
        opened = escalations.escalate_member(
            session, "verification_locked", NOW, "one", member_id=hanako, conversation=conv("a")
        )
    with demo.begin() as session:
        # Another conversation, about the insured person of the same number.
        again = escalations.escalate_member(
            session,
            "verification_locked",
            NOW,
            "two",
            member_id=taro,
            member_ids=[taro, hanako],
            conversation=conv("b"),
        )
    assert again.id == opened.id and not again.created
    assert escalation_rows(demo) == [("verification_locked", "a", hanako, "waiting", "one\ntwo")]


def test_a_system_escalation_keeps_one_open_escalation_per_conversation(demo):
    taro, _ = member_ids(demo)
    with demo.begin() as session:
        handed = escalations.escalate(session, conv("a"), "member_request", NOW, pause=True)
    with demo.begin() as session:
        locked = escalations.escalate_member(
            session, "verification_locked", NOW, "locked", member_id=taro, conversation=conv("a")
        )
    assert (locked.id, locked.created, locked.reason, locked.paused) == (
        handed.id,
        False,
        "member_request",
        True,
    )
    assert escalation_rows(demo) == [("member_request", "a", None, "waiting", "locked")]
    assert audit_actions(demo) == [("system", "escalation.opened")]


def test_a_system_escalation_takes_only_the_systems_reasons(sessions):
    for reason in ("member_request", "complaint", "repeated_fallback", "anything"):
        with sessions.begin() as session, pytest.raises(ValueError):
            escalations.escalate_member(session, reason, NOW, "note", member_id=None)
    assert set(escalations.SYSTEM_REASONS) == {
        "verification_locked",
        "case_needs_person",
        "case_notification_failed",
    }
