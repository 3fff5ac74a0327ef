import pytest

from bot.core.text import collapse_spaces, fold, normalize, normalize_with_spans


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("１００１－２３", "1001-23"),
        ("ﾏｲﾅﾝﾊﾞｰ", "マイナンバー"),
        ("  090ー1234ー5678 ", "090-1234-5678"),
        ("㍻31年", "平成31年"),
    ],
)
def test_normalize_folds_widths_and_dashes(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "text",
    ["ﾚｾﾌﾟﾄ", "㍻３１年①", "👍🏽👨‍👩‍👧 ok", "ｶﾞｷﾞｸﾞ\nｹﾞｺﾞ", "e\u0301té", ""],
)
def test_every_normalized_char_maps_back_into_the_original(text):
    norm = normalize_with_spans(text)
    assert len(norm.spans) == len(norm.text)
    # Spans tile the original: each is the previous one again (NFKC made several
    # characters of one group) or starts where the previous ended.
    end = 0
    previous = None
    for span in norm.spans:
        assert span == previous or span[0] == end
        assert span[0] < span[1] <= len(text)
        previous, end = span, span[1]
    assert end == len(text)


def test_voiced_half_width_kana_is_one_character_spanning_two():
    norm = normalize_with_spans("ｶﾞ")
    assert norm.text == "ガ"
    assert norm.original_span(0, 1) == (0, 2)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＰＲ－２０２６", "PR-2026"),  # full-width letters, digits and hyphen
        ("ﾚｾﾌﾟﾄ", "レセプト"),
        ("㍻", "平成"),
        ("　山田　太郎 ", " 山田 太郎 "),  # ideographic spaces become ASCII ones, kept
        ("090−1234", "090−1234"),  # only normalize() folds the minus sign
    ],
)
def test_fold_is_nfkc_and_nothing_else(raw, expected):
    assert fold(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  a \t b\n\nc  ", "a b c"), ("", ""), ("   ", ""), ("山田 太郎", "山田 太郎")],
)
def test_collapse_spaces_leaves_single_spaces_between_words(raw, expected):
    assert collapse_spaces(raw) == expected
