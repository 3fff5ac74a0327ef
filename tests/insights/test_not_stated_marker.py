"""The mark of a 「方針に記載なし」 answer, from the action to the overview's count.

The action adds ``answer_kind`` to the message it sends; Rasa turns the action server's
message into a bot event with its own ``create_bot_utterance`` (extra keys become
metadata); the rasa server's tracker store writes it, and creates the overview's
indexes when it starts; the overview counts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from rasa.core.actions.action import create_bot_utterance
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from actions.policy_answers import ActionAnswerPolicy
from bot.insights.events import not_stated_counts
from bot.insights.period import Period
from bot.launcher import tracker_store_config
from bot.redacting_tracker_store import RedactingSQLTrackerStore
from tests.action_runs import run_messages
from tests.conftest import ROOT


@pytest.fixture
def osaka(monkeypatch):
    monkeypatch.setenv("PRIVACY_BOT_ORG", "osaka-city-kyosai")


@pytest.fixture
def store(db_url: str) -> Iterator[SQLTrackerStore]:
    """The tracker store of the rasa server's endpoints, on the test database."""
    domain = Domain.load(str(ROOT / "domain.yml"))
    made = TrackerStore.create(EndpointConfig(**tracker_store_config(db_url)), domain)
    assert isinstance(made, RedactingSQLTrackerStore)
    yield made
    made.engine.dispose()


def test_only_a_not_stated_answer_is_marked(osaka, tracker):
    _, silent = run_messages(
        ActionAnswerPolicy(), tracker("個人情報の保険料はいくら", "out_of_scope")
    )
    assert "記載が見当たらない" in silent[0]["text"]
    assert silent[0]["answer_kind"] == "not_stated"
    _, answered = run_messages(ActionAnswerPolicy(), tracker("手数料はいくらですか", "ask_fee"))
    assert "記載が見当たらない" not in answered[0]["text"]
    assert "answer_kind" not in answered[0]


def test_the_stored_answer_is_counted_through_its_index(osaka, tracker, store):
    indexes = {index["name"] for index in sa.inspect(store.engine).get_indexes("events")}
    assert {"ix_events_insights_time", "ix_events_insights_not_stated"} <= indexes
    _, messages = run_messages(
        ActionAnswerPolicy(), tracker("個人情報の保険料はいくら", "out_of_scope")
    )
    _, other = run_messages(ActionAnswerPolicy(), tracker("手数料はいくらですか", "ask_fee"))
    now = datetime(2026, 3, 2, 3, tzinfo=timezone.utc)
    conversation = DialogueStateTracker("web:marker", [])
    for message in (*messages, *other):
        event = create_bot_utterance(dict(message))
        event.timestamp = now.timestamp()
        conversation.update(event)
    # A member who types the mark writes no mark: JSON escapes the quotes of a text.
    conversation.update(UserUttered('"answer_kind": "not_stated"', timestamp=now.timestamp()))
    asyncio.run(store.save(conversation))
    with store.engine.connect() as connection:
        counted = not_stated_counts(connection, Period.ending(now, 7))
    assert [count for _, count in counted] == [1]
