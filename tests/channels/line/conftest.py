"""The stand-in for the LINE API, one per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.line_stand_in import StandIn, line_stand_in


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    """A real HTTP server on loopback answering like the Messaging API."""
    with line_stand_in() as running:
        yield running
