"""The rasa server's side of the session turn limit (:mod:`bot.core.sessions`).

Rasa decides at the start of each turn whether the conversation's session has expired
(``MessageProcessor._has_session_expired``: 15 idle minutes) and then runs
``action_session_start`` before handling the message. :func:`install` extends that one
decision: a session also counts as expired when it holds the turn limit's messages of
the member and the turn starts at a quiet point. Rasa then does what it does after idle
minutes, and ``action_session_start`` (``actions/session.py``) sees from the same events
that the new session continues the old one. Rasa has no setting or hook for this, hence
the replaced method; ``bot.rasa_server`` installs it before Rasa starts.
"""

from __future__ import annotations

from typing import Any

from rasa.core.processor import MessageProcessor
from rasa.shared.core.events import Restarted, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.core.sessions import rollover_due

_INSTALLED = "_privacy_bot_turn_limit"


def session_events(tracker: DialogueStateTracker) -> list[dict[str, Any]]:
    """The events of the tracker's latest session as dicts, oldest first."""
    found: list[dict[str, Any]] = []
    for event in reversed(tracker.events):
        found.append(event.as_dict())
        if isinstance(event, (SessionStarted, Restarted)):
            break
    found.reverse()
    return found


def turn_limit_reached(tracker: DialogueStateTracker, limit: int) -> bool:
    """Whether the tracker's session should continue in a new one (see module doc)."""
    messages = 0
    for event in reversed(tracker.events):
        if isinstance(event, (SessionStarted, Restarted)):
            break
        if isinstance(event, UserUttered):
            messages += 1
    # Counting first: the events become dicts only in the turn that may end the session.
    return messages >= limit and rollover_due(session_events(tracker), limit)


def install(limit: int) -> None:
    """Make Rasa's message processor start a continuing session after ``limit`` messages.

    Idempotent: installing again only changes the limit.
    """
    current = MessageProcessor._has_session_expired
    original = getattr(current, _INSTALLED, current)

    def has_session_expired(self: MessageProcessor, tracker: DialogueStateTracker) -> bool:
        return bool(original(self, tracker)) or turn_limit_reached(tracker, limit)

    setattr(has_session_expired, _INSTALLED, original)
    MessageProcessor._has_session_expired = has_session_expired
