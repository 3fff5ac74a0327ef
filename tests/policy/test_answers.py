import re
import unicodedata

import pytest

from bot.policy.answers import (
    FACT_INTENTS,
    INTENT_LABELS,
    answer,
    citation,
    clarify,
    contact_line,
)
from bot.policy.profiles.loader import load_profile
from bot.policy.profiles.topics import TOPIC_IDS
from tests.conftest import POLICY_TEXTS

ORG_IDS = sorted(path.stem for path in POLICY_TEXTS.glob("*.txt"))
ANSWERED_INTENTS = sorted(
    {*INTENT_LABELS, "greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "out_of_scope"}
)
PHONE_SCREEN_CHARS = 450


def policy_text(org_id: str) -> str:
    raw = (POLICY_TEXTS / f"{org_id}.txt").read_text(encoding="utf-8")
    return unicodedata.normalize("NFKC", raw)


def texts(replies) -> str:
    return "\n".join(reply.text for reply in replies)


@pytest.fixture(scope="module", params=ORG_IDS)
def profile(request):
    return load_profile(request.param)


@pytest.mark.parametrize("intent", ANSWERED_INTENTS)
def test_every_answer_is_polite_short_and_sourced_or_sends_to_the_window(profile, intent):
    replies = answer(profile, intent)
    assert replies
    for reply in replies:
        assert reply.text.strip()
        assert len(reply.text) <= PHONE_SCREEN_CHARS, reply.text
    # Labelled records (相手先：…) may stand alone; the answer as a whole is polite.
    assert re.search(r"(です|ます|ません|さい)か?。", texts(replies))
    if intent.startswith("ask_") or intent.startswith("request_"):
        body = texts(replies)
        titles = [profile.policy_title, *profile.documents.values()]
        assert any(f"出典：{title}" in body for title in titles) or contact_line(profile) in body


@pytest.mark.parametrize("intent", ANSWERED_INTENTS)
def test_no_answer_states_a_number_the_policy_does_not_contain(profile, intent):
    policy_numbers = set(re.findall(r"\d+", policy_text(profile.id)))
    for topics in ([], sorted(TOPIC_IDS)[:3]):
        body = unicodedata.normalize("NFKC", texts(answer(profile, intent, topics)))
        invented = set(re.findall(r"\d+", body)) - policy_numbers
        assert not invented, (invented, body)


@pytest.mark.parametrize("intent", sorted(FACT_INTENTS))
def test_a_fact_the_policy_does_not_state_is_not_answered(profile, intent):
    fact = getattr(profile.facts, FACT_INTENTS[intent])
    body = texts(answer(profile, intent))
    if fact is None:
        assert "記載が見当たらない" in body
        assert contact_line(profile) in body
    else:
        assert fact.summary in body
        assert citation(profile, fact.source) in body


def test_a_question_about_one_kind_of_information_answers_that_row():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    body = texts(answer(kokusai, "ask_usage_purpose", ["bank_account"]))
    assert "加入者の口座情報" in body
    assert "保険料等の還付" in body
    assert "健康診査" not in body
    assert "（出典：個人情報保護法に基づく公表事項 1.）" in body


def test_a_question_about_traffic_accidents_answers_the_third_party_row():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    body = texts(answer(kokusai, "ask_usage_purpose", ["third_party_act"]))
    assert "加害者及び保険会社に対する求償" in body
    assert "口座" not in body


def test_a_kind_of_information_the_table_lacks_is_said_so_with_the_overview():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    replies = answer(kokusai, "ask_usage_purpose", ["website"])
    assert "記載が見当たらない" in replies[0].text
    assert "03-3273-6974" in replies[0].text
    assert "資格に関する情報" in replies[1].text


def test_the_overview_offers_kinds_of_information_as_quick_replies():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    *_, reply = answer(kokusai, "ask_usage_purpose")
    assert reply.buttons
    assert all(b.payload.startswith('/ask_usage_purpose{"info_category": ') for b in reply.buttons)


def test_fees_are_never_made_up():
    assert "記載が見当たらない" in texts(answer(load_profile("kokusai-kogyo-kenpo"), "ask_fee"))
    assert "無料" in texts(answer(load_profile("gunma-shoko-kyosai"), "ask_fee"))
    osaka = texts(answer(load_profile("osaka-city-kyosai"), "ask_fee"))
    assert "規程細則" in osaka
    assert "円" not in osaka


def test_deadlines_come_from_the_profile():
    osaka = texts(answer(load_profile("osaka-city-kyosai"), "ask_processing_time"))
    assert "30日" in osaka and "第28条" in osaka
    kokusai = texts(answer(load_profile("kokusai-kogyo-kenpo"), "ask_processing_time"))
    assert "記載が見当たらない" in kokusai
    assert "日以内" not in kokusai


def test_contact_window_shows_only_what_is_published():
    benesse = texts(answer(load_profile("benesse-kenpo"), "ask_contact"))
    assert "086" in benesse and "10:00" in benesse
    osaka = texts(answer(load_profile("osaka-city-kyosai"), "ask_contact"))
    assert "電話番号の記載がありません" in osaka
    assert not re.search(r"\d{2,4}-\d{2,4}-\d{3,4}", osaka)
    # A member who wants to post a request is told the address is not published.
    assert "窓口の住所は公表されている方針に記載が見当たらない" in benesse
    kokusai = texts(answer(load_profile("kokusai-kogyo-kenpo"), "ask_contact"))
    assert "住所：〒104-8460" in kokusai and "記載が見当たらない" not in kokusai


def test_joint_use_lists_the_published_partners():
    benesse = texts(answer(load_profile("benesse-kenpo"), "ask_joint_use"))
    assert "健康保険組合連合会" in benesse
    assert "事業所" in benesse
    gunma = texts(answer(load_profile("gunma-shoko-kyosai"), "ask_joint_use"))
    assert "群馬県火災共済協同組合" in gunma


def test_my_number_falls_back_to_the_rows_that_mention_it():
    body = texts(answer(load_profile("kokusai-kogyo-kenpo"), "ask_my_number"))
    assert "番号法に基づく情報連携" in body


def test_requests_explain_the_procedure_and_ask_for_verification_without_personal_data():
    osaka = load_profile("osaka-city-kyosai")
    body = texts(answer(osaka, "request_disclosure"))
    assert "開示" in body and "本人であることの確認が必要" in body
    mailing = texts(answer(load_profile("kokusai-kogyo-kenpo"), "request_mailing_opt_out"))
    assert "記載が見当たらない" in mailing
    benesse = texts(answer(load_profile("benesse-kenpo"), "request_mailing_opt_out"))
    assert "受け付けています" in benesse


@pytest.mark.parametrize("intent", ["ask_my_data", "check_case_status", "cancel_case"])
def test_own_data_questions_need_verification_first(profile, intent):
    body = texts(answer(profile, intent))
    assert "本人であることの確認が必要" in body


def test_clarification_offers_the_likely_topics_first():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    [reply] = clarify(kokusai, ["ask_fee", "nlu_fallback", "ask_processing_time", "greet"])
    payloads = [b.payload for b in reply.buttons]
    assert payloads[:2] == ["/ask_fee", "/ask_processing_time"]
    assert len(payloads) == 3


def test_an_unknown_intent_gets_the_clarification():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    assert answer(kokusai, "no_such_intent")[0].buttons


@pytest.mark.parametrize("intent", ["request_correction", "check_case_status", "ask_my_data"])
def test_own_data_and_requests_are_offered_here_after_verification(intent):
    # Answered like this inside the verification form: it must say what this chat does.
    kokusai = load_profile("kokusai-kogyo-kenpo")
    body = texts(answer(kokusai, intent))
    assert "このチャットで本人確認" in body and "できない" not in body


# --- retention, foreign transfer, the organization itself --------------------------------


def test_retention_is_answered_only_where_the_policy_speaks_of_it():
    osaka = texts(answer(load_profile("osaka-city-kyosai"), "ask_retention"))
    assert "遅滞なく消去するよう努めます" in osaka and "第8条" in osaka
    assert "年数は記載されていません" in osaka  # no figure invented
    for org in ("kokusai-kogyo-kenpo", "benesse-kenpo", "gunma-shoko-kyosai", "coop-kyosai"):
        assert "記載が見当たらない" in texts(answer(load_profile(org), "ask_retention")), org


def test_foreign_transfer_cites_the_policy_or_says_it_is_silent():
    coop = texts(answer(load_profile("coop-kyosai"), "ask_foreign_transfer"))
    assert "外国で取扱う場合" in coop and "9.）" in coop
    osaka = texts(answer(load_profile("osaka-city-kyosai"), "ask_foreign_transfer"))
    assert "外国にある第三者への提供を認める旨の本人の同意" in osaka and "第18条）" in osaka
    kokusai = texts(answer(load_profile("kokusai-kogyo-kenpo"), "ask_foreign_transfer"))
    assert "記載が見当たらない" in kokusai and "03-3273-6974" in kokusai


def test_the_organization_s_address_and_representative_as_far_as_published():
    benesse = texts(answer(load_profile("benesse-kenpo"), "ask_organization"))
    assert "鬼沢 裕子" in benesse and "住所についての記載が見当たらない" in benesse
    kokusai = texts(answer(load_profile("kokusai-kogyo-kenpo"), "ask_organization"))
    assert "八重洲 2-10-3" in kokusai and "代表者についての記載が見当たらない" in kokusai
    osaka = answer(load_profile("osaka-city-kyosai"), "ask_organization")
    # The rule that they be made known (第21条) comes first, then that they are not printed.
    assert len(osaka) == 2 and "住所・代表者についての記載が見当たらない" in osaka[1].text


def test_the_organization_answer_cites_the_rule_when_the_values_are_not_published():
    osaka = texts(answer(load_profile("osaka-city-kyosai"), "ask_organization"))
    assert "（出典：大阪市職員共済組合個人情報保護に関する規程 第21条）" in osaka
    assert "住所・代表者についての記載が見当たらない" in osaka
    gunma = texts(answer(load_profile("gunma-shoko-kyosai"), "ask_organization"))
    assert "第21条" not in gunma and "田部井" in gunma
