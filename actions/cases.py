"""Formal requests as cases: adapters over ``bot.cases.dialog`` and ``bot.cases``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    utc_now,
)
from bot import cases
from bot.cases import dialog, explain
from bot.identity import dialog as identity_dialog
from bot.identity import verification
from bot.identity.dialog import Said

PENDING_REQUEST_SLOT = "pending_request"


def _said(tracker: Tracker) -> Said:
    latest = tracker.latest_message
    return Said(
        text=latest.get("text") or "",
        intent=(latest.get("intent") or {}).get("name"),
        topics=[str(v) for v in tracker.get_latest_entity_values("info_category")],
    )


def _verify_first(
    dispatcher: CollectingDispatcher, subject: str, pending: str
) -> list[dict[str, Any]]:
    """Start the verification form; what the member asked for waits in a slot."""
    send(dispatcher, [identity_dialog.start_verification(active_profile(), subject)])
    names = (
        *identity_dialog.FORM_SLOTS,
        identity_dialog.OUTCOME_SLOT,
        identity_dialog.FAILURES_SLOT,
    )
    return [
        *(SlotSet(name, None) for name in names),
        SlotSet(PENDING_REQUEST_SLOT, pending),
        FollowupAction("verification_form"),
    ]


def _events(turn: dialog.Turn) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [SlotSet(name, value) for name, value in turn.slots.items()]
    if turn.start_form:
        events.append(FollowupAction(turn.start_form))
    return events


@contextmanager
def _verified(tracker: Tracker) -> Iterator[dialog.Context | None]:
    """A unit of work for the verified member of this conversation; None if not verified.

    The database decides: slots, payloads and words grant nothing.
    """
    conversation = conversation_of(tracker)
    now = utc_now()
    with db_session() as session:
        member = verification.verified_member(session, conversation, now)
        yield (
            None
            if member is None
            else dialog.Context(
                session,
                conversation,
                active_profile(),
                now,
                member.id,
                draft_id=tracker.get_slot(dialog.DRAFT_SLOT),
                failures=int(tracker.get_slot(dialog.FAILURES_SLOT) or 0),
            )
        )


def _expired(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    # The verification ended (idle, new session) in the middle: nothing more is taken.
    send(dispatcher, [dialog.Reply(EXPIRED)])
    return [*_cleared(), SlotSet(dialog.REQUESTED_SLOT, None)]


def _form_step(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    step: Callable[[dialog.Context, str, Said], dialog.Turn],
) -> list[dict[str, Any]]:
    """One form step; always sets a slot so the form never hands the turn away."""
    requested = tracker.get_slot(dialog.REQUESTED_SLOT)
    if requested is None:
        return []
    with _verified(tracker) as context:
        if context is None:
            return _expired(dispatcher)
        turn = step(context, str(requested), _said(tracker))
    send(dispatcher, turn.replies)
    return form_step_events(turn.slots, str(requested))


def _cleared() -> list[dict[str, Any]]:
    names = (*dialog.FORM_SLOTS, *dialog.CANCEL_SLOTS, dialog.DRAFT_SLOT, dialog.FAILURES_SLOT)
    return [SlotSet(name, None) for name in names]


class ActionStartCase(Action):
    """Starts a request: verification first, then the request form."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_start_case"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Open a draft for the type the member asked for (now or before verifying)."""
        pending = tracker.get_slot(PENDING_REQUEST_SLOT)
        said = _said(tracker)
        wanted = str(pending) if pending else str(said.intent)
        case_type = dialog.case_type_of(wanted)
        if case_type is None:
            return [SlotSet(PENDING_REQUEST_SLOT, None)]
        hint = dialog.pending_target(wanted) if pending else dialog.target_hint(said.text)
        profile = active_profile()
        if not pending and explain.is_question(said.text):
            # 「消してもらえますか」: answered first; the button starts the request.
            send(dispatcher, explain.explain(profile, case_type, hint))
            return []
        with _verified(tracker) as context:
            if context is None:
                if case_type not in cases.offered_types(profile):
                    send(dispatcher, dialog.not_offered(profile, case_type))
                    return []
                subject = f"{cases.TYPE_LABELS[case_type]}のご請求"
                pending_value = f"{said.intent}:{hint.value}" if hint else str(said.intent)
                return _verify_first(dispatcher, subject, pending_value)
            turn = dialog.start(context, case_type, hint)
        send(dispatcher, turn.replies)
        return [*_cleared(), SlotSet(PENDING_REQUEST_SLOT, None), *_events(turn)]


class ValidateCaseForm(Action):
    """Reads each answer of the request form; the draft in the database keeps it."""

    def name(self) -> str:
        """The name Rasa's form calls for validation."""
        return "validate_case_form"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One step of the request form."""
        return _form_step(dispatcher, tracker, dialog.step)


EXPIRED = (
    "一定時間が経過したため、本人確認の有効期限が切れました。"
    "お手数ですが、もう一度ご請求の内容からお申し出ください。"
)


class _AskCase(Action):
    """Asks for one slot of the request form (Rasa calls ``action_ask_<slot>``)."""

    slot = ""

    def name(self) -> str:
        """The name Rasa's form calls to ask for the slot."""
        return f"action_ask_{self.slot}"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Utter the question with its choices."""
        with _verified(tracker) as context:
            if context is None:
                return _expired(dispatcher)
            if self.slot in dialog.CANCEL_SLOTS:
                replies = dialog.ask_cancel(
                    context, self.slot, tracker.get_slot(dialog.CANCEL_NUMBER_SLOT)
                )
            else:
                replies = dialog.ask(context, self.slot)
        send(dispatcher, replies)
        return []


def _ask_action(slot: str) -> type[_AskCase]:
    attributes = {"slot": slot, "__doc__": f"Asks for {slot}.", "__module__": __name__}
    return type(f"ActionAsk_{slot}", (_AskCase,), attributes)


ASK_ACTIONS = [_ask_action(slot) for slot in (*dialog.FORM_SLOTS, *dialog.CANCEL_SLOTS)]


class ActionCaseDone(Action):
    """Clears the request forms' slots when a form ends."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_case_done"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Nothing of one request carries into the next."""
        return _cleared()


