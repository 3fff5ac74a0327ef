import re

import pytest

from bot.identity.parsing import InputError, parse_code


def assert_polite_japanese(message: str) -> None:
    assert re.search(r"[\u3040-\u309f]", message), "written in Japanese"
    assert message.endswith("。")
    assert re.search(r"(ください|です|ます|ません)(（[^）]*）)?。", message), "です・ます form"
    assert len(message) <= 120, "fits a phone screen"


@pytest.mark.parametrize(
    "text",
    [
        "123456",
        "１２３４５６",
        "123 456",
        "123　456",
        "123-456",
        "12 34 56",
        "コードは123456です",
        "123456です😀",
        "\n123456\n",
        "123456 2回目です",
        "【健保】認証コード：123456（有効期限10分）",
    ],
)
def test_reads_the_six_digits(text):
    assert parse_code(text) == "123456"


def test_keeps_leading_zeros():
    assert parse_code("012345") == "012345"


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("12345", "6桁の数字"),
        ("1234567", "6桁の数字"),
        ("123 4567", "6桁の数字"),
        ("", "6桁の数字"),
        ("コードが届きません", "6桁の数字"),
        ("abcdef", "6桁の数字"),
        ("12345a", "数字だけ"),
        ("A23456", "数字だけ"),
        ("１２３４５ｂ", "数字だけ"),
        ("123456と654321", "1つだけ"),
    ],
)
def test_refuses_politely(text, phrase):
    with pytest.raises(InputError) as caught:
        parse_code(text)
    assert phrase in caught.value.message
    assert_polite_japanese(caught.value.message)


@pytest.mark.parametrize(
    "text",
    ["1" * 5000, "1 " * 2500, "1-" * 2500, "😀\n" * 2500, "a1" * 2500],
    ids=["digits", "spaced digits", "dashed digits", "emoji and line breaks", "letters and digits"],
)
def test_long_or_odd_input_returns_or_raises_input_error(text):
    with pytest.raises(InputError):
        parse_code(text)
