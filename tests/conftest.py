from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The organizations' published policies, shipped with the product.
POLICY_TEXTS = ROOT / "bot" / "policy" / "texts"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

# Fixture modules imported by test files as well as named in pytest_plugins: their
# asserts are rewritten only if registered before the first import.
pytest.register_assert_rewrite("tests.console_fixtures", "tests.db_fixtures", "tests.e2e.browser")
