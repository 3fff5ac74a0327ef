"""The website chat's channel: sessions that cannot be taken by their id, the guard.

The channel runs against a stand-in for python-socketio's server and a real database
(a migrated SQLite file; the store's own tests also on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from rasa.core.channels.channel import UserMessage
from rasa.core.run import create_http_input_channels
from sqlalchemy.exc import OperationalError

from bot.channels.guard import RATE_LIMITED_REPLY, ChannelGuard
from bot.channels.web_sessions import WebSessionStore, purge_web_sessions, secret_hash
from bot.channels.webchat import (
    SESSION_TAKEN_OVER_EVT,
    GuardedSocketIOOutput,
    WebchatInput,
    room_of,
)
from bot.db.migrate import upgrade
from bot.db.models import WebSession
from bot.db.session import dispose, session_factory
from tests.conftest import ROOT

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=timezone.utc)
HEX32 = re.compile(r"[0-9a-f]{32}")


class FakeServer:
    """Records what the channel does with python-socketio's AsyncServer.

    Like the real one, disconnecting a socket runs the channel's disconnect handler and
    takes the socket out of every room, and a gone socket cannot enter a room.
    """

    def __init__(self, chat: WebchatInput | None = None) -> None:
        self.chat = chat
        self.rooms: dict[str, set[str]] = {}
        self.emitted: list[tuple[str, Any, str | None]] = []
        self.disconnected: list[str] = []

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        if sid in self.disconnected:
            raise KeyError(sid)
        self.rooms.setdefault(room, set()).add(sid)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.rooms.get(room, set()).discard(sid)

    async def emit(self, event: str, data: Any = None, room: str | None = None, **_: Any) -> None:
        self.emitted.append((event, data, room))

    async def disconnect(self, sid: str, namespace: str | None = None) -> None:
        self.disconnected.append(sid)
        for members in self.rooms.values():
            members.discard(sid)
        if self.chat is not None:
            self.chat.forget(sid)

    def events_to(self, sid: str, event: str) -> list[Any]:
        return [d for e, d, r in self.emitted if e == event and r == sid]

    def texts_to(self, room: str) -> list[str]:
        return [d["text"] for e, d, r in self.emitted if e == "bot_uttered" and r == room]

    def members(self, session_id: str) -> set[str]:
        return self.rooms.get(room_of(session_id), set())


class Rasa:
    """Stands in for Rasa's on_new_message."""

    def __init__(self) -> None:
        self.received: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.received.append(message)

    @property
    def texts(self) -> list[str | None]:
        return [m.text for m in self.received]


@pytest.fixture
def app_url(tmp_path) -> Iterator[str]:
    """A migrated SQLite app database of the test's own."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    yield url
    dispose(url)


@pytest.fixture
def store(app_url: str) -> WebSessionStore:
    return WebSessionStore(session_factory(app_url))


class Chat:
    """One channel, its socket server and Rasa, with the member's moves as methods."""

    def __init__(self, store: WebSessionStore, **credentials: Any) -> None:
        built = WebchatInput.from_credentials(
            {"session_persistence": True, "bot_message_evt": "bot_uttered", **credentials}
        )
        assert isinstance(built, WebchatInput)
        self.channel = built
        self.channel.store = store
        self.channel.clock = lambda: NOW
        self.sio = FakeServer(self.channel)
        self.rasa = Rasa()

    def open(self, sid: str, data: Any = None) -> dict[str, str]:
        """``session_request`` from socket ``sid``; the ``session_confirm`` it got."""
        before = len(self.sio.events_to(sid, "session_confirm"))
        asyncio.run(self.channel.start_session(self.sio, sid, data))
        confirms = self.sio.events_to(sid, "session_confirm")
        assert len(confirms) == before + 1, "no session_confirm"
        return confirms[-1]

    def send(self, sid: str, data: Any) -> None:
        asyncio.run(self.channel.receive(self.sio, sid, data, self.rasa))

    def say(self, sid: str, text: str, session_id: str) -> None:
        self.send(sid, {"message": text, "session_id": session_id})


@pytest.fixture
def chat(store: WebSessionStore) -> Chat:
    return Chat(store)


def resume(confirm: dict[str, str]) -> dict[str, str]:
    return {"session_id": confirm["session_id"], "resume_secret": confirm["resume_secret"]}


# --- loading ---------------------------------------------------------------------------


