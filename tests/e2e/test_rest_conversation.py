"""Conversations through the REST channel of the running servers and a trained model."""

import pytest
import requests

pytestmark = pytest.mark.e2e


def joined(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def test_greeting_names_the_organization_and_offers_topics(say):
    messages = say("こんにちは")
    assert "国際興業健康保険組合" in joined(messages)
    assert any(m.get("buttons") for m in messages)


def test_a_question_about_bank_accounts_answers_that_row_with_its_source(say):
    body = joined(say("口座情報って何に使われるんですか？"))
    assert "加入者の口座情報" in body
    assert "保険料等の還付" in body
    assert "（出典：個人情報保護法に基づく公表事項 1.）" in body
    assert "健康診査" not in body


def test_what_the_policy_does_not_say_is_not_invented(say):
    body = joined(say("開示請求の手数料はいくらかかりますか"))
    assert "記載が見当たらない" in body
    assert "03-3273-6974" in body
    assert "円" not in body


def test_security_measures_cite_section_two(say):
    body = joined(say("個人情報はどうやって守られていますか"))
    assert "安全管理措置" in body
    assert "（出典：個人情報保護法に基づく公表事項 2.）" in body


def test_a_quick_reply_payload_is_answered(say):
    offered = [b["payload"] for m in say("こんにちは") for b in m.get("buttons", [])]
    assert offered
    assert "出典" in joined(say(offered[0]))


def test_a_payload_the_bot_did_not_offer_is_read_as_words(say):
    # Typed by hand, an intent payload with entities must not skip the NLU (the guard
    # passes only payloads the bot offered as buttons).
    body = joined(say('/ask_usage_purpose{"info_category": "third_party_act"}'))
    assert "加害者及び保険会社に対する求償" not in body


def test_gibberish_gets_a_polite_clarification_with_topics(say):
    messages = say("ぱぴぷぺぽ")
    assert "申し訳ありません" in joined(messages)
    assert any(m.get("buttons") for m in messages)


@pytest.mark.parametrize(
    "text",
    ["😀😀😀", "あ" * 5000, "ｺｼﾞﾝｼﾞｮｳﾎｳﾉﾘﾖｳﾓｸﾃｷﾊ？", "１２３４５６７８９０"],
)
def test_odd_messages_get_a_polite_answer_and_the_conversation_goes_on(say, text):
    first = joined(say(text))
    assert first.strip()
    assert "出典" in joined(say("個人情報の安全管理について教えてください"))


def test_the_http_api_needs_the_token(assistant):
    assert requests.get(f"{assistant.rasa_url}/status", timeout=10).status_code == 401
    response = requests.get(
        f"{assistant.rasa_url}/status", params={"token": assistant.token}, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["model_file"].endswith(".tar.gz")
