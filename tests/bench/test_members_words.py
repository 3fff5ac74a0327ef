"""The members' words benchmark (bench/members_words.py): classifying a reply against an
expectation, matching citations to policy sections, and the shape of the dev set. Pure
functions on hand-made replies; no Rasa model, no servers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from bench import members_words as words
from bench.members_words import (
    ASKED_AGAIN,
    NOT_IN_POLICY,
    SECTION,
    TOPIC,
    WRONG,
    BotReply,
    Expectation,
    Prediction,
    Record,
    RestRun,
    before_fallback,
    citations,
    cites,
    classify,
    load_items,
    offline_section,
    rest_section,
)
from tests.conftest import ROOT

PHONE = "03-3273-6974"
CLARIFY = (
    "申し訳ありません、ご質問の内容をうまく読み取れませんでした。"
    "お知りになりたいのは次のどれでしょうか。"
)
NOT_STATED = (
    "申し訳ありません。国際興業健康保険組合の「個人情報保護法に基づく公表事項」には、"
    "手数料についての記載が見当たらないため、こちらではお答えできません。\n"
    f"正確な内容は 国際興業健康保険組合（電話 {PHONE}） へお問い合わせください。"
)
SECURITY = (
    "個人データは、組織的・人的・物理的・技術的な安全管理措置で守られています。\n"
    "（出典：個人情報保護法に基づく公表事項 2.）"
)
VERIFY = "訂正・追加・削除の請求の前に、ご本人確認をさせてください。記号・番号、生年月日をお伺いし…"


def reply(*texts: str, intent: str | None = None, buttons: tuple[str, ...] = ()) -> BotReply:
    return BotReply(tuple(texts), buttons, intent)


# --- classify -------------------------------------------------------------------------


def test_the_expected_intent_is_the_right_topic():
    verdict = classify(
        reply(SECURITY, intent="ask_security_measures"), Expectation("ask_security_measures")
    )
    assert (verdict.outcome, verdict.right) == (TOPIC, True)


def test_another_intent_is_wrong_and_says_which():
    verdict = classify(
        reply(SECURITY, intent="ask_security_measures"), Expectation("ask_usage_purpose")
    )
    assert verdict.outcome == WRONG
    assert "ask_security_measures" in verdict.reason
    assert not verdict.right


def test_asking_again_is_never_right_even_with_the_expected_intent():
    expected = Expectation("ask_fee")
    assert classify(reply(CLARIFY, intent="ask_fee"), expected).outcome == ASKED_AGAIN
    assert (
        classify(reply(CLARIFY, intent="nlu_fallback"), Expectation(section="2.")).outcome
        == ASKED_AGAIN
    )
    assert classify(reply(CLARIFY), Expectation(not_in_policy=True)).outcome == ASKED_AGAIN


def test_a_question_about_a_request_must_be_answered_first():
    expected = Expectation("request_correction", question=True)
    started = reply("訂正・追加・削除のご請求ですね。", VERIFY, intent="request_correction")
    verdict = classify(started, expected)
    assert verdict.outcome == WRONG
    assert "verification" in verdict.reason
    answered = reply(
        "訂正・追加・削除のご請求ですね。",
        intent="request_correction",
        buttons=("この請求を始める",),
    )
    assert classify(answered, expected).outcome == TOPIC
    # The button makes it an answer even if the text mentions the verification to come.
    both = reply(
        "ご請求ですね。", VERIFY, intent="request_correction", buttons=("この請求を始める",)
    )
    assert classify(both, expected).outcome == TOPIC
    # A plain request may start the verification: that is what it asked for.
    assert classify(started, Expectation("request_correction")).outcome == TOPIC


def test_a_question_about_a_request_with_another_intent_is_wrong():
    expected = Expectation("request_suspension", question=True)
    assert classify(reply(SECURITY, intent="ask_security_measures"), expected).outcome == WRONG


def test_a_passage_of_the_expected_section_is_right_whatever_the_intent():
    expected = Expectation(section="2.")
    passage = "…入退室管理…\n（出典：個人情報保護法に基づく公表事項 2.）"
    assert classify(reply(passage, intent="nlu_fallback"), expected).outcome == SECTION
    assert classify(reply(SECURITY, intent="ask_security_measures"), expected).outcome == SECTION
    other = classify(
        reply("…（出典：個人情報保護法に基づく公表事項 1.）", intent="nlu_fallback"), expected
    )
    assert other.outcome == WRONG
    assert "1." in other.reason
    assert classify(reply("はい。", intent="affirm"), expected).reason.endswith("no citation")


def test_an_intent_item_with_a_section_also_accepts_that_passage():
    expected = Expectation("ask_security_measures", section="2.")
    assert classify(reply(SECURITY, intent="nlu_fallback"), expected).outcome == SECTION
    assert classify(reply(SECURITY, intent="ask_security_measures"), expected).outcome == TOPIC
    quoted_elsewhere = reply("…（出典：個人情報保護法に基づく公表事項 4.）", intent="nlu_fallback")
    assert classify(quoted_elsewhere, expected).outcome == WRONG


def test_not_in_policy_needs_the_words_and_the_contact_window():
    expected = Expectation(not_in_policy=True)
    assert classify(reply(NOT_STATED, intent="ask_fee"), expected, [PHONE]).outcome == NOT_IN_POLICY
    assert classify(reply(NOT_STATED, intent="nlu_fallback"), expected, [PHONE]).right
    without_window = classify(reply(NOT_STATED.split("\n")[0]), expected, [PHONE])
    assert without_window.outcome == WRONG
    assert "contact" in without_window.reason
    answered = classify(reply(SECURITY, intent="ask_security_measures"), expected, [PHONE])
    assert answered.outcome == WRONG


def test_an_answer_that_says_not_stated_for_an_intent_item_counts_by_its_intent():
    # The right topic whose profile has nothing: the topic is right (the answer says so).
    assert classify(reply(NOT_STATED, intent="ask_fee"), Expectation("ask_fee")).outcome == TOPIC
    assert (
        classify(reply(NOT_STATED, intent="ask_contact"), Expectation("ask_fee")).outcome == WRONG
    )


# --- citations and sections -----------------------------------------------------------


def test_citations_are_found_with_parentheses_inside_the_title():
    text = (
        "答え\n（出典：個人情報保護に関する基本方針（プライバシーポリシー） 窓口）\n"
        "また（出典：個人情報保護方針 5.）"
    )
    assert citations(text) == [
        "個人情報保護に関する基本方針(プライバシーポリシー) 窓口",
        "個人情報保護方針 5.",
    ]
    assert citations("出典のない答え") == []


@pytest.mark.parametrize(
    ("citation", "label", "named"),
    [
        ("個人情報保護法に基づく公表事項 3.・4.", "4.", True),
        ("個人情報保護法に基づく公表事項 3.・4.", "3.", True),
        ("個人情報保護方針 10.・12.", "2.", False),
        ("個人情報保護方針 10.・12.", "12.", True),
        ("個人情報保護方針 ５．", "5.", True),  # full-width, folded
        ("規程 第3条・第8条〜第13条", "第10条", True),  # a range
        ("規程 第3条・第8条〜第13条", "第14条", False),
        ("規程 第14条・第14条の2・第25条第5項", "第14条", True),
        ("規程 第14条の2", "第14条", False),
        ("規程 第14条の2", "第14条の2", True),
        ("規程 第27条第2項・第4項", "第27条", True),
        ("規程 第27条第2項・第4項", "第2条", False),
        ("規程 第127条", "第27条", False),
        (
            "個人情報保護方針・個人情報の取扱いについて 個人情報の取扱いについて 6.(2)",
            "個人情報の取扱いについて 6.",
            True,
        ),
        (
            "個人情報保護方針・個人情報の取扱いについて 個人情報の取扱いについて 6.(2)",
            "個人情報保護方針 6.",
            False,
        ),
        (
            "個人情報保護方針 2.・個人情報の取扱いについて 1.・5.",
            "個人情報の取扱いについて 5.",
            True,
        ),
        ("個人情報保護方針 2.・個人情報の取扱いについて 1.・5.", "個人情報保護方針 5.", False),
        ("個人情報の取扱いについて 2.・1.(1)", "個人情報の取扱いについて 1.", True),
        (
            "基本方針 【電子メールでのお問い合わせについて】【FAXでのお問い合わせについて】",
            "【FAXでのお問い合わせについて】",
            True,
        ),
        ("基本方針 安全管理措置について・個人情報保護の仕組みの改善", "安全管理措置について", True),
        ("基本方針 安全管理措置について", "事前同意の確認", False),
    ],
)
def test_cites_names_a_section_as_the_policy_prints_it(citation, label, named):
    assert cites(citation, label) is named


def test_before_fallback_is_the_classifier_s_own_intent():
    fallback = {
        "intent": {"name": "nlu_fallback", "confidence": 0.4},
        "intent_ranking": [
            {"name": "nlu_fallback", "confidence": 0.4},
            {"name": "ask_fee", "confidence": 0.3},
        ],
    }
    assert before_fallback(fallback) == "ask_fee"
    assert before_fallback({"intent": {"name": "ask_fee", "confidence": 0.9}}) == "ask_fee"
    assert before_fallback({"intent": {"name": "nlu_fallback"}, "intent_ranking": []}) is None


# --- the markers are what the product says ---------------------------------------------


def test_the_markers_are_in_the_product_s_own_texts():
    from bot.identity.dialog import start_verification
    from bot.policy.answers import clarify, not_stated
    from bot.policy.profiles.loader import load_profile

    profile = load_profile("kokusai-kogyo-kenpo")
    assert words.ASK_AGAIN in clarify(profile, ())[0].text
    assert words.NOT_STATED in not_stated(profile, "手数料").text
    assert words.VERIFICATION_STARTED in start_verification(profile, "開示の請求").text
    assert words.contact_markers("kokusai-kogyo-kenpo") == [PHONE]
    assert words.contact_markers("osaka-city-kyosai") == ["大阪市職員共済組合"]  # no phone


# --- the dev set ----------------------------------------------------------------------


def test_load_items_refuses_an_item_without_exactly_one_expectation(tmp_path: Path):
    def load(item: dict) -> None:
        path = tmp_path / "dev.yml"
        path.write_text(yaml.safe_dump({"items": [item]}, allow_unicode=True), encoding="utf-8")
        load_items(path)

    base = {"org": "coop-kyosai", "text": "質問"}
    for bad in (
        base,
        {**base, "section": "5.", "not_in_policy": True},
        {**base, "intent": "ask_fee", "not_in_policy": True},
        {**base, "section": "5.", "question": True},
        {**base, "intent": "ask_fee", "because": "typo"},
        {"text": "質問", "intent": "ask_fee"},
    ):
        with pytest.raises(ValueError):
            load(bad)
    load({**base, "intent": "request_correction", "question": True, "section": "10."})


@pytest.fixture(scope="module")
def items() -> list[words.DevItem]:
    return load_items()


def test_the_dev_set_is_large_enough_for_every_organization(items):
    profiles = {path.stem for path in (ROOT / "bot" / "policy" / "profiles" / "data").glob("*.yml")}
    per_org = Counter(item.org for item in items)
    assert len(items) >= 320
    assert set(per_org) == profiles
    assert min(per_org.values()) >= 50, per_org
    kinds = Counter(item.expected.kind for item in items)
    assert all(kinds[kind] for kind in words.KINDS), kinds


def test_every_expected_intent_is_a_domain_intent(items):
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    unknown = {item.expected.intent for item in items if item.expected.intent} - set(
        domain["intents"]
    )
    assert not unknown


def test_questions_about_requests_expect_a_request_intent(items):
    wrong = [
        i.text
        for i in items
        if i.expected.question and not str(i.expected.intent).startswith("request_")
    ]
    assert not wrong


def test_every_expected_section_is_in_that_organization_s_policy(items):
    missing = [
        (item.org, item.expected.section)
        for item in items
        if item.expected.section
        and not words.section_labels_in(
            (words.POLICY_TEXTS / f"{item.org}.txt").read_text(encoding="utf-8"),
            item.expected.section,
        )
    ]
    assert not missing


# --- the report -----------------------------------------------------------------------


def test_rest_section_counts_right_as_topic_section_and_not_in_policy():
    def record(org: str, kind: str, outcome: str) -> Record:
        return Record(org, "質問", kind, "x", None, outcome, "", "")

    run = RestRun(
        [
            record("a", "intent", TOPIC),
            record("a", "section", SECTION),
            record("a", "not_in_policy", NOT_IN_POLICY),
            record("b", "intent", ASKED_AGAIN),
            record("b", "question", WRONG),
        ]
    )
    overall = run.tally()
    assert (overall.total, overall.right) == (5, 3)
    assert run.tally("b").right == 0
    assert run.tally(kind="intent").total == 2
    text = "\n".join(rest_section(run))
    assert "| all | 5 | 1 | 1 | 1 | 1 | 1 | 3 | 0.600 |" in text
    assert "| b | 2 | 0 | 0 | 0 | 1 | 1 | 0 | 0.000 |" in text
    assert "| question about a request | 1 |" in text


def test_offline_section_reports_accuracy_before_and_after_the_fallback():
    items = [
        words.DevItem("a", "q1", Expectation("ask_fee")),
        words.DevItem("a", "q2", Expectation("ask_fee")),
        words.DevItem("b", "q3", Expectation("request_correction", question=True)),
    ]
    run = words.OfflineRun(
        "model.tar.gz",
        dev=[
            Prediction("q1", "ask_fee", "a", "ask_fee", "ask_fee", 0.9),
            Prediction("q2", "ask_fee", "a", "nlu_fallback", "ask_fee", 0.3),
            Prediction("q3", "request_correction", "b", "ask_my_data", "ask_my_data", 0.8),
        ],
    )
    text = "\n".join(offline_section(run, items))
    assert "| dev set, intent items | 3 | 0.667 | 0.333 | 0.333 | 0.333 |" in text
    assert "| a | 2 | 1.000 | 0.500 | 0.500 | 0.000 |" in text
    assert "| kind: question about a request | 1 | 0.000 | 0.000 | 0.000 | 1.000 |" in text
    assert "request_correction → ask_my_data" in text


def test_make_bench_prints_the_members_words_section_after_the_targets():
    from datetime import datetime, timezone

    from bench.__main__ import Results, render, targets
    from bench.latency import Settings
    from bench.report import Machine

    results = Results(Settings(), Machine.collect(), datetime.now(timezone.utc))
    results.words = ["", "## 6. Members' words (bench/data/members_words.yml)", "", "figures"]
    report = render(results, targets(results))
    assert report.index("## 5. Targets") < report.index("## 6. Members' words")
    assert "figures" in report


def test_bench_section_without_models_says_so(tmp_path: Path):
    lines = words.bench_section(tmp_path / "none.tar.gz", None, tmp_path)
    assert lines[1].startswith("## 6. Members' words")
    assert "No model was trained" in lines[-1]