def test_credentials_yml_loads_this_channel_under_the_socketio_name():
    channels = create_http_input_channels(None, str(ROOT / "credentials.yml"))
    webchat = [c for c in channels if isinstance(c, WebchatInput)]
    assert len(webchat) == 1
    chat = webchat[0]
    assert chat.name() == "socketio"
    assert chat.session_persistence is True
    assert (chat.user_message_evt, chat.bot_message_evt) == ("user_uttered", "bot_uttered")
    assert chat.socketio_path == "/socket.io"
    assert chat.guard.max_per_minute == 20
    assert not any(type(c).__name__ == "SocketIOInput" for c in channels)


def test_the_rate_limit_comes_from_the_credentials(store):
    assert Chat(store, max_messages_per_minute=3).channel.guard.max_per_minute == 3


def test_without_session_persistence_the_channel_refuses_to_start():
    with pytest.raises(ValueError, match="session_persistence"):
        WebchatInput.from_credentials({"session_persistence": False})


def test_the_store_is_the_app_database_of_the_settings(monkeypatch, app_url):
    monkeypatch.setenv("DATABASE_URL", app_url)
    channel = WebchatInput(session_persistence=True)
    assert channel.store is None
    assert channel.session_store().sessions is session_factory(app_url)


# --- issuing and resuming sessions ---------------------------------------------------------