class ActionCaseStatus(Action):
    """Lists the member's own cases, after verification."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_case_status"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The cases if verified, else verification first."""
        with _verified(tracker) as context:
            if context is None:
                return _verify_first(dispatcher, "ご請求の状況の確認", "check_case_status")
            send(dispatcher, dialog.case_status(context))
        return [SlotSet(PENDING_REQUEST_SLOT, None)]


class ActionCancelCase(Action):
    """Withdraws an open case: verification first, then which case, then confirm."""

    def name(self) -> str:
        """The action's name in the domain."""
        return "action_cancel_case"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """Pick the case to withdraw and start the confirmation form."""
        pending = tracker.get_slot(PENDING_REQUEST_SLOT)
        text = "" if pending else (tracker.latest_message.get("text") or "")
        with _verified(tracker) as context:
            if context is None:
                return _verify_first(dispatcher, "ご請求の取り下げ", "cancel_case")
            turn = dialog.start_cancel(context, text)
        send(dispatcher, turn.replies)
        return [*_cleared(), SlotSet(PENDING_REQUEST_SLOT, None), *_events(turn)]


class ValidateCancelCaseForm(Action):
    """Reads the answers of the withdrawal form."""

    def name(self) -> str:
        """The name Rasa's form calls for validation."""
        return "validate_cancel_case_form"

    @blocking_action
    def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One step of the withdrawal form."""
        number = tracker.get_slot(dialog.CANCEL_NUMBER_SLOT)
        return _form_step(
            dispatcher,
            tracker,
            lambda context, requested, said: dialog.cancel_step(context, requested, said, number),
        )
