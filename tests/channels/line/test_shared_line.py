"""The LINE channel across replicas: event ids and the API budget in a real Redis.

Two channel instances with their own Redis clients stand for two rasa servers behind
one webhook URL; API calls go to the LINE stand-in (``tests/line_stand_in.py``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import pytest
import redis

from bot.channels.guard import RATE_LIMITED_REPLY
from bot.channels.line.api import LineApi
from bot.channels.line.budget import LocalRateBudget, SharedRateBudget, channel_key
from bot.channels.line.channel import LineInput
from bot.channels.line.config import LineConfig
from bot.channels.line.seen import SeenEvents, SharedSeenEvents
from bot.channels.line.signature import sign
from bot.channels.shared_guard import SharedChannelGuard
from bot.channels.shared_state import connect
from bot.settings import SettingsError
from tests.channels.conftest import RedisSpace, closed_port_url
from tests.channels.line.support import USER, FakeRasa, body, no_sleep, text_event
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET, StandIn


async def deliver(channel: LineInput, rasa: FakeRasa, *events: dict[str, Any]) -> None:
    """One signed webhook body through ``channel``, processed to the end."""
    raw = body(*events)
    status, accepted = channel.accept(raw, sign(CHANNEL_SECRET, raw))
    assert status == 200
    channel.submit(accepted, rasa)
    await channel.drain()


def replica(stand_in: StandIn, space: RedisSpace, client: Any, **guard: Any) -> LineInput:
    """A LINE channel as a rasa server with ``REDIS_URL`` builds it, on the stand-in."""
    config = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url)
    budget = SharedRateBudget(client, channel_key(ACCESS_TOKEN), prefix=space.prefix)
    return LineInput(
        config,
        api=LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep, budget=budget),
        guard=SharedChannelGuard(client, "line", prefix=space.prefix, **guard),
        seen=SharedSeenEvents(client, prefix=space.prefix),
    )


def test_an_event_seen_by_one_replica_is_not_answered_again_by_another(stand_in, redis_space):
    original = text_event("一度だけ", n=7)
    redelivered = copy.deepcopy(original)
    redelivered["deliveryContext"]["isRedelivery"] = True
    unseen = text_event("再送だが初見", n=8)
    unseen["deliveryContext"]["isRedelivery"] = True
    rasa_a, rasa_b = FakeRasa(), FakeRasa()

    async def go() -> None:
        client_a, client_b = connect(redis_space.url), connect(redis_space.url)
        a = replica(stand_in, redis_space, client_a)
        b = replica(stand_in, redis_space, client_b)
        await deliver(a, rasa_a, original)
        await deliver(b, rasa_b, redelivered, unseen)
        for channel, client in ((a, client_a), (b, client_b)):
            await channel.api.close()
            await client.close()

    asyncio.run(go())
    assert rasa_a.texts == ["一度だけ"]
    # Replica B skips the redelivery A answered, and answers the one nobody saw.
    assert rasa_b.texts == ["再送だが初見"]
    assert len(stand_in.successful()) == 2
    # The event ids are kept a day, hashed.
    event_keys = [k for k in redis_space.stored_keys() if ":line:event:" in k]
    assert len(event_keys) == 2
    assert not any("01FZ74A0TDDPYRVKNK77XKC3Z" in key for key in event_keys)
    client = redis.Redis.from_url(redis_space.url)
    try:
        assert all(23 * 3600 < client.ttl(key) <= 24 * 3600 for key in event_keys)
    finally:
        client.close()


def test_the_seen_ids_are_set_nx_each_id_new_exactly_once(redis_space):
    async def go() -> list[bool]:
        clients = [connect(redis_space.url) for _ in range(4)]
        records = [SharedSeenEvents(c, prefix=redis_space.prefix, ttl_s=60) for c in clients]
        # Four replicas receive the same id at the same moment.
        answers = await asyncio.gather(*(r.add("01HEVENT") for r in records))
        for client in clients:
            await client.close()
        return list(answers)

    assert sorted(asyncio.run(go())) == [False, False, False, True]


def test_a_member_over_the_limit_on_line_is_limited_across_replicas(stand_in, redis_space):
    rasa_a, rasa_b = FakeRasa(), FakeRasa()

    async def go() -> None:
        client_a, client_b = connect(redis_space.url), connect(redis_space.url)
        a = replica(stand_in, redis_space, client_a, max_per_minute=2)
        b = replica(stand_in, redis_space, client_b, max_per_minute=2)
        await deliver(a, rasa_a, text_event("一", n=1))
        await deliver(b, rasa_b, text_event("二", n=2))
        await deliver(a, rasa_a, text_event("三", n=3))
        for channel, client in ((a, client_a), (b, client_b)):
            await channel.api.close()
            await client.close()

    asyncio.run(go())
    assert rasa_a.texts == ["一"] and rasa_b.texts == ["二"]
    assert stand_in.successful()[-1].texts == [RATE_LIMITED_REPLY]


def test_two_replicas_spend_from_one_budget(redis_space):
    async def go() -> list[float]:
        clients = [connect(redis_space.url) for _ in range(2)]
        budgets = [
            SharedRateBudget(c, "chan", per_second=10, burst=1, prefix=redis_space.prefix)
            for c in clients
        ]
        waits = [await budgets[i % 2].reserve() for i in range(6)]
        for client in clients:
            await client.close()
        return waits

    waits = asyncio.run(go())
    # 10 calls a second, burst 1: the k-th reservation waits about (k - 2) tenths,
    # whichever replica makes it. Two budgets of their own would wait 0.1 s at most.
    assert waits[:2] == [0.0, 0.0]
    assert waits == sorted(waits)
    assert 0.35 < waits[-1] <= 0.4
    (key,) = redis_space.stored_keys()
    assert key == f"{redis_space.prefix}line:budget:chan"


def test_the_local_budget_is_a_token_bucket():
    now = [100.0]
    budget = LocalRateBudget(per_second=4, burst=2, clock=lambda: now[0])
    assert [budget.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 0.25]
    now[0] += 10  # a quiet spell refills it
    assert budget.reserve() == 0.0


def test_every_try_of_a_call_spends_from_the_budget_but_push_blocking_does_not(stand_in):
    taken: list[int] = []

    class Counting:
        async def take(self) -> None:
            taken.append(1)

    api = LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep, budget=Counting())

    async def go() -> None:
        await api.reply("tok", [{"type": "text", "text": "a"}])
        await api.push(USER, [{"type": "text", "text": "b"}])
        await api.close()

    asyncio.run(go())
    assert len(taken) == 2
    api.push_blocking(USER, [{"type": "text", "text": "c"}])
    assert len(taken) == 2
    assert len(stand_in.successful()) == 3


def test_the_channel_built_with_redis_url_shares_its_state(monkeypatch, redis_space):
    monkeypatch.setenv("REDIS_URL", redis_space.url)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", CHANNEL_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", ACCESS_TOKEN)
    channel = LineInput.from_credentials({})
    assert isinstance(channel.guard, SharedChannelGuard)
    assert isinstance(channel.seen, SharedSeenEvents)
    assert isinstance(channel.api.budget, SharedRateBudget)
    monkeypatch.delenv("REDIS_URL")
    channel = LineInput.from_credentials({})
    assert isinstance(channel.seen, SeenEvents)
    assert isinstance(channel.api.budget, LocalRateBudget)


def test_an_unreachable_redis_stops_the_channel_at_start_up(monkeypatch):
    url = closed_port_url()
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SettingsError, match=r"Redis at 127\.0\.0\.1:\d+/0 does not answer") as info:
        LineInput.from_credentials({})
    assert "s3cret-pw" not in str(info.value)


def test_without_redis_at_run_time_an_event_is_still_answered(stand_in, caplog):
    rasa = FakeRasa()

    async def go() -> None:
        client = connect(closed_port_url())
        config = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url)
        budget = SharedRateBudget(client, channel_key(ACCESS_TOKEN))
        channel = LineInput(
            config,
            api=LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep, budget=budget),
            guard=SharedChannelGuard(client, "line"),
            seen=SharedSeenEvents(client),
        )
        await deliver(channel, rasa, text_event("届きますか", n=3))
        await channel.api.close()
        await client.close()

    with caplog.at_level(logging.WARNING):
        asyncio.run(go())
    assert rasa.texts == ["届きますか"]
    assert len(stand_in.successful()) == 1
    assert {r.getMessage().split(":")[0] for r in caplog.records} >= {
        "line channel guard",
        "LINE webhook event ids",
        "LINE API budget",
    }
    assert all(USER not in r.getMessage() for r in caplog.records)
