"""Japanese phone numbers: read to E.164 and masked for display, via ``phonenumbers``."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import Leniency, PhoneNumber, PhoneNumberFormat, PhoneNumberMatcher

from bot.core.text import normalize
from bot.identity.parsing.chars import has_letter_in_number
from bot.identity.parsing.errors import InputError

REGION = "JP"
EXAMPLE = "「090-1234-5678」"
INVALID_MESSAGE = f"電話番号を市外局番から{EXAMPLE}のように入力してください。"
LETTERS_MESSAGE = f"電話番号は数字だけで{EXAMPLE}のように入力してください。"
NOT_JAPANESE_MESSAGE = f"日本国内の電話番号を{EXAMPLE}のように入力してください。"
MORE_THAN_ONE_MESSAGE = f"電話番号を1つだけ{EXAMPLE}のように入力してください。"
# What mask_phone returns for something it cannot read as a phone number: it must not
# echo the input, which may be a phone number in a format it does not know.
UNREADABLE_MASK = "***-****-****"

_DIGIT_GROUP = re.compile(r"[0-9]+")


def normalize_phone(text: str) -> str:
    """Read a Japanese phone number and return it in E.164 form.

    Accepted: ``090-1234-5678``, ``09012345678``, ``０９０−１２３４−５６７８``,
    ``+81 90 1234 5678``, landlines (``03-3273-6974``), with words around it.

    Args:
        text: what the member typed.

    Returns:
        The number as E.164, e.g. ``+819012345678``.

    Raises:
        InputError: no valid Japanese number, letters in it, or more than one number.
    """
    folded = normalize(text)
    if has_letter_in_number(folded):
        raise InputError(LETTERS_MESSAGE)
    # VALID leniency checks the number against Japan's numbering plan, so a digit too
    # many or too few is refused here rather than at the SMS gateway.
    found = {
        phonenumbers.format_number(match.number, PhoneNumberFormat.E164)
        for match in PhoneNumberMatcher(folded, REGION, leniency=Leniency.VALID)
        if match.number is not None
    }
    if not found:
        raise InputError(INVALID_MESSAGE)
    if len(found) > 1:
        raise InputError(MORE_THAN_ONE_MESSAGE)
    (e164,) = found
    if phonenumbers.region_code_for_number(phonenumbers.parse(e164)) != REGION:
        raise InputError(NOT_JAPANESE_MESSAGE)
    return e164


def mask_phone(e164_or_national: str) -> str:
    """Mask a phone number for display: ``+819012345678`` → ``090-****-5678``.

    The number is formatted the national way by ``phonenumbers`` (``03-3273-6974``,
    ``0120-123-456``) and every group between the first and the last becomes stars, one
    per digit (``03-****-6974``, ``0120-***-456``). Numbers of other countries keep
    their international form (``+1 ***-***-0000``). Never raises.

    Args:
        e164_or_national: a stored E.164 number or a national one as typed.

    Returns:
        The masked number, or ``***-****-****`` when it cannot be read as one.
    """
    number = _parse(e164_or_national)
    if number is None:
        return UNREADABLE_MASK
    layout = (
        PhoneNumberFormat.NATIONAL
        if phonenumbers.region_code_for_number(number) == REGION
        else PhoneNumberFormat.INTERNATIONAL
    )
    formatted = phonenumbers.format_number(number, layout)
    groups = list(_DIGIT_GROUP.finditer(formatted))
    if len(groups) < 3:
        # An unusual layout: fall back to showing only the last 4 digits.
        digits = "".join(group[0] for group in groups)
        return "*" * max(len(digits) - 4, 0) + digits[-4:]
    masked = list(formatted)
    for group in groups[1:-1]:
        masked[group.start() : group.end()] = "*" * (group.end() - group.start())
    return "".join(masked)


def _parse(text: str) -> PhoneNumber | None:
    try:
        number = phonenumbers.parse(normalize(text), REGION)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None
