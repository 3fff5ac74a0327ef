"""Sealed slot values: read back only with the secret, unaltered and in time."""

import time

import pytest

from bot.identity.sealed import is_sealed, seal, unseal

SECRET = "sealed-test-secret"
NUMBER = "記号1001 番号23です"


def test_a_sealed_value_reads_back_and_shows_nothing_of_it():
    value = seal(NUMBER, SECRET)
    assert is_sealed(value)
    assert "1001" not in value and "23" not in value.split(":", 1)[0]
    assert unseal(value, SECRET) == NUMBER
    # Sealed twice, it differs: equal numbers cannot be told apart by their slots.
    assert seal(NUMBER, SECRET) != value


@pytest.mark.parametrize(
    "forged",
    [
        None,
        "",
        "1001-23",  # a clear value, as a forged payload would set it
        "sealed:",
        "sealed:not-a-token",
        "sealed:ｇｇ",
    ],
)
def test_anything_not_sealed_here_reads_as_nothing(forged):
    assert unseal(forged, SECRET) is None


def test_another_secret_or_an_altered_token_reads_as_nothing():
    value = seal(NUMBER, SECRET)
    assert unseal(value, "another-secret") is None
    flipped = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
    assert unseal(flipped, SECRET) is None


def test_a_stale_value_reads_as_nothing():
    value = seal(NUMBER, SECRET)
    time.sleep(1.1)
    assert unseal(value, SECRET, max_age=0) is None  # sealed at least a second ago
    assert unseal(value, SECRET, max_age=60) == NUMBER
