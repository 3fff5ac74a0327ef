"""LINE's side of the channel benchmark: deliveries, a stand-in for its API, what became of them.

The webhook deliveries are shaped like the examples of LINE's reference and signed as
LINE signs them. The stand-in is an aiohttp server on loopback, in the benchmark's own
event loop: it answers ``POST /v2/bot/message/reply`` and ``/push`` as LINE documents
them (200 with ``sentMessages``; 400 ``Invalid reply token`` for a token used before;
409 for a push whose retry key was accepted before; 401 without the access token) and
records every call with the moment it arrived on the benchmark's clock
(:func:`time.perf_counter`), so that the benchmark can wait for a reply without polling.
``tests/line_stand_in.py`` is the tests' threaded equivalent.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
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
# How long a webhook request may take before it counts as not acknowledged (LINE gives
# up after 2 s; waiting longer shows how long it would have taken).
ACK_CLIENT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery: a body with one text message event.

    Attributes:
        index: Its place in the plan.
        user: The index of its LINE user.
        user_id: The LINE user id (``U`` and 32 hex digits, like LINE's).
        text: The message text.
        event_id: The ``webhookEventId``.
        reply_token: The event's reply token.
        redelivery_of: For a redelivery, the index of the delivery it repeats.
    """

    index: int
    user: int
    user_id: str
    text: str
    event_id: str
    reply_token: str
    redelivery_of: int | None = None

    @property
    def is_redelivery(self) -> bool:
        """Whether LINE marks this delivery as a redelivery."""
        return self.redelivery_of is not None


