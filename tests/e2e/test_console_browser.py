"""The staff console and the website chat in a real headless Chromium, on the real servers.

A staff member signs in to the console and keeps the queue open; a member asks for a
person in the website chat and the queue shows it without a reload (title count, a
polite announcement); staff claim the conversation, reply, and the member sees the
reply; the member writes again and the console shows it without a reload; staff hand
back, the member is told so in the organization's words, and the assistant answers
again. Every console page is checked with axe-core (tests/e2e/browser.py's
``assert_accessible``), with hand-offs, a case and the audit log to show. The browser is
driven by ``web/tests/console.spec.mjs`` (playwright-core from ``web/node_modules``,
Debian's ``chromium``; no browser is downloaded); the servers are started once for this
module (action server, rasa server with its SQL tracker store and REST channel, website
chat page, console) on free ports, with an agent, a privacy officer and an administrator
made before. Screenshots of the console (queue, escalation page) and of the member's
chat are kept under ``<var dir>/artifacts/console/``. Without chromium, node or the npm
packages the test skips with the reason, unless ``PRIVACY_BOT_REQUIRE_BROWSER`` is 1:
then it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from bot.db.migrate import upgrade
from bot.db.models import AuditLog, Escalation, StaffMessage
from bot.db.session import engine_for, session_factory
from bot.handoff import escalations
from bot.handoff.handback import handed_back_text_for
from bot.launcher import RunningAssistant, running, train_if_needed
from bot.settings import load_settings
from bot.staff.accounts import create_account
from tests.cases.desk import Desk
from tests.conftest import ROOT
from tests.e2e.browser import AxePage, assert_accessible, png_size, run_node_spec
from tests.e2e.conftest import free_port
from tests.e2e.rest import rest_post

pytestmark = pytest.mark.e2e

SPEC = ROOT / "web" / "tests" / "console.spec.mjs"
ARTIFACTS = load_settings().var_dir / "artifacts" / "console"
STAFF_NAME = "tanaka"
STAFF_PASSWORD = "console-e2e-password"
AGENT = (STAFF_NAME, STAFF_PASSWORD)
OFFICER = ("suzuki", STAFF_PASSWORD)
ADMIN = ("kanri", STAFF_PASSWORD)
SCREENSHOTS = {
    "console-queue-1280x800.png": (1280, 800),
    "console-escalation-1280x800.png": (1280, 800),
    "console-member-chat-360x740.png": (360, 740),
}


@pytest.fixture(scope="module")
def console_assistant(tmp_path_factory) -> Iterator[RunningAssistant]:
    """Every server of the product, the console included, on a database of their own."""
    var_dir = tmp_path_factory.mktemp("console-var")
    settings = replace(
        load_settings(),
        org_id="kokusai-kogyo-kenpo",
        var_dir=var_dir,
        database_url=f"sqlite:///{var_dir / 'app.db'}",
        tracker_store_url=None,  # the default: Rasa's events in tracker.db beside app.db
        lock_store_url=None,
        rasa_port=free_port(),
        action_port=free_port(),
        webchat_port=free_port(),
        console_port=free_port(),
        rasa_token="e2e-console-token",
        console_secure_cookie=False,  # plain HTTP on loopback
        rest_enabled=True,  # hand-offs for the accessibility check, without a browser
    )
    upgrade(settings.database_url)
    with session_factory(settings.database_url).begin() as session:
        for (name, password), role in (
            (AGENT, "agent"),
            (OFFICER, "privacy_officer"),
            (ADMIN, "admin"),
        ):
            create_account(session, name, role, password, datetime.now(timezone.utc))
    model = train_if_needed()
    with running(settings, model, log_dir=var_dir / "logs", webchat=True, console=True) as started:
        yield started


def run_spec(assistant: RunningAssistant, tools: tuple[str, str], *args: str) -> str:
    env = {
        "WEBCHAT_URL": assistant.webchat_url,
        "CONSOLE_URL": assistant.console_url,
        "STAFF_NAME": STAFF_NAME,
        "STAFF_PASSWORD": STAFF_PASSWORD,
        "HANDBACK_NOTICE": handed_back_text_for(
            assistant.settings.org_id, assistant.settings.profiles_dir
        ),
        "ARTIFACT_DIR": str(ARTIFACTS),
    }
    return run_node_spec(SPEC, tools, env, *args, on_failure=f"\n{_server_errors(assistant)}")


def _server_errors(assistant: RunningAssistant) -> str:
    """The servers' ERROR lines: why a step of the browser's script saw nothing happen."""
    found = []
    for log in sorted((assistant.var_dir / "logs").glob("*.log")):
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        found += [f"{log.name}: {line}" for line in lines if " ERROR " in line][-10:]
    return "server errors:\n" + "\n".join(found) if found else "no server errors logged"


def test_staff_take_over_a_website_chat_reply_and_hand_back(browser_tools, console_assistant):
    for name in SCREENSHOTS:
        (ARTIFACTS / name).unlink(missing_ok=True)

    output = run_spec(console_assistant, browser_tools, "handoff")

    assert "handoff: all checks passed" in output
    for name, size in SCREENSHOTS.items():
        assert png_size(ARTIFACTS / name) == size, name
        print(f"screenshot: {ARTIFACTS / name}")
    session_id = next(
        line.split(": ", 1)[1].strip()
        for line in output.splitlines()
        if line.startswith("member session: ")
    )
    with engine_for(console_assistant.settings.database_url).connect() as connection:
        (escalation,) = connection.execute(
            sa.select(Escalation).where(Escalation.sender_id == session_id)
        ).all()
        audit = connection.execute(
            sa.select(AuditLog.action, AuditLog.actor)
            .where(AuditLog.action.like("escalation.%"))
            .order_by(AuditLog.id)
        ).all()
        replies = connection.execute(
            sa.select(StaffMessage.staff, StaffMessage.text, StaffMessage.delivered_at).where(
                StaffMessage.escalation_id == escalation.id
            )
        ).all()
    assert escalation.status == "closed"
    assert (escalation.reason, escalation.channel) == ("member_request", "socketio")
    assert escalation.assigned_staff == STAFF_NAME
    assert escalation.claimed_at is not None and escalation.closed_at is not None
    staff = f"staff:{STAFF_NAME}"
    trail = [(row.action, row.actor) for row in audit]
    assert trail[0] == ("escalation.opened", "system")
    # Claimed, one reply, handed back: in that order, each by the staff member.
    steps = [action for action, actor in trail if actor == staff]
    wanted = ["escalation.claimed", "escalation.staff_message", "escalation.handed_back"]
    assert [action for action in steps if action in wanted] == wanted, trail
    assert [(r.staff, r.text) for r in replies] == [
        (STAFF_NAME, "担当の田中です。ご用件を伺います。")
    ]
    assert replies[0].delivered_at is not None


def hand_over_through_rest(assistant: RunningAssistant, name: str) -> int:
    """A member's conversation handed to staff (asking twice), as the assistant does it."""
    sender = f"rest:a11y-{name}"
    for _ in range(2):
        rest_post(assistant, sender, "担当者と話したいです")
    with session_factory(assistant.settings.database_url).begin() as session:
        view = escalations.open_escalation_for(session, sender)
        assert view is not None, f"{sender} was not handed over"
        return view.id


