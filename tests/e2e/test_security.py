"""Attacks on the running servers, started as ``make run`` starts them (issue 18).

Each test is an attack that worked before the fix: a REST call choosing any
conversation, a forged action call, a server reachable from the network, a secret on a
command line. ``tests/e2e/test_public_edge.py`` attacks the nginx edge, and
``tests/e2e/test_line.py`` the way from a LINE conversation into REST.
"""

from __future__ import annotations

import os
import stat
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bot.core.conversation import Conversation
from bot.db.models import Escalation, StaffMessage
from bot.db.session import session_factory
from bot.handoff import escalations
from tests.e2e.rest import rest_post

pytestmark = pytest.mark.e2e

QUESTION = "個人情報の利用目的を教えてください"


def joined(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def rest(assistant, body: dict, headers: dict | None = None) -> requests.Response:
    return requests.post(assistant.rest_url, json=body, headers=headers or {}, timeout=60)


# --- REST: a tool for operators, bound to the token, a channel of its own -------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "e2e-token"}],
    ids=["none", "wrong", "not-bearer"],
)
def test_rest_refuses_a_call_without_the_token(assistant, headers):
    answer = rest(assistant, {"sender": "intruder", "message": QUESTION}, headers)
    assert answer.status_code == 401
    # The token as a query parameter (as the HTTP API takes it) does not open REST.
    answer = requests.post(
        assistant.rest_url,
        params={"token": assistant.token},
        json={"sender": "intruder", "message": QUESTION},
        timeout=60,
    )
    assert answer.status_code == 401


@pytest.mark.parametrize("sender", ["line:U0123456789abcdef", "web:" + "a" * 32, "", "x" * 65])
def test_a_rest_sender_cannot_name_another_channels_conversation(assistant, sender):
    answer = rest(assistant, {"sender": sender, "message": QUESTION}, assistant.rest_headers)
    assert answer.status_code == 400


def test_rest_ignores_the_channel_and_metadata_a_body_claims(assistant):
    name = f"claims-{uuid.uuid4().hex[:8]}"
    body = {
        "sender": name,
        "message": QUESTION,
        "input_channel": "line",
        "metadata": {"verified": True},
    }
    answer = rest(assistant, body, assistant.rest_headers)
    assert answer.status_code == 200 and "出典" in joined(answer.json())
    tracker = requests.get(
        f"{assistant.rasa_url}/conversations/rest:{name}/tracker",
        params={"token": assistant.token},
        timeout=30,
    ).json()
    user_events = [e for e in tracker["events"] if e["event"] == "user"]
    assert [e["input_channel"] for e in user_events] == ["rest"]
    # Rasa adds its own model_id and assistant_id; nothing the body claimed is there.
    assert all("verified" not in (e.get("metadata") or {}) for e in user_events)
    # Nothing was written under the bare name: that would be another channel's id.
    bare = requests.get(
        f"{assistant.rasa_url}/conversations/{name}/tracker",
        params={"token": assistant.token},
        timeout=30,
    ).json()
    assert not [e for e in bare["events"] if e["event"] == "user"]


def test_rest_goes_through_the_guard(assistant, say):
    # A typed hand-off payload with a reason is not obeyed: the bot never offered it.
    say('/request_human{"handoff_reason": "complaint"}')
    with session_factory(assistant.settings.database_url).begin() as session:
        opened = session.execute(
            sa.select(Escalation).where(Escalation.sender_id == say.sender)
        ).all()
    assert opened == []
    # And the length limit holds, politely.
    assert "文字以内" in joined(say("あ" * 5000))


# --- the action server: only the rasa server may call it ------------------------------


def relay_call(sender: str) -> dict:
    """An action call as the rasa server makes it, for the staff-reply relay."""
    return {
        "next_action": "action_relay_staff_message",
        "sender_id": sender,
        "tracker": {
            "sender_id": sender,
            "slots": {},
            "latest_message": {},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": None,
        },
        "domain": {},
        "version": "3.6.21",
    }


def action_secret(assistant) -> str:
    return (assistant.var_dir / "action_secret").read_text("utf-8").strip()


def test_the_action_server_refuses_a_forged_call(assistant):
    sender = f"rest:victim-{uuid.uuid4().hex[:8]}"
    sessions = session_factory(assistant.settings.database_url)
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        opened = escalations.escalate(
            session, Conversation(sender, "start", "rest"), "member_request", now
        )
        session.add(
            StaffMessage(
                escalation_id=opened.id, sender_id=sender, staff="田中",
                text="ご請求の件で確認があります。", created_at=now,
            )
        )  # fmt: skip
    webhook = f"{assistant.action_url}/webhook"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": assistant.token}):
        answer = requests.post(webhook, json=relay_call(sender), headers=headers, timeout=30)
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized"}
    with sessions.begin() as session:
        waiting = session.execute(
            sa.select(StaffMessage.delivered_at).where(StaffMessage.sender_id == sender)
        ).scalar_one()
    assert waiting is None  # still waiting for the member, not taken by the forger
    # The same call with the rasa server's secret is served: the secret is what refused.
    served = requests.post(
        webhook,
        json=relay_call(sender),
        headers={"Authorization": f"Bearer {action_secret(assistant)}"},
        timeout=30,
    )
    assert served.status_code == 200
    assert "確認があります" in " ".join(r.get("text") or "" for r in served.json()["responses"])
    assert requests.get(f"{assistant.action_url}/health", timeout=10).status_code == 200


def test_the_rasa_server_calls_its_actions_with_the_secret(say):
    # Every answer below comes from a custom action: the rasa server carries the secret.
    assert "出典" in joined(say(QUESTION))


# --- private inside: loopback only, secrets off command lines and environments -------


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (from /proc/net)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address if len(address) == width else "?")
    return found


def test_every_server_listens_on_loopback_only(assistant):
    settings = assistant.settings
    loopback = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
    for port in (
        settings.rasa_port,
        settings.action_port,
        settings.webchat_port,
        settings.console_port,
    ):
        addresses = listening_addresses(port)
        assert addresses, f"nothing listens on {port}"
        assert addresses <= loopback, f"port {port} listens on {addresses}"


def processes_of(assistant) -> list[int]:
    """The servers' processes and every process in their process groups."""
    groups = {process.pid for process in assistant.processes}
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) in groups:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                continue
    return pids


def test_no_secret_is_on_a_command_line_or_in_an_environment(assistant):
    secrets = {
        "rasa token": assistant.token,
        "action secret": action_secret(assistant),
        "hashing secret": (assistant.var_dir / "secret").read_text("utf-8").strip(),
    }
    pids = processes_of(assistant)
    assert len(pids) >= 4
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
            environment = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for name, value in secrets.items():
            assert value not in command, f"the {name} is on the command line of {pid}"
            assert value not in environment, f"the {name} is in the environment of {pid}"


def test_secret_files_are_readable_by_their_owner_only(assistant):
    for name in ("rasa_token", "action_secret", "secret", "endpoints.yml"):
        mode = stat.S_IMODE((assistant.var_dir / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {oct(mode)}"


def test_an_operator_still_reaches_rest_with_the_token(assistant):
    assert "出典" in joined(rest_post(assistant, "rest:operator", QUESTION))
