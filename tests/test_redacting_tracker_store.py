"""The redacting tracker store, on real SQLite and PostgreSQL, made as the rasa server makes it.

Each turn is played as Rasa plays it: the tracker is retrieved from the store, the turn's
events are added to it in memory (where the actions read them), and it is saved. The
raw rows of Rasa's ``events`` table are then searched for the member's values.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.identity.sealed import seal, unseal
from bot.launcher import REDACTING_STORE, tracker_store_config
from bot.redacting_tracker_store import (
    REQUEST_MASK,
    VERIFICATION_MASK,
    RedactingSQLTrackerStore,
    mask_text,
)
from tests.conftest import ROOT

SENDER = "rest:member-1"
SECRET = "store-test-secret"
T0 = 1_795_000_000.0
NUMBER_MESSAGE = "記号4812 番号37です"
BIRTH_DATE = "昭和60年4月1日"
CODE = "１２３４５６"
PHONE_MESSAGE = "電話番号は090-1234-5678です"
# What must not be found anywhere in the table once verification is over.
CLEAR_VALUES = ("4812", "番号37", BIRTH_DATE, "60年", CODE, "123456", "090-1234-5678", "5678")


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture
def store(db_url: str, domain: Domain) -> Iterator[SQLTrackerStore]:
    """The tracker store of the rasa server's endpoints, on the test database."""
    made = TrackerStore.create(EndpointConfig(**tracker_store_config(db_url)), domain)
    assert isinstance(made, RedactingSQLTrackerStore)
    yield made
    made.engine.dispose()


def turn(store: SQLTrackerStore, events: Sequence[Event]) -> DialogueStateTracker:
    """One turn: retrieve, add the turn's events in memory, save; returns the in-memory tracker."""
    tracker = asyncio.run(store.retrieve(SENDER)) or DialogueStateTracker(
        SENDER, store.domain.slots
    )
    for event in events:
        tracker.update(event, store.domain)
    asyncio.run(store.save(tracker))
    return tracker


def raw_rows(store: SQLTrackerStore) -> list[dict]:
    with store.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT type_name, intent_name, action_name, data FROM events"
                " WHERE sender_id = :sender ORDER BY id"
            ),
            {"sender": SENDER},
        ).mappings()
        return [dict(row) for row in rows]


def table_text(store: SQLTrackerStore) -> str:
    """Every row as stored, and again with its JSON's escapes decoded (Rasa writes \\uXXXX)."""
    rows = raw_rows(store)
    decoded = [json.dumps(json.loads(row["data"]), ensure_ascii=False) for row in rows]
    return "\n".join([*(str(row) for row in rows), *decoded])


def user(text: str, intent: str, at: float, entities: list[dict] | None = None) -> UserUttered:
    return UserUttered(
        text,
        intent={"name": intent, "confidence": 0.9},
        entities=entities or [],
        parse_data={
            "text": text,
            "intent": {"name": intent, "confidence": 0.9},
            "entities": entities or [],
        },
        timestamp=at,
        input_channel="rest",
    )


def asks(slot: str, at: float) -> list[Event]:
    return [SlotSet("requested_slot", slot, timestamp=at), ActionExecuted("action_listen")]


def start_verification() -> list[Event]:
    return [
        ActionExecuted("action_session_start", timestamp=T0),
        SessionStarted(timestamp=T0),
        ActionExecuted("action_listen", timestamp=T0),
        user("登録内容を確認したい", "ask_my_data", T0 + 1),
        ActionExecuted("action_my_data", timestamp=T0 + 2),
        BotUttered("ご登録内容の確認の前に、ご本人確認をさせてください。", timestamp=T0 + 2),
        SlotSet("pending_request", "ask_my_data", timestamp=T0 + 2),
        ActionExecuted("verification_form", timestamp=T0 + 2),
        ActiveLoop("verification_form", timestamp=T0 + 2),
        *asks("id_member_number", T0 + 2),
    ]


