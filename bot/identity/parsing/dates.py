"""Birth dates as members type them: Western, era (昭和60年, S60.4.1) or 8 digits."""

from __future__ import annotations

import datetime
import re

from bot.core.text import normalize
from bot.identity.parsing.chars import DASHES, KANJI_NUMERALS
from bot.identity.parsing.eras import ERA_LETTERS, ERA_SPELLINGS, Era, era_named
from bot.identity.parsing.errors import InputError
from bot.identity.parsing.numerals import to_int

EXAMPLES = "「1985年4月1日」や「昭和60年4月1日」"
FORMAT_MESSAGE = f"生年月日を{EXAMPLES}のように入力してください。"
TWO_DIGIT_YEAR_MESSAGE = f"年は西暦の4桁か、元号を付けて入力してください（例：{EXAMPLES}）。"
NOT_EXIST_MESSAGE = (
    f"入力された日付は存在しません。月と日をご確認のうえ、{EXAMPLES}のように入力してください。"
)
BEFORE_1900_MESSAGE = "1900年1月1日より前の生年月日は受け付けていません。日付をご確認ください。"
FUTURE_MESSAGE = (
    f"今日より後の日付は生年月日として入力できません。{EXAMPLES}のように入力してください。"
)
EARLIEST = datetime.date(1900, 1, 1)

_SPACE = r"\s{0,2}"  # bounded, so a long run of spaces cannot make a match slow
_SEPARATOR = f"[./{DASHES}]"
_SMALL_NUMBER = f"[0-9]{{1,2}}|[{KANJI_NUMERALS}]{{1,3}}"

# Every spelling parse_birth_date reads; bot.identity.redact masks the same matches. It runs on
# NFKC text (full-width digits and ㍼ are already folded). A year without an era is
# matched whatever its length, so that "85/4/1" can be refused with a reason.
DATE_PATTERN = re.compile(
    rf"""
    (?:
        (?:(?<![A-Za-z])(?P<era>{ERA_SPELLINGS}|[{ERA_LETTERS}{ERA_LETTERS.lower()}]){_SPACE})?
        (?<![0-9{KANJI_NUMERALS}])
        (?P<year>元|[0-9]{{1,4}}|[{KANJI_NUMERALS}]{{1,8}})
        {_SPACE}(?:年|{_SEPARATOR}){_SPACE}
        (?P<month>{_SMALL_NUMBER})
        {_SPACE}(?:月|{_SEPARATOR}){_SPACE}
        (?P<day>{_SMALL_NUMBER})
        (?![0-9{KANJI_NUMERALS}])
        (?:{_SPACE}日)?
    |
        (?<![0-9])(?P<compact>[0-9]{{8}})(?![0-9])
    )
    """,
    re.VERBOSE,
)


def parse_birth_date(text: str, today: datetime.date | None = None) -> datetime.date:
    """Read the member's birth date.

    Accepted: ``1985年4月1日``, ``1985/4/1``, ``1985-04-01``, ``1985.4.1``,
    ``19850401``, era forms (``昭和60年4月1日``, ``S60.4.1``, ``平成元年1月8日``,
    ``㍼60年4月1日``), kanji numerals (``昭和六十年四月一日``) and full-width digits,
    with words around them (``1985年4月1日生まれです``). The first date in the text
    is read.

    Args:
        text: what the member typed.
        today: the date that counts as today (the member's clock); defaults to the
            system date.

    Returns:
        The birth date.

    Raises:
        InputError: no date, a Western year without 4 digits, a date that does not
            exist, outside its era (平成31年5月1日), before 1900 or after today.
    """
    match = DATE_PATTERN.search(normalize(text))
    if match is None:
        raise InputError(FORMAT_MESSAGE)
    era, year, month, day = _read_numbers(match)
    try:
        born = datetime.date(year, month, day)
    except ValueError:
        message = BEFORE_1900_MESSAGE if year < EARLIEST.year else NOT_EXIST_MESSAGE
        raise InputError(message) from None
    if born < EARLIEST:
        raise InputError(BEFORE_1900_MESSAGE)
    if era is not None and not era.contains(born):
        raise InputError(
            f"{era.name}は{era.span}です。元号と年をご確認のうえ、"
            f"{EXAMPLES}のように入力してください。"
        )
    if born > (today or datetime.date.today()):
        raise InputError(FUTURE_MESSAGE)
    return born


def _read_numbers(match: re.Match[str]) -> tuple[Era | None, int, int, int]:
    compact = match["compact"]
    if compact is not None:
        return None, int(compact[:4]), int(compact[4:6]), int(compact[6:])
    month, day = to_int(match["month"]), to_int(match["day"])
    if month is None or day is None:
        raise InputError(FORMAT_MESSAGE)
    if match["era"] is not None:
        era = era_named(match["era"])
        era_year = 1 if match["year"] == "元" else to_int(match["year"])
        if era_year is None:
            raise InputError(FORMAT_MESSAGE)
        return era, era.to_western_year(era_year), month, day
    written = match["year"]
    year = to_int(written)
    if written == "元" or (year is not None and year < 1000 and not _is_four_digits(written)):
        # 85/4/1 could be 1985 or 2085, and 60年 could be 昭和 or 平成: ask, never guess.
        raise InputError(TWO_DIGIT_YEAR_MESSAGE)
    if year is None:
        raise InputError(FORMAT_MESSAGE)
    return None, year, month, day


def _is_four_digits(written: str) -> bool:
    return len(written) == 4 and written.isascii()
