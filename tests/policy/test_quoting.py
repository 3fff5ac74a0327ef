"""Search over the policy texts and the answers quoted from them (real index, no mocks)."""

import re
import unicodedata

import pytest

from bot.policy.answers import INTENT_LABELS, contact_line
from bot.policy.passages import text_passages
from bot.policy.profiles.loader import load_profile
from bot.policy.quoting import (
    LEAD,
    QUOTE_CHARS,
    SENTENCE_CHARS,
    THRESHOLD,
    about_personal_information,
    answer_question,
    find_quote,
    for_fallback,
    for_out_of_scope,
    pieces,
    quote,
    sentences,
)
from bot.policy.search import index_for, query_lemmas
from tests.conftest import POLICY_TEXTS

ORG_IDS = sorted(path.stem for path in POLICY_TEXTS.glob("*.txt"))
PHONE_SCREEN_CHARS = 450

# Questions of our own (not in bench/data/retrieval_dev.yml) and the section answering each.
LANDS_ON = [
    ("kokusai-kogyo-kenpo", "健康診断の結果は何のために使いますか", "1. 個人情報の利用目的"),
    ("kokusai-kogyo-kenpo", "マルウェアや不正アクセスへの対策は", "2. 安全管理措置の内容"),
    (
        "kokusai-kogyo-kenpo",
        "苦情を申し出る先の住所はどこですか",
        "4. 保有個人データの取扱いに関する苦情の申出先",
    ),
    ("benesse-kenpo", "ファックスで問い合わせてもいいですか", "【FAXでのお問い合わせについて】"),
    ("benesse-kenpo", "医療費通知を世帯単位で発送するのはなぜ", "事前同意の確認"),
    ("benesse-kenpo", "健保連と共同利用しているデータ項目は", "個人情報の共同利用について"),
    ("gunma-shoko-kyosai", "火災共済協同組合と共同利用する目的は", "3. 個人情報の共同利用"),
    ("gunma-shoko-kyosai", "手数料は無料ですか", "6. 個人情報に関するお問合せ対応"),
    ("gunma-shoko-kyosai", "採用選考で応募者の情報を使いますか", "1. 全ての個人情報の利用目的"),
    (
        "coop-kyosai",
        "要配慮個人情報はどう扱われますか",
        "8.要配慮個人情報・センシティブ情報の取扱いについて",
    ),
    ("coop-kyosai", "フリーダイヤルの番号を知りたい", "12.個人情報の取扱いに関する問い合わせ窓口"),
    ("coop-kyosai", "個人データを外部に委託するときの監督は", "7.個人データの取扱いの委託"),
    (
        "osaka-city-kyosai",
        "開示請求の決定は何日以内に通知されますか",
        "第28条 開示等の請求等に対する決定通知",
    ),
    ("osaka-city-kyosai", "代理人による開示等の請求はできますか", "第27条 開示等の請求等方法"),
    ("osaka-city-kyosai", "手数料を徴収されるのはどんなときですか", "第29条 手数料"),
    (
        "osaka-city-kyosai",
        "匿名加工情報を作成したら何を公表しますか",
        "第34条 匿名加工情報の作成等",
    ),
]
UNRELATED = ["明日の天気を教えてください", "おいしいラーメン屋はどこ", "ぱぴぷぺぽ", "🍣🍣🍣"]


@pytest.mark.parametrize(
    "text",
    [
        "ｶｲｼﾞ請求の手数料は？",
        "開示請求の手数料は？",
        "ＦＡＸで問い合わせできますか",
        "情報が漏れたら😱どうなるの👍🏽",
        "👨‍👩‍👧家族の医療費通知",
        "",
        "   \n\t",
        ("個人情報の開示を請求したいです。" * 320)[:5000],
    ],
)
def test_questions_of_any_shape_are_read_into_content_words(text):
    words = query_lemmas(text)
    assert all(word.strip() and not word.isdigit() for word in words)
    assert "です" not in words and "の" not in words


def test_full_width_and_half_width_read_alike():
    assert query_lemmas("ＦＡＸの手数料") == query_lemmas("FAXの手数料")
    assert "レセプト" in query_lemmas("ﾚｾﾌﾟﾄを見たい")


def test_a_five_thousand_character_message_is_answered_quickly():
    kokusai = load_profile("kokusai-kogyo-kenpo")
    index_for(kokusai)
    replies = answer_question(kokusai, ("個人情報の開示を請求したいです。" * 320)[:5000])
    assert replies and len(replies[0].text) <= PHONE_SCREEN_CHARS


@pytest.mark.parametrize(("org_id", "question", "label"), LANDS_ON)
def test_a_question_lands_on_the_section_that_answers_it(org_id, question, label):
    found = find_quote(load_profile(org_id), question)
    assert found is not None, question
    assert (found.hit.passage.label or found.hit.passage.document) == label


@pytest.mark.parametrize("org_id", ORG_IDS)
@pytest.mark.parametrize("question", UNRELATED)
def test_an_unrelated_question_gets_the_not_stated_answer_with_the_contact(org_id, question):
    profile = load_profile(org_id)
    assert find_quote(profile, question) is None
    (reply,) = answer_question(profile, question)
    assert "記載が見当たらない" in reply.text
    assert contact_line(profile) in reply.text
    assert LEAD not in reply.text


