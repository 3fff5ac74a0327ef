"""Fixtures of the case tests."""

from __future__ import annotations

import pytest

from tests.cases.desk import Desk


@pytest.fixture
def desk(demo, tmp_path) -> Desk:
    """The case services on the migrated database with the demo members."""
    return Desk(demo, tmp_path / "outbox.jsonl")
