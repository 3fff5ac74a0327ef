"""Fixtures shared by every test: the database and console fixture modules, and the
``tracker`` builder of the action tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The organizations' published policies, shipped with the product.
POLICY_TEXTS = ROOT / "bot" / "policy" / "texts"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402
from rasa_sdk import Tracker  # noqa: E402

# Fixture modules some test files also import helpers from: their asserts are rewritten
# only if registered before the first import.
pytest.register_assert_rewrite("tests.console_fixtures", "tests.db_fixtures", "tests.e2e.browser")

# The database fixtures (db_url, migrated_url, sessions, demo, ...) and the running
# console (console), for every test module: only the root conftest may name plugins.
pytest_plugins = ["tests.db_fixtures", "tests.console_fixtures"]

SESSION_START = {"event": "session_started", "timestamp": 1000.0}


def build_tracker(
    text: str = "",
    intent: str = "inform",
    slots: dict[str, Any] | None = None,
    *,
    entities: list[dict[str, Any]] | None = None,
    history: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    sender: str = "member-1",
    paused: bool = False,
    active_loop: str | None = None,
    latest_message: dict[str, Any] | None = None,
) -> Tracker:
    """The tracker Rasa sends the action server as the member says ``text``.

    Built with ``Tracker.from_dict`` from what Rasa serializes, as in RasaHQ's demos.

    Args:
        text: The member's latest message.
        intent: Its intent (confidence 0.99).
        slots: The slots set so far.
        entities: Its entities.
        history: The events of this session before the latest message.
        events: The whole event list instead: ``history`` and the latest message are
            then not added.
        sender: The conversation id.
        paused: Whether the conversation is paused (a hand-off holds it).
        active_loop: The name of the active form, if any.
        latest_message: The parse data of the latest message instead of the one made
            from ``text``, ``intent`` and ``entities``.

    Returns:
        The tracker.
    """
    latest = (
        latest_message
        if latest_message is not None
        else {
            "text": text,
            "intent": {"name": intent, "confidence": 0.99},
            "entities": entities or [],
        }
    )
    if events is None:
        events = [
            SESSION_START,
            *(history or []),
            {"event": "user", "text": text, "parse_data": latest},
        ]
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": slots or {},
            "latest_message": latest,
            "events": events,
            "paused": paused,
            "followup_action": None,
            "active_loop": {"name": active_loop} if active_loop else {},
            "latest_action_name": "action_listen",
        }
    )


@pytest.fixture
def tracker() -> Callable[..., Tracker]:
    """Builds the tracker an action runs on: see :func:`build_tracker`."""
    return build_tracker
