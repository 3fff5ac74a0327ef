"""The identity actions with tracker fixtures, on a real migrated database with demo data.

In the style of RasaHQ/financial-demo: trackers from the ``tracker`` fixture
(``Tracker.from_dict``), assertions on the returned events and on ``dispatcher.messages``.
"""

from __future__ import annotations

import asyncio
import re

import pytest
import yaml
from rasa_sdk.executor import CollectingDispatcher

from actions.common import active_profile
from actions.identity import ActionMyData, ActionVerificationDone, ValidateVerificationForm
from actions.policy_answers import ActionAnswerPolicy
from bot.identity.sealed import seal, unseal
from bot.policy.answers import contact_line
from bot.settings import PROJECT_ROOT
from tests.action_runs import run, run_messages, slot_events
from tests.identity.verifying import outbox_code, verify

# 山田 太郎 as a member may type it: full-width digits, the 和暦 abbreviated.
MEMBER_A_TYPED = ("記号１００１ 番号２３", "S60.4.1")


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return demo


def give_factors(tracker, number_text: str, birth_date_text: str, sender: str):
    """The birth-date step after ``number_text`` was accepted as 記号・番号."""
    sealed = seal(number_text)
    history = [
        {"event": "user", "text": number_text},
        {"event": "slot", "name": "id_member_number", "value": sealed},
    ]
    return run_messages(
        ValidateVerificationForm(),
        tracker(
            birth_date_text,
            slots={"requested_slot": "id_birth_date", "id_member_number": sealed},
            history=history,
            sender=sender,
        ),
    )


def outbox_lines(tmp_path) -> list[str]:
    path = tmp_path / "var" / "outbox.jsonl"
    return path.read_text("utf-8").splitlines() if path.exists() else []


def test_own_data_before_verification_starts_the_form(database, tracker):
    events, said = run(ActionMyData(), tracker("私の登録内容を見たい", "ask_my_data"))
    assert "本人確認" in said
    assert {"event": "followup", "name": "verification_form"} in [
        {"event": e["event"], "name": e.get("name")} for e in events
    ]
    assert slot_events(events)["pending_request"] == "ask_my_data"


def test_the_member_number_is_kept_sealed(database, tracker):
    events, said = run(
        ValidateVerificationForm(),
        tracker("１００１の２３です", slots={"requested_slot": "id_member_number"}),
    )
    slots = slot_events(events)
    assert slots["id_input_failures"] == 0
    assert "１００１" not in slots["id_member_number"] and "1001" not in slots["id_member_number"]
    assert unseal(slots["id_member_number"]) == "１００１の２３です"
    assert said == ""


def test_a_forged_or_stale_number_slot_asks_for_the_number_again(database, tracker):
    for forged in ("1001-23", seal("1001-23", "another-secret")):
        events, said = run(
            ValidateVerificationForm(),
            tracker(
                "昭和60年4月1日",
                slots={"requested_slot": "id_birth_date", "id_member_number": forged},
            ),
        )
        assert "090-****-5678" not in said
        assert slot_events(events)["requested_slot"] == "id_member_number"


def test_factors_send_a_code_and_the_slot_keeps_no_birth_date(database, tmp_path, tracker):
    sealed = seal("1001-23")
    history = [
        {"event": "user", "text": "1001-23"},
        {"event": "slot", "name": "id_member_number", "value": sealed},
    ]
    events, said = run(
        ValidateVerificationForm(),
        tracker(
            "昭和60年4月1日",
            slots={"requested_slot": "id_birth_date", "id_member_number": sealed},
            history=history,
        ),
    )
    assert "090-****-5678" in said
    assert slot_events(events)["id_birth_date"] == "****年**月**日"
    assert re.fullmatch(r"\d{6}", outbox_code(tmp_path))


def test_a_full_verification_then_shows_the_own_record(database, tmp_path, tracker):
    history = verify(tracker, tmp_path, MEMBER_A_TYPED)
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


def test_a_new_session_is_not_verified(database, tmp_path, tracker):
    history = verify(tracker, tmp_path, MEMBER_A_TYPED)
    restarted = [*history, {"event": "restart", "timestamp": 2000.0}]
    _events, said = run(ActionMyData(), tracker("見せて", "ask_my_data", history=restarted))
    assert "本人確認" in said and "2010年" not in said


def test_forged_slots_grant_nothing(database, tracker):
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


def test_a_question_in_the_form_is_answered_and_the_slot_asked_again(database, tracker):
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


def test_the_forms_first_step_sets_only_slots_of_the_domain(database, tracker):
    # Rasa validates once as the form starts, before it has asked for anything.
    events, said = run(ValidateVerificationForm(), tracker("私の登録内容を見たい", "ask_my_data"))
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text("utf-8"))
    assert set(slot_events(events)) <= set(domain["slots"])
    assert said == ""


def test_stop_ends_the_form(database, tracker):
    events, _said = run(
        ValidateVerificationForm(),
        tracker("やっぱりやめます", "stop", slots={"requested_slot": "id_code"}),
    )
    assert slot_events(events)["verification_outcome"] == "cancelled"
    assert slot_events(events)["requested_slot"] is None


