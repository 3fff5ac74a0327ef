import re

import pytest

from bot.identity.parsing import InputError, mask_phone, normalize_phone


def assert_polite_japanese(message: str) -> None:
    assert re.search(r"[\u3040-\u309f]", message), "written in Japanese"
    assert message.endswith("。")
    assert re.search(r"(ください|です|ます|ません)(（[^）]*）)?。", message), "です・ます form"
    assert len(message) <= 120, "fits a phone screen"


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("090-1234-5678", "+819012345678"),
        ("09012345678", "+819012345678"),
        ("０９０−１２３４−５６７８", "+819012345678"),
        ("０９０ー１２３４ー５６７８", "+819012345678"),
        ("090 1234 5678", "+819012345678"),
        ("(090)1234-5678", "+819012345678"),
        ("+81 90 1234 5678", "+819012345678"),
        ("+819012345678", "+819012345678"),
        ("+81-90-1234-5678", "+819012345678"),
        ("080-9876-5432", "+818098765432"),
        ("03-3273-6974", "+81332736974"),
        ("0332736974", "+81332736974"),
        ("06-6123-4567", "+81661234567"),
        ("050-1234-5678", "+815012345678"),
        ("電話番号は090-1234-5678です", "+819012345678"),
        ("090-1234-5678です😀\n", "+819012345678"),
    ],
)
def test_reads_japanese_numbers_to_e164(text, e164):
    assert normalize_phone(text) == e164


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("", "市外局番から"),
        ("わかりません", "市外局番から"),
        ("12345", "市外局番から"),
        ("090-1234-567", "市外局番から"),
        ("090-1234-56789", "市外局番から"),
        ("0901234567890123", "市外局番から"),
        ("090-1234-56a8", "数字だけ"),
        ("O90-1234-5678", "数字だけ"),
        ("+1 650 253 0000", "日本国内"),
        ("+44 20 7946 0958", "日本国内"),
        ("090-1234-5678と03-3273-6974", "1つだけ"),
    ],
)
def test_refuses_politely(text, phrase):
    with pytest.raises(InputError) as caught:
        normalize_phone(text)
    assert phrase in caught.value.message
    assert_polite_japanese(caught.value.message)


def test_same_number_twice_is_one_number():
    assert normalize_phone("090-1234-5678（09012345678）") == "+819012345678"


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+819012345678", "090-****-5678"),
        ("090-1234-5678", "090-****-5678"),
        ("09012345678", "090-****-5678"),
        ("０９０−１２３４−５６７８", "090-****-5678"),
        ("+81332736974", "03-****-6974"),
        ("03-3273-6974", "03-****-6974"),
        ("+81 3 3273 6974", "03-****-6974"),
        ("0120-123-456", "0120-***-456"),
        ("050-1234-5678", "050-****-5678"),
        ("+16502530000", "+1 ***-***-0000"),
    ],
)
def test_mask_phone_hides_the_middle_group(number, masked):
    assert mask_phone(number) == masked


@pytest.mark.parametrize("text", ["", "garbage", "12", "記号1001", "😀" * 5000, "1" * 5000])
def test_mask_phone_never_echoes_what_it_cannot_read(text):
    assert mask_phone(text) == "***-****-****"


def test_mask_phone_round_trips_normalize_phone():
    assert mask_phone(normalize_phone("０９０ー１２３４ー５６７８")) == "090-****-5678"


LONG_INPUTS = {
    "digits": "1" * 5000,
    "dashed digits": "1-" * 2500,
    "many numbers": "090-1234-5678 " * 357,
    "emoji and line breaks": "😀\n" * 2500,
    "number after padding": "あ" * 4980 + "090-1234-5678",
}


@pytest.mark.parametrize("text", LONG_INPUTS.values(), ids=LONG_INPUTS.keys())
def test_long_or_odd_input_returns_or_raises_input_error(text):
    try:
        normalize_phone(text)
    except InputError as error:
        assert_polite_japanese(error.message)
