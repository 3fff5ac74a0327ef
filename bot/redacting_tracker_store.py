"""Rasa's SQL tracker store, masking what members type into verification and request forms.

Rasa keeps every event of every conversation in its ``events`` table, and what is
there reaches backups and exports. :class:`RedactingSQLTrackerStore` writes the same
rows as Rasa's :class:`~rasa.core.tracker_store.SQLTrackerStore`, but masked:

- A member's message answering a verification question (記号・番号, birth date, code)
  or a free-text question of a request (an agent's name, the wrong and right data, a
  reason) is replaced whole by :data:`VERIFICATION_MASK` or :data:`REQUEST_MASK`, in
  its text, the parsed text and its entities' values. The dialogs keep what they need
  in the app database; the intent stays, so staff still see what kind of answer it was.
- Any other message of the member, and what the assistant says while one of these
  forms runs, is masked by the detectors the console and the logs use
  (:func:`bot.identity.redact.personal_spans`: dates, phone numbers, 記号・番号 and
  other long numbers, codes among them); entity offsets are moved to the masked text.
- The values of the forms' personal slots are masked the same way, except a sealed
  value (:mod:`bot.identity.sealed`: encrypted with a key from the app secret), which
  is how the verification form keeps the 記号・番号 for the birth date's turn.

Masking happens on save, after the turn: the actions of the turn read the clear
message from the in-memory tracker, and nothing is written in clear, not even for one
turn. Intents, action names, slot names and timestamps are never masked.

Configured in the rasa server's endpoints (:func:`bot.launcher.tracker_store_config`)
as ``type: bot.redacting_tracker_store.RedactingSQLTrackerStore`` with the parameters
of Rasa's ``SQL`` type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import (
    ActiveLoop,
    AllSlotsReset,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

from bot.identity.redact import personal_spans
from bot.identity.sealed import is_sealed
from bot.insights.events import ensure_indexes

STORE_TYPE = "bot.redacting_tracker_store.RedactingSQLTrackerStore"

VERIFICATION_MASK = "［本人確認の入力］"
REQUEST_MASK = "［請求の入力］"

VERIFICATION_FORM = "verification_form"
MEMBER_NUMBER_SLOT = "id_member_number"
BIRTH_DATE_SLOT = "id_birth_date"
VERIFICATION_SLOTS = (MEMBER_NUMBER_SLOT, BIRTH_DATE_SLOT, "id_code")
# Free-text answers of a request; the request dialog keeps them in the draft row.
REQUEST_TEXT_SLOTS = ("case_agent", "case_wrong", "case_right", "case_reason")
FORMS = (VERIFICATION_FORM, "case_form", "cancel_case_form")
PERSONAL_SLOTS = frozenset((*VERIFICATION_SLOTS, *REQUEST_TEXT_SLOTS))
REQUESTED_SLOT = "requested_slot"


@dataclass(frozen=True)
class _State:
    """The form that runs and the slot it asked for, as of one event."""

    active_loop: str | None = None
    requested_slot: str | None = None

    def whole_mask(self) -> str | None:
        """The mask replacing a member's answer whole, or None if it is not a form answer."""
        if self.active_loop == VERIFICATION_FORM and self.requested_slot in VERIFICATION_SLOTS:
            return VERIFICATION_MASK
        if self.active_loop in FORMS and self.requested_slot in REQUEST_TEXT_SLOTS:
            return REQUEST_MASK
        return None


def _next_state(state: _State, event: Event) -> _State:
    if isinstance(event, ActiveLoop):
        return _State(event.name, state.requested_slot if event.name else None)
    if isinstance(event, SlotSet) and event.key == REQUESTED_SLOT:
        return _State(state.active_loop, event.value)
    if isinstance(event, (Restarted, SessionStarted, AllSlotsReset)):
        return _State()
    return state


def mask_text(text: str) -> tuple[str, Callable[[int], int]]:
    """``text`` with personal values masked, and where each offset of ``text`` went.

    Args:
        text: a message.

    Returns:
        The masked text (as :func:`bot.identity.redact.redact` makes it) and a function
        from an offset in ``text`` to the offset in the masked text; an offset inside a
        masked value goes to the start of its mask.
    """
    pieces: list[str] = []
    # (original start, original end, new start, new end) per masked value
    moved: list[tuple[int, int, int, int]] = []
    cursor = length = 0
    for start, end, mask in personal_spans(text):
        kept = text[cursor : max(cursor, start)]
        pieces.append(kept)
        length += len(kept)
        moved.append((max(cursor, start), end, length, length + len(mask)))
        pieces.append(mask)
        length += len(mask)
        cursor = max(cursor, end)
    pieces.append(text[cursor:])

    def offset(position: int) -> int:
        shift = 0
        for start, end, new_start, new_end in moved:
            if position < start:
                break
            if position < end:
                return new_start
            shift = new_end - end
        return position + shift

    return "".join(pieces), offset


