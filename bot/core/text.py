"""Japanese text normalization, and a variant that keeps a map back to the original.

Members type full-width digits, half-width kana, circled numbers and emoji. NFKC
folds those to one spelling (:func:`fold`); :func:`normalize` also folds dashes, for
the numbers members type. NFKC changes the length of the text (``ｶﾞ`` → ``ガ``,
``㍻`` → ``平成``), so :func:`normalize_with_spans` lets every normalized character
remember the span of the original text it came from. The tokenizer relies on that to
give Rasa offsets that point into the message exactly as the member sent it.

The NLU's linear model (``bot/nlu/linear_blend.py``) has a fold of its own on purpose:
its trained features depend on that exact text, so it must not change with these.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Characters that belong to the character before them: half-width voicing marks
# (ﾞﾟ), combining marks, zero-width joiners and variation selectors of emoji.
_HALF_WIDTH_VOICING = {"\uff9e", "\uff9f"}
_JOINERS = {"\u200d"}

# Dashes members type in numbers ("1001－23", "090−1234"). The long-vowel mark ー is
# a dash only between digits ("090ー1234"); elsewhere it is part of a word (ナンバー).
_DASHES = dict.fromkeys(map(ord, "‐‑‒–—―−－"), "-")
_LONG_VOWEL_BETWEEN_DIGITS = re.compile(r"(?<=\d)ー(?=\d)")


def fold(text: str) -> str:
    """NFKC: full-width letters and digits, half-width kana, ㍻ and the like to one spelling.

    Spaces are kept as NFKC leaves them (an ideographic space becomes an ASCII one).
    """
    return unicodedata.normalize("NFKC", text)


def collapse_spaces(text: str) -> str:
    """Every run of white space as one ASCII space, none at either end."""
    return " ".join(text.split())


def _attaches_to_previous(char: str) -> bool:
    if char in _HALF_WIDTH_VOICING or char in _JOINERS:
        return True
    if "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef":
        return True
    # Skin-tone modifiers stay with the emoji they modify.
    if "\U0001f3fb" <= char <= "\U0001f3ff":
        return True
    return unicodedata.category(char).startswith("M")


@dataclass(frozen=True)
class NormalizedText:
    """A normalized text and, for each of its characters, the original span."""

    original: str
    text: str
    spans: tuple[tuple[int, int], ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalized range ``[start, end)`` to the original text."""
        if start >= end:
            raise ValueError("empty range")
        return self.spans[start][0], self.spans[end - 1][1]


def _groups(text: str) -> list[tuple[int, int]]:
    groups: list[tuple[int, int]] = []
    joined = False
    for index, char in enumerate(text):
        if groups and (joined or _attaches_to_previous(char)):
            groups[-1] = (groups[-1][0], index + 1)
        else:
            groups.append((index, index + 1))
        joined = char in _JOINERS
    return groups


def normalize_with_spans(text: str) -> NormalizedText:
    """NFKC-normalize ``text`` group by group, keeping the span of each output char."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    for start, end in _groups(text):
        piece = fold(text[start:end])
        out.append(piece)
        spans.extend([(start, end)] * len(piece))
    return NormalizedText(original=text, text="".join(out), spans=tuple(spans))


def normalize(text: str) -> str:
    """Fold a member's text to one spelling: NFKC, ASCII dashes, no outer spaces."""
    folded = fold(text).translate(_DASHES)
    return _LONG_VOWEL_BETWEEN_DIGITS.sub("-", folded).strip()