def redelivery_count(deliveries: int) -> int:
    """How many of ``deliveries`` are redeliveries: one in 40, at least one of two."""
    return 0 if deliveries < 2 else max(1, deliveries // 40)


def line_user_count(messages: int, concurrency: int) -> int:
    """How many users send ``messages``: enough that none comes near the rate limit.

    At least :data:`MIN_LINE_USERS`, and more than the deliveries in flight (so that a
    user's messages never overlap); at most one per message.
    """
    wanted = max(MIN_LINE_USERS, concurrency + 1, math.ceil(messages / MESSAGES_PER_LINE_USER))
    return max(1, min(messages, wanted))


def plan_line(
    deliveries: int, concurrency: int, texts: Sequence[str], seed: int = 5
) -> list[Delivery]:
    """The deliveries of a run, in sending order: new messages, then a few redeliveries.

    Messages go to the users in turn, so consecutive deliveries come from different
    users, with ``texts`` in turn. Each redelivery repeats an earlier delivery's event
    (same ``webhookEventId`` and message) with a reply token of its own.
    """
    rng = random.Random(seed)

    def hex32() -> str:
        return f"{rng.getrandbits(128):032x}"

    redeliveries = redelivery_count(deliveries)
    originals = deliveries - redeliveries
    users = [f"U{hex32()}" for _ in range(line_user_count(originals, concurrency))]
    plan = [
        Delivery(
            index=k,
            user=k % len(users),
            user_id=users[k % len(users)],
            text=texts[k % len(texts)],
            event_id="01" + hex32()[:24].upper(),
            reply_token=hex32(),
        )
        for k in range(originals)
    ]
    for r in range(redeliveries):
        original = plan[r * originals // redeliveries]
        plan.append(
            replace(
                original, index=originals + r, reply_token=hex32(), redelivery_of=original.index
            )
        )
    return plan


def text_event(delivery: Delivery, timestamp_ms: int | None = None) -> dict[str, Any]:
    """The webhook event of ``delivery``, shaped like the examples of LINE's reference."""
    original = delivery.index if delivery.redelivery_of is None else delivery.redelivery_of
    return {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
        "source": {"type": "user", "userId": delivery.user_id},
        "webhookEventId": delivery.event_id,
        "deliveryContext": {"isRedelivery": delivery.is_redelivery},
        "replyToken": delivery.reply_token,
        "message": {
            "id": str(500_000_000_000_000_000 + original),
            "type": "text",
            "quoteToken": f"q{original}",
            "text": delivery.text,
        },
    }


def webhook_body(events: Sequence[Mapping[str, Any]], destination: str = "Ubench") -> bytes:
    """A webhook request body, as LINE sends it (UTF-8 JSON)."""
    payload = {"destination": destination, "events": list(events)}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def signed_headers(channel_secret: str, body: bytes) -> dict[str, str]:
    """The headers of a webhook request, ``X-Line-Signature`` computed over ``body``."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Line-Signature": sign(channel_secret, body),
    }


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
        self._used_tokens: set[str] = set()
        self._retry_keys: set[str] = set()
        self._waiters: dict[str, asyncio.Future[ApiCall]] = {}
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

    def replies_to(self, token: str) -> list[ApiCall]:
        """Every reply call made with ``token``, in order of arrival."""
        return [call for call in self.calls if call.reply_token == token]

    async def wait_reply(self, token: str, timeout_s: float) -> ApiCall | None:
        """The first reply call with ``token``, waiting up to ``timeout_s``; None if none."""
        earlier = self.replies_to(token)
        if earlier:
            return earlier[0]
        waiter = self._waiters.setdefault(token, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except asyncio.TimeoutError:
            return None

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        status, payload = self._answer(request.path, request.headers, body)
        call = ApiCall(request.path, body, status, arrived)
        self.calls.append(call)
        waiter = self._waiters.get(call.reply_token or "")
        if waiter is not None and not waiter.done():
            waiter.set_result(call)
        return web.json_response(payload, status=status)

    def _answer(
        self, path: str, headers: Mapping[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if headers.get("Authorization") != f"Bearer {self.access_token}":
            return 401, {"message": "Authentication failed"}
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return 400, {"message": "The request body has 1 error(s)"}
        sent = {"sentMessages": [{"id": str(i), "quoteToken": "q"} for i in range(len(messages))]}
        if path == REPLY_PATH:
            token = str(body.get("replyToken"))
            if token in self._used_tokens:
                return 400, {"message": "Invalid reply token"}
            self._used_tokens.add(token)
            return 200, sent
        if path == PUSH_PATH:
            key = headers.get("X-Line-Retry-Key")
            if key in self._retry_keys:
                return 409, {"message": "The retry key is already accepted"}
            if key:
                self._retry_keys.add(key)
            return 200, sent
        return 404, {"message": "Not found"}


# --- sending the deliveries, and counting what became of them ---------------------------


@dataclass
class LineOutcome:
    """What the benchmark saw of one delivery.

    Attributes:
        sent_at: When the request was sent (:func:`time.perf_counter`).
        status: The HTTP status of the webhook's answer (0: none, e.g. a timeout).
        ack_s: How long the answer took.
    """

    sent_at: float
    status: int = 0
    ack_s: float | None = None


async def line_traffic(
    http: aiohttp.ClientSession,
    webhook_url: str,
    stand_in: LineStandIn,
    plan: Sequence[Delivery],
    channel_secret: str,
    concurrency: int,
    timeout_s: float,
) -> tuple[dict[int, LineOutcome], float]:
    """Sends the plan, ``concurrency`` at a time: new messages, then the redeliveries.

    Each sender stands for a member who waits for the answer before writing again: a
    new message waits for its HTTP 200, then for the reply call with its reply token.

    Returns:
        What was seen of each delivery, by index, and the wall time of the new messages.
    """
    outcomes: dict[int, LineOutcome] = {}
    locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
    ack_timeout = aiohttp.ClientTimeout(total=ACK_CLIENT_TIMEOUT_S)

    async def deliver(delivery: Delivery) -> LineOutcome:
        body = webhook_body([text_event(delivery)])
        headers = signed_headers(channel_secret, body)
        outcome = outcomes[delivery.index] = LineOutcome(sent_at=time.perf_counter())
        try:
            async with http.post(
                webhook_url, data=body, headers=headers, timeout=ack_timeout
            ) as answer:
                outcome.status = answer.status
                outcome.ack_s = time.perf_counter() - outcome.sent_at
                await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        return outcome

    messages = [delivery for delivery in plan if not delivery.is_redelivery]
    repeats = [delivery for delivery in plan if delivery.is_redelivery]

    async def message_job(index: int) -> None:
        delivery = messages[index]
        async with locks[delivery.user]:  # a member waits for the answer, then writes
            outcome = await deliver(delivery)
            if outcome.status == 200:
                left = timeout_s - (time.perf_counter() - outcome.sent_at)
                await stand_in.wait_reply(delivery.reply_token, max(0.0, left))

    async def repeat_job(index: int) -> None:
        await deliver(repeats[index])

    wall_s = await pool(len(messages), concurrency, message_job)
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
    outcomes: Mapping[int, LineOutcome],
    calls: Sequence[ApiCall],
    expected: Mapping[int, list[str] | None],
    timeout_s: float,
) -> LineCounts:
    """Counts what became of the planned deliveries, from the calls the stand-in saw.

    Args:
        plan: The deliveries.
        outcomes: What the benchmark saw of each, by index (a missing one was not sent).
        calls: Every call the stand-in received.
        expected: Per new message, REST's answer to the same turn cut as :func:`parts`
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
        outcome = outcomes.get(delivery.index)
        if outcome is not None and outcome.status == 200 and outcome.ack_s is not None:
            acks.append(outcome.ack_s)
        replies = by_token.get(delivery.reply_token, [])
        duplicate_calls += max(0, len(replies) - 1)
        if delivery.is_redelivery:
            redeliveries += 1
            redeliveries_answered += bool(replies)
            continue
        first = replies[0] if replies else None
        if (
            first is None
            or outcome is None
            or first.status != 200
            or first.at - outcome.sent_at > timeout_s
        ):
            missing += 1
            continue
        reply_s.append(first.at - outcome.sent_at)
        wanted = expected.get(delivery.index)
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
