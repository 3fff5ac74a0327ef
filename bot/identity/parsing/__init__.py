"""Parsers for what a member types during identity verification.

Each parser takes the member's raw text (full-width digits, dashes, words around the
value, emoji) and returns a typed value or raises :class:`InputError`, whose
``message`` can be sent to the member as it is.
"""

from bot.identity.parsing.codes import parse_code
from bot.identity.parsing.dates import parse_birth_date
from bot.identity.parsing.errors import InputError
from bot.identity.parsing.member_number import MemberNumber, parse_member_number
from bot.identity.parsing.phone import mask_phone, normalize_phone

__all__ = [
    "InputError",
    "MemberNumber",
    "mask_phone",
    "normalize_phone",
    "parse_birth_date",
    "parse_code",
    "parse_member_number",
]
