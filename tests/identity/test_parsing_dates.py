import datetime
import re

import pytest

from bot.identity.parsing import InputError, parse_birth_date
from tests.identity.dates import ACCEPTED_DATES

TODAY = datetime.date(2024, 6, 1)
D = datetime.date


def assert_polite_japanese(message: str) -> None:
    assert re.search(r"[\u3040-\u309f]", message), "written in Japanese"
    assert message.endswith("。")
    assert re.search(r"(ください|です|ます|ません)(（[^）]*）)?。", message), "です・ます form"
    assert len(message) <= 120, "fits a phone screen"


def refusal(text: str, today: datetime.date = TODAY) -> str:
    with pytest.raises(InputError) as caught:
        parse_birth_date(text, today)
    assert_polite_japanese(caught.value.message)
    return caught.value.message


@pytest.mark.parametrize(("text", "expected"), ACCEPTED_DATES.items(), ids=ACCEPTED_DATES.keys())
def test_reads_every_accepted_spelling(text, expected):
    assert parse_birth_date(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 明治 ended and 大正 began on the same day, as did 大正 and 昭和.
        ("明治45年7月30日", D(1912, 7, 30)),
        ("大正元年7月30日", D(1912, 7, 30)),
        ("大正15年12月25日", D(1926, 12, 25)),
        ("昭和元年12月25日", D(1926, 12, 25)),
        ("昭和64年1月7日", D(1989, 1, 7)),
        ("平成元年1月8日", D(1989, 1, 8)),
        ("平成31年4月30日", D(2019, 4, 30)),
        ("令和元年5月1日", D(2019, 5, 1)),
    ],
)
def test_first_and_last_days_of_eras_are_valid(text, expected):
    assert parse_birth_date(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("明治45年7月31日", "明治は45年7月30日まで"),
        ("大正元年7月29日", "大正は元年7月30日から15年12月25日まで"),
        ("大正15年12月26日", "大正は元年7月30日から15年12月25日まで"),
        ("昭和元年12月24日", "昭和は元年12月25日から64年1月7日まで"),
        ("昭和64年1月8日", "昭和は元年12月25日から64年1月7日まで"),
        ("S64.1.8", "昭和は元年12月25日から64年1月7日まで"),
        ("昭和65年1月1日", "昭和は元年12月25日から64年1月7日まで"),
        ("平成元年1月7日", "平成は元年1月8日から31年4月30日まで"),
        ("平成31年5月1日", "平成は元年1月8日から31年4月30日まで"),
        ("平成40年1月1日", "平成は元年1月8日から31年4月30日まで"),
        ("H40.1.1", "平成は元年1月8日から31年4月30日まで"),
        ("令和元年4月30日", "令和は元年5月1日から"),
        ("R1.4.30", "令和は元年5月1日から"),
        ("昭和0年1月1日", "昭和は元年12月25日から64年1月7日まで"),
    ],
)
def test_dates_outside_their_era_are_refused_with_the_era_span(text, span):
    message = refusal(text)
    assert span in message
    assert "「1985年4月1日」" in message


@pytest.mark.parametrize(
    "text",
    [
        "1985年2月30日",
        "1985年13月1日",
        "1985年4月31日",
        "1985年0月10日",
        "1985年4月0日",
        "2023年2月29日",
        "1900年2月29日",
        "19851301",
        "19850230",
        "昭和60年2月30日",
        "S60.13.1",
        "昭和六十年四月三十一日",
    ],
)
def test_impossible_dates_are_refused_as_not_existing(text):
    assert "存在しません" in refusal(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024年2月29日", D(2024, 2, 29)),
        ("2000/2/29", D(2000, 2, 29)),
        ("H12.2.29", D(2000, 2, 29)),
    ],
)
def test_leap_days_exist_in_leap_years(text, expected):
    assert parse_birth_date(text, TODAY) == expected


@pytest.mark.parametrize(
    "text", ["85/4/1", "85年4月1日", "60年4月1日", "六十年四月一日", "元年5月1日"]
)
def test_years_without_four_digits_or_an_era_ask_for_one(text):
    message = refusal(text)
    assert "西暦の4桁" in message
    assert "元号" in message
    assert "「1985年4月1日」" in message and "「昭和60年4月1日」" in message


@pytest.mark.parametrize("text", ["1899年12月31日", "18991231", "明治32年12月31日", "0000/1/1"])
def test_dates_before_1900_are_refused(text):
    assert "1900年1月1日より前" in refusal(text)


def test_1900_is_accepted():
    assert parse_birth_date("1900年1月1日", TODAY) == D(1900, 1, 1)


def test_today_is_accepted_and_tomorrow_refused():
    assert parse_birth_date("2024年6月1日", TODAY) == TODAY
    assert "今日より後" in refusal("2024年6月2日")
    assert "今日より後" in refusal("令和6年6月2日")
    assert "今日より後" in refusal("令和10年1月1日")


def test_today_defaults_to_the_system_date():
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    assert parse_birth_date("1985-04-01") == D(1985, 4, 1)
    with pytest.raises(InputError):
        parse_birth_date(f"{tomorrow.year}年{tomorrow.month}月{tomorrow.day}日")


@pytest.mark.parametrize(
    "text",
    ["", "わかりません", "4月1日", "1985年4月", "昭和60年", "十十年1月1日", "X", "1985"],
)
def test_text_without_a_full_date_asks_for_one_with_examples(text):
    message = refusal(text)
    assert "「1985年4月1日」や「昭和60年4月1日」" in message


def test_error_message_does_not_repeat_the_input():
    assert "1977" not in refusal("1977年2月30日")


def test_first_date_in_the_text_is_read():
    assert parse_birth_date("1985年4月1日、いや1986年5月2日", TODAY) == D(1985, 4, 1)


LONG_INPUTS = {
    "digits": "1" * 5000,
    "slashes": "1/" * 2500,
    "era names": "昭和" * 2500,
    "era letters": "S1." * 1667,
    "kanji numerals": "一" * 5000,
    "year markers": "十年" * 2500,
    "spaces between": "1985" + " " * 4990 + "年4月1日",
    "emoji and line breaks": "😀\n" * 2500,
    "date after padding": "あ" * 4990 + "1985年4月1日",
}


@pytest.mark.parametrize("text", LONG_INPUTS.values(), ids=LONG_INPUTS.keys())
def test_long_or_odd_input_returns_or_raises_input_error(text):
    try:
        parse_birth_date(text, TODAY)
    except InputError as error:
        assert_polite_japanese(error.message)


def test_date_after_long_padding_is_still_found():
    assert parse_birth_date(LONG_INPUTS["date after padding"], TODAY) == D(1985, 4, 1)
