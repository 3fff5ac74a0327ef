"""action_clarify and action_answer_policy on the new path, as the action server runs them."""

import pytest

from actions.policy_answers import ActionAnswerPolicy, ActionClarify
from bot.policy.quoting import LEAD
from tests.action_runs import run_messages


@pytest.fixture
def osaka(monkeypatch):
    monkeypatch.setenv("PRIVACY_BOT_ORG", "osaka-city-kyosai")


def fallback_message(text: str) -> dict:
    return {
        "text": text,
        "intent": {"name": "nlu_fallback", "confidence": 0.4},
        "intent_ranking": [
            {"name": "nlu_fallback", "confidence": 0.4},
            {"name": "ask_processing_time", "confidence": 0.3},
            {"name": "ask_fee", "confidence": 0.2},
        ],
        "entities": [],
    }


def test_an_unsure_question_the_policy_answers_is_quoted(osaka, tracker):
    text = "開示請求の決定は何日以内に通知されますか"
    events, messages = run_messages(ActionClarify(), tracker(latest_message=fallback_message(text)))
    assert events == []
    (message,) = messages
    assert message["text"].startswith(LEAD)
    assert "30日以内" in message["text"]
    assert message["text"].endswith(
        "（出典：大阪市職員共済組合個人情報保護に関する規程 第28条 開示等の請求等に対する決定通知）"
    )
    payloads = [button["payload"] for button in message["buttons"]]
    assert "/ask_processing_time" in payloads and len(payloads) <= 3


def test_an_unsure_message_the_policy_does_not_answer_is_asked_again(osaka, tracker):
    _, messages = run_messages(
        ActionClarify(), tracker(latest_message=fallback_message("ぱぴぷぺぽ"))
    )
    (message,) = messages
    assert "うまく読み取れませんでした" in message["text"]
    assert [b["payload"] for b in message["buttons"]][:2] == ["/ask_processing_time", "/ask_fee"]


def test_out_of_scope_about_personal_information_is_quoted(osaka, tracker):
    _, messages = run_messages(
        ActionAnswerPolicy(), tracker("匿名加工情報を作成したら何を公表しますか", "out_of_scope")
    )
    (message,) = messages
    assert message["text"].startswith(LEAD)
    assert "第34条 匿名加工情報の作成等）" in message["text"]


def test_out_of_scope_about_something_else_keeps_its_reply(osaka, tracker):
    _, messages = run_messages(ActionAnswerPolicy(), tracker("明日の天気は？", "out_of_scope"))
    (message,) = messages
    assert "個人情報の取扱いについてのご質問にお答えしています" in message["text"]
    assert LEAD not in message["text"]


def test_out_of_scope_naming_personal_information_the_policy_does_not_answer(osaka, tracker):
    # About personal information, and the policy is silent: it says so, with the window.
    _, messages = run_messages(
        ActionAnswerPolicy(), tracker("個人情報の保険料はいくら", "out_of_scope")
    )
    assert "記載が見当たらない" in messages[0]["text"]
    assert "大阪市職員共済組合" in messages[0]["text"] and LEAD not in messages[0]["text"]


@pytest.mark.parametrize(
    ("text", "intent", "subject"),
    [
        # Recognized as a topic with confidence; that topic's answer would not say it.
        ("ホームページのクッキーは何に使っていますか", "ask_usage_purpose", "クッキー（Cookie）"),
        ("個人データは国内のサーバーに置いていますか", "ask_security_measures", "サーバー"),
        ("窓口への電話は録音されていますか", "out_of_scope", "通話の録音"),
        ("私のデータをＡＩの学習に使いますか", "ask_third_party_provision", "AI（人工知能）"),
    ],
)
def test_a_question_about_what_the_policy_never_names_is_told_so(
    osaka, tracker, text, intent, subject
):
    _, messages = run_messages(ActionAnswerPolicy(), tracker(text, intent))
    (message,) = messages
    assert "記載が見当たらない" in message["text"] and subject in message["text"]
    assert "大阪市職員共済組合" in message["text"] and LEAD not in message["text"]
    assert message["buttons"], "the closest topics come as quick replies"


def test_an_unsure_question_about_what_the_policy_never_names_is_told_so(osaka, tracker):
    text = "防犯カメラの映像はいつまで残しますか"
    _, messages = run_messages(ActionClarify(), tracker(latest_message=fallback_message(text)))
    assert "カメラの映像についての記載が見当たらない" in messages[0]["text"]


def test_requests_and_the_contact_window_are_answered_as_usual(osaka, tracker):
    # 「チャットで」 or 「アプリ」 in a request or a contact question changes nothing.
    _, messages = run_messages(
        ActionAnswerPolicy(), tracker("アプリで問い合わせできますか", "ask_contact")
    )
    assert "お問い合わせ窓口は次のとおりです" in messages[0]["text"]