def test_a_new_session_is_issued_with_a_resume_secret_and_joined_as_its_conversation(chat):
    confirm = chat.open("sid-1", {})
    assert set(confirm) == {"session_id", "resume_secret"}
    session_id, secret = confirm["session_id"], confirm["resume_secret"]
    assert HEX32.fullmatch(session_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", secret)  # token_urlsafe(32): 256 bits
    assert room_of(session_id) == f"web:{session_id}"
    assert chat.sio.rooms == {f"web:{session_id}": {"sid-1"}}
    assert chat.channel.sessions == {"sid-1": session_id}


@pytest.mark.parametrize(
    "asked", [None, "str", 42, [], {"session_id": None}, {"session_id": "x" * 500}]
)
def test_any_request_without_a_session_to_resume_gets_a_new_one(chat, asked):
    confirm = chat.open("sid-1", asked)
    assert HEX32.fullmatch(confirm["session_id"])


def test_only_a_hash_of_the_secret_is_stored(chat, app_url):
    confirm = chat.open("sid-1", {})
    with session_factory(app_url).begin() as session:
        row = session.get(WebSession, confirm["session_id"])
        assert row is not None
        stored = [str(value) for value in (row.id, row.secret_hash, row.socket_id)]
        assert row.secret_hash == hashlib.sha256(confirm["resume_secret"].encode()).hexdigest()
        assert (row.created_at, row.last_seen_at) == (NOW, NOW)
    assert not any(confirm["resume_secret"] in value for value in stored)


def test_the_session_id_alone_starts_a_new_session_not_the_one_asked_for(chat):
    first = chat.open("sid-1", {})
    taker = chat.open("sid-2", {"session_id": first["session_id"]})
    assert taker["session_id"] != first["session_id"]
    # The first socket keeps its session and hears of no take-over.
    assert chat.sio.members(first["session_id"]) == {"sid-1"}
    assert chat.sio.events_to("sid-1", SESSION_TAKEN_OVER_EVT) == []
    assert chat.sio.disconnected == []


@pytest.mark.parametrize(
    "secret",
    [
        "A" * 43,  # well-formed, wrong
        "",
        None,
        42,
        {"$ne": ""},
        "A" * 10_000,
        "ＡＢＣ" * 15,  # not ASCII
    ],
)
def test_a_wrong_secret_starts_a_new_session(chat, secret):
    first = chat.open("sid-1", {})
    taker = chat.open("sid-2", {"session_id": first["session_id"], "resume_secret": secret})
    assert taker["session_id"] != first["session_id"]
    assert chat.sio.members(first["session_id"]) == {"sid-1"}


def test_another_sessions_secret_does_not_open_this_one(chat):
    first = chat.open("sid-1", {})
    second = chat.open("sid-2", {})
    taker = chat.open(
        "sid-3", {"session_id": first["session_id"], "resume_secret": second["resume_secret"]}
    )
    assert taker["session_id"] not in (first["session_id"], second["session_id"])


def test_the_right_secret_resumes_the_session_and_is_replaced(chat, app_url):
    first = chat.open("sid-1", {})
    chat.sio.chat = None  # sid-1 went away without the server noticing yet
    again = chat.open("sid-2", resume(first))
    assert again["session_id"] == first["session_id"]
    assert again["resume_secret"] != first["resume_secret"]
    with session_factory(app_url).begin() as session:
        row = session.get(WebSession, first["session_id"])
        assert row is not None
        assert row.secret_hash == secret_hash(again["resume_secret"])
        assert row.socket_id == "sid-2"

    # The old secret stopped working: it opens a new session, not this one.
    replay = chat.open("sid-3", resume(first))
    assert replay["session_id"] != first["session_id"]
    assert chat.sio.members(first["session_id"]) == {"sid-2"}
    # The new one works, once.
    assert chat.open("sid-4", resume(again))["session_id"] == first["session_id"]


def test_a_second_socket_resuming_ends_the_first_which_is_told(chat):
    first = chat.open("sid-1", {})
    session_id = first["session_id"]
    second = chat.open("sid-2", resume(first))
    assert second["session_id"] == session_id

    assert chat.sio.events_to("sid-1", SESSION_TAKEN_OVER_EVT) == [{}]
    assert chat.sio.disconnected == ["sid-1"]
    assert chat.sio.members(session_id) == {"sid-2"}
    assert chat.channel.sessions == {"sid-2": session_id}
    assert chat.channel.holders == {session_id: "sid-2"}
    # The told socket was told before it was cut off, and was never confirmed again.
    told = chat.sio.emitted.index((SESSION_TAKEN_OVER_EVT, {}, "sid-1"))
    assert all(r != "sid-1" for _, _, r in chat.sio.emitted[told + 1 :])

    # What the first socket still sends counts for nothing; the second one speaks.
    chat.say("sid-1", "こんにちは", session_id)
    assert chat.rasa.received == []
    chat.say("sid-2", "こんにちは", session_id)
    assert [m.sender_id for m in chat.rasa.received] == [f"web:{session_id}"]


def test_a_take_over_reaches_a_socket_of_an_earlier_server_process(store):
    """The holder comes from the database: a restarted server (fresh memory) ends it too."""
    before_restart = Chat(store)
    first = before_restart.open("sid-old", {})
    after_restart = Chat(store)
    again = after_restart.open("sid-new", resume(first))
    assert again["session_id"] == first["session_id"]
    assert after_restart.sio.events_to("sid-old", SESSION_TAKEN_OVER_EVT) == [{}]
    assert after_restart.sio.disconnected == ["sid-old"]


def test_a_socket_resuming_its_own_session_is_not_told_to_leave(chat):
    first = chat.open("sid-1", {})
    again = chat.open("sid-1", resume(first))
    assert again["session_id"] == first["session_id"]
    assert chat.sio.disconnected == []
    assert chat.sio.members(first["session_id"]) == {"sid-1"}


def test_a_socket_that_starts_another_session_leaves_the_old_ones_room(chat):
    first = chat.open("sid-1", {})
    other = chat.open("sid-1", {})
    assert other["session_id"] != first["session_id"]
    assert chat.sio.members(first["session_id"]) == set()
    assert chat.sio.members(other["session_id"]) == {"sid-1"}
    assert chat.channel.holders == {other["session_id"]: "sid-1"}


def test_a_socket_gone_before_its_session_was_opened_is_not_kept(chat):
    chat.sio.disconnected.append("sid-1")
    asyncio.run(chat.channel.start_session(chat.sio, "sid-1", {}))
    assert chat.channel.sessions == {} and chat.channel.holders == {}
    assert chat.sio.events_to("sid-1", "session_confirm") == []


def test_without_the_database_the_socket_is_disconnected_unconfirmed(chat, monkeypatch):
    def broken(*_: Any) -> None:
        raise OperationalError("SELECT", {}, Exception("database is down"))

    monkeypatch.setattr(chat.channel.session_store(), "open", broken)
    asyncio.run(chat.channel.start_session(chat.sio, "sid-1", {}))
    assert chat.sio.disconnected == ["sid-1"]
    assert chat.sio.events_to("sid-1", "session_confirm") == []


# --- the store on both databases -----------------------------------------------------------


def test_the_store_rotates_the_secret_on_each_resume(sessions):
    store = WebSessionStore(sessions)
    first = store.open("a", None, None, NOW)
    assert (first.resumed, first.previous_socket) == (False, None)
    second = store.open("b", first.session_id, first.resume_secret, NOW + timedelta(minutes=1))
    assert (second.session_id, second.resumed, second.previous_socket) == (
        first.session_id,
        True,
        "a",
    )
    assert first.resume_secret not in repr(second)
    stale = store.open("c", first.session_id, first.resume_secret, NOW)
    assert not stale.resumed and stale.session_id != first.session_id
    with sessions.begin() as session:
        row = session.get(WebSession, first.session_id)
        assert row.last_seen_at == NOW + timedelta(minutes=1)
        assert row.socket_id == "b"


def test_of_two_resumes_with_the_same_secret_at_once_only_one_gets_the_session(sessions):
    store = WebSessionStore(sessions)
    first = store.open("a", None, None, NOW)
    start = threading.Barrier(2)
    results = []

    def resume_as(sid: str) -> None:
        start.wait()
        results.append(store.open(sid, first.session_id, first.resume_secret, NOW))

    threads = [threading.Thread(target=resume_as, args=(sid,)) for sid in ("b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.resumed for r in results) == [False, True]
    assert [r.session_id for r in results if r.resumed] == [first.session_id]


def test_the_purge_deletes_sessions_not_seen_since_the_cutoff(sessions):
    store = WebSessionStore(sessions)
    old = store.open("a", None, None, NOW - timedelta(days=91))
    recent = store.open("b", None, None, NOW - timedelta(days=89))
    with sessions.begin() as session:
        assert purge_web_sessions(session, NOW - timedelta(days=90)) == 1
    with sessions.begin() as session:
        left = session.execute(sa.select(WebSession.id)).scalars().all()
    assert left == [recent.session_id]
    assert not store.open("c", old.session_id, old.resume_secret, NOW).resumed


# --- messages ----------------------------------------------------------------------------------


def test_a_confirmed_message_reaches_rasa_as_the_web_conversation_without_metadata(chat):
    session_id = chat.open("sid-1", {})["session_id"]
    chat.send(
        "sid-1",
        {"message": " 個人情報の利用目的 ", "session_id": session_id, "metadata": {"verified": 1}},
    )
    [message] = chat.rasa.received
    assert (message.text, message.sender_id, message.input_channel) == (
        "個人情報の利用目的",
        f"web:{session_id}",
        "socketio",
    )
    assert message.metadata == {}
    assert isinstance(message.output_channel, GuardedSocketIOOutput)


def test_messages_from_a_socket_go_only_to_its_own_session(chat):
    mine = chat.open("sid-1", {})["session_id"]
    theirs = chat.open("sid-2", {})["session_id"]
    chat.say("sid-1", "こんにちは", theirs)  # naming someone else's session
    assert chat.rasa.received == []
    chat.say("sid-1", "こんにちは", mine)
    [message] = chat.rasa.received
    assert message.sender_id == f"web:{mine}"
    # The answer goes to this socket's room only.
    asyncio.run(message.output_channel.send_text_message(message.sender_id, "はい"))
    assert chat.sio.texts_to(f"web:{mine}") == ["はい"]
    assert chat.sio.texts_to(f"web:{theirs}") == []


@pytest.mark.parametrize(
    "data",
    [
        {"message": "こんにちは", "session_id": "f" * 32},
        {"message": "こんにちは"},
        {"message": "こんにちは", "session_id": None},
        "こんにちは",
        None,
    ],
)
def test_messages_outside_the_sockets_confirmed_session_are_ignored(chat, data):
    chat.open("sid-1", {})
    chat.send("sid-1", data)
    assert chat.rasa.received == []


def test_a_socket_that_has_not_asked_for_a_session_cannot_speak(chat):
    session_id = chat.open("sid-1", {})["session_id"]
    chat.say("stranger", "こんにちは", session_id)
    assert chat.rasa.received == []


def test_an_overlong_message_is_answered_politely_and_never_reaches_rasa(chat):
    session_id = chat.open("sid-1", {})["session_id"]
    chat.say("sid-1", "あ" * 2001, session_id)
    assert chat.rasa.received == []
    [notice] = chat.sio.texts_to(room_of(session_id))
    assert "2000文字以内" in notice
    chat.say("sid-1", "あ" * 2000, session_id)
    assert len(chat.rasa.received) == 1


def test_a_non_text_message_gets_a_polite_request_for_words(chat):
    session_id = chat.open("sid-1", {})["session_id"]
    chat.send("sid-1", {"message": {"text": "x"}, "session_id": session_id})
    assert chat.rasa.received == []
    assert chat.sio.texts_to(room_of(session_id))


def test_over_the_rate_limit_the_member_is_told_once_and_rasa_hears_nothing(chat):
    clock = [0.0]
    chat.channel.guard = ChannelGuard(max_per_minute=3, clock=lambda: clock[0])
    session_id = chat.open("sid-1", {})["session_id"]
    for _ in range(5):
        chat.say("sid-1", "こんにちは", session_id)
    assert len(chat.rasa.received) == 3
    assert chat.sio.texts_to(room_of(session_id)) == [RATE_LIMITED_REPLY]
    clock[0] = 61.0
    chat.say("sid-1", "こんにちは", session_id)
    assert len(chat.rasa.received) == 4


def test_the_rate_limit_follows_the_conversation_across_a_resume(chat):
    chat.channel.guard = ChannelGuard(max_per_minute=2, clock=lambda: 0.0)
    first = chat.open("sid-1", {})
    session_id = first["session_id"]
    chat.say("sid-1", "こんにちは", session_id)
    chat.say("sid-1", "こんにちは", session_id)
    chat.open("sid-2", resume(first))
    chat.say("sid-2", "こんにちは", session_id)
    assert len(chat.rasa.received) == 2


def test_a_typed_payload_runs_only_after_the_bot_offered_it_as_a_button(chat):
    session_id = chat.open("sid-1", {})["session_id"]
    chat.say("sid-1", '/greet{"x": 1}', session_id)
    assert chat.rasa.texts == ['greet{"x": 1}']  # plain words for the NLU, not an intent

    # The bot answers with buttons through the message's output channel...
    output = chat.rasa.received[-1].output_channel
    buttons = [{"title": "連絡先", "payload": "/ask_contact"}]
    asyncio.run(output.send_text_with_buttons(room_of(session_id), "どれですか", buttons))
    assert chat.sio.emitted[-1][1]["quick_replies"][0]["payload"] == "/ask_contact"
    # ...so the member's press of that button reaches Rasa as the intent.
    chat.say("sid-1", "/ask_contact", session_id)
    assert chat.rasa.texts[-1] == "/ask_contact"


# --- the output channel (answers and the HTTP API) ------------------------------------------


def test_buttons_sent_through_the_http_api_reach_the_room_and_count_as_offered(chat):
    chat.channel.sio = chat.sio
    output = chat.channel.get_output_channel()
    assert isinstance(output, GuardedSocketIOOutput)
    session_id = chat.open("sid-1", {})["session_id"]
    buttons = [{"title": "窓口", "payload": "/ask_contact"}]
    # Rasa's HTTP API sends to the tracker's sender id: the conversation id.
    asyncio.run(output.send_text_with_buttons(f"web:{session_id}", "ご案内", buttons))
    assert chat.sio.texts_to(f"web:{session_id}") == ["ご案内"]
    chat.say("sid-1", "/ask_contact", session_id)
    assert chat.rasa.texts == ["/ask_contact"]


@pytest.mark.parametrize("recipient", ["line:U1", "rest:me", "0123456789abcdef" * 2, "sid-1"])
def test_the_output_sends_nothing_to_other_channels_conversations_or_bare_ids(chat, recipient):
    chat.channel.sio = chat.sio
    output = chat.channel.get_output_channel()
    assert output is not None
    asyncio.run(output.send_text_message(recipient, "こんにちは"))
    asyncio.run(output.send_custom_json(recipient, {"text": "x"}))
    assert chat.sio.emitted == []


def test_a_custom_payload_cannot_choose_its_own_room(chat):
    chat.channel.sio = chat.sio
    output = chat.channel.get_output_channel()
    assert output is not None
    asyncio.run(output.send_custom_json("web:" + "a" * 32, {"text": "x", "room": "web:other"}))
    [(event, _, room)] = chat.sio.emitted
    assert (event, room) == ("bot_uttered", "web:" + "a" * 32)


# --- the handlers Rasa's blueprint gets -------------------------------------------------------


def test_the_blueprint_uses_this_channels_handlers(store):
    channel = Chat(store).channel
    channel.blueprint(Rasa())
    assert channel.sio is not None
    handlers = channel.sio.handlers["/"]
    for event in ("session_request", "user_uttered", "disconnect"):
        assert handlers[event].__qualname__.startswith("WebchatInput.blueprint"), event


def test_a_disconnected_socket_forgets_its_session(store):
    channel = Chat(store).channel
    channel.blueprint(Rasa())
    assert channel.sio is not None
    channel.sessions["sid-1"] = "a" * 32
    channel.holders["a" * 32] = "sid-1"
    asyncio.run(channel.sio.handlers["/"]["disconnect"]("sid-1", "client disconnect"))
    assert channel.sessions == {} and channel.holders == {}
