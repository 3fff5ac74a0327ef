"""The website chat on two rasa servers sharing one Redis: emits reach the other replica.

Two real Sanic servers on ephemeral loopback ports each run the channel's own blueprint
(its socket.io server with python-socketio's ``AsyncRedisManager``) over one app
database and one Redis; the member is python-socketio's ``AsyncClient`` over HTTP,
connected to replica B. A staff reply relayed through replica A (Rasa's
``/execute?output_channel=latest`` ends in the channel's output channel) must reach it.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
import socketio
from rasa.core.channels.channel import UserMessage
from sanic import Sanic

from bot.channels.guard import ChannelGuard
from bot.channels.rest import OperatorRestInput
from bot.channels.shared_guard import SharedChannelGuard
from bot.channels.shared_state import connect
from bot.channels.web_sessions import WebSessionStore
from bot.channels.webchat import WebchatInput
from bot.db.migrate import upgrade
from bot.db.session import dispose, session_factory
from bot.settings import SettingsError
from tests.channels.conftest import RedisSpace, closed_port_url

STAFF_REPLY = "担当者の田中です。お問い合わせの件、確認いたしました。"
BUTTONS = [{"title": "個人情報の利用目的", "payload": "/ask_usage_purpose"}]


@pytest.fixture(autouse=True)
def several_sanic_apps(monkeypatch) -> None:
    # Sanic rewrites its shared HTTP protocol methods when an app starts ("touch-up");
    # in test mode it keeps the originals, so that a second app in the process can too.
    monkeypatch.setattr(Sanic, "test_mode", True)


@pytest.fixture
def app_url(tmp_path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    yield url
    dispose(url)


class Replica:
    """One rasa server's website chat: the channel on a real Sanic server."""

    def __init__(self, space: RedisSpace | None, app_url: str, prefix: str) -> None:
        self.channel = WebchatInput(
            "user_uttered",
            "bot_uttered",
            None,
            True,
            store=WebSessionStore(session_factory(app_url)),
            redis_url=space.url if space else None,
        )
        self.channel.socketio_channel = f"{prefix}socketio"
        self.client = connect(space.url) if space else None
        if self.client is not None:
            self.channel.guard = SharedChannelGuard(self.client, "socketio", prefix=prefix)
        self.received: list[UserMessage] = []
        self.server: Any = None
        self.port = 0

    async def on_new_message(self, message: UserMessage) -> None:
        self.received.append(message)

    async def start(self) -> None:
        app = Sanic(f"replica_{uuid.uuid4().hex}")
        app.blueprint(self.channel.blueprint(self.on_new_message), url_prefix="/webhooks/socketio")
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = await app.create_server(
            sock=sock, return_asyncio_server=True, access_log=False
        )
        await self.server.startup()
        await self.server.start_serving()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.client is not None:
            await self.client.close()


