"""The 記号・番号 printed on a health-insurance card."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.text import normalize
from bot.identity.parsing.chars import has_letter_in_number
from bot.identity.parsing.errors import InputError

MAX_DIGITS = 8
NO_DIGITS_MESSAGE = (
    "保険証の記号と番号を数字で入力してください（例：「記号1001 番号23」や「1001-23」）。"
)
ONLY_ONE_MESSAGE = (
    "記号と番号の両方が必要です。保険証の記号と番号を「1001-23」のように続けて入力してください。"
)
TOO_LONG_MESSAGE = (
    "記号と番号はそれぞれ8桁までの数字です。保険証をご確認のうえ、"
    "「1001-23」のように入力してください。"
)
LETTERS_MESSAGE = (
    "記号と番号は数字だけで入力してください。英字が混ざっていないかご確認のうえ、"
    "「1001-23」のように入力してください。"
)
TOO_MANY_MESSAGE = (
    "数字が3つ以上あり、どれが記号と番号か分かりませんでした。"
    "「記号1001 番号23」のように入力してください。"
)

# Masks keep a fixed width so they do not tell how long the 記号 or 番号 is.
SYMBOL_MASK = "****"
NUMBER_MASK = "**"
SHOWN_NUMBER_DIGITS = 2

_DIGIT_RUN = re.compile(r"[0-9]+")
# A label, a few non-digit characters ("は", "：", " "), then its digits. The gap may
# not hold another label, so in 「記号と番号は1001-23」 記号 does not claim 番号's digits.
_LABEL_GAP = "[^0-9記番号]{0,6}"
_SYMBOL = re.compile(f"記号{_LABEL_GAP}([0-9]+)")
_NUMBER = re.compile(f"番号{_LABEL_GAP}([0-9]+)")


@dataclass(frozen=True)
class MemberNumber:
    """A member's 記号 and 番号, exactly as typed (leading zeros kept).

    Attributes:
        symbol: the 記号, 1 to 8 ASCII digits.
        number: the 番号, 1 to 8 ASCII digits.
    """

    symbol: str
    number: str

    def masked(self) -> str:
        """A form safe to show and keep in a slot: ``記号****・番号**23``.

        Nothing of the 記号 is shown and only the last 2 digits of the 番号 (the whole
        番号 when it has 1 digit: ``記号****・番号**5``); the stars are always 4 and 2,
        whatever the lengths.
        """
        return f"記号{SYMBOL_MASK}・番号{NUMBER_MASK}{self.number[-SHOWN_NUMBER_DIGITS:]}"


def parse_member_number(text: str) -> MemberNumber:
    """Read the 記号 and 番号 from the member's text.

    Labelled forms (``記号1001 番号23``, ``記号は1001で番号は23``, either order) are
    read by their labels; otherwise the text must hold exactly two numbers, 記号 first,
    with anything between them (``1001-23``, ``1001の23``, ``1001 23``,
    ``1001番の23番``). Full-width digits and dashes are folded first.

    Args:
        text: what the member typed.

    Returns:
        The 記号 and 番号.

    Raises:
        InputError: letters touching the digits, no digits, a number longer than 8
            digits, only one number, or more than two unlabelled numbers.
    """
    folded = normalize(text)
    if has_letter_in_number(folded):
        raise InputError(LETTERS_MESSAGE)
    runs = _DIGIT_RUN.findall(folded)
    if not runs:
        raise InputError(NO_DIGITS_MESSAGE)
    symbol, number = _SYMBOL.search(folded), _NUMBER.search(folded)
    pair = [symbol[1], number[1]] if symbol and number else runs
    if any(len(run) > MAX_DIGITS for run in pair):
        raise InputError(TOO_LONG_MESSAGE)
    if len(pair) == 1:
        raise InputError(ONLY_ONE_MESSAGE)
    if len(pair) > 2:
        raise InputError(TOO_MANY_MESSAGE)
    return MemberNumber(symbol=pair[0], number=pair[1])
