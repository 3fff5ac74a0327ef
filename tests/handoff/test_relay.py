"""Staff replies: stored, audited, relayed through Rasa's HTTP API (SQLite and PostgreSQL).

Rasa's side is a local stand-in: a real HTTP server that records each call and, for
``execute``, runs the real relay action against the same database, answering as the
rasa server does for the REST channel (the collected messages in the response). The
whole chain on the real servers is in tests/e2e/test_staff_relay.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import sqlalchemy as sa
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionRelayStaffMessage
from bot.core.conversation import Conversation
from bot.db.models import AuditLog, StaffMessage
from bot.handoff import escalations
from bot.handoff.rasa_api import RasaApi, RasaApiError
from bot.handoff.relay import (
    MAX_TEXT_LENGTH,
    RelayError,
    send_staff_message,
    take_undelivered,
)
from bot.staff.cli import main

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
TOKEN = "relay-test-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RasaStandIn:
    """What the stand-in was asked, and how it answers."""

    url: str = ""
    calls: list[tuple[str, dict[str, list[str]], dict[str, Any]]] = field(default_factory=list)
    run_action: bool = True  # False: answer 200 without running it (action server down)
    status: int = 200
    known: set[str] = field(default_factory=set)  # conversations that exist


@pytest.fixture
def rasa(database, tracker) -> Iterator[RasaStandIn]:
    state = RasaStandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            state.calls.append((parts.path, parse_qs(parts.query), body))
            sender = unquote(parts.path.split("/")[2])
            answer: dict[str, Any] = {"tracker": {}}
            status = state.status
            if sender not in state.known:
                status = 404
            elif parts.path.endswith("/execute") and state.run_action:
                # The conversation, held by the hand-off.
                held = tracker(sender=sender, paused=True, latest_message={}, events=[])
                dispatcher = CollectingDispatcher()
                events = asyncio.run(ActionRelayStaffMessage().run(dispatcher, held, {}))
                answer = {"tracker": {"events": events}, "messages": dispatcher.messages}
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return demo


def in_progress(database, sender: str = "m1", *, claim: bool = True) -> int:
    with database.begin() as session:
        opened = escalations.escalate(
            session, Conversation(sender, "start", "socketio"), "member_request", NOW, pause=True
        )
    if claim:
        with database.begin() as session:
            escalations.claim(session, opened.id, "tanaka", NOW)
    return opened.id


def stored(database) -> list[tuple[str, str, bool]]:
    with database.begin() as session:
        rows = session.execute(sa.select(StaffMessage).order_by(StaffMessage.id)).scalars()
        return [(row.staff, row.text, row.delivered_at is not None) for row in rows]


def audited(database) -> list[tuple[str, dict]]:
    with database.begin() as session:
        rows = session.execute(
            sa.select(AuditLog).where(AuditLog.action == "escalation.staff_message")
        ).scalars()
        return [(row.actor, dict(row.detail)) for row in rows]


def test_a_reply_is_stored_audited_and_relayed_through_execute(database, rasa):
    rasa.known.add("m1")
    escalation_id = in_progress(database)

    sent = send_staff_message(
        database,
        escalation_id,
        "tanaka",
        " 確認しますので少々お待ちください。\r\n田中 ",
        NOW,
        RasaApi(rasa.url, TOKEN),
    )

    assert (sent.staff, sent.text) == ("tanaka", "確認しますので少々お待ちください。\n田中")
    assert sent.created_at == NOW and sent.delivered_at is not None
    (path, query, body), *_ = rasa.calls
    assert path == "/conversations/m1/execute"
    assert query["output_channel"] == ["latest"] and query["token"] == [TOKEN]
    assert body == {"name": "action_relay_staff_message"}
    assert stored(database) == [("tanaka", "確認しますので少々お待ちください。\n田中", True)]
    # The audit says who wrote to which escalation, never what.
    assert audited(database) == [
        (
            "staff:tanaka",
            {"escalation_id": escalation_id, "message_id": sent.id, "length": len(sent.text)},
        )
    ]


def test_what_the_relay_action_utters_and_returns(database, rasa):
    rasa.known.add("m1")
    escalation_id = in_progress(database)
    api = RasaApi(rasa.url, TOKEN)
    with database.begin() as session:
        session.add(StaffMessage(
            escalation_id=escalation_id, sender_id="m1", staff="suzuki", text="一通目",
            created_at=NOW,
        ))  # fmt: skip
    messages = api.relay("m1")  # the stand-in answers like Rasa for the REST channel
    # The staff name rides along: Rasa puts extra keys into the BotUttered's metadata.
    assert [(m["text"], m["staff"]) for m in messages] == [("担当者より：一通目", "suzuki")]
    assert api.relay("m1") == []  # delivered once only


def test_replies_wait_while_rasa_is_down_and_go_with_the_next(database, rasa):
    rasa.known.add("m1")
    escalation_id = in_progress(database)
    down = RasaApi(f"http://127.0.0.1:{free_port()}", TOKEN)

    with pytest.raises(RelayError, match="まだ届いていません") as refused:
        send_staff_message(database, escalation_id, "tanaka", "一通目", NOW, down)
    assert refused.value.stored is not None and refused.value.stored.delivered_at is None
    assert stored(database) == [("tanaka", "一通目", False)]

    rasa.run_action = False  # the rasa server answers, the action server does not
    with pytest.raises(RelayError, match="アクションサーバー") as refused:
        send_staff_message(
            database, escalation_id, "tanaka", "二通目", NOW, RasaApi(rasa.url, TOKEN)
        )
    assert refused.value.stored is not None and refused.value.stored.text == "二通目"

    rasa.run_action = True
    later = NOW + timedelta(minutes=1)
    sent = send_staff_message(
        database, escalation_id, "tanaka", "三通目", later, RasaApi(rasa.url, TOKEN)
    )
    assert sent.delivered_at is not None
    assert stored(database) == [
        ("tanaka", "一通目", True),
        ("tanaka", "二通目", True),
        ("tanaka", "三通目", True),
    ]


def test_refused_replies_store_nothing(database, rasa):
    rasa.known.update({"m1", "m2", "m3"})
    api = RasaApi(rasa.url, TOKEN)
    working = in_progress(database, "m1")
    waiting = in_progress(database, "m2", claim=False)
    closed = in_progress(database, "m3")
    with database.begin() as session:
        escalations.close(session, closed, "tanaka", None, NOW)

    for escalation_id, text, why in (
        (working, "   \n ", "空です"),
        (working, "あ" * (MAX_TEXT_LENGTH + 1), "2,000文字以内"),
        (waiting, "こんにちは", "担当中ではない"),
        (closed, "こんにちは", "終了している"),
        (999, "こんにちは", "見つかりません"),
    ):
        with pytest.raises(RelayError, match=why) as refused:
            send_staff_message(database, escalation_id, "tanaka", text, NOW, api)
        assert refused.value.stored is None
    assert stored(database) == [] and audited(database) == [] and rasa.calls == []

    longest = send_staff_message(database, working, "tanaka", "あ" * MAX_TEXT_LENGTH, NOW, api)
    assert longest.delivered_at is not None


def test_take_undelivered_is_oldest_first_and_once(database):
    first = in_progress(database, "m1")
    in_progress(database, "m2")
    with database.begin() as session:
        for sender, text in (("m1", "a"), ("m2", "other"), ("m1", "b")):
            session.add(StaffMessage(
                escalation_id=first, sender_id=sender, staff="tanaka", text=text, created_at=NOW
            ))  # fmt: skip
    with database.begin() as session:
        taken = take_undelivered(session, "m1", NOW)
    assert [(r.staff, r.text) for r in taken] == [
        ("tanaka", "担当者より：a"),
        ("tanaka", "担当者より：b"),
    ]
    with database.begin() as session:
        assert take_undelivered(session, "m1", NOW) == []
        assert [r.text for r in take_undelivered(session, "m2", NOW)] == ["担当者より：other"]


def test_the_api_pauses_resumes_and_reports_errors(rasa):
    rasa.known.add("m/1")
    api = RasaApi(rasa.url + "/", TOKEN)
    api.pause("m/1")
    api.resume("m/1")
    assert [(path, body) for path, _, body in rasa.calls] == [
        ("/conversations/m%2F1/tracker/events", {"event": "pause"}),
        ("/conversations/m%2F1/tracker/events", {"event": "resume"}),
    ]
    with pytest.raises(RasaApiError, match="404"):
        api.relay("unknown")
    rasa.status = 500
    with pytest.raises(RasaApiError, match="500"):
        api.resume("m/1")
    with pytest.raises(RasaApiError, match="unreachable"):
        RasaApi(f"http://127.0.0.1:{free_port()}", TOKEN).resume("m/1")


def test_the_cli_replies_and_refuses(database, rasa, migrated_url, monkeypatch, capsys):
    monkeypatch.setenv("RASA_TOKEN", TOKEN)
    rasa.known.add("m1")
    escalation_id = in_progress(database)
    base = ["--url", migrated_url, "reply", str(escalation_id), "--staff", "tanaka"]
    assert main([*base, "--text", "お待たせしました", "--rasa-url", rasa.url]) == 0
    assert "delivered" in capsys.readouterr().out
    assert rasa.calls[0][1]["token"] == [TOKEN]
    assert main([*base, "--text", " ", "--rasa-url", rasa.url]) == 2
    assert "空です" in capsys.readouterr().err
    assert stored(database) == [("tanaka", "お待たせしました", True)]


def test_the_rasa_api_names_a_prefixed_conversation_as_it_is():
    # Sanic does not decode %3A in a path parameter: a quoted colon would send the
    # resume, pause or relay to another conversation (rest%3A…), leaving this one paused.
    api = RasaApi("http://127.0.0.1:5005", "token")
    assert api._conversation("line:U0abc", "execute") == (
        "http://127.0.0.1:5005/conversations/line:U0abc/execute"
    )
    assert api._conversation("web:a/b", "tracker/events").endswith("/web:a%2Fb/tracker/events")


def test_a_reply_on_line_is_pushed_once_by_the_outbox_and_only_recorded_by_rasa(
    database, rasa, monkeypatch
):
    import bot.outbound.outbox as outbox
    from bot.db.models import OutboundMessage
    from tests.line_stand_in import ACCESS_TOKEN, line_stand_in

    sender = "line:U4af4980629a0b8e5c1f3a7d9e2b6c001"
    rasa.known.add(sender)
    escalation_id = in_progress(database, sender)
    with line_stand_in() as line:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", ACCESS_TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", line.url)
        monkeypatch.setattr(outbox, "_default_carriers", None)  # read these settings
        api = RasaApi(rasa.url, TOKEN)
        sent = send_staff_message(database, escalation_id, "tanaka", "確認します", NOW, api)
        assert sent.delivered_at is not None  # recorded in the conversation
        rasa.status, rasa.run_action = 500, False  # the rasa server fails...
        later = send_staff_message(database, escalation_id, "tanaka", "お待たせ", NOW, api)
        assert later.delivered_at is None  # ...no error for staff: the push went already
        rasa.status, rasa.run_action = 200, True
        api.relay(sender)  # the console's retry: records it, pushes nothing
    pushes = line.successful()
    assert [call.texts for call in pushes] == [
        ["担当者より：確認します"],
        ["担当者より：お待たせ"],
    ]
    assert [call.body["to"] for call in pushes] == [sender.removeprefix("line:")] * 2
    assert [delivered for _, _, delivered in stored(database)] == [True, True]
    # Rasa was asked to run the relay without an output channel: it sends nothing itself.
    assert all("output_channel" not in query for _, query, _ in rasa.calls)
    with database.begin() as session:
        rows = session.execute(sa.select(OutboundMessage)).scalars().all()
        assert [(row.channel, row.status, row.purpose, row.payload) for row in rows] == [
            ("line", "sent", "staff_reply", None),
            ("line", "sent", "staff_reply", None),
        ]
        keys = [row.retry_key for row in rows]
    assert [call.headers["x-line-retry-key"] for call in pushes] == keys
