"""The webhook signature: LINE's HMAC, checked in constant time."""

from __future__ import annotations

import pytest

from bot.channels.line.signature import sign, signature_valid


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body():
    # Computed independently: printf '{"events":[]}' | openssl dgst -sha256 -hmac secret
    # -binary | base64
    assert sign("secret", b'{"events":[]}') == "pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ="


@pytest.mark.parametrize(
    ("signature", "valid"),
    [
        ("pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=", True),
        (" pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=\n", True),
        ("pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ", False),
        ("PKK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=", False),
        (sign("other secret", b'{"events":[]}'), False),
        ("", False),
        (None, False),
        ("署名", False),  # not ASCII: refused, not an exception
    ],
)
def test_signature_check(signature, valid):
    assert signature_valid("secret", b'{"events":[]}', signature) is valid


def test_a_changed_body_breaks_the_signature():
    signature = sign("secret", b'{"events":[]}')
    assert not signature_valid("secret", b'{"events": []}', signature)
    assert not signature_valid("", b'{"events":[]}', sign("", b'{"events":[]}'))
