"""The member identifier: 記号・番号 on a health-insurance card, or a certificate number.

Which numbers identify a member is each organization's own set-up
(``member_identifier`` in its profile): two labelled numbers (記号 and 番号) for a
健保組合 or 共済組合, one (証書番号) for a 共済 whose members hold a certificate. A
one-part identifier is stored with an empty ``symbol``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.text import normalize
from bot.identity.parsing.chars import has_letter_in_number
from bot.identity.parsing.errors import InputError
from bot.policy.profiles.schema import IdentifierPart, MemberIdentifier

# Masks keep a fixed width so they do not tell how long the 記号 or 番号 is.
SYMBOL_MASK = "****"
NUMBER_MASK = "**"
SHOWN_NUMBER_DIGITS = 2

# The identifier of a member of a 健保組合: what a profile without its own would hold.
HEALTH_INSURANCE_CARD = MemberIdentifier(
    label="記号・番号",
    printed_on="資格確認書（保険証）",
    parts=[IdentifierPart(label="記号", max_digits=8), IdentifierPart(label="番号", max_digits=8)],
    example="記号1001 番号23",
)

_DIGIT_RUN = re.compile(r"[0-9]+")
# Digits with only dashes and spaces between them: one number typed in groups.
_GROUPED = re.compile(r"[0-9]+(?:[- ][0-9]+)*")


@dataclass(frozen=True)
class MemberNumber:
    """A member's identifier, exactly as typed (leading zeros kept).

    Attributes:
        symbol: the 記号 (1 to 8 ASCII digits), or "" for a one-part identifier.
        number: the 番号 or the one number, ASCII digits.
    """

    symbol: str
    number: str

    def masked(self, identifier: MemberIdentifier = HEALTH_INSURANCE_CARD) -> str:
        """A form safe to show and keep in a slot: ``記号****・番号**23``.

        Nothing of the 記号 is shown and only the last 2 digits of the 番号 (the whole
        番号 when it has 1 digit); the stars are always 4 and 2, whatever the lengths.
        A one-part identifier shows as ``証書番号**34``.
        """
        tail = f"{NUMBER_MASK}{self.number[-SHOWN_NUMBER_DIGITS:]}"
        labels = [part.label for part in identifier.parts]
        if len(labels) == 1:
            return f"{labels[0]}{tail}"
        return f"{labels[0]}{SYMBOL_MASK}・{labels[1]}{tail}"


def _example_digits(identifier: MemberIdentifier) -> str:
    runs = _DIGIT_RUN.findall(identifier.example)
    return "-".join(runs) if runs else identifier.example


def _labelled(label: str, others: list[str], text: str) -> str | None:
    # A label, a few non-digit characters ("は", "：", " "), then its digits. The gap may
    # not hold another label, so in 「記号と番号は1001-23」 記号 does not claim 番号's digits.
    stop = "".join(sorted({ch for other in others for ch in other}))
    gap = f"[^0-9{re.escape(stop)}]{{0,6}}" if stop else "[^0-9]{0,6}"
    found = re.search(f"{re.escape(label)}{gap}([0-9]+)", text)
    return found[1] if found else None


def _parse_pair(folded: str, identifier: MemberIdentifier) -> MemberNumber:
    first, second = identifier.parts
    names = f"{first.label}と{second.label}"
    runs = _DIGIT_RUN.findall(folded)
    if not runs:
        raise InputError(
            f"{identifier.printed_on}の{names}を数字で入力してください"
            f"（例：「{identifier.example}」や「{_example_digits(identifier)}」）。"
        )
    symbol = _labelled(first.label, [second.label], folded)
    number = _labelled(second.label, [first.label], folded)
    pair = [symbol, number] if symbol and number else runs
    limits = (first.max_digits, second.max_digits)
    if len(pair) == 2:
        too_long = any(len(run) > limit for run, limit in zip(pair, limits, strict=True))
    else:
        too_long = any(len(run) > max(limits) for run in pair)
    if too_long:
        digits = "桁と".join(str(limit) for limit in limits)
        same = f"それぞれ{limits[0]}" if limits[0] == limits[1] else f"{digits}"
        raise InputError(
            f"{names}は{same}桁までの数字です。{identifier.printed_on}をご確認のうえ、"
            f"「{_example_digits(identifier)}」のように入力してください。"
        )
    if len(pair) == 1:
        raise InputError(
            f"{names}の両方が必要です。{identifier.printed_on}の{names}を"
            f"「{_example_digits(identifier)}」のように続けて入力してください。"
        )
    if len(pair) > 2:
        raise InputError(
            f"数字が3つ以上あり、どれが{names}か分かりませんでした。"
            f"「{identifier.example}」のように入力してください。"
        )
    return MemberNumber(symbol=pair[0], number=pair[1])


def _parse_one(folded: str, identifier: MemberIdentifier) -> MemberNumber:
    part = identifier.parts[0]
    runs = _DIGIT_RUN.findall(folded)
    if not runs:
        raise InputError(
            f"{identifier.printed_on}の{part.label}を数字で入力してください"
            f"（例：「{identifier.example}」）。"
        )
    labelled = _labelled(part.label, [], folded)
    grouped = _GROUPED.fullmatch(folded)
    if labelled:
        digits = labelled
    elif len(runs) == 1 or grouped:
        digits = "".join(runs)
    else:
        raise InputError(
            f"数字がいくつかあり、どれが{part.label}か分かりませんでした。"
            f"「{identifier.example}」のように入力してください。"
        )
    if len(digits) > part.max_digits:
        raise InputError(
            f"{part.label}は{part.max_digits}桁までの数字です。{identifier.printed_on}を"
            f"ご確認のうえ、「{identifier.example}」のように入力してください。"
        )
    return MemberNumber(symbol="", number=digits)


def parse_member_number(
    text: str, identifier: MemberIdentifier = HEALTH_INSURANCE_CARD
) -> MemberNumber:
    """Read the member identifier from the member's text.

    Two parts: labelled forms (``記号1001 番号23``, ``記号は1001で番号は23``, either
    order) are read by their labels; otherwise the text must hold exactly two numbers,
    the first part first, with anything between them (``1001-23``, ``1001の23``,
    ``1001 23``). One part: the labelled number, the only number, or one number typed
    in groups (``2023-001234``). Full-width digits and dashes are folded first.

    Args:
        text: what the member typed.
        identifier: the organization's identifier (its profile's ``member_identifier``).

    Returns:
        The identifier; ``symbol`` is "" for a one-part identifier.

    Raises:
        InputError: letters touching the digits, no digits, a number longer than its
            part allows, a part missing, or numbers that cannot be told apart.
    """
    folded = normalize(text)
    if has_letter_in_number(folded):
        example = _example_digits(identifier)
        raise InputError(
            f"{identifier.label}は数字だけで入力してください。英字が混ざっていないかご確認のうえ、"
            f"「{example}」のように入力してください。"
        )
    if len(identifier.parts) == 1:
        return _parse_one(folded, identifier)
    return _parse_pair(folded, identifier)
