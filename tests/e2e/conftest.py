"""Start the real action server and rasa server with the trained model, once per run."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bot.launcher import RunningAssistant, running, train_if_needed
from bot.settings import load_settings
from tests.e2e.rest import rest_post


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def assistant(tmp_path_factory) -> Iterator[RunningAssistant]:
    var_dir = tmp_path_factory.mktemp("var")
    settings = replace(
        load_settings(),
        org_id="kokusai-kogyo-kenpo",
        var_dir=var_dir,
        database_url=f"sqlite:///{var_dir / 'app.db'}",
        rasa_port=free_port(),
        action_port=free_port(),
        webchat_port=free_port(),
        console_port=free_port(),
        rasa_token="e2e-token",
        rest_enabled=True,  # the REST channel is off unless enabled, as in `make run`
        # One database for the whole run, in which the demo member verifies dozens of
        # times a minute: the SMS and hand-off limits (tested on their own) would refuse.
        verification_sms_per_member_day=1000,
        verification_sms_per_minute=100_000,
        handoff_max_per_hour=1000,
    )
    with running(
        settings, train_if_needed(), log_dir=var_dir / "logs", webchat=True, console=True
    ) as started:
        yield started


@pytest.fixture
def say(assistant):
    # The conversation id the REST channel gives this sender (bot/core/conversation.py).
    conversation = f"rest:e2e-{uuid.uuid4().hex[:8]}"

    def send(text: str) -> list[dict]:
        return rest_post(assistant, conversation, text)

    send.sender = conversation  # type: ignore[attr-defined]
    return send


@pytest.fixture(scope="module")
def browser_tools() -> tuple[str, str]:
    """(node, chromium) for the browser tests (tests/e2e/browser.py)."""
    from tests.e2e.browser import find_browser_tools

    return find_browser_tools()
