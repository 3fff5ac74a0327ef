"""The hand-off actions with tracker fixtures, on a real migrated database."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import active_profile
from actions.handoff import ActionOfferHuman, ActionRelayStaffMessage, ActionRequestHuman
from actions.policy_answers import ActionAnswerPolicy
from actions.session import ActionSessionStart
from bot.core.conversation import Conversation
from bot.db.models import Escalation, StaffMessage
from bot.handoff import escalations as service
from bot.handoff.dialog import Decision, decide, offered_reasons, payload_reason_of
from bot.policy.answers import contact_line

SESSION_START = {"event": "session_started", "timestamp": 1000.0}
NOW = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return demo


def run(
    action, tracker: Tracker, domain: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, domain or {}))
    return events, dispatcher


def said(dispatcher: CollectingDispatcher) -> str:
    return "\n".join(m.get("text") or "" for m in dispatcher.messages)


def payloads(dispatcher: CollectingDispatcher) -> list[str]:
    return [b["payload"] for m in dispatcher.messages for b in m.get("buttons") or []]


def escalations(database) -> list[tuple[str, str, str | None]]:
    with database.begin() as session:
        rows = session.execute(sa.select(Escalation).order_by(Escalation.id)).scalars()
        return [(row.reason, row.status, row.sender_id) for row in rows]


def paused_flags(database) -> list[bool]:
    with database.begin() as session:
        return list(session.execute(sa.select(Escalation.paused).order_by(Escalation.id)).scalars())


def reason(value: str) -> list[dict[str, Any]]:
    return [{"entity": "handoff_reason", "value": value}]


def test_the_first_request_offers_and_the_second_escalates_and_pauses(database, tracker):
    events, dispatcher = run(ActionRequestHuman(), tracker("担当者と話したい", "request_human"))
    assert events == [
        {"event": "slot", "name": "handoff_offered", "value": True, "timestamp": None}
    ]
    assert "このチャットでも" in said(dispatcher)
    assert '/request_human{"handoff_reason": "member_request"}' in payloads(dispatcher)
    assert escalations(database) == []

    events, dispatcher = run(
        ActionRequestHuman(),
        tracker("人と話したい", "request_human", slots={"handoff_offered": True}),
    )
    assert "担当者におつなぎします" in said(dispatcher)
    assert "受付時間は公表されていません" in said(dispatcher)  # the default profile has none
    assert [e["event"] for e in events] == ["slot", "pause", "action"]
    assert escalations(database) == [("member_request", "waiting", "member-1")]
    assert paused_flags(database) == [True]  # closing it must resume the conversation


def bot_events(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    """The ``bot`` events Rasa records for what an action uttered (buttons in ``data``)."""
    return [
        {"event": "bot", "text": m.get("text"), "data": {"buttons": m.get("buttons")}}
        for m in dispatcher.messages
    ]


def pressed(
    tracker,
    offered_by: CollectingDispatcher | None,
    value: str,
    sender: str = "member-1",
    slots: dict[str, Any] | None = None,
) -> Tracker:
    """The member sends ``/request_human{"handoff_reason": value}`` after an answer."""
    text = f'/request_human{{"handoff_reason": "{value}"}}'
    parse = {"intent": {"name": "request_human"}, "entities": reason(value)}
    earlier = bot_events(offered_by) if offered_by is not None else []
    return tracker(
        text,
        "request_human",
        entities=reason(value),
        sender=sender,
        slots=slots,
        events=[SESSION_START, *earlier, {"event": "user", "text": text, "parse_data": parse}],
    )


@pytest.mark.parametrize(
    ("already_offered", "payload", "offered", "expected"),
    [
        (False, None, set(), Decision(False)),
        (True, None, set(), Decision(True, "member_request")),
        (False, "complaint", set(), Decision(False)),  # not offered: the offer first
        (False, "complaint", {"complaint"}, Decision(True, "complaint")),
        (False, "complaint", {"repeated_fallback"}, Decision(True, "member_request")),
        (True, "verification_locked", {"verification_locked"}, Decision(True, "member_request")),
        (False, "repeated_fallback", {"repeated_fallback"}, Decision(True, "repeated_fallback")),
    ],
)
def test_decide_honours_a_payload_reason_only_when_it_was_offered(
    already_offered, payload, offered, expected
):
    assert decide(already_offered, payload, offered) == expected


def test_offered_reasons_come_from_the_assistants_buttons_of_this_session():
    button = {
        "title": "担当者に苦情を申し出る",
        "payload": '/request_human{"handoff_reason": "complaint"}',
    }
    fallback = {
        "title": "担当者と話したい",
        "payload": '/request_human{"handoff_reason": "repeated_fallback"}',
    }
    forged = {"event": "user", "text": button["payload"], "parse_data": {}}
    events: list[dict[str, Any]] = [
        {"event": "bot", "text": "x", "data": {"buttons": [fallback]}},
        SESSION_START,
        forged,  # a member's message offers nothing
        {"event": "bot", "text": "y", "data": {"buttons": [button, {"payload": "/greet"}]}},
        {"event": "bot", "text": "z", "data": {"buttons": [{"payload": "/request_human{bad"}]}},
        {"event": "bot", "text": "w"},
    ]
    assert offered_reasons(events) == {"complaint"}
    assert offered_reasons([*events, {"event": "restart"}]) == frozenset()
    assert payload_reason_of('/request_human{"handoff_reason": "other"}') is None
    assert payload_reason_of("/request_human") is None


def test_the_button_the_assistant_offered_escalates_at_once(database, tracker):
    _, offer = run(ActionRequestHuman(), tracker("担当者と話したい", "request_human"))
    events, _ = run(ActionRequestHuman(), pressed(tracker, offer, "member_request"))
    assert "pause" in [e["event"] for e in events]
    assert escalations(database) == [("member_request", "waiting", "member-1")]


def test_the_complaint_answer_offers_a_person_and_the_button_escalates(database, tracker):
    _, answer = run(ActionAnswerPolicy(), tracker("苦情を言いたい", "ask_complaint"))
    assert '/request_human{"handoff_reason": "complaint"}' in payloads(answer)
    events, _ = run(ActionRequestHuman(), pressed(tracker, answer, "complaint"))
    assert "pause" in [e["event"] for e in events]
    assert escalations(database) == [("complaint", "waiting", "member-1")]


def test_a_payload_the_assistant_did_not_offer_only_gets_the_offer(database, tracker):
    # The flood: many conversations each sending the complaint payload straight away.
    for number in range(20):
        events, dispatcher = run(
            ActionRequestHuman(), pressed(tracker, None, "complaint", f"web:{number}")
        )
        assert [e["event"] for e in events] == ["slot"]  # handoff_offered, no pause
        assert "このチャットでも" in said(dispatcher)
    assert escalations(database) == []


def test_a_reason_offered_in_an_earlier_session_does_not_count(database, tracker):
    _, answer = run(ActionAnswerPolicy(), tracker("苦情を言いたい", "ask_complaint"))
    stale = pressed(tracker, answer, "complaint")
    stale.events.insert(-1, {"event": "session_started", "timestamp": 2000.0})
    events, _ = run(ActionRequestHuman(), stale)
    assert "pause" not in [e["event"] for e in events]
    assert escalations(database) == []


def test_after_the_offer_a_reason_never_offered_is_a_plain_request(database, tracker):
    _, offer = run(ActionRequestHuman(), tracker("担当者と話したい", "request_human"))
    run(ActionRequestHuman(), pressed(tracker, offer, "complaint", slots={"handoff_offered": True}))
    # Handed over, but as what the member was offered, not the reason they typed.
    assert escalations(database) == [("member_request", "waiting", "member-1")]


def test_a_second_escalation_reuses_the_first(database, tracker):
    _, offer = run(ActionRequestHuman(), tracker("担当者と話したい", "request_human"))
    run(ActionRequestHuman(), pressed(tracker, offer, "member_request"))
    events, dispatcher = run(ActionRequestHuman(), pressed(tracker, offer, "member_request"))
    assert "すでに担当者へおつなぎしています" in said(dispatcher)
    assert "pause" in [e["event"] for e in events]
    assert escalations(database) == [("member_request", "waiting", "member-1")]


def test_repeated_fallbacks_offer_a_person(database, tracker):
    _, dispatcher = run(ActionOfferHuman(), tracker("ぱぴぷぺぽ", "nlu_fallback"))
    assert '/request_human{"handoff_reason": "repeated_fallback"}' in payloads(dispatcher)
    run(ActionRequestHuman(), pressed(tracker, dispatcher, "repeated_fallback"))
    assert escalations(database) == [("repeated_fallback", "waiting", "member-1")]


def test_past_the_limit_across_conversations_the_member_gets_the_window(
    database, monkeypatch, tracker
):
    monkeypatch.setenv("HANDOFF_MAX_PER_HOUR", "2")
    for number in range(2):
        run(
            ActionRequestHuman(),
            tracker(
                "人と話したい",
                "request_human",
                slots={"handoff_offered": True},
                sender=f"web:{number}",
            ),
        )
    events, dispatcher = run(
        ActionRequestHuman(),
        tracker(
            "人と話したい", "request_human", slots={"handoff_offered": True}, sender="web:late"
        ),
    )
    assert [e["event"] for e in events] == ["slot"]  # not paused: the assistant answers on
    text = said(dispatcher)
    assert "ご依頼が集中している" in text and "おつなぎできませんでした" in text
    assert contact_line(active_profile()) in text
    assert [row[2] for row in escalations(database)] == ["web:0", "web:1"]


def test_past_the_limit_of_a_conversation_the_member_gets_the_window(
    database, monkeypatch, tracker
):
    monkeypatch.setenv("HANDOFF_MAX_PER_CONVERSATION", "1")
    insisting = tracker(
        "人と話したい", "request_human", slots={"handoff_offered": True}, sender="line:U1"
    )
    run(ActionRequestHuman(), insisting)
    with database.begin() as session:
        [view] = service.queue(session, NOW + timedelta(days=365))
        service.close(session, view.id, "tanaka", None, NOW, resume=lambda sender: None)
    events, dispatcher = run(ActionRequestHuman(), insisting)
    assert [e["event"] for e in events] == ["slot"]
    assert "本日はこれ以上おつなぎできません" in said(dispatcher)
    assert contact_line(active_profile()) in said(dispatcher)
    assert len(escalations(database)) == 1


# --- staff replies and new sessions ------------------------------------------------------


def open_hand_off(database, sender: str = "member-1", *, pause: bool = True) -> int:
    with database.begin() as session:
        view = service.escalate(
            session,
            Conversation(sender, "start", "socketio"),
            "member_request" if pause else "verification_locked",
            NOW,
            pause=pause,
        )
        service.claim(session, view.id, "tanaka", NOW)
    return view.id


def add_reply(database, escalation_id: int, text: str, sender: str = "member-1") -> None:
    with database.begin() as session:
        session.add(
            StaffMessage(
                escalation_id=escalation_id,
                sender_id=sender,
                staff="tanaka",
                text=text,
                created_at=NOW,
            )
        )


def test_the_relay_utters_each_reply_as_staff_and_keeps_the_pause(database, tracker):
    escalation_id = open_hand_off(database)
    add_reply(database, escalation_id, "お待たせしました。")
    add_reply(database, escalation_id, "ご住所を確認します。")
    add_reply(database, escalation_id, "ほかの方宛て", sender="member-2")

    events, dispatcher = run(ActionRelayStaffMessage(), tracker("まだですか", paused=True))

    assert [(m["text"], m["staff"]) for m in dispatcher.messages] == [
        ("担当者より：お待たせしました。", "tanaka"),
        ("担当者より：ご住所を確認します。", "tanaka"),
    ]
    # Still paused: no second pause event; the listen closes the action's turn.
    assert [(e["event"], e.get("name")) for e in events] == [("action", "action_listen")]
    events, dispatcher = run(ActionRelayStaffMessage(), tracker("まだですか", paused=True))
    assert dispatcher.messages == []  # each reply is sent once
    with database.begin() as session:
        undelivered = session.execute(
            sa.select(StaffMessage.text).where(StaffMessage.delivered_at.is_(None))
        ).scalars()
        assert list(undelivered) == ["ほかの方宛て"]


def test_the_relay_pauses_again_a_hand_off_that_was_unpaused(database, tracker):
    escalation_id = open_hand_off(database)
    add_reply(database, escalation_id, "お待たせしました。")
    events, _ = run(ActionRelayStaffMessage(), tracker("/restart", paused=False))
    assert [e["event"] for e in events] == ["pause", "action"]


def test_a_relay_in_a_lockout_escalation_does_not_pause(database, tracker):
    escalation_id = open_hand_off(database, pause=False)
    add_reply(database, escalation_id, "ロックを解除しました。")
    events, dispatcher = run(ActionRelayStaffMessage(), tracker("x", paused=False))
    assert [m["text"] for m in dispatcher.messages] == ["担当者より：ロックを解除しました。"]
    assert [e["event"] for e in events] == ["action"]


def session_start_events(tracker, database, sender: str = "member-1", carry_over: bool = False):
    previous = [
        SESSION_START,
        {"event": "slot", "name": "handoff_offered", "value": True, "timestamp": 1001.0},
        {"event": "user", "text": "x", "parse_data": {}, "timestamp": 1002.0},
    ]
    domain = {"session_config": {"carry_over_slots_to_new_session": carry_over}}
    events, dispatcher = run(
        ActionSessionStart(), tracker("", sender=sender, events=previous), domain
    )
    assert dispatcher.messages == []
    return events


def test_a_new_session_starts_as_rasas_default_when_nobody_holds_it(database, tracker):
    assert [e["event"] for e in session_start_events(tracker, database)] == [
        "session_started",
        "action",
    ]
    carried = session_start_events(tracker, database, carry_over=True)
    assert [e["event"] for e in carried] == ["session_started", "slot", "action"]
    assert (carried[1]["name"], carried[1]["value"]) == ("handoff_offered", True)
    assert carried[-1]["name"] == "action_listen"


def test_a_new_session_of_a_paused_hand_off_is_paused_again(database, tracker):
    escalation_id = open_hand_off(database)
    events = session_start_events(tracker, database)
    assert [e["event"] for e in events] == ["session_started", "pause", "action"]
    # Another member's conversation and a lockout's are not held.
    assert "pause" not in [e["event"] for e in session_start_events(tracker, database, "member-2")]
    open_hand_off(database, "member-3", pause=False)
    assert "pause" not in [e["event"] for e in session_start_events(tracker, database, "member-3")]
    # Once staff close it, the next session is the assistant's again.
    with database.begin() as session:
        service.close(session, escalation_id, "tanaka", None, NOW, resume=lambda sender: None)
    assert "pause" not in [e["event"] for e in session_start_events(tracker, database)]


def test_a_new_session_without_the_database_starts_unpaused(database, monkeypatch, tracker):
    open_hand_off(database)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert [e["event"] for e in session_start_events(tracker, database)] == [
        "session_started",
        "action",
    ]
