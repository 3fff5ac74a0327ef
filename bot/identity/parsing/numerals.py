"""Kanji numerals (六十, 三十一, 一九八五, 千九百八十五) to integers."""

from __future__ import annotations

import re

from bot.identity.parsing.chars import KANJI_DIGITS

_DIGIT_VALUES = {char: value for value, char in enumerate(KANJI_DIGITS)}
_NON_ZERO = "一二三四五六七八九"

# 千九百八十五: each unit at most once, in order, with an optional multiplier before it.
# A strict grammar rather than a running sum, so "十十" is refused instead of read as 20.
_POSITIONAL_UNITS = re.compile(
    f"(?:([{_NON_ZERO}])?千)?(?:([{_NON_ZERO}])?百)?(?:([{_NON_ZERO}])?十)?([{_NON_ZERO}])?"
)
_DIGITS_ONLY = re.compile(f"[{KANJI_DIGITS}]+")


def kanji_to_int(text: str) -> int | None:
    """Read a kanji numeral, or return None if ``text`` is not one.

    Both spellings members use are read: with units (``千九百八十五`` → 1985,
    ``三十一`` → 31) and digit by digit (``一九八五`` → 1985, ``二〇〇〇`` → 2000).

    Args:
        text: the numeral alone, without 年/月/日.

    Returns:
        The value, or None for an empty or malformed numeral.
    """
    if _DIGITS_ONLY.fullmatch(text):
        return int("".join(str(_DIGIT_VALUES[char]) for char in text))
    match = _POSITIONAL_UNITS.fullmatch(text)
    if match is None or not text:
        return None
    thousands, hundreds, tens, ones = match.groups()
    total = 0
    for digit, unit, marker in ((thousands, 1000, "千"), (hundreds, 100, "百"), (tens, 10, "十")):
        if marker in text:
            total += _DIGIT_VALUES[digit] * unit if digit else unit
    if ones:
        total += _DIGIT_VALUES[ones]
    return total


def to_int(text: str) -> int | None:
    """Read ASCII digits or a kanji numeral; None when it is neither."""
    if text.isascii() and text.isdigit():
        return int(text)
    return kanji_to_int(text)
