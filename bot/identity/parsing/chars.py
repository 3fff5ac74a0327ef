"""Character classes the parsers and the log redactor share.

They are written for text that has been NFKC-normalized but not otherwise folded
(:func:`bot.core.text.normalize_with_spans` output), so the redactor can match on text whose
offsets still point into the original. :func:`bot.core.text.normalize` output matches them
too, since it only folds these dashes further to ``-``.
"""

from __future__ import annotations

import re

# Every dash NFKC leaves as it is. The long-vowel mark ー is in the class because
# members type "1001ー23"; the patterns only accept a dash between digits.
DASHES = "\\-‐‑‒–—―−ー"

# Kanji numerals as members write them in dates: 六十, 三十一, 一九八五, 千九百八十五.
KANJI_DIGITS = "〇一二三四五六七八九"
KANJI_NUMERALS = KANJI_DIGITS + "十百千"

# A Latin letter touching a digit ("10O1", "12345a") is a typo a parser must not skip:
# dropping the letter would read a different number than the member meant.
_LETTER_IN_NUMBER = re.compile(r"[0-9][A-Za-z]|[A-Za-z][0-9]")


def has_letter_in_number(text: str) -> bool:
    """Whether a Latin letter is written next to a digit in ``text``."""
    return _LETTER_IN_NUMBER.search(text) is not None
