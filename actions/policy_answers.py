"""Answers to questions about the organization's published policy."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import active_profile, send
from bot.policy.answers import answer, clarify

FALLBACK_INTENTS = {"nlu_fallback", None}


class ActionAnswerPolicy(Action):
    """Answers the member's latest question from the active profile."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_answer_policy"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter the answer for the latest intent and the kinds of information named."""
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        topics = [str(value) for value in tracker.get_latest_entity_values("info_category")]
        send(dispatcher, answer(active_profile(), intent, topics))
        return []


class ActionClarify(Action):
    """Asks the member to clarify, offering the likely topics as quick replies."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_clarify"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter the clarification with the best-ranked intents as buttons."""
        ranking = tracker.latest_message.get("intent_ranking") or []
        names = [item.get("name") for item in ranking if item.get("name") not in FALLBACK_INTENTS]
        send(dispatcher, clarify(active_profile(), [str(name) for name in names]))
        return []
