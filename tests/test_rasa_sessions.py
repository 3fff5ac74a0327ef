"""The rasa server ends a long session at a quiet turn, on Rasa's own tracker and processor."""

from __future__ import annotations

import time

import pytest
from rasa.core.processor import MessageProcessor
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    SessionStarted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot import rasa_sessions
from bot.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT_ROOT / "domain.yml"))


@pytest.fixture
def processor(domain, monkeypatch) -> MessageProcessor:
    """Rasa's processor class with the product's domain (no model: only the check runs)."""
    # Undone after the test: install() replaces the method on the class.
    monkeypatch.setattr(
        MessageProcessor, "_has_session_expired", MessageProcessor._has_session_expired
    )
    found = object.__new__(MessageProcessor)
    found.domain = domain
    return found


def conversation(domain: Domain, messages: int, ago_s: float = 30.0) -> DialogueStateTracker:
    """A session of ``messages`` FAQ turns, the last one ``ago_s`` seconds ago."""
    start = time.time() - ago_s - messages
    events: list[Event] = [
        ActionExecuted("action_session_start", timestamp=start - 1),
        SessionStarted(timestamp=start),
        ActionExecuted("action_listen", timestamp=start),
    ]
    for index in range(messages):
        at = start + index + 1
        events += [
            UserUttered("口座情報は何に使われますか", {"name": "ask_usage_purpose"}, timestamp=at),
            ActionExecuted("action_answer_policy", timestamp=at),
            BotUttered("回答です。", timestamp=at),
            ActionExecuted("action_listen", timestamp=at),
        ]
    return DialogueStateTracker.from_events("rest:long", events, domain.slots)


def test_a_session_holding_the_limit_ends_at_a_quiet_turn(domain, processor):
    rasa_sessions.install(5)
    assert not processor._has_session_expired(conversation(domain, 4))
    assert processor._has_session_expired(conversation(domain, 5))


def test_a_running_form_keeps_its_session(domain, processor):
    rasa_sessions.install(5)
    tracker = conversation(domain, 6)
    tracker.update(ActiveLoop("verification_form"))
    assert not processor._has_session_expired(tracker)
    tracker.update(ActiveLoop(None))
    assert processor._has_session_expired(tracker)


def test_idle_minutes_still_end_a_short_session(domain, processor):
    rasa_sessions.install(5)
    assert processor._has_session_expired(conversation(domain, 1, ago_s=16 * 60))
    assert not processor._has_session_expired(conversation(domain, 1, ago_s=60))


def test_installing_again_replaces_the_limit(domain, processor):
    rasa_sessions.install(50)
    rasa_sessions.install(3)
    assert processor._has_session_expired(conversation(domain, 3))
    rasa_sessions.install(50)
    assert not processor._has_session_expired(conversation(domain, 3))


def test_only_the_latest_sessions_events_are_read(domain):
    tracker = conversation(domain, 5)
    tracker.update(SessionStarted())
    assert rasa_sessions.session_events(tracker)[0]["event"] == "session_started"
    assert len(rasa_sessions.session_events(tracker)) == 1
    assert not rasa_sessions.turn_limit_reached(tracker, 1)
