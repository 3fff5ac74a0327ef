"""Running a custom action as Rasa's action server does, for the action tests.

In the style of RasaHQ/financial-demo: the action runs on a tracker (the ``tracker``
fixture of tests/conftest.py); the tests look at the returned events and at what the
``CollectingDispatcher`` collected.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher


def run_messages(
    action: Action, tracker: Tracker
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events and the whole messages (text and buttons) an action returns."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return events, dispatcher.messages


def run(action: Action, tracker: Tracker) -> tuple[list[dict[str, Any]], str]:
    """The events an action returns and the texts it said, one per line."""
    events, messages = run_messages(action, tracker)
    return events, "\n".join(m.get("text") or "" for m in messages)


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The slots the events set, the last value of each."""
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}
