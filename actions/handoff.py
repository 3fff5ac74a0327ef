"""Hand-off to a person: adapters over the dialog, escalations and relay of bot.handoff."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError

from actions import offloop
from actions.common import (
    active_profile,
    blocking_action,
    conversation_of,
    db_session,
    send,
    utc_now,
)
from bot.handoff import dialog as handoff_dialog
from bot.handoff import escalations, relay
from bot.identity import verification
from bot.settings import load_settings

logger = logging.getLogger(__name__)


def handoff_limits() -> escalations.HandoffLimits:
    """The hand-off limits of the settings (``HANDOFF_MAX_PER_*``)."""
    settings = load_settings()
    return escalations.HandoffLimits(
        per_conversation=settings.handoff_max_per_conversation,
        per_hour=settings.handoff_max_per_hour,
    )


class ActionRequestHuman(Action):
    """A request for a person: offer alternatives first, then escalate and pause.

    A hand-off reason in the message's entities (a quick reply's payload) counts only
    if the assistant's own buttons offered it in this session; past the hand-off
    limits, the member is given the contact window and nothing is queued or paused.
    """

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_request_human"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Offer, or escalate: tell the member when a person answers and pause Rasa."""
        profile = active_profile()
        reasons = [str(value) for value in tracker.get_latest_entity_values("handoff_reason")]
        decision = handoff_dialog.decide(
            bool(tracker.get_slot("handoff_offered")),
            reasons[0] if reasons else None,
            handoff_dialog.offered_reasons(tracker.events),
        )
        if not decision.escalate:
            send(dispatcher, handoff_dialog.offer(profile))
            return [SlotSet("handoff_offered", True)]
        now = utc_now()
        conversation = conversation_of(tracker)
        with db_session() as session:
            member = verification.verified_member(session, conversation, now)
            outcome = escalations.hand_off(
                session,
                conversation,
                decision.reason,
                now,
                handoff_limits(),
                member_id=member.id if member is not None else None,
            )
        view = outcome.escalation
        if view is None:
            # Nothing was queued: the conversation stays with the assistant.
            send(dispatcher, handoff_dialog.limit_reached(profile, outcome.refused or "overall"))
            return [SlotSet("handoff_offered", True)]
        send(dispatcher, handoff_dialog.handed_over(profile, now, already_waiting=not view.created))
        # Paused: Rasa stores the member's further messages but predicts nothing until
        # staff resume the conversation. The listen keeps the tracker's turns well formed.
        return [
            SlotSet("handoff_offered", True),
            ConversationPaused(),
            ActionExecuted("action_listen"),
        ]


class ActionOfferHuman(Action):
    """After two misunderstandings in a row: offer a person."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_offer_human"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter the offer with a hand-off quick reply."""
        send(dispatcher, handoff_dialog.fallback_offer(active_profile()))
        return []


class ActionRelayStaffMessage(Action):
    """Sends staff's undelivered replies to the member (run by the console via the API)."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_relay_staff_message"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter each reply with the staff name in its metadata; keep the pause."""
        try:
            replies, held = await offloop.in_thread(_take_replies, tracker.sender_id)
        except (SQLAlchemyError, offloop.WorkTimedOutError) as error:
            # Nothing is marked delivered (a timed-out unit of work rolls back): the
            # console tells staff, and the replies go with the next relay. The member is
            # not told about a database they never asked anything of.
            logger.error("app database unavailable: %s", type(error).__name__)
            return [ActionExecuted("action_listen")]
        for reply in replies:
            # Extra keys end up in the BotUttered event's metadata: the transcript shows
            # the line as written by this staff member.
            dispatcher.utter_message(text=reply.text, staff=reply.staff)
        # A staff hand-off that a /restart un-paused is paused again; the listen ends the
        # action's turn, as after any action the member did not trigger.
        events: list[dict[str, Any]] = []
        if held and not tracker.is_paused():
            events.append(ConversationPaused())
        events.append(ActionExecuted("action_listen"))
        return events


def _take_replies(sender_id: str) -> tuple[list[relay.Relayed], bool]:
    """Staff's undelivered replies, marked delivered, and whether staff hold the pause."""
    with db_session() as session:
        replies = relay.take_undelivered(session, sender_id, utc_now())
        return replies, escalations.keeps_conversation_paused(session, sender_id)