def test_the_threshold_is_what_decides():
    osaka = load_profile("osaka-city-kyosai")
    question = "開示請求の決定は何日以内に通知されますか"
    found = find_quote(osaka, question)
    assert found is not None and found.hit.coverage >= THRESHOLD
    assert find_quote(osaka, question, threshold=found.hit.coverage + 0.01) is None


def test_the_reply_is_the_lead_the_quote_and_the_citation():
    osaka = load_profile("osaka-city-kyosai")
    found = find_quote(osaka, "開示請求の決定は何日以内に通知されますか", ["ask_fee"])
    assert found is not None
    reply = found.reply()
    assert reply.text == (
        f"{LEAD}\n「{found.text}」\n"
        "（出典：大阪市職員共済組合個人情報保護に関する規程 第28条 開示等の請求等に対する決定通知）"
    )
    assert "30日以内" in found.text
    assert len(reply.text) <= PHONE_SCREEN_CHARS
    assert 2 <= len(reply.buttons) <= 3
    for button in reply.buttons:
        assert button.payload == f"/{button.title and _intent_of(button.title)}"
    assert "/ask_processing_time" in [button.payload for button in reply.buttons]


def _intent_of(title: str) -> str:
    return next(intent for intent, label in INTENT_LABELS.items() if label == title)


def test_a_quote_says_no_number_its_source_does_not():
    for org_id in ORG_IDS:
        profile = load_profile(org_id)
        for question, _ in [(q, label) for org, q, label in LANDS_ON if org == org_id]:
            found = find_quote(profile, question)
            assert found is not None
            body = found.reply().text.replace(found.hit.passage.citation(), "")
            quoted = set(re.findall(r"\d+", unicodedata.normalize("NFKC", found.text)))
            assert set(re.findall(r"\d+", unicodedata.normalize("NFKC", body))) <= quoted


def test_sentences_are_not_cut_inside_brackets():
    line = "この規程は、組合（以下「組合」という。）が管理する。次の文です。"
    assert sentences(line) == [
        "この規程は、組合（以下「組合」という。）が管理する。",
        "次の文です。",
    ]


def _digit_runs(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


@pytest.mark.parametrize("org_id", ORG_IDS)
def test_no_quote_cuts_inside_a_number_name_or_list_item(org_id):
    """Property over every passage and every piece as the best one."""
    profile = load_profile(org_id)
    index = index_for(profile)
    for passage in text_passages(org_id):
        body = "\n".join(passage.lines)
        found = pieces(passage)
        for piece in found:
            words = query_lemmas(piece.text) or ["個人"]
            text = quote(passage, words, index, piece.line)
            if not text:
                assert len(piece.text) > SENTENCE_CHARS or all(
                    len(other.text) > SENTENCE_CHARS for other in found
                )
                continue
            assert len(text) <= max(QUOTE_CHARS, SENTENCE_CHARS)
            # whole lines and sentences: the quote starts a piece and ends one
            quoted_lines = text.split("\n")
            for quoted in quoted_lines:
                assert quoted in body, (passage.label, quoted)
            first, last = quoted_lines[0], quoted_lines[-1]
            assert any(line.startswith(first) for line in passage.lines) or any(
                first.startswith(p.text.strip()) for p in found
            )
            assert any(line.endswith(last) for line in passage.lines) or last.endswith("。")
            # no number cut: every run of digits in the quote is one in the text
            assert _digit_runs(text) <= _digit_runs(body)
            # brackets closed (the texts mix full- and half-width parentheses)
            assert text.count("「") == text.count("」")
            assert sum(map(text.count, "（(")) == sum(map(text.count, "）)"))


def test_out_of_scope_about_personal_information_is_quoted_else_declined():
    coop = load_profile("coop-kyosai")
    quoted = for_out_of_scope(coop, "要配慮個人情報はどう扱われますか", ["ask_sensitive_data"])
    assert quoted[0].text.startswith(LEAD)
    assert (
        "（出典：個人情報保護方針 8.要配慮個人情報・センシティブ情報の取扱いについて）"
        in quoted[0].text
    )
    declined = for_out_of_scope(coop, "保険料はいくらですか", [])
    assert "個人情報の取扱いについてのご質問にお答えしています" in declined[0].text
    # About personal information but not in the policy: it says so, with the window.
    silent = for_out_of_scope(coop, "電話の通話内容の個人データは録音されていますか", [])
    assert "記載が見当たらない" in silent[0].text and "0120-497-350" in silent[0].text
    assert not about_personal_information("扶養に入れる条件は？")
    assert not about_personal_information("赤ちゃんが生まれたので届けを出したい")
    questions = ("窓口の電話は録音していますか", "サイトのクッキーは何のため", "AIに学習させる？")
    for unlisted in questions:
        assert about_personal_information(unlisted), unlisted
    assert about_personal_information("私の個人データはどこに保管されていますか")


def test_fallback_quotes_or_asks_again():
    gunma = load_profile("gunma-shoko-kyosai")
    quoted = for_fallback(gunma, "手数料は無料ですか", ["ask_fee"])
    assert quoted[0].text.startswith(LEAD)
    asked = for_fallback(gunma, "ぱぴぷぺぽ", ["ask_fee"])
    assert "うまく読み取れませんでした" in asked[0].text
    assert asked[0].buttons[0].payload == "/ask_fee"