class Member:
    """A browser's socket.io client: what it was sent, by event."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = {}
        for name in ("session_confirm", "bot_uttered"):
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], Awaitable[None]]:
        async def record(data: Any = None) -> None:
            self.events.setdefault(name, []).append(data)

        return record

    async def wait_for(self, name: str, count: int = 1, timeout_s: float = 5.0) -> list[Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(self.events.get(name, [])) < count:
            if asyncio.get_running_loop().time() > deadline:
                return self.events.get(name, [])
            await asyncio.sleep(0.02)
        return self.events[name]


async def subscribed(space: RedisSpace, channel: str, count: int) -> None:
    """Wait until ``count`` socket.io servers listen on the Redis channel."""
    client = redis.asyncio.Redis.from_url(space.url)
    try:
        for _ in range(250):
            numsub = dict(await client.pubsub_numsub(channel))
            if numsub.get(channel.encode(), 0) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no socket.io server subscribed to {channel}")
    finally:
        await client.close()


def two_replicas(space: RedisSpace | None, app_url: str, scenario: Any) -> None:
    prefix = space.prefix if space else f"test:{uuid.uuid4().hex}:"

    async def go() -> None:
        a, b = Replica(space, app_url, prefix), Replica(space, app_url, prefix)
        member = Member()
        await a.start()
        await b.start()
        try:
            # Long-polling: python-engineio's websocket client needs a newer aiohttp than
            # Rasa 3.6 pins (ClientWSTimeout); the rooms and the manager are the same.
            await member.sio.connect(
                f"http://127.0.0.1:{b.port}", socketio_path="/socket.io", transports=["polling"]
            )
            await scenario(a, b, member, prefix)
        finally:
            # The server ends the socket: a long-polling client leaving by itself would
            # wait for its pending poll (up to the 25-second ping interval).
            sid = member.sio.get_sid()
            if sid is not None and b.channel.sio is not None:
                await b.channel.sio.disconnect(sid)
            await member.sio.disconnect()
            await a.stop()
            await b.stop()

    asyncio.run(go())


def test_a_staff_reply_relayed_by_one_replica_reaches_the_member_on_the_other(redis_space, app_url):
    async def scenario(a: Replica, b: Replica, member: Member, prefix: str) -> None:
        await member.sio.emit("session_request", {})
        (confirm,) = await member.wait_for("session_confirm")
        session_id = confirm["session_id"]
        await subscribed(redis_space, f"{prefix}socketio", 1)

        # The console's relay: Rasa on replica A sends on the conversation's channel.
        output = a.channel.get_output_channel()
        assert output is not None
        await output.send_text_with_buttons(f"web:{session_id}", STAFF_REPLY, BUTTONS)
        (uttered,) = await member.wait_for("bot_uttered")
        assert uttered["text"] == STAFF_REPLY
        assert uttered["quick_replies"][0]["payload"] == "/ask_usage_purpose"

        # The member presses the button on replica B: offered through A, it is an intent.
        await member.sio.emit(
            "user_uttered", {"message": "/ask_usage_purpose", "session_id": session_id}
        )
        for _ in range(250):
            if b.received:
                break
            await asyncio.sleep(0.02)
        assert [m.text for m in b.received] == ["/ask_usage_purpose"]
        assert [m.sender_id for m in b.received] == [f"web:{session_id}"]
        assert a.received == []

    two_replicas(redis_space, app_url, scenario)


def test_without_redis_a_reply_from_the_other_replica_reaches_nobody(app_url):
    # What the Redis manager fixes: per process, replica A has no socket in the room.
    async def scenario(a: Replica, b: Replica, member: Member, prefix: str) -> None:
        await member.sio.emit("session_request", {})
        (confirm,) = await member.wait_for("session_confirm")
        output = a.channel.get_output_channel()
        assert output is not None
        await output.send_text_message(f"web:{confirm['session_id']}", STAFF_REPLY)
        assert await member.wait_for("bot_uttered", timeout_s=1.0) == []

    two_replicas(None, app_url, scenario)


def test_the_channels_built_with_redis_url_share_their_state(monkeypatch, redis_space):
    monkeypatch.setenv("REDIS_URL", redis_space.url)
    channel = WebchatInput.from_credentials({"session_persistence": True})
    assert isinstance(channel, WebchatInput)
    assert isinstance(channel.guard, SharedChannelGuard)
    assert channel.guard.max_per_minute == 20
    manager = channel.make_server().manager
    assert isinstance(manager, socketio.AsyncRedisManager)
    assert (manager.redis_url, manager.channel) == (redis_space.url, "privacy-bot:socketio")
    rest = OperatorRestInput.from_credentials({"max_messages_per_minute": 60})
    assert isinstance(rest, OperatorRestInput)
    assert isinstance(rest.guard, SharedChannelGuard)

    monkeypatch.delenv("REDIS_URL")
    channel = WebchatInput.from_credentials({"session_persistence": True})
    assert isinstance(channel, WebchatInput)
    assert isinstance(channel.guard, ChannelGuard)
    assert type(channel.make_server().manager) is socketio.AsyncManager


def test_an_unreachable_redis_stops_the_website_chat_at_start_up(monkeypatch):
    monkeypatch.setenv("REDIS_URL", closed_port_url())
    with pytest.raises(SettingsError, match=r"REDIS_URL: Redis at 127\.0\.0\.1"):
        WebchatInput.from_credentials({"session_persistence": True})
    with pytest.raises(SettingsError, match=r"REDIS_URL: Redis at 127\.0\.0\.1"):
        OperatorRestInput.from_credentials({})
