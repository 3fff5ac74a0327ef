"""The 6-digit one-time code sent by SMS."""

from __future__ import annotations

import re

from bot.core.text import normalize
from bot.identity.parsing.chars import has_letter_in_number
from bot.identity.parsing.errors import InputError

CODE_DIGITS = 6
EXAMPLE = "「123456」"
NO_CODE_MESSAGE = f"SMSでお送りした6桁の数字を{EXAMPLE}のように入力してください。"
LETTERS_MESSAGE = f"確認コードは数字だけの6桁です。{EXAMPLE}のように入力してください。"
MORE_THAN_ONE_MESSAGE = f"確認コードを1つだけ{EXAMPLE}のように入力してください。"

# Digits with at most one space or hyphen between them, as members split codes to
# read them ("123 456", "12-34-56"). Every repetition eats a digit, so the match
# stays linear however long the text is.
_SPACED_DIGITS = re.compile(r"[0-9](?:[ \-]?[0-9])*")
_SEPARATOR = re.compile(r"[ \-]")


def parse_code(text: str) -> str:
    """Read the one-time code from the member's text.

    Accepted: ``123456``, ``１２３４５６``, ``123 456``, ``コードは123456です``, or a
    pasted SMS where the code is the only 6-digit number.

    Args:
        text: what the member typed.

    Returns:
        The 6 ASCII digits.

    Raises:
        InputError: letters touching the digits, no 6-digit number, or more than one.
    """
    folded = normalize(text)
    if has_letter_in_number(folded):
        raise InputError(LETTERS_MESSAGE)
    codes: set[str] = set()
    for match in _SPACED_DIGITS.finditer(folded):
        # "123 456" is one code; "123456 2回目" is a code and another number.
        parts = _SEPARATOR.split(match[0])
        for candidate in ("".join(parts), *parts):
            if len(candidate) == CODE_DIGITS:
                codes.add(candidate)
                break
    if not codes:
        raise InputError(NO_CODE_MESSAGE)
    if len(codes) > 1:
        raise InputError(MORE_THAN_ONE_MESSAGE)
    (code,) = codes
    return code
