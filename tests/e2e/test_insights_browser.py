"""The privacy officer's overview in a real headless Chromium, on the real console server.

``python -m bot.console`` serves a database seeded by the console benchmark's seed (a
month of conversations with fallbacks and 「方針に記載なし」 answers, verifications, SMS,
cases, a privacy officer); ``web/tests/insights.spec.mjs`` signs in and checks, on a
1280×800 laptop screen and a 360×740 phone, that every chart is drawn within the
console's Content-Security-Policy, fits the screen with text at least 9 px high, and
that the list of messages not understood is masked. Screenshots are kept under
``<var dir>/artifacts/insights/``. Skips without chromium, node or the npm packages
unless ``PRIVACY_BOT_REQUIRE_BROWSER`` is 1.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bench.console import console_server
from bench.console_seed import AGENT_PASSWORD, OFFICER, Scale, seed_database
from bot.db.session import dispose
from bot.settings import load_settings
from tests.conftest import ROOT
from tests.e2e.browser import find_browser_tools, png_size, run_node_spec

pytestmark = pytest.mark.e2e

SPEC = ROOT / "web" / "tests" / "insights.spec.mjs"
# A phone number one of the seed's fallback messages holds in clear (bench/console_seed.py).
CLEAR_VALUE = "090-1234-5678"


def test_the_overview_renders_its_charts_within_the_csp_on_a_laptop_and_a_phone(tmp_path, secret):
    tools = find_browser_tools()
    url = f"sqlite:///{tmp_path / 'db' / 'app.db'}"
    (tmp_path / "db").mkdir()
    scale = Scale(escalations=60, events=6_000, long_events=400, cases=60)
    seeded = seed_database(url, scale, datetime.now(timezone.utc))
    dispose(url)
    dispose(seeded.tracker_url)
    artifacts = load_settings().var_dir / "artifacts" / "insights"
    with console_server(url, seeded.tracker_url, tmp_path / "var", "insights") as base:
        output = run_node_spec(
            SPEC,
            tools,
            {
                "CONSOLE_URL": base,
                "STAFF_NAME": OFFICER,
                "STAFF_PASSWORD": AGENT_PASSWORD,
                "ARTIFACT_DIR": str(artifacts),
                "CLEAR_VALUE": CLEAR_VALUE,
            },
        )
    assert "all checks passed" in output
    for width, height in ((1280, 800), (360, 740)):
        shot = artifacts / f"insights-{width}x{height}.png"
        assert png_size(shot)[0] == width
