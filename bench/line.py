"""LINE's side of the channel benchmark: deliveries, a stand-in for its API, what came of them.

The webhook deliveries are shaped like the examples of LINE's reference and signed as
LINE signs them. The stand-in is an aiohttp server on loopback, in the benchmark's own
event loop: it answers ``POST /v2/bot/message/reply`` and ``/push`` as LINE documents
them (200 with ``sentMessages``; 400 ``Invalid reply token`` for a token used before;
401 without the access token) and records every call with the moment it arrived, so
that the benchmark can wait for a reply without polling.

The deliveries are prepared before they are sent and written to the webhook as raw
HTTP/1.1 requests, each on a connection of its own (:func:`deliver`): LINE's servers do
not run on the machine under test, so the client should take as little of its CPU as a
client can. Measured here (200 deliveries at once to a trivial server, ten times): 0.67 ms
of the client's CPU per delivery through aiohttp's client on asyncio's loop, 0.20 ms
raw on uvloop, which ``bench.cluster`` runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bench.rest import pool
from bench.servers import LOOPBACK
from bot.channels.line import sign

REPLY_PATH = "/v2/bot/message/reply"
PUSH_PATH = "/v2/bot/message/push"
LINE_ACK_LIMIT_S = 2.0  # LINE counts a webhook as failed when the answer takes longer
# Each LINE user sends at most this many messages: far below the guard's 20 a minute,
# however fast the servers answer.
MESSAGES_PER_LINE_USER = 5
MIN_LINE_USERS = 10
# LINE gives up after 2 s; waiting longer shows how long the answer would have taken.
ACK_CLIENT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: a body with one text message event."""

    user: int  # the index of its LINE user
    turn: int  # its place among that user's messages
    user_id: str  # "U" and 32 hex digits, like LINE's
    text: str
    event_id: str  # the webhookEventId
    reply_token: str  # each delivery has its own
    redelivery: bool = False  # LINE marks it as a redelivery of an earlier event


