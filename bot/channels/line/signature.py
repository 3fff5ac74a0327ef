"""LINE's webhook signature: ``X-Line-Signature``, signed and verified.

LINE signs every webhook body with the channel secret: the header is the base64
HMAC-SHA256 of the raw body. The channel verifies it before parsing anything; tests and
benchmarks sign the bodies they send the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(channel_secret: str, body: bytes) -> str:
    """The ``X-Line-Signature`` LINE sends with ``body``.

    Args:
        channel_secret: the channel secret.
        body: the raw request body.

    Returns:
        The base64 HMAC-SHA256 of the body keyed with the secret.
    """
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(channel_secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is LINE's signature of ``body``, compared in constant time.

    Args:
        channel_secret: the channel secret.
        body: the raw request body, exactly as received.
        signature: the ``X-Line-Signature`` header, None when missing.

    Returns:
        True only for the right signature.
    """
    if not channel_secret or not signature:
        return False
    expected = sign(channel_secret, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8"))
