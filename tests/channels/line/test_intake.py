"""LINE's intake and inbox: deliveries acknowledged for every replica, processed once.

The intake is the real aiohttp application on a loopback port, the inbox a real Redis
(a key prefix per test), the channels the real ones with their API calls going to the
LINE stand-in; Rasa is a function that answers like the assistant.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import redis
from aiohttp.test_utils import TestServer

from bot.channels.line.api import LineApi
from bot.channels.line.channel import LineInput
from bot.channels.line.config import LineConfig
from bot.channels.line.inbox import LineInbox, connect_blocking, encode
from bot.channels.line.intake import KEEPALIVE_S, create_app
from bot.channels.line.lanes import Lanes
from bot.channels.line.seen import SharedSeenEvents
from bot.channels.line.signature import sign
from bot.channels.line.webhook import MAX_BODY_BYTES
from bot.channels.shared_state import connect
from bot.settings import PROJECT_ROOT
from tests.channels.conftest import RedisSpace, closed_port_url
from tests.channels.line.support import FakeRasa, body, no_sleep, text_event
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET, StandIn

CONFIG = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN)


def member_event(number: int) -> dict[str, Any]:
    user = f"U{number:032x}"
    return text_event(
        f"質問 {number}", source={"type": "user", "userId": user}, token=f"t{number}", n=number
    )


async def with_intake(
    inbox: LineInbox,
    use: Callable[[aiohttp.ClientSession, str], Awaitable[None]],
    config: LineConfig = CONFIG,
) -> None:
    """Serve the intake on a loopback port while ``use`` posts to it."""
    server = TestServer(create_app(config, inbox), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            await use(http, str(server.make_url("/webhooks/line/webhook")))
    finally:
        await server.close()  # the app's cleanup closes the inbox's client


async def post(
    http: aiohttp.ClientSession, url: str, raw: bytes, signature: str | None = "sign"
) -> int:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        headers["X-Line-Signature"] = sign(CHANNEL_SECRET, raw)
    elif signature is not None:
        headers["X-Line-Signature"] = signature
    async with http.post(url, data=raw, headers=headers) as response:
        return response.status


def waiting(space: RedisSpace) -> list[bytes]:
    client = redis.Redis.from_url(space.url)
    try:
        return list(client.lrange(f"{space.prefix}line:inbox", 0, -1))
    finally:
        client.close()


def test_a_signed_delivery_is_acknowledged_and_left_in_the_inbox_with_its_signature(
    redis_space,
):
    raw = body(member_event(1))
    statuses: list[int] = []

    async def use(http: aiohttp.ClientSession, url: str) -> None:
        statuses.append(await post(http, url, raw))

    asyncio.run(with_intake(LineInbox(connect(redis_space.url), prefix=redis_space.prefix), use))
    assert statuses == [200]
    assert waiting(redis_space) == [encode(raw, sign(CHANNEL_SECRET, raw))]


def test_the_intake_queues_nothing_a_stranger_sends(redis_space):
    raw = body(member_event(2))
    unsigned_json = json.dumps({"events": [member_event(3)]}).encode()
    statuses: dict[str, int] = {}

    async def use(http: aiohttp.ClientSession, url: str) -> None:
        statuses["missing"] = await post(http, url, raw, signature=None)
        statuses["forged"] = await post(http, url, raw, signature=sign("not-the-secret", raw))
        statuses["other body"] = await post(
            http, url, unsigned_json, signature=sign(CHANNEL_SECRET, raw)
        )
        statuses["not json"] = await post(http, url, b"{not json")
        huge = b'{"events": [], "x": "' + b"a" * MAX_BODY_BYTES + b'"}'
        statuses["huge"] = await post(http, url, huge)
        statuses["no events"] = await post(http, url, body())  # LINE's console "Verify"
        async with http.get(url) as response:
            statuses["GET"] = response.status

    asyncio.run(with_intake(LineInbox(connect(redis_space.url), prefix=redis_space.prefix), use))
    assert statuses == {
        "missing": 401,
        "forged": 401,
        "other body": 401,
        "not json": 400,
        "huge": 413,
        "no events": 200,
        "GET": 405,
    }
    assert waiting(redis_space) == []


def test_without_redis_or_secret_the_intake_says_503_so_that_nginx_asks_a_rasa_server(
    redis_space,
):
    raw = body(member_event(4))
    statuses: list[int] = []

    async def use(http: aiohttp.ClientSession, url: str) -> None:
        statuses.append(await post(http, url, raw))

    # Redis gone: the body was not taken, and the answer says so (nginx then passes the
    # delivery to a rasa server: deploy/nginx/cluster.conf.template).
    asyncio.run(with_intake(LineInbox(connect(closed_port_url())), use))
    # The channel off (no secret): refused before the body is read.
    off = LineConfig("", ACCESS_TOKEN)
    asyncio.run(
        with_intake(LineInbox(connect(redis_space.url), prefix=redis_space.prefix), use, off)
    )
    assert statuses == [503, 503]
    assert waiting(redis_space) == []


def replica(stand_in: StandIn, space: RedisSpace, limit: int) -> LineInput:
    """A rasa server's LINE channel taking bodies from the test's inbox."""
    config = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url, max_concurrent_events=limit)
    return LineInput(
        config,
        api=LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep),
        inbox=LineInbox(connect_blocking(space.url), prefix=space.prefix),
    )


class SlowRasa(FakeRasa):
    """Answers like the assistant after ``delay_s``: a turn that keeps a replica busy."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    async def __call__(self, message: Any) -> None:
        await asyncio.sleep(self.delay_s)
        await super().__call__(message)


