"""The published texts divided into their documents' own sections and articles."""

import re

import pytest

from bot.policy.answers import citation
from bot.policy.passages import (
    DOCUMENTS_FILE,
    TEXTS_DIR,
    PassageError,
    fact_passages,
    text_passages,
)
from bot.policy.profiles.loader import load_profile
from tests.conftest import POLICY_TEXTS

ORG_IDS = sorted(path.stem for path in POLICY_TEXTS.glob("*.txt"))

EXPECTED_LABELS = {
    "kokusai-kogyo-kenpo": [
        "1. 個人情報の利用目的",
        "2. 安全管理措置の内容",
        "3. 保有個人データの開示等の請求に応じる手続",
        "4. 保有個人データの取扱いに関する苦情の申出先",
    ],
    "benesse-kenpo": [
        "基本理念",
        "個人情報の範囲",
        "法令等の遵守について",
        "個人の権利について",
        "個人情報の取扱いについて",
        "安全管理措置について",
        "個人情報保護の仕組みの改善",
        "窓口",
        "（末尾）",
        "【電子メールでのお問い合わせについて】",
        "【FAXでのお問い合わせについて】",
    ],
    "gunma-shoko-kyosai": [
        "前文",
        "1.",
        "6.",
        "（末尾）",
        "1. 全ての個人情報の利用目的",
        "3. 個人情報の共同利用",
        "6. 個人情報に関するお問合せ対応",
    ],
    "coop-kyosai": [
        "1.はじめに",
        "5.個人データの第三者への提供",
        "9.個人データの安全管理措置",
        "12.個人情報の取扱いに関する問い合わせ窓口",
        "（末尾）",
    ],
    "osaka-city-kyosai": [
        "第1条 目的",
        "第5条の2 不適正な利用の禁止",
        "第14条の2 個人情報の漏えい等の報告等",
        "第27条 開示等の請求等方法",
        "第28条 開示等の請求等に対する決定通知",
        "第39条 見直し",
        "附則",
    ],
}


@pytest.fixture(params=ORG_IDS)
def org_id(request):
    return request.param


def test_the_shipped_texts_are_the_published_ones():
    shared = POLICY_TEXTS.parents[2].parent / "shared" / "policies"
    if not shared.is_dir():
        pytest.skip("../shared/policies is not beside the project")
    for org in ORG_IDS:
        assert (POLICY_TEXTS / f"{org}.txt").read_bytes() == (shared / f"{org}.txt").read_bytes()


def test_every_organization_is_divided(org_id):
    found = text_passages(org_id)
    labels = [passage.label for passage in found]
    for label in EXPECTED_LABELS[org_id]:
        assert label in labels, (label, labels)


def test_no_passage_is_empty(org_id):
    for passage in text_passages(org_id):
        assert passage.lines
        assert all(line.strip() == line != "" for line in passage.lines)


def test_every_character_of_a_passage_is_the_texts(org_id):
    text = (POLICY_TEXTS / f"{org_id}.txt").read_text(encoding="utf-8")
    # the text without layout: list bullets and heading marks at line starts, white space
    unmarked = (re.sub(r"^(?:#+\s*|[-•]\s+)+", "", line.strip()) for line in text.splitlines())
    raw = re.sub(r"\s", "", "".join(unmarked))
    for passage in text_passages(org_id):
        for line in passage.lines:
            # table cells are shown with a space between them; markup is gone
            for cell in line.split("\u3000"):
                assert re.sub(r"\s", "", cell) in raw, (passage.label, cell)


def test_osaka_articles_are_whole_and_in_order():
    articles = [p for p in text_passages("osaka-city-kyosai") if p.label.startswith("第")]
    numbers = [re.findall(r"第(\d+)条(?:の(\d+))?", p.label)[0] for p in articles]
    assert [int(n) for n, sub in numbers if not sub] == list(range(1, 40))
    by_label = {p.label: p for p in articles}
    article_27 = by_label["第27条 開示等の請求等方法"]
    assert article_27.lines[0].startswith("第22条第1項の規定による求め")
    assert "(1) 未成年者又は成年被後見人の法定代理人" in article_27.lines
    article_28 = by_label["第28条 開示等の請求等に対する決定通知"]
    assert "30日以内" in article_28.lines[0]
    assert article_28.context == "第6章 保有個人データの開示等"
    # No caption or chapter of the next article is left in a body.
    for passage in articles:
        assert not any(re.match(r"^[（(][^）)]+[）)]$", line) for line in passage.lines)
        assert not any(line.startswith("第") and "章" in line[:5] for line in passage.lines)


def test_a_page_break_inside_a_sentence_is_joined():
    definitions = {p.label: p for p in text_passages("osaka-city-kyosai")}["第2条 定義"]
    joined = [line for line in definitions.lines if line.startswith("(3) 要配慮個人情報")]
    assert joined and joined[0].endswith("が含まれる個人情報をいう。")


def test_benesse_documents_are_cited_by_their_own_titles():
    documents = {p.document for p in text_passages("benesse-kenpo")}
    assert {
        "個人情報保護に関する基本方針（プライバシーポリシー）",
        "事前同意の確認",
        "個人情報の共同利用について",
        "個人的なお問い合わせやご相談についてのお願い",
    } <= documents


def test_heading_only_sections_give_no_passage():
    labels = [p.label for p in text_passages("coop-kyosai")]
    assert "6.個人データの共同利用" not in labels
    assert "11.採用活動における個人情報の取扱いについて" not in labels
    assert not any("サイドメニュー" in p.text for p in text_passages("coop-kyosai"))


def test_each_document_says_where_it_was_published_or_why_not(org_id):
    profile = load_profile(org_id)
    for passage in text_passages(org_id):
        assert passage.url_note
        if passage.url:
            raw = (POLICY_TEXTS / f"{org_id}.txt").read_text(encoding="utf-8")
            assert passage.url in raw or passage.url == profile.contact.url


def test_the_citation_has_answers_form_for_the_main_document(org_id):
    profile = load_profile(org_id)
    main = [p for p in text_passages(org_id) if p.document == profile.policy_title]
    for passage in main:
        assert passage.citation() == citation(profile, passage.label)


def test_profile_facts_are_passages_with_their_intent(org_id):
    facts = fact_passages(load_profile(org_id))
    assert facts
    assert all(f.kind == "fact" and f.intent and f.lines for f in facts)
    assert "ask_contact" in {f.intent for f in facts}


def test_a_text_that_does_not_divide_as_described_is_an_error(tmp_path):
    (tmp_path / "x.txt").write_text("タイトル\n本文です。\n", encoding="utf-8")
    (tmp_path / DOCUMENTS_FILE).write_text(
        "x:\n  documents:\n    - {title: T, begins: 違うタイトル, url: null, url_note: n,"
        " sections: whole}\n",
        encoding="utf-8",
    )
    with pytest.raises(PassageError, match="違うタイトル"):
        text_passages("x", tmp_path)


def test_an_organization_without_a_text_has_no_passages(tmp_path):
    assert text_passages("sixth-org", tmp_path) == ()
    assert (TEXTS_DIR / DOCUMENTS_FILE).is_file()
