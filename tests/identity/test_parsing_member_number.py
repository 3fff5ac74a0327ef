import dataclasses
import re

import pytest

from bot.identity.parsing import InputError, MemberNumber, parse_member_number
from bot.policy.profiles.loader import load_profile

LONG_INPUTS = {
    "digits": "1" * 5000,
    "dashed digits": "1-" * 2500,
    "labels": "記号" * 2500,
    "labels and spaces": "番号 " * 1666,
    "emoji and line breaks": "😀\n" * 2500,
    "value then padding": "記号1001 番号23" + " " * 4980 + "😀",
    "kana and digits": "ｱ1" * 2500,
}


def assert_polite_japanese(message: str) -> None:
    assert re.search(r"[\u3040-\u309f]", message), "written in Japanese"
    assert message.endswith("。")
    assert re.search(r"(ください|です|ます|ません)(（[^）]*）)?。", message), "です・ます form"
    assert len(message) <= 120, "fits a phone screen"


@pytest.mark.parametrize(
    "text",
    [
        "記号1001 番号23",
        "記号：1001、番号：23です",
        "記号: 1001 番号: 23",
        "1001-23",
        "1001－23",
        "1001ー23",
        "1001−23",
        "1001の23",
        "1001 23",
        "１００１の２３",
        "１００１－２３",
        "記号は1001で番号は23",
        "記号は1001、番号は23です。",
        "1001番の23番",
        "番号23 記号1001",
        "記号と番号は1001-23です",
        "保険証の記号1001 番号23、よろしくお願いします😀",
        "1001\n23",
        "  1001-23  ",
    ],
)
def test_reads_symbol_and_number(text):
    assert parse_member_number(text) == MemberNumber(symbol="1001", number="23")


@pytest.mark.parametrize(
    ("text", "symbol", "number"),
    [
        ("0012-05", "0012", "05"),
        ("記号00001234 番号007", "00001234", "007"),
        ("12345678-12345678", "12345678", "12345678"),
        ("1の2", "1", "2"),
    ],
)
def test_keeps_digits_as_typed_up_to_eight(text, symbol, number):
    parsed = parse_member_number(text)
    assert (parsed.symbol, parsed.number) == (symbol, number)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "数字で入力"),
        ("わかりません", "数字で入力"),
        ("記号　番号", "数字で入力"),
        ("98765", "記号と番号の両方が必要"),
        ("記号98765です", "記号と番号の両方が必要"),
        ("番号は98765", "記号と番号の両方が必要"),
        ("123456789-23", "8桁まで"),
        ("23-123456789", "8桁まで"),
        ("記号123456789 番号23", "8桁まで"),
        ("10O1-23", "数字だけ"),
        ("1001-2a", "数字だけ"),
        ("ａ１００１－２３", "数字だけ"),
        ("1-2-3", "どれが記号と番号か"),
        ("1001-23-01", "どれが記号と番号か"),
    ],
)
def test_refuses_politely_saying_what_is_expected(text, phrase):
    with pytest.raises(InputError) as caught:
        parse_member_number(text)
    assert phrase in caught.value.message
    assert_polite_japanese(caught.value.message)


def test_error_message_does_not_repeat_the_input():
    with pytest.raises(InputError) as caught:
        parse_member_number("98765")
    assert "98765" not in caught.value.message


def test_input_error_is_a_value_error_carrying_its_message():
    with pytest.raises(ValueError, match="両方"):
        parse_member_number("98765")


@pytest.mark.parametrize(
    ("symbol", "number", "masked"),
    [
        ("1001", "23", "記号****・番号**23"),
        ("12345678", "12345678", "記号****・番号**78"),
        ("1", "5", "記号****・番号**5"),
        ("0012", "007", "記号****・番号**07"),
    ],
)
def test_masked_shows_only_last_two_digits_of_number(symbol, number, masked):
    assert MemberNumber(symbol, number).masked() == masked


def test_masked_does_not_reveal_symbol_or_lengths():
    short = MemberNumber("1", "123").masked()
    long = MemberNumber("98761234", "99999923").masked()
    assert "9876" not in long and "1234" not in long
    assert len(short) == len(long)


def test_member_number_is_immutable():
    number = MemberNumber("1001", "23")
    with pytest.raises(dataclasses.FrozenInstanceError):
        number.symbol = "9999"  # type: ignore[misc]


@pytest.mark.parametrize("text", LONG_INPUTS.values(), ids=LONG_INPUTS.keys())
def test_long_or_odd_input_returns_or_raises_input_error(text):
    try:
        parse_member_number(text)
    except InputError as error:
        assert_polite_japanese(error.message)


# --- a 共済 whose members hold a certificate: one number --------------------------------

GUNMA_ID = load_profile("gunma-shoko-kyosai").member_identifier


@pytest.mark.parametrize(
    "text",
    [
        "証書番号 2023001234",
        "2023001234",
        "２０２３００１２３４です",
        "2023-001234",
        "証書番号は2023001234",
    ],
)
def test_a_certificate_number_is_read_as_one_number(text):
    assert parse_member_number(text, GUNMA_ID) == MemberNumber(symbol="", number="2023001234")


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("わかりません", "共済契約の証書の証書番号を数字で入力"),
        ("12345678901", "10桁まで"),
        ("番号は12 と 34 です", "どれが証書番号か"),
    ],
)
def test_a_certificate_number_is_refused_politely_in_its_own_words(text, phrase):
    with pytest.raises(InputError) as caught:
        parse_member_number(text, GUNMA_ID)
    assert phrase in caught.value.message
    assert "保険証" not in caught.value.message and "記号" not in caught.value.message
    assert_polite_japanese(caught.value.message)


def test_a_certificate_number_is_masked_with_its_own_label():
    assert MemberNumber("", "2023001234").masked(GUNMA_ID) == "証書番号**34"