def test_two_replicas_share_the_inbox_each_body_answered_once_by_the_one_with_room(
    stand_in, redis_space
):
    bodies = [body(member_event(n)) for n in range(12)]
    # A forged body written into Redis by someone else than the intake: never processed.
    forged = body(member_event(99))
    busy, quick = SlowRasa(3.0), SlowRasa(0.01)

    async def go() -> None:
        a = replica(stand_in, redis_space, limit=1)
        b = replica(stand_in, redis_space, limit=1)
        feed = LineInbox(connect(redis_space.url), prefix=redis_space.prefix)
        await feed.put(forged, sign("not-the-secret", forged))
        for raw in bodies:
            await feed.put(raw, sign(CHANNEL_SECRET, raw))
        consumers = [asyncio.create_task(a.consume(busy)), asyncio.create_task(b.consume(quick))]
        deadline = asyncio.get_running_loop().time() + 20
        while len(busy.received) + len(quick.received) < len(bodies):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        for channel in (a, b):
            channel.stop_consuming()
        await asyncio.gather(*consumers)
        for channel in (a, b):
            await channel.drain()
            await channel.api.close()
            assert channel.inbox is not None
            await channel.inbox.close()
        await feed.close()

    asyncio.run(go())
    texts = busy.texts + quick.texts
    assert sorted(texts) == sorted(f"質問 {n}" for n in range(12))  # each once
    assert "質問 99" not in texts
    # The busy replica took one body and nothing more while it worked on it: the rest
    # waited in Redis for the replica with room.
    assert len(busy.texts) == 1 and len(quick.texts) == 11
    assert len(stand_in.successful()) == len(bodies)
    assert waiting(redis_space) == []


def test_a_consumer_whose_redis_fails_waits_and_loses_nothing_it_did_not_take(stand_in):
    rasa = FakeRasa()

    async def go() -> None:
        config = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url)
        channel = LineInput(
            config,
            api=LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep),
            inbox=LineInbox(connect_blocking(closed_port_url())),
        )
        consumer = asyncio.create_task(channel.consume(rasa))
        await asyncio.sleep(0.5)
        assert not consumer.done()  # still trying, not crashed
        channel.stop_consuming()
        await asyncio.wait_for(consumer, timeout=5)
        await channel.api.close()

    asyncio.run(go())
    assert rasa.received == []


def test_lanes_have_room_again_when_a_job_ends():
    order: list[str] = []

    async def go() -> None:
        lanes = Lanes(2)
        release = asyncio.Event()

        async def job() -> None:
            await release.wait()

        lanes.submit("a", job)
        lanes.submit("b", job)
        assert lanes.full

        async def wait_for_room() -> None:
            await lanes.room()
            order.append("room")

        waiter = asyncio.create_task(wait_for_room())
        await asyncio.sleep(0.05)
        order.append("release")
        release.set()
        await asyncio.wait_for(waiter, timeout=2)
        assert not lanes.full
        await lanes.drain()

    asyncio.run(go())
    assert order == ["release", "room"]


