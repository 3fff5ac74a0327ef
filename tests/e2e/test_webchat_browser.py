"""The website chat in a real headless Chromium, against the running servers.

The browser is driven by ``web/tests/webchat.spec.mjs`` (playwright-core from
``web/node_modules``, Debian's ``chromium``; no browser is downloaded). Screenshots of
each width are kept under ``<var dir>/artifacts/webchat/``. Without chromium, node or
the npm packages these tests skip with the reason, unless ``PRIVACY_BOT_REQUIRE_BROWSER``
is 1 (``.ci/run``): then they fail.
"""

from __future__ import annotations

import pytest

from bot.launcher import RunningAssistant
from bot.settings import load_settings
from tests.conftest import ROOT
from tests.e2e.browser import AxePage, assert_accessible, png_size, run_node_spec

pytestmark = pytest.mark.e2e

SPEC = ROOT / "web" / "tests" / "webchat.spec.mjs"
ARTIFACTS = load_settings().var_dir / "artifacts" / "webchat"


def run_spec(assistant: RunningAssistant, tools: tuple[str, str], *args: str) -> str:
    env = {
        "WEBCHAT_URL": assistant.webchat_url,
        "RASA_URL": assistant.rasa_url,
        "RASA_TOKEN": assistant.token,
        "ARTIFACT_DIR": str(ARTIFACTS),
    }
    return run_node_spec(SPEC, tools, env, *args)


@pytest.mark.parametrize("viewport", ["360x740", "1280x800"])
def test_a_members_visit_at_phone_and_desktop_width(assistant, browser_tools, viewport):
    """Greet, quick reply, a sourced answer, markup as text, limits, reload, reconnect."""
    shot = ARTIFACTS / f"webchat-{viewport}.png"
    shot.unlink(missing_ok=True)
    output = run_spec(assistant, browser_tools, "conversation", viewport)
    assert f"conversation {viewport}: all checks passed" in output
    width, height = (int(n) for n in viewport.split("x"))
    assert png_size(shot) == (width, height)
    print(f"screenshot: {shot}")


def test_after_the_idle_timeout_the_page_starts_a_fresh_session(assistant, browser_tools):
    assert "idle: all checks passed" in run_spec(assistant, browser_tools, "idle")


def test_a_session_is_not_taken_by_its_id_and_one_screen_holds_it(assistant, browser_tools):
    """Only the id: a new session, nothing of the first; id and secret: the first is told."""
    assert "sessions: all checks passed" in run_spec(assistant, browser_tools, "sessions")


def test_the_channel_guards_what_a_script_sends_past_the_widget(assistant, browser_tools):
    assert "socket: all checks passed" in run_spec(assistant, browser_tools, "socket")


def test_the_chat_page_passes_axe_core(assistant, browser_tools):
    """axe-core finds no violation on the chat page, connected and greeted."""
    page = AxePage("chat", assistant.webchat_url, ready='#chat[data-state="connected"]')
    assert_accessible(browser_tools, [page])