def test_repeated_bad_input_offers_to_stop(database, tracker):
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


def test_another_persons_data_is_refused(database, tracker):
    _, said = run(ActionAnswerPolicy(), tracker("妻の登録内容を見たい", "ask_other_person_data"))
    assert "ほかの方の個人情報" in said


def test_unknown_number_wrong_birth_date_and_locked_number_get_the_same_reply(
    database, tmp_path, tracker
):
    # 佐藤 次郎's number is locked by three wrong birth dates from three conversations.
    for index in range(3):
        events, _ = give_factors(tracker, "1001-57", "1979年11月2日", f"rest:locker-{index}")
    assert slot_events(events)["verification_outcome"] == "locked"
    unknown = give_factors(tracker, "記号1001 番号99", "昭和60年4月1日", "rest:a")
    wrong_birth_date = give_factors(tracker, "記号1001 番号23", "昭和60年4月2日", "rest:b")
    locked = give_factors(tracker, "1001-57", "1979年11月30日", "rest:c")  # the right factors
    assert unknown == wrong_birth_date == locked
    events, messages = locked
    [message] = messages
    assert "確認できませんでした" in message["text"]
    # The contact window, for a member who is really locked out.
    assert contact_line(active_profile()) in message["text"]
    assert not message["buttons"]
    assert slot_events(events)["requested_slot"] == "id_member_number"
    assert outbox_lines(tmp_path) == []


def test_the_daily_sms_limit_is_answered_with_the_contact_window(
    database, tmp_path, monkeypatch, tracker
):
    monkeypatch.setenv("VERIFICATION_SMS_PER_MEMBER_DAY", "1")
    _, messages = give_factors(tracker, "記号1001 番号23", "S60.4.1", "rest:first")
    assert "090-****-5678" in messages[0]["text"]
    events, messages = give_factors(tracker, "記号1001 番号23", "S60.4.1", "rest:second")
    [message] = messages
    assert "上限" in message["text"] and contact_line(active_profile()) in message["text"]
    assert "090-" not in message["text"]
    slots = slot_events(events)
    assert (slots["verification_outcome"], slots["requested_slot"]) == ("limited", None)
    assert len(outbox_lines(tmp_path)) == 1
    _, said = run(ActionVerificationDone(), tracker("", slots={"verification_outcome": "limited"}))
    assert said == ""  # the limit was already explained


def test_a_resend_past_the_limit_keeps_the_code_already_sent(
    database, tmp_path, monkeypatch, tracker
):
    monkeypatch.setenv("VERIFICATION_SMS_PER_MEMBER_DAY", "1")
    give_factors(tracker, "記号1001 番号23", "S60.4.1", "rest:m")
    code = outbox_code(tmp_path)
    form = ValidateVerificationForm()
    events, messages = run_messages(
        form,
        tracker("再送してください", "resend_code", {"requested_slot": "id_code"}, sender="rest:m"),
    )
    [message] = messages
    assert "上限" in message["text"] and "そのまま入力" in message["text"]
    assert [b["payload"] for b in message["buttons"]] == ["/stop"]
    assert slot_events(events) == {"id_code": None}
    assert len(outbox_lines(tmp_path)) == 1
    events, _ = run_messages(
        form, tracker(code, slots={"requested_slot": "id_code"}, sender="rest:m")
    )
    assert slot_events(events)["verification_outcome"] == "verified"


def test_a_resend_in_the_form_gives_no_more_code_tries(database, tmp_path, tracker):
    give_factors(tracker, "記号1001 番号23", "S60.4.1", "rest:m")
    form = ValidateVerificationForm()

    def say(text: str, intent: str = "inform") -> str:
        _, messages = run_messages(
            form, tracker(text, intent, {"requested_slot": "id_code"}, sender="rest:m")
        )
        return "\n".join(m["text"] for m in messages)

    wrong = "000000" if outbox_code(tmp_path) != "000000" else "111111"
    assert "あと2回" in say(wrong)
    assert "あと1回" in say(wrong)
    assert "090-****-5678" in say("再送してください", "resend_code")
    wrong = "000000" if outbox_code(tmp_path) != "000000" else "111111"
    assert "使えなくなりました" in say(wrong)


def test_a_cooperative_member_verifies_with_the_certificate_number(
    database, monkeypatch, tmp_path, tracker
):
    # gunma-shoko-kyosai's members hold a 共済契約の証書, not a health-insurance card.
    monkeypatch.setenv("PRIVACY_BOT_ORG", "gunma-shoko-kyosai")
    _, asked = run(ActionMyData(), tracker("自分の登録内容を見たい", "ask_my_data"))
    assert "証書番号" in asked and "記号" not in asked
    history = verify(tracker, tmp_path, ("証書番号 2023001234", "1970年5月5日"))
    assert unseal(slot_events(history)["id_member_number"]) == "証書番号 2023001234"
    _, said = run(
        ActionVerificationDone(),
        tracker("", slots={"pending_request": "ask_my_data"}, history=history),
    )
    assert "・証書番号：証書番号**34" in said and "・加入日：2023年4月1日" in said
    assert "被扶養者" not in said and "資格" not in said