@asynccontextmanager
async def sharing_replica(
    stand_in: StandIn, space: RedisSpace
) -> AsyncIterator[tuple[LineInput, LineInbox]]:
    """A replica whose seen event ids are in Redis, and a feed into its inbox."""
    shared = connect(space.url)
    channel = replica(stand_in, space, limit=2)
    channel.seen = SharedSeenEvents(shared, prefix=space.prefix)
    feed = LineInbox(connect(space.url), prefix=space.prefix)
    try:
        yield channel, feed
    finally:
        await channel.api.close()
        assert channel.inbox is not None
        await channel.inbox.close()
        await feed.close()
        await shared.close()


async def consume_from_inbox(
    channel: LineInput, feed: LineInbox, raw: bytes, rasa: FakeRasa
) -> None:
    """Queue ``raw`` as the intake does and let ``channel`` take and answer it."""
    await feed.put(raw, sign(CHANNEL_SECRET, raw))
    consumer = asyncio.create_task(channel.consume(rasa))
    while await feed.waiting():
        await asyncio.sleep(0.05)
    channel.stop_consuming()
    await consumer
    await channel.drain()


def test_a_body_answered_directly_is_not_answered_again_from_the_inbox(stand_in, redis_space):
    # The intake queued the body but its answer was lost (Redis slow to confirm, the
    # intake killed): nginx gave the same delivery to a rasa server, which answered it.
    raw = body(member_event(7), member_event(8))
    rasa = FakeRasa()

    async def go() -> None:
        async with sharing_replica(stand_in, redis_space) as (channel, feed):
            assert channel.receive(raw, sign(CHANNEL_SECRET, raw), rasa) == 200
            await channel.drain()
            await consume_from_inbox(channel, feed, raw, rasa)

    asyncio.run(go())
    # Each once; two members' events run side by side, so in either order.
    assert sorted(rasa.texts) == ["質問 7", "質問 8"]
    assert len(stand_in.successful()) == 2


def test_a_body_taken_from_the_inbox_first_is_not_answered_again_from_the_edge_fallback(
    stand_in, redis_space
):
    # The other order: the intake queued the body and failed to say so, a replica took
    # it from the inbox and answered it, and then nginx's fallback copy arrived.
    raw = body(member_event(5), member_event(6))
    rasa = FakeRasa()

    async def go() -> None:
        async with sharing_replica(stand_in, redis_space) as (channel, feed):
            await consume_from_inbox(channel, feed, raw, rasa)
            status = channel.receive(raw, sign(CHANNEL_SECRET, raw), rasa, skip_known=True)
            assert status == 200
            await channel.drain()
            # Without the edge's mark, a known id that LINE did not call a redelivery
            # is processed (LINE's own examples reuse ids): the mark is what skips it.
            other = body(member_event(5))
            channel.receive(other, sign(CHANNEL_SECRET, other), rasa)
            await channel.drain()

    asyncio.run(go())
    assert sorted(rasa.texts) == ["質問 5", "質問 5", "質問 6"]


def test_the_fallback_mark_opens_nothing_to_a_stranger(stand_in):
    # A stranger can send the edge's header; without LINE's signature it buys nothing.
    raw = body(member_event(9))
    rasa = FakeRasa()

    async def go() -> None:
        channel = LineInput(CONFIG, api=LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep))
        assert channel.receive(raw, None, rasa, skip_known=True) == 401
        assert channel.receive(raw, sign("not-the-secret", raw), rasa, skip_known=True) == 401
        await channel.drain()
        await channel.api.close()

    asyncio.run(go())
    assert rasa.received == []


def test_the_intake_keeps_an_idle_connection_longer_than_nginx_does():
    # nginx must close an idle kept connection first: otherwise it may send a delivery
    # on a connection the intake has just closed.
    for template in ("cluster.conf.template", "compose.conf.template"):
        text = (PROJECT_ROOT / "deploy" / "nginx" / template).read_text("utf-8")
        upstream = re.search(r"upstream privacy_line_intake \{(.*?)\n\s*\}", text, re.DOTALL)
        assert upstream, template
        timeout = re.search(r"keepalive_timeout (\d+)(h|m|s);", upstream.group(1))
        assert timeout, template
        seconds = int(timeout.group(1)) * {"h": 3600, "m": 60, "s": 1}[timeout.group(2)]
        assert 60 < seconds < KEEPALIVE_S, template
