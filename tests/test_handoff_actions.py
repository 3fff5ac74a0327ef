"""The hand-off actions with tracker fixtures, on a real migrated database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionOfferHuman, ActionRequestHuman
from actions.policy_answers import ActionAnswerPolicy
from bot.db.models import Escalation

pytest_plugins = ["tests.db_fixtures"]

SESSION_START = {"event": "session_started", "timestamp": 1000.0}


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return demo


def tracker(
    text: str,
    intent: str = "request_human",
    slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None,
    sender: str = "member-1",
) -> Tracker:
    latest: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": entities or [],
    }
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": slots or {},
            "latest_message": latest,
            "events": [SESSION_START, {"event": "user", "text": text, "parse_data": latest}],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        }
    )


def run(action, tracker: Tracker) -> tuple[list[dict[str, Any]], CollectingDispatcher]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return events, dispatcher


def said(dispatcher: CollectingDispatcher) -> str:
    return "\n".join(m.get("text") or "" for m in dispatcher.messages)


def payloads(dispatcher: CollectingDispatcher) -> list[str]:
    return [b["payload"] for m in dispatcher.messages for b in m.get("buttons") or []]


def escalations(database) -> list[tuple[str, str, str | None]]:
    with database.begin() as session:
        rows = session.execute(sa.select(Escalation).order_by(Escalation.id)).scalars()
        return [(row.reason, row.status, row.sender_id) for row in rows]


def reason(value: str) -> list[dict[str, Any]]:
    return [{"entity": "handoff_reason", "value": value}]


def test_the_first_request_offers_and_the_second_escalates_and_pauses(database):
    events, dispatcher = run(ActionRequestHuman(), tracker("担当者と話したい"))
    assert events == [
        {"event": "slot", "name": "handoff_offered", "value": True, "timestamp": None}
    ]
    assert "このチャットでも" in said(dispatcher)
    assert '/request_human{"handoff_reason": "member_request"}' in payloads(dispatcher)
    assert escalations(database) == []

    events, dispatcher = run(
        ActionRequestHuman(), tracker("人と話したい", slots={"handoff_offered": True})
    )
    assert "担当者におつなぎします" in said(dispatcher)
    assert "受付時間は公表されていません" in said(dispatcher)  # the default profile has none
    assert [e["event"] for e in events] == ["slot", "pause", "action"]
    assert escalations(database) == [("member_request", "waiting", "member-1")]


def test_the_button_escalates_at_once(database):
    events, _ = run(
        ActionRequestHuman(), tracker("/request_human", entities=reason("member_request"))
    )
    assert "pause" in [e["event"] for e in events]
    assert escalations(database) == [("member_request", "waiting", "member-1")]


def test_the_complaint_answer_offers_a_person_and_the_button_escalates(database):
    _, dispatcher = run(ActionAnswerPolicy(), tracker("苦情を言いたい", "ask_complaint"))
    assert '/request_human{"handoff_reason": "complaint"}' in payloads(dispatcher)
    events, dispatcher = run(
        ActionRequestHuman(), tracker("/request_human", entities=reason("complaint"))
    )
    assert "pause" in [e["event"] for e in events]
    assert escalations(database) == [("complaint", "waiting", "member-1")]


def test_a_second_escalation_reuses_the_first(database):
    run(ActionRequestHuman(), tracker("x", entities=reason("member_request")))
    events, dispatcher = run(ActionRequestHuman(), tracker("x", entities=reason("complaint")))
    assert "すでに担当者へおつなぎしています" in said(dispatcher)
    assert "pause" in [e["event"] for e in events]
    assert escalations(database) == [("member_request", "waiting", "member-1")]


def test_repeated_fallbacks_offer_a_person(database):
    _, dispatcher = run(ActionOfferHuman(), tracker("ぱぴぷぺぽ", "nlu_fallback"))
    assert '/request_human{"handoff_reason": "repeated_fallback"}' in payloads(dispatcher)
    run(ActionRequestHuman(), tracker("x", entities=reason("repeated_fallback")))
    assert escalations(database) == [("repeated_fallback", "waiting", "member-1")]