def test_every_console_page_passes_axe_core(browser_tools, console_assistant):
    """axe-core finds no violation on any console page, each with content to check."""
    waiting = hand_over_through_rest(console_assistant, "waiting")
    mine = hand_over_through_rest(console_assistant, "mine")
    sessions = session_factory(console_assistant.settings.database_url)
    with sessions.begin() as session:
        escalations.claim(session, mine, STAFF_NAME, datetime.now(timezone.utc))
    desk = Desk(sessions, console_assistant.var_dir / "a11y-outbox.jsonl")
    case = desk.open(now=datetime.now(timezone.utc)).case_number
    url = console_assistant.console_url.rstrip("/")
    transcript = "#transcript li.line"
    pages = [
        AxePage("sign-in", f"{url}/login"),
        AxePage("queue", f"{url}/queue", AGENT, "#queue-live tr[data-waiting]"),
        AxePage("escalation (waiting)", f"{url}/escalations/{waiting}", AGENT, transcript),
        AxePage("escalation (mine)", f"{url}/escalations/{mine}", AGENT, "form#reply"),
        AxePage("cases", f"{url}/cases", AGENT),
        AxePage("case", f"{url}/cases/{case}", OFFICER),
        AxePage("audit log", f"{url}/audit", OFFICER),
        AxePage("accounts", f"{url}/accounts", ADMIN),
        AxePage("password", f"{url}/password", AGENT),
        AxePage("insights", f"{url}/insights?days=30", OFFICER, "svg"),
        AxePage("insights: not understood", f"{url}/insights/unanswered", OFFICER),
    ]
    assert_accessible(browser_tools, pages, on_failure=f"\n{_server_errors(console_assistant)}")
