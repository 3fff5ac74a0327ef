from itertools import pairwise

import pytest
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.tokenizer import JapaneseTokenizer, japanese_tokens

ODD_INPUTS = [
    "口座情報は何に使われますか？",
    "ﾚｾﾌﾟﾄの開示をお願いしたいです",
    "記号１００１　番号２３です",
    "マイナンバーって\nどう使うの？？😀👍🏽",
    "Hello world、個人情報の第三者提供について",
    "㍻31年4月30日生まれです",
    "👨‍👩‍👧家族の分もまとめて医療費通知が届きます",
    "\t  \n",
    "",
]


@pytest.mark.parametrize("text", ODD_INPUTS)
def test_offsets_index_the_original_message(text):
    tokens = japanese_tokens(text)
    for token in tokens:
        assert text[token.start : token.end] == token.text
        assert token.text.strip() == token.text != ""
    starts = [t.start for t in tokens]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in pairwise(tokens))


@pytest.mark.parametrize("text", ODD_INPUTS)
def test_no_visible_character_is_lost(text):
    covered = "".join(t.text for t in japanese_tokens(text))
    assert covered == "".join(ch for ch in text if not ch.isspace())


def test_full_width_digits_and_half_width_kana_are_read_as_words():
    tokens = japanese_tokens("記号１００１のﾚｾﾌﾟﾄ")
    assert [t.text for t in tokens] == ["記号", "１００１", "の", "ﾚｾﾌﾟﾄ"]
    assert [t.lemma for t in tokens] == ["記号", "1001", "の", "レセプト"]


def test_lemmas_and_part_of_speech_are_set():
    tokens = {t.text: t for t in japanese_tokens("何に使われますか")}
    assert tokens["使わ"].lemma == "使う"
    assert tokens["使わ"].get("pos") == "動詞"


def test_a_five_thousand_character_message_is_tokenized_completely():
    text = ("個人情報の開示を請求したいです。" * 320)[:5000]
    tokens = japanese_tokens(text)
    assert tokens[-1].end == len(text.rstrip())
    assert "".join(t.text for t in tokens) == text


def test_rasa_component_tokenizes_a_message():
    tokenizer = JapaneseTokenizer(JapaneseTokenizer.get_default_config())
    message = Message.build(text="ﾏｲﾅﾝﾊﾞｰの利用目的")
    tokenizer.process([message])
    tokens = message.get("text_tokens")
    assert [t.lemma for t in tokens][:2] == ["マイ", "ナンバー"]
    assert tokens[0].start == 0 and tokens[-1].end == len("ﾏｲﾅﾝﾊﾞｰの利用目的")
