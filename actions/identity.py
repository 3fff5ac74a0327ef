"""Identity verification and the member's own data: adapters over bot services."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.common import (
    active_profile,
    blocking_action,
    conversation_of,
    db_session,
    form_step_events,
    send,
    sms_sender,
    utc_now,
)
from bot.identity import dialog, sealed, verification

PENDING_REQUEST_SLOT = "pending_request"


class ValidateVerificationForm(Action):
    """Reads each answer of the verification form and checks it with the service."""

    def name(self) -> str:
        """The name Rasa's form calls for validation."""
        return "validate_verification_form"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One form step; always sets a slot so the form never hands the turn away."""
        latest = tracker.latest_message
        said = dialog.Said(
            text=latest.get("text") or "",
            intent=(latest.get("intent") or {}).get("name"),
            topics=[str(v) for v in tracker.get_latest_entity_values("info_category")],
        )
        with db_session() as session:
            context = dialog.Context(
                session=session,
                conversation=conversation_of(tracker),
                profile=active_profile(),
                sender=sms_sender(),
                now=utc_now(),
                failures=int(tracker.get_slot(dialog.FAILURES_SLOT) or 0),
                member_number_text=sealed.unseal(tracker.get_slot(dialog.MEMBER_NUMBER_SLOT)),
            )
            requested = tracker.get_slot(dialog.REQUESTED_SLOT)
            turn = dialog.step(context, requested, said)
        send(dispatcher, turn.replies)
        return form_step_events(turn.slots, requested)


class ActionMyData(Action):
    """Shows the member's own record, after verification."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_my_data"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Show the record if this conversation is verified, else start verifying."""
        profile = active_profile()
        with db_session() as session:
            view = verification.read_own_record(
                session, conversation_of(tracker), utc_now(), profile.member_identifier
            )
        if view is not None:
            send(dispatcher, dialog.own_record(profile, view))
            return []
        send(dispatcher, [dialog.start_verification(profile, "ご登録内容の確認")])
        return [
            *_cleared_form(),
            SlotSet(PENDING_REQUEST_SLOT, "ask_my_data"),
            FollowupAction("verification_form"),
        ]


class ActionVerificationDone(Action):
    """Words the end of the form and carries on with what the member asked for."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_verification_done"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Say how it ended; the database, not the slots, says whether it succeeded."""
        profile = active_profile()
        conversation = conversation_of(tracker)
        with db_session() as session:
            verified = verification.verified_member(session, conversation, utc_now()) is not None
            wanted = tracker.get_slot(PENDING_REQUEST_SLOT) == "ask_my_data"
            view = (
                verification.read_own_record(
                    session, conversation, utc_now(), profile.member_identifier
                )
                if verified and wanted
                else None
            )
        outcome = tracker.get_slot(dialog.OUTCOME_SLOT)
        send(dispatcher, dialog.verification_ended(profile, outcome, verified))
        if view is not None:
            send(dispatcher, dialog.own_record(profile, view))
        pending = str(tracker.get_slot(PENDING_REQUEST_SLOT) or "")
        follow_up = _CONTINUE_WITH.get(pending.split(":", 1)[0])
        if verified and follow_up:
            # The request the member made before verifying goes on; it reads the slot.
            return [*_cleared_form(), FollowupAction(follow_up)]
        return [*_cleared_form(), SlotSet(PENDING_REQUEST_SLOT, None)]


# What a verified member asked for before verifying, and the action that goes on with it.
_CONTINUE_WITH = {
    **{
        intent: "action_start_case"
        for intent in (
            "request_disclosure",
            "request_correction",
            "request_suspension",
            "request_third_party_stop",
            "request_purpose_notice",
            "request_mailing_opt_out",
        )
    },
    "check_case_status": "action_case_status",
    "cancel_case": "action_cancel_case",
}


def _cleared_form() -> list[dict[str, Any]]:
    # Nothing of one verification carries into the next.
    names = (*dialog.FORM_SLOTS, dialog.OUTCOME_SLOT, dialog.FAILURES_SLOT)
    return [SlotSet(name, None) for name in names]


class _AskFor(Action):
    """Asks for one slot of the verification form (Rasa calls ``action_ask_<slot>``)."""

    slot = ""

    def name(self) -> str:
        """The name Rasa's form calls to ask for the slot."""
        return f"action_ask_{self.slot}"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter the question."""
        dispatcher.utter_message(text=dialog.ask(active_profile(), self.slot))
        return []


class ActionAskMemberNumber(_AskFor):
    """Asks for 記号・番号."""

    slot = dialog.MEMBER_NUMBER_SLOT


class ActionAskBirthDate(_AskFor):
    """Asks for the birth date."""

    slot = dialog.BIRTH_DATE_SLOT


class ActionAskCode(_AskFor):
    """Asks for the one-time code."""

    slot = dialog.CODE_SLOT
