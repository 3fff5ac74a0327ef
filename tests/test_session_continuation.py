"""``action_session_start`` continues a long session: same key, same slots, same offers.

The action runs on the tracker Rasa sends it (tests/conftest.py's ``tracker``); the
session that follows is the events it returns, read as the next actions read them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.common import session_key
from actions.session import ActionSessionStart
from bot.core.sessions import CONTINUES
from bot.handoff.dialog import handoff_button, offered_reasons

LIMIT = 4
DOMAIN: dict[str, Any] = {
    "session_config": {"session_expiration_time": 15, "carry_over_slots_to_new_session": False},
    "slots": {
        "handoff_offered": {"type": "bool", "initial_value": None},
        "id_input_failures": {"type": "float", "initial_value": 0},
        "pending_request": {"type": "text", "initial_value": None},
    },
}


@pytest.fixture(autouse=True)
def turn_limit(monkeypatch):
    monkeypatch.setenv("SESSION_TURN_LIMIT", str(LIMIT))


def long_session(messages: int, last_message_ago_s: float) -> list[dict[str, Any]]:
    """A session of ``messages`` turns, the first offering the hand-off quick reply."""
    now = time.time()
    start = now - last_message_ago_s - messages
    offer = handoff_button("担当者と話したい", "repeated_fallback")
    events: list[dict[str, Any]] = [
        {"event": "session_started", "timestamp": start},
        {"event": "action", "name": "action_listen", "timestamp": start},
    ]
    for index in range(messages):
        at = start + index + 1
        buttons = [{"title": offer.title, "payload": offer.payload}] if index == 0 else []
        events += [
            {"event": "user", "text": "質問", "parse_data": {}, "timestamp": at},
            {"event": "action", "name": "action_answer_policy", "timestamp": at},
            {"event": "bot", "text": "回答", "data": {"buttons": buttons}, "timestamp": at},
            {"event": "action", "name": "action_listen", "timestamp": at},
        ]
    return events


def start_session(tracker, events, slots) -> list[dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    started = asyncio.run(
        ActionSessionStart().run(dispatcher, tracker("", events=events, slots=slots), DOMAIN)
    )
    assert dispatcher.messages == []  # the member is told nothing
    return started


def test_a_long_session_continues_with_its_key_slots_and_offers(tracker):
    before = long_session(LIMIT, last_message_ago_s=30)
    slots = {"handoff_offered": True, "id_input_failures": 0, "pending_request": None}
    started = start_session(tracker, before, slots)

    assert [e["event"] for e in started] == ["session_started", "slot", "action"]
    assert started[0]["metadata"][CONTINUES] == session_key(tracker("", events=before))
    assert (started[1]["name"], started[1]["value"]) == ("handoff_offered", True)
    assert started[-1]["name"] == "action_listen"
    # What the next turn's actions read from the new session alone (the tracker store
    # hands Rasa the latest session only): the same verification key, the same offer.
    after = [{**started[0], "timestamp": time.time()}, *started[1:]]
    assert session_key(tracker("", events=after)) == session_key(tracker("", events=before))
    assert offered_reasons(after) == {"repeated_fallback"}


def test_idle_minutes_or_a_short_session_start_afresh(tracker, demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)  # asks whether staff hold it
    for before in (long_session(LIMIT, 16 * 60), long_session(LIMIT - 1, 30)):
        started = start_session(tracker, before, {"handoff_offered": True})
        assert [e["event"] for e in started] == ["session_started", "action"]
        assert "metadata" not in started[0]
        assert offered_reasons(before + started) == set()
