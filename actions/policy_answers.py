"""Answers to questions about the organization's published policy."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import active_profile, send
from bot.policy.answers import answer
from bot.policy.quoting import for_fallback, for_out_of_scope
from bot.policy.unmentioned import for_unmentioned

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
        """Utter the answer for the latest intent and the kinds of information named.

        An out-of-scope message about personal information is answered from the policy
        text when it says something about it (``bot.policy.quoting``). A question about
        something the policy never names is told so (``bot.policy.unmentioned``).
        """
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        text = tracker.latest_message.get("text") or ""
        profile = active_profile()
        unmentioned = for_unmentioned(profile, intent, text, _ranking(tracker))
        if unmentioned:
            send(dispatcher, unmentioned)
            return []
        if intent == "out_of_scope":
            send(dispatcher, for_out_of_scope(profile, text, _ranking(tracker)))
            return []
        topics = [str(value) for value in tracker.get_latest_entity_values("info_category")]
        send(dispatcher, answer(profile, intent, topics))
        return []


def _ranking(tracker: Tracker) -> list[str]:
    """The intents the NLU found likely, best first, without the fallback."""
    ranking = tracker.latest_message.get("intent_ranking") or []
    names = [item.get("name") for item in ranking if item.get("name") not in FALLBACK_INTENTS]
    return [str(name) for name in names]


class ActionClarify(Action):
    """When no intent is sure: quote the policy if it answers, else ask to clarify.

    Either way the likely topics come as quick replies.
    """

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_clarify"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter the policy's words for the message, or the clarification."""
        text = tracker.latest_message.get("text") or ""
        profile, ranking = active_profile(), _ranking(tracker)
        unmentioned = for_unmentioned(profile, "nlu_fallback", text, ranking)
        send(dispatcher, unmentioned or for_fallback(profile, text, ranking))
        return []
