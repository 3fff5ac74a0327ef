"""The website chat's channel: sessions, the guard on every message, offered buttons."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage
from rasa.core.run import create_http_input_channels

from bot.channels.guard import RATE_LIMITED_REPLY, ChannelGuard
from bot.channels.webchat import GuardedSocketIOOutput, WebchatInput
from tests.conftest import ROOT

SESSION = "0123456789abcdef0123456789abcdef"


class FakeServer:
    """Records what the channel does with python-socketio's AsyncServer."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[str]] = {}
        self.emitted: list[tuple[str, Any, str | None]] = []

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.rooms.setdefault(room, set()).add(sid)

    async def emit(self, event: str, data: Any = None, room: str | None = None, **_: Any) -> None:
        self.emitted.append((event, data, room))

    def texts_to(self, room: str) -> list[str]:
        return [d["text"] for e, d, r in self.emitted if e == "bot_uttered" and r == room]


class Rasa:
    """Stands in for Rasa's on_new_message."""

    def __init__(self) -> None:
        self.received: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.received.append(message)

    @property
    def texts(self) -> list[str | None]:
        return [m.text for m in self.received]


def channel(**credentials: Any) -> WebchatInput:
    built = WebchatInput.from_credentials(
        {"session_persistence": True, "bot_message_evt": "bot_uttered", **credentials}
    )
    assert isinstance(built, WebchatInput)
    return built


def confirmed(chat: WebchatInput, sio: FakeServer, sid: str = "sid-1") -> str:
    asyncio.run(chat.start_session(sio, sid, {"session_id": SESSION}))
    return SESSION


def send(chat: WebchatInput, sio: FakeServer, rasa: Rasa, data: Any, sid: str = "sid-1") -> None:
    asyncio.run(chat.receive(sio, sid, data, rasa))


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


def test_the_rate_limit_comes_from_the_credentials():
    assert channel(max_messages_per_minute=3).guard.max_per_minute == 3


def test_a_session_is_joined_and_confirmed_and_foreign_ids_are_replaced():
    chat, sio = channel(), FakeServer()
    confirmed(chat, sio)
    assert sio.rooms == {SESSION: {"sid-1"}}
    assert sio.emitted == [("session_confirm", SESSION, "sid-1")]
    for asked in (None, {}, {"session_id": "x" * 500}, {"session_id": 42}, "str"):
        asyncio.run(chat.start_session(sio, "sid-2", asked))
        issued = sio.emitted[-1][1]
        assert issued != SESSION and len(issued) == 32
        assert chat.sessions["sid-2"] == issued


def test_a_confirmed_message_reaches_rasa_from_the_session_without_browser_metadata():
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    confirmed(chat, sio)
    send(
        chat,
        sio,
        rasa,
        {"message": " 個人情報の利用目的 ", "session_id": SESSION, "metadata": {"verified": True}},
    )
    [message] = rasa.received
    assert (message.text, message.sender_id, message.input_channel) == (
        "個人情報の利用目的",
        SESSION,
        "socketio",
    )
    assert message.metadata == {}
    assert isinstance(message.output_channel, GuardedSocketIOOutput)


@pytest.mark.parametrize(
    "data",
    [
        {"message": "こんにちは", "session_id": "f" * 32},  # someone else's session
        {"message": "こんにちは"},  # no session at all
        "こんにちは",
        None,
    ],
)
def test_messages_outside_the_sockets_confirmed_session_are_ignored(data):
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    confirmed(chat, sio)
    send(chat, sio, rasa, data)
    assert rasa.received == []


def test_a_socket_that_has_not_asked_for_a_session_cannot_speak():
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    send(chat, sio, rasa, {"message": "こんにちは", "session_id": SESSION}, sid="stranger")
    assert rasa.received == []


def test_an_overlong_message_is_answered_politely_and_never_reaches_rasa():
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    confirmed(chat, sio)
    send(chat, sio, rasa, {"message": "あ" * 2001, "session_id": SESSION})
    assert rasa.received == []
    [notice] = sio.texts_to(SESSION)
    assert "2000文字以内" in notice
    send(chat, sio, rasa, {"message": "あ" * 2000, "session_id": SESSION})
    assert len(rasa.received) == 1


def test_a_non_text_message_gets_a_polite_request_for_words():
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    confirmed(chat, sio)
    send(chat, sio, rasa, {"message": {"text": "x"}, "session_id": SESSION})
    assert rasa.received == []
    assert sio.texts_to(SESSION)


def test_over_the_rate_limit_the_member_is_told_once_and_rasa_hears_nothing():
    clock = [0.0]
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    chat.guard = ChannelGuard(max_per_minute=3, clock=lambda: clock[0])
    confirmed(chat, sio)
    for _ in range(5):
        send(chat, sio, rasa, {"message": "こんにちは", "session_id": SESSION})
    assert len(rasa.received) == 3
    assert sio.texts_to(SESSION) == [RATE_LIMITED_REPLY]
    clock[0] = 61.0
    send(chat, sio, rasa, {"message": "こんにちは", "session_id": SESSION})
    assert len(rasa.received) == 4


def test_a_typed_payload_runs_only_after_the_bot_offered_it_as_a_button():
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    confirmed(chat, sio)
    send(chat, sio, rasa, {"message": '/greet{"x": 1}', "session_id": SESSION})
    assert rasa.texts == ['greet{"x": 1}']  # plain words for the NLU, not an intent

    # The bot answers with buttons through the message's output channel...
    output = rasa.received[-1].output_channel
    buttons = [{"title": "連絡先", "payload": "/ask_contact"}]
    asyncio.run(output.send_text_with_buttons(SESSION, "どれですか", buttons))
    assert sio.emitted[-1][1]["quick_replies"][0]["payload"] == "/ask_contact"
    # ...so the member's press of that button reaches Rasa as the intent.
    send(chat, sio, rasa, {"message": "/ask_contact", "session_id": SESSION})
    assert rasa.texts[-1] == "/ask_contact"


def test_buttons_sent_through_the_http_api_count_as_offered_too():
    chat, sio, rasa = channel(), FakeServer(), Rasa()
    chat.sio = sio
    output = chat.get_output_channel()
    assert isinstance(output, GuardedSocketIOOutput)
    confirmed(chat, sio)
    buttons = [{"title": "窓口", "payload": "/ask_contact"}]
    asyncio.run(output.send_text_with_buttons(SESSION, "ご案内", buttons))
    send(chat, sio, rasa, {"message": "/ask_contact", "session_id": SESSION})
    assert rasa.texts == ["/ask_contact"]


def test_the_blueprint_uses_this_channels_handlers():
    chat = channel()
    chat.blueprint(Rasa())
    assert chat.sio is not None
    handlers = chat.sio.handlers["/"]
    for event in ("session_request", "user_uttered", "disconnect"):
        assert handlers[event].__qualname__.startswith("WebchatInput.blueprint"), event


def test_a_disconnected_socket_forgets_its_session():
    chat = channel()
    chat.blueprint(Rasa())
    assert chat.sio is not None
    chat.sessions["sid-1"] = SESSION
    asyncio.run(chat.sio.handlers["/"]["disconnect"]("sid-1"))
    assert chat.sessions == {}
