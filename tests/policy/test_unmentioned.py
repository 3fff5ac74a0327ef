"""What a policy never names: found per organization, never inside a word."""

import pytest

from bot.policy.profiles.loader import load_profile
from bot.policy.profiles.schema import Fact
from bot.policy.unmentioned import for_unmentioned, unmentioned_subject
from tests.conftest import POLICY_TEXTS

ORG_IDS = sorted(path.stem for path in POLICY_TEXTS.glob("*.txt"))


@pytest.mark.parametrize("org", ORG_IDS)
def test_no_published_policy_names_cookies_recordings_or_ai(org):
    profile = load_profile(org)
    assert unmentioned_subject(profile, "Cookieは何に使っていますか") == (
        "ウェブサイトのクッキー（Cookie）"
    )
    assert unmentioned_subject(profile, "通話を録音していますか") == "通話の録音"
    assert unmentioned_subject(profile, "AIで分析していますか") == "AI（人工知能）での利用"


@pytest.mark.parametrize(
    "text",
    [
        "メール(mail)で送れますか",  # 「ai」 inside a romaji word is not AI
        "海外療養費の申請書は何に使いますか",  # a benefit, not data abroad
        "個人情報の利用目的を教えてください",
        "医療費の通知は誰に届きますか",
    ],
)
def test_ordinary_questions_are_not_caught(text):
    assert unmentioned_subject(load_profile("kokusai-kogyo-kenpo"), text) is None


def test_a_policy_that_names_it_gets_its_usual_answer():
    profile = load_profile("coop-kyosai")
    stated = Fact(summary="当会は通話を録音することがあります。", source="12.")
    with_recording = profile.copy(
        update={"facts": profile.facts.copy(update={"security_measures": stated})}
    )
    assert unmentioned_subject(with_recording, "電話は録音していますか") is None
    assert unmentioned_subject(profile, "電話は録音していますか") == "通話の録音"


def test_only_topic_answers_are_replaced():
    profile = load_profile("gunma-shoko-kyosai")
    text = "アプリの記録も使っていますか"
    replaced = for_unmentioned(profile, "ask_usage_purpose", text, ["ask_usage_purpose"])
    assert replaced and "アプリで記録される情報についての記載が見当たらない" in replaced[0].text
    assert "0120-54-5711" in replaced[0].text
    for intent in ("request_disclosure", "ask_contact", "ask_my_data", "greet"):
        assert for_unmentioned(profile, intent, text, []) is None


def test_a_website_history_is_unmentioned_where_the_policy_is_silent_about_it():
    question = "ホームページを見た履歴を集めていますか"
    assert unmentioned_subject(load_profile("gunma-shoko-kyosai"), question) == (
        "ウェブサイトの閲覧履歴"
    )
    # coop's 4. names 「ウェブサイトの閲覧履歴」: its usage-purpose answer stands.
    assert unmentioned_subject(load_profile("coop-kyosai"), question) is None
    # 受診履歴 is not a website's.
    assert unmentioned_subject(load_profile("gunma-shoko-kyosai"), "受診履歴は何に使う") is None


def test_data_abroad_is_unmentioned_only_where_no_text_names_a_foreign_country():
    question = "データを海外に置いていますか"
    for org in ("gunma-shoko-kyosai", "kokusai-kogyo-kenpo", "benesse-kenpo"):
        assert unmentioned_subject(load_profile(org), "私の情報が外国に送られることは？") == (
            "外国での取扱い・外国への提供"
        )
    # coop's 9. and osaka's 第18条 name foreign countries: their answers stand.
    for org in ("coop-kyosai", "osaka-city-kyosai"):
        assert unmentioned_subject(load_profile(org), "私の情報が外国に送られることは？") is None
    replaced = for_unmentioned(
        load_profile("gunma-shoko-kyosai"), "ask_security_measures", question, []
    )
    assert (
        replaced and "外国での取扱い・外国への提供についての記載が見当たらない" in replaced[0].text
    )