def _masked_entities(
    entities: Sequence[Any], offset: Callable[[int], int], mask: Callable[[str], str]
) -> list[Any]:
    masked = []
    for entity in entities:
        if not isinstance(entity, dict):
            continue
        entity = dict(entity)
        if isinstance(entity.get("value"), str):
            entity["value"] = mask(entity["value"])
        elif entity.get("value") is not None:
            entity["value"] = mask(json.dumps(entity["value"], ensure_ascii=False))
        for key in ("start", "end"):
            if isinstance(entity.get(key), int):
                entity[key] = offset(entity[key])
        masked.append(entity)
    return masked


def _masked_user(data: dict[str, Any], whole: str | None) -> dict[str, Any]:
    data = copy.deepcopy(data)
    said = data.get("text")
    text = said if isinstance(said, str) else ""
    masked_text: str
    offset: Callable[[int], int]
    if whole is not None:
        masked_text, offset = whole, lambda position: min(position, len(whole))

        def mask(value: str) -> str:
            return whole

    else:
        masked_text, offset = mask_text(text)

        def mask(value: str) -> str:
            return mask_text(value)[0]

    if data.get("text") is not None:
        data["text"] = masked_text
    parse_data = data.get("parse_data")
    if isinstance(parse_data, dict):
        if parse_data.get("text") is not None:
            parse_data["text"] = masked_text
        parse_data["entities"] = _masked_entities(parse_data.get("entities") or [], offset, mask)
    return data


def _masked_event(data: dict[str, Any], state: _State) -> dict[str, Any]:
    """One event as it is written: masked where it may hold a personal value."""
    kind = data.get("event")
    if kind == "user":
        return _masked_user(data, state.whole_mask())
    if kind == "slot" and data.get("name") in PERSONAL_SLOTS and data.get("value") is not None:
        value = data["value"]
        if is_sealed(value):
            return data
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return {**data, "value": mask_text(text)[0]}
    if kind == "entities":
        return {
            **data,
            "entities": _masked_entities(
                data.get("entities") or [], lambda p: p, lambda v: mask_text(v)[0]
            ),
        }
    if kind == "bot" and state.active_loop in FORMS and isinstance(data.get("text"), str):
        return {**data, "text": mask_text(data["text"])[0]}
    return data


def masked_events(events: Sequence[Event], stored: int) -> list[dict[str, Any]]:
    """The data of the tracker's events not yet stored, masked as they are written.

    Only the new events are masked: the cost of a save does not grow with the
    detectors' work on old turns. The older events are read only for the form and the
    question each new message answers.

    Args:
        events: the tracker's events, oldest first (those of its latest session).
        stored: how many of them are already in the table.
    """
    written: list[dict[str, Any]] = []
    state = _State()
    for index, event in enumerate(events):
        if index >= stored:
            written.append(_masked_event(event.as_dict(), state))
        state = _next_state(state, event)
    return written


class RedactingSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQL tracker store, writing members' form answers and personal values masked.

    Takes the parameters of Rasa's ``SQL`` tracker store; rows have the same columns
    and shape, so Rasa's ``retrieve`` and the staff console read them as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Rasa's store (which creates its ``events`` table), plus the overview's indexes.

        The privacy officer's overview (:mod:`bot.insights.events`) counts events by
        type and time; its indexes are made here, where the table is made.
        """
        super().__init__(*args, **kwargs)
        ensure_indexes(self.engine)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Write the tracker's new events, masked.

        Args:
            tracker: the conversation after its turn, values in clear.
        """
        await self.stream_events(tracker)
        events = list(tracker.events)
        with self.session_scope() as session:
            query = self._event_query(session, tracker.sender_id, False)
            for data in masked_events(events, query.count()):
                session.add(self._row(tracker.sender_id, data))
            session.commit()

    def _row(self, sender_id: str, data: dict[str, Any]) -> Any:
        return self.SQLEvent(
            sender_id=sender_id,
            type_name=data.get("event"),
            timestamp=data.get("timestamp"),
            intent_name=(data.get("parse_data") or {}).get("intent", {}).get(INTENT_NAME_KEY),
            action_name=data.get("name"),
            data=json.dumps(data),
        )
