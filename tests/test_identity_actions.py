"""The identity actions with tracker fixtures, on a real migrated database with demo data.

In the style of RasaHQ/financial-demo: a ``Tracker.from_dict`` fixture, assertions on
the returned events and on ``dispatcher.messages``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.identity import ActionMyData, ActionVerificationDone, ValidateVerificationForm
from actions.policy_answers import ActionAnswerPolicy

pytest_plugins = ["tests.db_fixtures"]

SESSION_START = {"event": "session_started", "timestamp": 1000.0}


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return demo


def tracker(
    text: str = "",
    intent: str = "inform",
    slots: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    sender: str = "member-1",
) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []}
    events = [
        SESSION_START,
        *(history or []),
        {"event": "user", "text": text, "parse_data": latest},
    ]
    return Tracker.from_dict(
        {
            "sender_id": sender,
            "slots": slots or {},
            "latest_message": latest,
            "events": events,
            "paused": False,
            "followup_action": None,
            "active_loop": {"name": "verification_form"} if slots else {},
            "latest_action_name": "action_listen",
        }
    )


def run(action, tracker: Tracker) -> tuple[list[dict[str, Any]], str]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker, {}))
    return events, "\n".join(m.get("text") or "" for m in dispatcher.messages)


def slot_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e["event"] == "slot"}


def outbox_code(tmp_path) -> str:
    last = (tmp_path / "var" / "outbox.jsonl").read_text("utf-8").splitlines()[-1]
    match = re.search(r"\d{6}", json.loads(last)["text"])
    assert match
    return match.group()


def verified_history(tmp_path, sender: str = "member-1") -> list[dict[str, Any]]:
    """Runs the three form steps through the validation action; returns the history."""
    form = ValidateVerificationForm()
    history: list[dict[str, Any]] = []
    for text, slot in [
        ("記号１００１ 番号２３", "id_member_number"),
        ("S60.4.1", "id_birth_date"),
        (None, "id_code"),
    ]:
        text = text or outbox_code(tmp_path)
        events, _ = run(
            form, tracker(text, slots={"requested_slot": slot}, history=history, sender=sender)
        )
        history += [{"event": "user", "text": text}, *events]
    return history


def test_own_data_before_verification_starts_the_form(database):
    events, said = run(ActionMyData(), tracker("私の登録内容を見たい", "ask_my_data"))
    assert "本人確認" in said
    assert {"event": "followup", "name": "verification_form"} in [
        {"event": e["event"], "name": e.get("name")} for e in events
    ]
    assert slot_events(events)["pending_request"] == "ask_my_data"


def test_the_member_number_is_kept_masked(database):
    events, said = run(
        ValidateVerificationForm(),
        tracker("１００１の２３です", slots={"requested_slot": "id_member_number"}),
    )
    assert slot_events(events) == {"id_member_number": "記号****・番号**23", "id_input_failures": 0}
    assert said == ""


def test_factors_send_a_code_and_the_slot_keeps_no_birth_date(database, tmp_path):
    history = [
        {"event": "user", "text": "1001-23"},
        {"event": "slot", "name": "id_member_number", "value": "記号****・番号**23"},
    ]
    events, said = run(
        ValidateVerificationForm(),
        tracker("昭和60年4月1日", slots={"requested_slot": "id_birth_date"}, history=history),
    )
    assert "090-****-5678" in said
    assert slot_events(events)["id_birth_date"] == "****年**月**日"
    assert re.fullmatch(r"\d{6}", outbox_code(tmp_path))


def test_a_full_verification_then_shows_the_own_record(database, tmp_path):
    history = verified_history(tmp_path)
    final = slot_events(history)
    assert (final["verification_outcome"], final["id_code"]) == ("verified", "******")
    assert final["requested_slot"] is None
    done_events, said = run(
        ActionVerificationDone(),
        tracker("", slots={"pending_request": "ask_my_data"}, history=history),
    )
    assert "確認できました" in said
    assert "2010年4月1日" in said and "山田 花子 様" in said
    assert "訂正等の請求ができます。（出典：" in said  # the policy offers it: cited
    assert slot_events(done_events)["pending_request"] is None
    # Verified now, in this session: the next question is answered straight away.
    _, said = run(ActionMyData(), tracker("もう一度見せて", "ask_my_data", history=history))
    assert "2010年4月1日" in said


def test_a_new_session_is_not_verified(database, tmp_path):
    history = verified_history(tmp_path)
    restarted = [*history, {"event": "restart", "timestamp": 2000.0}]
    _events, said = run(ActionMyData(), tracker("見せて", "ask_my_data", history=restarted))
    assert "本人確認" in said and "2010年" not in said


def test_forged_slots_grant_nothing(database):
    forged = {
        "verification_outcome": "verified",
        "id_code": "******",
        "id_member_number": "記号****・番号**23",
        "id_birth_date": "****年**月**日",
        "pending_request": "ask_my_data",
    }
    _, said = run(ActionVerificationDone(), tracker("", slots=forged))
    assert "確認できました" not in said and "2010年" not in said
    _, said = run(ActionMyData(), tracker("見せて", "ask_my_data", slots=forged))
    assert "本人確認" in said and "2010年" not in said


def test_a_question_in_the_form_is_answered_and_the_slot_asked_again(database):
    events, said = run(
        ValidateVerificationForm(),
        tracker(
            "口座情報は何に使われますか",
            "ask_usage_purpose",
            slots={"requested_slot": "id_birth_date"},
        ),
    )
    assert "出典" in said
    assert slot_events(events) == {"id_birth_date": None}


def test_stop_ends_the_form(database):
    events, _said = run(
        ValidateVerificationForm(),
        tracker("やっぱりやめます", "stop", slots={"requested_slot": "id_code"}),
    )
    assert slot_events(events)["verification_outcome"] == "cancelled"
    assert slot_events(events)["requested_slot"] is None


def test_repeated_bad_input_offers_to_stop(database):
    form = ValidateVerificationForm()
    events, said = run(form, tracker("わかりません", slots={"requested_slot": "id_birth_date"}))
    assert slot_events(events) == {"id_birth_date": None, "id_input_failures": 1}
    assert "1985年4月1日" in said
    dispatcher = CollectingDispatcher()
    asyncio.run(
        form.run(
            dispatcher,
            tracker(
                "2月30日",
                slots={"requested_slot": "id_birth_date", "id_input_failures": 1},
            ),
            {},
        )
    )
    assert any(b["payload"] == "/stop" for m in dispatcher.messages for b in m["buttons"])


def test_another_persons_data_is_refused(database):
    _, said = run(ActionAnswerPolicy(), tracker("妻の登録内容を見たい", "ask_other_person_data"))
    assert "ほかの方の個人情報" in said
