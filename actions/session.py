"""``action_session_start``: Rasa's default, plus keeping a staff hand-off paused.

A new session (after 15 idle minutes, see ``session_config`` in the domain) starts with
``SessionStarted``, which resets the tracker and with it Rasa's pause. While staff
still hold the conversation (an open escalation that paused it), the member's messages
must keep going to staff only: the new session is paused again.

A session that the rasa server ends because it holds ``SESSION_TURN_LIMIT`` messages
(``bot.rasa_sessions``) is continued instead (:mod:`bot.core.sessions`): the new
``SessionStarted`` carries the old session's key and offered hand-off reasons in its
metadata, and every slot keeps its value, so the member notices nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions import offloop
from actions.common import db_session
from bot.core import sessions
from bot.handoff import dialog as handoff_dialog
from bot.handoff import escalations
from bot.settings import load_settings

logger = logging.getLogger(__name__)


class ActionSessionStart(Action):
    """Start a session as Rasa does; pause it when a paused hand-off is still open."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_session_start"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """``SessionStarted``, carried-over slots if configured, a pause if held, listen.

        The session's ``SessionStarted`` gets its timestamp from the rasa server; the
        identity flow keys a verification to it (``actions.common.session_key``), so a
        new session needs verifying again, as with Rasa's own action. A session that
        continues a long one (:func:`bot.core.sessions.continues`) keeps the old key
        and every slot instead.
        """
        config = domain.get("session_config") or {}
        limit = load_settings().session_turn_limit
        idle_minutes = float(config.get("session_expiration_time") or 0)
        if sessions.continues(tracker.events, limit, idle_minutes, time.time()):
            return [*_continuation(tracker, domain), ActionExecuted("action_listen")]
        events: list[dict[str, Any]] = [SessionStarted()]
        if config.get("carry_over_slots_to_new_session"):
            # As Rasa's ActionSessionStart: every slot set in the session that ends.
            events.extend(
                SlotSet(event.get("name"), event.get("value"))
                for event in tracker.applied_events()
                if event.get("event") == "slot"
            )
        if await _held_by_staff(tracker.sender_id):
            events.append(ConversationPaused())
        events.append(ActionExecuted("action_listen"))
        return events


def _continuation(tracker: Tracker, domain: dict[str, Any]) -> list[dict[str, Any]]:
    """The start of a session continuing this one: its key, offered reasons, slots."""
    metadata = sessions.continuation_metadata(
        tracker.events, handoff_dialog.offered_reasons(tracker.events)
    )
    initial = {
        name: (slot or {}).get("initial_value")
        for name, slot in (domain.get("slots") or {}).items()
    }
    carried = sessions.carried_slots(tracker.current_slot_values(), initial)
    # At a quiet point nobody holds the conversation: no pause to carry over.
    return [
        {**SessionStarted(), "metadata": metadata},
        *(SlotSet(name, value) for name, value in carried.items()),
    ]


async def _held_by_staff(sender_id: str) -> bool:
    try:
        return await offloop.in_thread(_keeps_paused, sender_id)
    except (SQLAlchemyError, offloop.WorkTimedOutError) as error:
        # Without the database (or past the deadline) the session starts unpaused: the
        # assistant answering (and apologizing for what it cannot do) beats a
        # conversation that fails.
        logger.error("app database unavailable: %s", type(error).__name__)
        return False


def _keeps_paused(sender_id: str) -> bool:
    with db_session() as session:
        return escalations.keeps_conversation_paused(session, sender_id)