def give_number() -> list[Event]:
    return [
        user(NUMBER_MESSAGE, "inform", T0 + 3),
        ActionExecuted("verification_form", timestamp=T0 + 4),
        SlotSet("id_member_number", seal(NUMBER_MESSAGE, SECRET), timestamp=T0 + 4),
        *asks("id_birth_date", T0 + 4),
    ]


def give_birth_date() -> list[Event]:
    entity = {"entity": "birth_date", "start": 0, "end": len(BIRTH_DATE), "value": BIRTH_DATE}
    return [
        user(BIRTH_DATE, "inform", T0 + 5, [entity]),
        ActionExecuted("verification_form", timestamp=T0 + 6),
        BotUttered(
            "ご登録の電話番号（090-****-5678）あてに、6桁の認証コードをSMSでお送りしました。",
            timestamp=T0 + 6,
        ),
        SlotSet("id_birth_date", "****年**月**日", timestamp=T0 + 6),
        *asks("id_code", T0 + 6),
    ]


def give_code() -> list[Event]:
    return [
        user(CODE, "inform", T0 + 7),
        ActionExecuted("verification_form", timestamp=T0 + 8),
        SlotSet("id_code", "******", timestamp=T0 + 8),
        SlotSet("verification_outcome", "verified", timestamp=T0 + 8),
        SlotSet("requested_slot", None, timestamp=T0 + 8),
        ActiveLoop(None, timestamp=T0 + 8),
        ActionExecuted("action_verification_done", timestamp=T0 + 8),
        BotUttered("ご本人であることを確認できました。ありがとうございます。", timestamp=T0 + 8),
        ActionExecuted("action_listen", timestamp=T0 + 8),
    ]


def test_a_verification_leaves_no_value_in_clear_in_the_events_table(store):
    turn(store, start_verification())
    during = turn(store, give_number())
    assert during.latest_message is not None and during.latest_message.text == NUMBER_MESSAGE

    # Masked as soon as its turn is saved; the birth date's turn unseals it from the slot.
    kept = asyncio.run(store.retrieve(SENDER))
    assert kept is not None
    assert [e.text for e in kept.events if isinstance(e, UserUttered)][-1] == VERIFICATION_MASK
    assert [value for value in CLEAR_VALUES if value in table_text(store)] == []
    assert unseal(kept.get_slot("id_member_number"), SECRET) == NUMBER_MESSAGE

    during = turn(store, give_birth_date())
    assert during.latest_message is not None and during.latest_message.text == BIRTH_DATE
    assert during.latest_message.entities[0]["value"] == BIRTH_DATE
    turn(store, give_code())
    entity = {"entity": "phone", "start": 5, "end": 18, "value": "090-1234-5678"}
    after = turn(store, [user(PHONE_MESSAGE, "inform", T0 + 9, [entity])])
    assert after.latest_message is not None and after.latest_message.text == PHONE_MESSAGE

    stored = table_text(store)
    assert [value for value in CLEAR_VALUES if value in stored] == []

    rows = raw_rows(store)
    said = [json.loads(row["data"]) for row in rows if row["type_name"] == "user"]
    assert [event["text"] for event in said] == [
        "登録内容を確認したい",
        VERIFICATION_MASK,
        VERIFICATION_MASK,
        VERIFICATION_MASK,
        "電話番号は[電話]です",
    ]
    assert said[2]["parse_data"]["entities"][0]["value"] == VERIFICATION_MASK
    # The phone entity now spans its mask in the masked text.
    phone = said[4]["parse_data"]["entities"][0]
    assert said[4]["text"][phone["start"] : phone["end"]] == "[電話]"
    # What staff read besides the values stays: intents, actions, slot names, times.
    assert [row["intent_name"] for row in rows if row["type_name"] == "user"] == [
        "ask_my_data",
        "inform",
        "inform",
        "inform",
        "inform",
    ]
    assert "action_verification_done" in [row["action_name"] for row in rows]
    slots = [json.loads(row["data"]) for row in rows if row["type_name"] == "slot"]
    assert {"id_member_number", "id_birth_date", "id_code", "verification_outcome"} <= {
        slot["name"] for slot in slots
    }
    assert {"verification_outcome": "verified", "id_code": "******"}.items() <= {
        slot["name"]: slot["value"] for slot in slots
    }.items()
    assert said[0]["timestamp"] == T0 + 1

    # Rasa reads the masked conversation back as it reads its own.
    retrieved = asyncio.run(store.retrieve(SENDER))
    assert retrieved is not None
    assert len(retrieved.events) == len(after.events)
    assert retrieved.get_slot("verification_outcome") == "verified"
    assert retrieved.active_loop_name is None
    assert retrieved.latest_message is not None
    assert retrieved.latest_message.intent["name"] == "inform"


