"""The answers state what each organization's published policy says, with the right source."""

import re
import unicodedata

import pytest

from bot.policy.answers import JOINT_USE_LABELS, answer
from bot.policy.profiles.loader import load_profile
from bot.policy.profiles.schema import JointUse
from tests.conftest import POLICY_TEXTS

ORG_IDS = sorted(path.stem for path in POLICY_TEXTS.glob("*.txt"))


def policy_text(org_id: str) -> str:
    raw = (POLICY_TEXTS / f"{org_id}.txt").read_text(encoding="utf-8")
    return unicodedata.normalize("NFKC", raw)


def said(org_id: str, intent: str) -> str:
    return "\n".join(reply.text for reply in answer(load_profile(org_id), intent))


def test_kokusai_third_party_answer_gives_the_provisions_of_its_usage_table():
    body = said("kokusai-kogyo-kenpo", "ask_third_party_provision")
    assert "記載が見当たらない" not in body
    for purpose in (
        "健康保険組合連合会に対する高額医療交付金の申請",
        "国に対する特定健診の実績報告",
        "国に対する特定保健指導の実績報告",
        "コラボヘルスの一環である健診結果の事業者への提供",
        "加害者及び保険会社に対する求償",
    ):
        assert purpose in body
        assert purpose in policy_text("kokusai-kogyo-kenpo")
    assert body.endswith("（出典：個人情報保護法に基づく公表事項 1.）")


def test_kokusai_outsourcing_answer_gives_the_health_checkup_outsourcing():
    body = said("kokusai-kogyo-kenpo", "ask_outsourcing")
    assert "医療機関への健診委託" in body
    assert body.endswith("（出典：個人情報保護法に基づく公表事項 1.）")


def test_gunma_third_party_answer_includes_the_accident_investigation():
    body = said("gunma-shoko-kyosai", "ask_third_party_provision")
    assert "共済事故の調査" in body
    assert "他の共済、保険会社、調査会社、修理業者等" in body
    assert "1.(1)" in body


def test_gunma_outsourcing_answer_names_the_agencies_among_its_contractors():
    body = said("gunma-shoko-kyosai", "ask_outsourcing")
    assert "業務委託先（代理店を含みます）" in body
    assert "4.・1.(1)" in body


def test_benesse_joint_use_answer_shows_who_handles_the_data():
    body = said("benesse-kenpo", "ask_joint_use")
    assert "公益財団法人日本生産性本部・情報システム事業部および協力会社" in body
    assert "高額医療グループ職員" in body
    assert "事業所：健康情報等の取り扱い規程による" in body


@pytest.mark.parametrize("org_id", ORG_IDS)
def test_joint_use_answer_shows_every_field_the_profile_holds(org_id):
    profile = load_profile(org_id)
    body = said(org_id, "ask_joint_use")
    for entry in profile.joint_use:
        for name, value in entry:
            if name != "source" and value:
                assert value in body, (name, value)
    if profile.joint_use_note:
        assert profile.joint_use_note.summary in body
        for detail in profile.joint_use_note.details:
            assert detail in body


def test_every_joint_use_field_has_a_label_in_the_answer():
    assert set(JOINT_USE_LABELS) == set(JointUse.__fields__) - {"source"}


def test_coop_recruitment_note_cites_section_eleven():
    coop = load_profile("coop-kyosai")
    body = "\n".join(reply.text for reply in answer(coop, "ask_usage_purpose", ["recruitment"]))
    assert "11.採用活動における個人情報の取扱いについて" in body
    assert "（出典：個人情報保護方針 2.・3.・4.・11.）" in body


@pytest.mark.parametrize("org_id", ORG_IDS)
def test_usage_purpose_overview_states_every_detail_of_the_table(org_id):
    profile = load_profile(org_id)
    replies = answer(profile, "ask_usage_purpose")
    body = "\n".join(reply.text for reply in replies)
    assert profile.usage_purposes.summary in body
    for detail in profile.usage_purposes.details:
        assert detail in body
    for row in profile.usage_purposes.categories:
        assert row.label in body
    if profile.usage_purposes.categories:
        assert replies[-1].buttons


@pytest.mark.parametrize(
    ("org_id", "intent", "stated"),
    [
        ("kokusai-kogyo-kenpo", "ask_security_measures", "緊急連絡体制"),
        ("kokusai-kogyo-kenpo", "ask_security_measures", "効果を検証"),
        ("kokusai-kogyo-kenpo", "ask_security_measures", "権限のない者による閲覧の防止"),
        ("kokusai-kogyo-kenpo", "ask_security_measures", "容易に個人データが判明しない"),
        ("kokusai-kogyo-kenpo", "ask_security_measures", "常に見直し"),
        ("kokusai-kogyo-kenpo", "ask_usage_purpose", "取得の状況からみて利用目的が明らかな場合"),
        ("kokusai-kogyo-kenpo", "ask_usage_purpose", "当組合の権利又は正当な利益"),
        ("gunma-shoko-kyosai", "ask_security_measures", "国が定める指針その他の規範を遵守"),
        ("benesse-kenpo", "ask_usage_purpose", "申し込まれた保健事業に関する範囲で使用"),
        ("benesse-kenpo", "ask_security_measures", "国が定める指針その他の規範を遵守"),
        ("benesse-kenpo", "ask_outsourcing", "個人情報の処理に関する外部委託に関する措置"),
        ("coop-kyosai", "ask_security_measures", "随時見直して改善"),
        ("coop-kyosai", "ask_security_measures", "質問及び苦情処理の窓口"),
        ("osaka-city-kyosai", "ask_usage_purpose", "偽りその他不正の手段"),
        ("osaka-city-kyosai", "ask_usage_purpose", "助長し、又は誘発するおそれ"),
        ("osaka-city-kyosai", "ask_security_measures", "第39条"),
        ("osaka-city-kyosai", "ask_third_party_provision", "業務の承継に伴う提供"),
        ("osaka-city-kyosai", "ask_third_party_provision", "相当措置の継続的な実施"),
    ],
)
def test_answers_state_what_the_policy_also_says(org_id, intent, stated):
    assert stated in said(org_id, intent)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("org_id", ORG_IDS)
def test_what_a_profile_quotes_is_in_the_policy_text(org_id):
    text = policy_text(org_id)
    for string in _strings(load_profile(org_id).dict()):
        for quoted in re.findall(r"「([^「」]+)」", string):
            assert unicodedata.normalize("NFKC", quoted) in text, quoted
