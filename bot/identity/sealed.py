"""Values a dialog needs on a later turn, sealed so that no store holds them in clear.

The verification form asks for 記号・番号 and, one turn later, the birth date; only
then are both checked together. The number must therefore outlive its turn, but the
conversation is stored (Rasa's events table, its backups, any export) with the
member's answers masked once the turn is processed
(:mod:`bot.redacting_tracker_store`). The number is kept in its slot sealed instead:
encrypted and authenticated with a key derived from the app secret (Fernet: AES-128-CBC
and HMAC-SHA256), with its time of sealing, so that it reads back only with the
secret, unaltered and while the form can still be waiting for it.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.settings import ensure_secret, load_settings

PREFIX = "sealed:"
# A form left longer than this starts over: longer than the conversation's 15 idle
# minutes (domain.yml), which end it anyway.
MAX_AGE_SECONDS = 30 * 60
_INFO = b"privacy-assistant sealed slot v1"


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    # A key of its own, derived from the app secret: the HMACs of codes and numbers
    # (bot/identity/verification.py) use the secret itself.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def _secret() -> str:
    return ensure_secret(load_settings())


def seal(text: str, secret: str | None = None) -> str:
    """``text`` encrypted and authenticated, as ``sealed:<token>``.

    Args:
        text: the value to keep (a member's message).
        secret: the app secret; by default the one of the settings.
    """
    token = _fernet(secret or _secret()).encrypt(text.encode("utf-8"))
    return PREFIX + token.decode("ascii")


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed value (what a store may keep as it is)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def unseal(value: object, secret: str | None = None, max_age: int = MAX_AGE_SECONDS) -> str | None:
    """The text sealed in ``value``, or None.

    None when ``value`` is not sealed, was altered or sealed with another secret, or is
    older than ``max_age`` seconds: the dialog then asks for the value again.
    """
    if not is_sealed(value):
        return None
    token = str(value)[len(PREFIX) :].encode("ascii", "replace")
    try:
        return _fernet(secret or _secret()).decrypt(token, ttl=max_age).decode("utf-8")
    except (InvalidToken, UnicodeDecodeError):
        return None
