"""The channel guard across replicas: two guards on one real Redis act as one.

Each guard has its own Redis client, as two rasa server processes would; the keys live
under a prefix of the test's own (``tests/channels/conftest.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from bot.channels.guard import EMPTY_REPLY, RATE_LIMITED_REPLY, Verdict, too_long_reply
from bot.channels.shared_guard import SharedChannelGuard, payload_hash
from bot.channels.shared_state import connect
from tests.channels.conftest import RedisSpace, closed_port_url

SENDER = "U206d25c2ea6bd87c17655609a1c37cb8"
MENU = ["/ask_usage_purpose", '/ask_my_data{"verified": true}']


def replicas(
    space: RedisSpace, count: int = 2, clock: Callable[[], float] | None = None, **limits: Any
) -> Callable[[Callable[..., Awaitable[None]]], None]:
    """Run ``scenario(*guards)`` with ``count`` guards, each with its own Redis client."""

    def run(scenario: Callable[..., Awaitable[None]]) -> None:
        async def go() -> None:
            clients = [connect(space.url) for _ in range(count)]
            extra: dict[str, Any] = {"clock": clock} if clock else {}
            guards = [
                SharedChannelGuard(client, "line", prefix=space.prefix, **limits, **extra)
                for client in clients
            ]
            try:
                await scenario(*guards)
            finally:
                for client in clients:
                    await client.close()

        asyncio.run(go())

    return run


def test_two_replicas_share_one_rate_limit(redis_space):
    @replicas(redis_space, max_per_minute=3)
    async def _(a: SharedChannelGuard, b: SharedChannelGuard) -> None:
        assert (await a.admit_async(SENDER, "一")).text == "一"
        assert (await b.admit_async(SENDER, "二")).text == "二"
        assert (await a.admit_async(SENDER, "三")).text == "三"
        # The fourth message in the minute is over the limit whichever replica gets it:
        # one notice, then silence.
        assert await b.admit_async(SENDER, "四") == Verdict(None, RATE_LIMITED_REPLY)
        assert await a.admit_async(SENDER, "五") == Verdict(None, None)
        assert await b.admit_async(SENDER, "六") == Verdict(None, None)
        # Another member is not affected.
        assert (await b.admit_async("U-other", "こんにちは")).text == "こんにちは"


def test_the_shared_window_slides_and_the_notice_comes_again(redis_space):
    now = [1_000_000.0]

    @replicas(redis_space, clock=lambda: now[0], max_per_minute=2)
    async def _(a: SharedChannelGuard, b: SharedChannelGuard) -> None:
        await a.admit_async(SENDER, "一")
        now[0] += 30
        await b.admit_async(SENDER, "二")
        assert await a.admit_async(SENDER, "三") == Verdict(None, RATE_LIMITED_REPLY)
        now[0] += 29.9  # the first message is still within the minute
        assert await b.admit_async(SENDER, "四") == Verdict(None, None)
        now[0] += 0.2  # now it is not: one place free
        assert (await b.admit_async(SENDER, "五")).text == "五"
        assert await a.admit_async(SENDER, "六") == Verdict(None, RATE_LIMITED_REPLY)


def test_a_button_offered_by_one_replica_is_accepted_once_by_another(redis_space):
    @replicas(redis_space)
    async def _(a: SharedChannelGuard, b: SharedChannelGuard) -> None:
        await a.offered_async(SENDER, [*MENU, "plain words are not offers"])
        assert (await b.admit_async(SENDER, MENU[1])).text == MENU[1]
        # One press per offer, on any replica: the other button is now plain words.
        assert (await a.admit_async(SENDER, MENU[0])).text == "ask_usage_purpose"
        # Never offered to this member at all.
        assert (await a.admit_async("U-other", MENU[1])).text == 'ask_my_data{"verified": true}'


def test_buttons_of_one_answer_add_up_and_the_next_answer_replaces_them(redis_space):
    @replicas(redis_space)
    async def _(a: SharedChannelGuard, b: SharedChannelGuard) -> None:
        # One answer whose messages leave through two replicas (a reply and a staff
        # message, say): both sets of buttons stand.
        await a.offered_async(SENDER, [MENU[0]])
        await b.offered_async(SENDER, [MENU[1]])
        assert (await a.admit_async(SENDER, "まだ考えています")).text == "まだ考えています"
        # The member wrote: the next buttons are a new offer, the old ones are gone.
        await b.offered_async(SENDER, ["/affirm"])
        assert (await a.admit_async(SENDER, MENU[0])).text == "ask_usage_purpose"
        assert (await b.admit_async(SENDER, MENU[1])).text == 'ask_my_data{"verified": true}'
        # The offer stands while the member types, as in memory.
        assert (await a.admit_async(SENDER, "/affirm")).text == "/affirm"


def test_length_and_empty_messages_are_judged_as_in_memory(redis_space):
    @replicas(redis_space, count=1, max_chars=10)
    async def _(a: SharedChannelGuard) -> None:
        await a.offered_async(SENDER, ["/" + "x" * 20])
        assert await a.admit_async(SENDER, "/" + "x" * 20) == Verdict(None, too_long_reply(10))
        assert await a.admit_async(SENDER, "  /  ") == Verdict(None, EMPTY_REPLY)
        assert (await a.admit_async(SENDER, "  ふつうの文  ")).text == "ふつうの文"


def test_redis_holds_neither_the_sender_id_nor_a_payload(redis_space):
    @replicas(redis_space, count=1)
    async def _(a: SharedChannelGuard) -> None:
        await a.admit_async(SENDER, "こんにちは")
        await a.offered_async(SENDER, MENU)

    keys = redis_space.stored_keys()
    assert len(keys) == 3  # the window, the offer, and the offer being open
    client = redis.Redis.from_url(redis_space.url, decode_responses=True)
    try:
        offer = next(key for key in keys if key.endswith(":offer"))
        assert client.zrange(offer, 0, -1) == [payload_hash(p) for p in MENU]
        stored = " ".join(keys) + " ".join(client.zrange(offer, 0, -1))
    finally:
        client.close()
    assert SENDER not in stored
    assert "ask_usage_purpose" not in stored
    # Everything expires: idle senders leave Redis.
    client = redis.Redis.from_url(redis_space.url)
    try:
        assert all(0 < client.pttl(key) <= 6 * 3600 * 1000 for key in keys)
    finally:
        client.close()


def test_without_redis_at_run_time_messages_still_pass_and_the_limit_holds_per_process(caplog):
    async def go() -> list[Verdict]:
        client = connect(closed_port_url())
        guard = SharedChannelGuard(client, "socketio", max_per_minute=2)
        await guard.offered_async(SENDER, MENU[:1])
        verdicts = [await guard.admit_async(SENDER, text) for text in (MENU[0], "二", "三")]
        await client.close()
        return verdicts

    with caplog.at_level(logging.INFO):
        verdicts = asyncio.run(go())
    # The member's message is handled; a button offered during the outage on this
    # replica still works; the limit is kept in the process meanwhile.
    assert verdicts == [
        Verdict(MENU[0], None),
        Verdict("二", None),
        Verdict(None, RATE_LIMITED_REPLY),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "socketio channel guard: Redis unavailable (ConnectionError); "
        "per-process state until it answers again"
    ]
    assert all(SENDER not in record.getMessage() for record in caplog.records)


def test_limits_must_be_positive():
    client = connect("redis://127.0.0.1:6379/0")
    with pytest.raises(ValueError):
        SharedChannelGuard(client, "line", max_per_minute=0)