def test_a_number_is_never_stored_in_clear_even_when_the_member_stops(store):
    turn(store, start_verification())
    turn(store, give_number())
    assert "4812" not in table_text(store)

    turn(
        store,
        [
            user("やめます", "stop", T0 + 5),
            ActionExecuted("verification_form", timestamp=T0 + 6),
            SlotSet("verification_outcome", "cancelled", timestamp=T0 + 6),
            SlotSet("requested_slot", None, timestamp=T0 + 6),
            ActiveLoop(None, timestamp=T0 + 6),
            ActionExecuted("action_verification_done", timestamp=T0 + 6),
            SlotSet("id_member_number", None, timestamp=T0 + 6),
            ActionExecuted("action_listen", timestamp=T0 + 6),
        ],
    )
    stored = table_text(store)
    assert "4812" not in stored and "番号37" not in stored
    said = [row for row in raw_rows(store) if row["type_name"] == "user"]
    # Any answer to a verification question is masked whole; its intent says what it was.
    assert [json.loads(row["data"])["text"] for row in said] == [
        "登録内容を確認したい",
        VERIFICATION_MASK,
        VERIFICATION_MASK,
    ]
    assert [row["intent_name"] for row in said] == ["ask_my_data", "inform", "stop"]


def test_a_free_text_answer_of_a_request_is_masked_whole(store):
    wrong = "住所が東京都千代田区一丁目のままです"
    turn(
        store,
        [
            SessionStarted(timestamp=T0),
            ActionExecuted("case_form", timestamp=T0),
            ActiveLoop("case_form", timestamp=T0),
            *asks("case_wrong", T0),
        ],
    )
    during = turn(
        store,
        [
            user(wrong, "inform", T0 + 1),
            ActionExecuted("case_form", timestamp=T0 + 2),
            SlotSet("case_wrong", "done", timestamp=T0 + 2),
            *asks("case_right", T0 + 2),
        ],
    )
    assert during.latest_message is not None and during.latest_message.text == wrong
    stored = table_text(store)
    assert "千代田" not in stored and REQUEST_MASK in stored


def test_a_conversation_without_personal_data_is_stored_as_rasa_stores_it(store):
    events = [
        ActionExecuted("action_session_start", timestamp=T0),
        SessionStarted(timestamp=T0),
        ActionExecuted("action_listen", timestamp=T0),
        user("個人情報の利用目的を教えてください", "ask_purpose", T0 + 1),
        ActionExecuted("action_policy_answer", timestamp=T0 + 2),
        BotUttered("利用目的は次のとおりです。", timestamp=T0 + 2),
        ActionExecuted("action_listen", timestamp=T0 + 2),
    ]
    tracker = turn(store, events)
    assert [json.loads(row["data"]) for row in raw_rows(store)] == [
        event.as_dict() for event in tracker.events
    ]


def test_masking_keeps_entity_offsets_on_the_masked_text():
    text = "山田です。090-1234-5678、生年月日は1985年4月1日"
    masked, offset = mask_text(text)
    assert masked == "山田です。[電話]、生年月日は[日付]"
    assert (offset(0), offset(2)) == (0, 2)  # before any value: unchanged
    start = text.index("1985")
    assert masked[offset(start) : offset(len(text))] == "[日付]"
    assert offset(text.index("1234")) == masked.index("[電話]")  # inside a value: its mask


def test_the_endpoints_name_the_redacting_store():
    assert (
        f"{RedactingSQLTrackerStore.__module__}.{RedactingSQLTrackerStore.__qualname__}"
    ) == REDACTING_STORE