def plan_line(
    deliveries: int, concurrency: int, texts: Sequence[str], seed: int = 5
) -> list[Delivery]:
    """The deliveries of a run, in sending order: new messages, then redeliveries.

    One in 40 deliveries (at least one of two) repeats an earlier event (same
    ``webhookEventId`` and message) with a reply token of its own. The new messages go
    to the users in turn, ``texts`` in turn; there are enough users that none comes near
    the guard's rate limit (at least :data:`MIN_LINE_USERS`, more than the deliveries in
    flight, at most one per message).
    """
    rng = random.Random(seed)

    def hex32() -> str:
        return f"{rng.getrandbits(128):032x}"

    redeliveries = 0 if deliveries < 2 else max(1, deliveries // 40)
    originals = deliveries - redeliveries
    wanted = max(MIN_LINE_USERS, concurrency + 1, math.ceil(originals / MESSAGES_PER_LINE_USER))
    users = [f"U{hex32()}" for _ in range(max(1, min(originals, wanted)))]
    plan = [
        Delivery(
            user=index % len(users),
            turn=index // len(users),
            user_id=users[index % len(users)],
            text=texts[index % len(texts)],
            event_id="01" + hex32()[:24].upper(),
            reply_token=hex32(),
        )
        for index in range(originals)
    ]
    for place in range(redeliveries):
        original = plan[place * originals // redeliveries]
        plan.append(replace(original, reply_token=hex32(), redelivery=True))
    return plan


def conversations(plan: Sequence[Delivery]) -> list[list[Delivery]]:
    """The new messages of each user, in order."""
    users: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in plan:
        if not delivery.redelivery:
            users[delivery.user].append(delivery)
    return list(users.values())


def signed_request(delivery: Delivery, channel_secret: str) -> tuple[bytes, dict[str, str]]:
    """The body of ``delivery``'s webhook request and its headers, signed as LINE signs."""
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": delivery.user_id},
        "webhookEventId": delivery.event_id,
        "deliveryContext": {"isRedelivery": delivery.redelivery},
        "replyToken": delivery.reply_token,
        "message": {  # a redelivery repeats its original's message id
            "id": str(500_000_000_000_000_000 + 1000 * delivery.user + delivery.turn),
            "type": "text",
            "quoteToken": f"q{delivery.user}-{delivery.turn}",
            "text": delivery.text,
        },
    }
    payload = {"destination": "Ubench", "events": [event]}
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    signature = sign(channel_secret, body)
    return body, {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": signature}


def prepared_request(url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A whole ``POST`` to ``url`` (plain HTTP) as bytes, asking the server to close after."""
    target = urlsplit(url)
    if target.scheme != "http" or not target.hostname:
        raise ValueError(f"the benchmark sends plain HTTP to a host: {url}")
    lines = [
        f"POST {target.path or '/'} HTTP/1.1",
        f"Host: {target.netloc}",
        *(f"{name}: {value}" for name, value in headers.items()),
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def deliver(host: str, port: int, request: bytes) -> int:
    """Send a :func:`prepared_request` to ``host:port`` on a new connection; its HTTP status.

    Raises:
        OSError, ValueError: If the connection failed or the answer is not HTTP.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        status_line = await reader.readline()  # "HTTP/1.1 200 OK"
        await reader.read()  # the rest, up to the server's close
    finally:
        writer.close()
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ValueError("the answer is not HTTP")
    return int(parts[1])


def parts(texts: Iterable[str]) -> list[str]:
    """Texts cut at blank lines, the way Rasa's socketio channel sends them."""
    return [part for text in texts for part in text.strip().split("\n\n")]


# --- the stand-in for LINE's Messaging API ----------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One call as the stand-in received it: path, JSON body, status answered, arrival."""

    path: str
    body: dict[str, Any]
    status: int
    at: float  # time.perf_counter()

    @property
    def reply_token(self) -> str | None:
        """The reply token of a reply call; None for any other call."""
        token = self.body.get("replyToken") if self.path == REPLY_PATH else None
        return token if isinstance(token, str) else None

    @property
    def texts(self) -> list[str]:
        """The texts of the call's text messages, in order."""
        messages = self.body.get("messages")
        return [
            str(message.get("text", ""))
            for message in (messages if isinstance(messages, list) else [])
            if isinstance(message, dict) and message.get("type") == "text"
        ]


class LineStandIn:
    """The stand-in server: start it, point ``LINE_API_BASE_URL`` at it, read ``calls``."""

    def __init__(self, access_token: str) -> None:
        """A stand-in accepting the calls that carry ``access_token``."""
        self.access_token = access_token
        self.calls: list[ApiCall] = []
        self._replied: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._used_tokens: set[str] = set()
        self._runner: web.AppRunner | None = None

    async def start(self, port: int) -> str:
        """Listens on ``port`` of the loopback address; returns the base URL."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, port).start()
        return f"http://{LOOPBACK}:{port}"

    async def close(self) -> None:
        """Stops listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_reply(self, token: str, timeout_s: float) -> bool:
        """Whether a reply call with ``token`` came, waiting up to ``timeout_s``."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._replied[token].wait(), timeout_s)
        return self._replied[token].is_set()

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        status, error = self._status(request.path, request.headers.get("Authorization"), body)
        call = ApiCall(request.path, body, status, arrived)
        self.calls.append(call)
        if call.reply_token is not None:
            self._replied[call.reply_token].set()
        if status != 200:
            return web.json_response({"message": error}, status=status)
        sent = [{"id": str(place), "quoteToken": "q"} for place in range(len(body["messages"]))]
        return web.json_response({"sentMessages": sent})

    def _status(
        self, path: str, authorization: str | None, body: dict[str, Any]
    ) -> tuple[int, str]:
        """LINE's answer to a call: its status and, for an error, its message."""
        if authorization != f"Bearer {self.access_token}":
            return 401, "Authentication failed"
        if path not in (REPLY_PATH, PUSH_PATH):
            return 404, "Not found"
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return 400, "The request body has 1 error(s)"
        if path == REPLY_PATH:
            token = str(body.get("replyToken"))
            if token in self._used_tokens:
                return 400, "Invalid reply token"
            self._used_tokens.add(token)
        return 200, ""


def line_environment(channel_secret: str, access_token: str, stand_in_port: int) -> dict[str, str]:
    """The environment that gives servers this LINE channel, its API the stand-in.

    The rasa server's LINE channel and the outbox read these variables when they start.
    """
    return {
        "LINE_CHANNEL_SECRET": channel_secret,
        "LINE_CHANNEL_ACCESS_TOKEN": access_token,
        "LINE_API_BASE_URL": f"http://{LOOPBACK}:{stand_in_port}",
    }


# --- sending the deliveries, and counting what came of them -----------------------------


@dataclass
class LineOutcome:
    """What the benchmark saw of one delivery: when it was sent, the webhook's answer."""

    sent_at: float  # time.perf_counter()
    status: int = 0  # 0: no answer (e.g. a timeout)
    ack_s: float | None = None


async def timed_deliver(host: str, port: int, request: bytes) -> LineOutcome:
    """:func:`deliver` ``request``, waiting up to :data:`ACK_CLIENT_TIMEOUT_S`: what came."""
    outcome = LineOutcome(time.perf_counter())
    with contextlib.suppress(OSError, ValueError, asyncio.TimeoutError):
        sending = deliver(host, port, request)
        outcome.status = await asyncio.wait_for(sending, ACK_CLIENT_TIMEOUT_S)
        outcome.ack_s = time.perf_counter() - outcome.sent_at
    return outcome


def new_message_requests(
    url: str, deliveries: int, secret: str, texts: Sequence[str]
) -> list[bytes]:
    """The new messages of a :func:`plan_line` of ``deliveries``, prepared for ``url``.

    Its redeliveries are left out: a burst of them alone measures the acknowledgement.
    """
    plan = plan_line(deliveries, deliveries, texts, random.getrandbits(32))
    return [
        prepared_request(url, *signed_request(delivery, secret))
        for delivery in plan
        if not delivery.redelivery
    ]


async def burst_acks(url: str, requests: Sequence[bytes]) -> list[float]:
    """``requests``, prepared for ``url``, all sent at once: the seconds to each HTTP 200."""
    target = urlsplit(url)
    host, port = target.hostname or "", target.port or 80
    outcomes = await asyncio.gather(*(timed_deliver(host, port, req) for req in requests))
    return [o.ack_s for o in outcomes if o.status == 200 and o.ack_s is not None]


async def line_traffic(
    webhook_url: str,
    stand_in: LineStandIn,
    plan: Sequence[Delivery],
    channel_secret: str,
    concurrency: int,
    timeout_s: float,
) -> tuple[dict[str, LineOutcome], float]:
    """Sends the plan, ``concurrency`` at a time: the users' messages, then the redeliveries.

    Each user waits for the answer before writing again: for the HTTP 200, then for the
    reply call with the message's reply token. Returns what was seen of each delivery,
    by reply token, and the new messages' wall time. Every request is signed and
    prepared before the first is sent.
    """
    outcomes: dict[str, LineOutcome] = {}
    requests = {
        delivery.reply_token: prepared_request(
            webhook_url, *signed_request(delivery, channel_secret)
        )
        for delivery in plan
    }
    # Where to connect, read once: prepared_request has refused anything but plain HTTP.
    target = urlsplit(webhook_url)
    host, port = target.hostname or "", target.port or 80

    async def send(delivery: Delivery) -> LineOutcome:
        outcome = await timed_deliver(host, port, requests[delivery.reply_token])
        outcomes[delivery.reply_token] = outcome
        return outcome

    users = conversations(plan)
    repeats = [delivery for delivery in plan if delivery.redelivery]

    async def user_job(index: int) -> None:
        for delivery in users[index]:
            outcome = await send(delivery)
            if outcome.status == 200:
                left = timeout_s - (time.perf_counter() - outcome.sent_at)
                await stand_in.wait_reply(delivery.reply_token, max(0.0, left))

    async def repeat_job(index: int) -> None:
        await send(repeats[index])

    wall_s = await pool(len(users), concurrency, user_job)
    await pool(len(repeats), concurrency, repeat_job)
    return outcomes, wall_s


@dataclass(frozen=True)
class LineCounts:
    """The LINE figures of a run."""

    deliveries: int
    acknowledged: int
    ack_s: list[float]
    within_limit: int
    replies_expected: int
    replies_received: int
    missing: int
    duplicate_calls: int
    redeliveries: int
    redeliveries_answered: int
    pushes: int
    mismatched: int
    reply_s: list[float]

    @property
    def ok(self) -> bool:
        """Nothing dropped or duplicated, every answer the expected one."""
        return self.acknowledged == self.deliveries and not (
            self.missing
            or self.duplicate_calls
            or self.redeliveries_answered
            or self.pushes
            or self.mismatched
        )


def count_line(
    plan: Sequence[Delivery],
    outcomes: Mapping[str, LineOutcome],
    calls: Sequence[ApiCall],
    expected: Mapping[tuple[int, int], list[str] | None],
    timeout_s: float,
) -> LineCounts:
    """Counts what came of the planned deliveries, from the calls the stand-in saw.

    Args:
        plan: The deliveries.
        outcomes: What the benchmark saw of each, by reply token (none: not sent).
        calls: Every call the stand-in received.
        expected: Per (user, turn), REST's answer to the same turn cut as :func:`parts`
            cuts it (None: unknown, not compared).
        timeout_s: A reply arriving later than this after its delivery counts as missing.
    """
    by_token: dict[str, list[ApiCall]] = defaultdict(list)
    for call in calls:
        if call.reply_token is not None:
            by_token[call.reply_token].append(call)
    acks: list[float] = []
    reply_s: list[float] = []
    duplicate_calls = redeliveries = redeliveries_answered = missing = mismatched = 0
    for delivery in plan:
        outcome = outcomes.get(delivery.reply_token)
        if outcome is not None and outcome.status == 200 and outcome.ack_s is not None:
            acks.append(outcome.ack_s)
        replies = by_token.get(delivery.reply_token, [])
        duplicate_calls += max(0, len(replies) - 1)
        if delivery.redelivery:
            redeliveries += 1
            redeliveries_answered += bool(replies)
            continue
        first = replies[0] if replies else None
        if first is None or outcome is None or first.status != 200:
            missing += 1
            continue
        if first.at - outcome.sent_at > timeout_s:
            missing += 1
            continue
        reply_s.append(first.at - outcome.sent_at)
        wanted = expected.get((delivery.user, delivery.turn))
        if wanted is not None and parts(first.texts) != wanted:
            mismatched += 1
    users = {delivery.user_id for delivery in plan}
    return LineCounts(
        deliveries=len(plan),
        acknowledged=len(acks),
        ack_s=acks,
        within_limit=sum(1 for ack in acks if ack <= LINE_ACK_LIMIT_S),
        replies_expected=len(plan) - redeliveries,
        replies_received=len(reply_s),
        missing=missing,
        duplicate_calls=duplicate_calls,
        redeliveries=redeliveries,
        redeliveries_answered=redeliveries_answered,
        pushes=sum(1 for call in calls if call.path == PUSH_PATH and call.body.get("to") in users),
        mismatched=mismatched,
        reply_s=reply_s,
    )
