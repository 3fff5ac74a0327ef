"""LINE webhooks and website-chat sessions against the running servers (issue 5).

``python -m bench.channels [--line-deliveries 200] [--web-sessions 50]
[--messages-per-session 3] [--concurrency 8]`` starts the real servers once (a var dir
and SQLite database of their own, free ports, the LINE variables set and
``LINE_API_BASE_URL`` pointing at :mod:`bench.line_stand_in`), then measures:

1. **LINE**: signed webhook deliveries of text messages (policy questions) from several
   user ids, ``--concurrency`` at a time. Each sender stands for a member who waits for
   the answer before writing again, so every worker sends a delivery, waits for the
   HTTP 200, then for the reply call with that delivery's reply token. A few deliveries
   are redeliveries (``isRedelivery``, the ``webhookEventId`` of an event already
   answered, a reply token of their own): they must get no answer. Figures: the
   acknowledgement time (request sent → status received), the reply latency (request
   sent → the stand-in received the reply call), replies missing, reply calls beyond
   the first per reply token, push calls.
2. **Website chat**: ``--web-sessions`` socket.io clients at once, over WebSocket as
   the widget connects (``session_request`` → ``session_confirm``, then
   ``user_uttered``), each sending ``--messages-per-session`` questions one after
   another and waiting for the whole answer each time. An answer is complete when as
   many ``bot_uttered`` events arrived as the REST channel gave messages for the same
   turn of the same conversation (cut at blank lines, as Rasa's socketio channel cuts
   them); events beyond that, or with other texts, count as extra or mismatched: an
   answer delivered twice or to the wrong session.
3. **Baseline**, in the same run on the same servers: the same questions in the same
   conversations through the REST channel (``POST /webhooks/rest/webhook``, on for the
   run, every request with the HTTP API token), sequentially, at the LINE concurrency
   and at the website-chat concurrency. The report gives channel/REST ratios of the
   reply latency.

It prints a Markdown report and exits 1 when anything was dropped or duplicated. There
are no timed assertions: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.line_stand_in import PUSH_PATH, ApiCall, LineStandIn
from bench.machine import collect
from bench.procs import free_port
from bench.stats import percentile, ratio
from bot.channels.line import sign
from bot.launcher import RunningAssistant, running, train_if_needed
from bot.settings import Settings, load_settings

# Policy questions the assistant answers from the organization's published policy.
QUESTIONS = (
    "個人情報の利用目的を教えてください",
    "口座情報は何に使われますか",
    "個人情報はどうやって守られていますか",
    "開示請求の手数料はいくらですか",
    "安全管理について教えてください",
    "第三者に提供されることはありますか",
)

# LINE's limit for the webhook's answer, and where LINE says so.
LINE_ACK_LIMIT_S = 2.0
LINE_DOCS = (
    "LINE counts a webhook as failed with `request_timeout` when the bot server has not "
    "answered within 2 seconds, and with `error_status_code` for a status outside 2xx "
    "(https://developers.line.biz/en/docs/messaging-api/check-webhook-error-statistics/); "
    "it recommends processing webhook events asynchronously "
    "(https://developers.line.biz/en/docs/messaging-api/receiving-messages/)."
)

# Each LINE user sends at most this many messages: far below the guard's 20 a minute,
# however fast the servers answer.
MESSAGES_PER_LINE_USER = 5
MIN_LINE_USERS = 10
# How long the webhook request may take before it counts as not acknowledged (LINE
# gives up after 2 s; waiting longer shows how long it would have taken).
ACK_CLIENT_TIMEOUT_S = 30.0
# After the last message: how long to keep listening for late duplicates.
GRACE_S = 3.0
SOCKETIO_PATH = "/socket.io"


# --- the plan and the request bodies ---------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One LINE webhook delivery: a body with one text message event.

    Attributes:
        index: its place in the plan.
        user: the index of its LINE user.
        user_id: the LINE user id (``U`` and 32 hex digits, like LINE's).
        text: the message text.
        event_id: the ``webhookEventId``.
        reply_token: the event's reply token.
        redelivery_of: for a redelivery, the index of the delivery it repeats.
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
    """How many LINE users send ``messages``: enough that none comes near the rate limit.

    At least :data:`MIN_LINE_USERS` (and more than the deliveries in flight, so that a
    user's messages never overlap), at most one per message.
    """
    wanted = max(MIN_LINE_USERS, concurrency + 1, math.ceil(messages / MESSAGES_PER_LINE_USER))
    return max(1, min(messages, wanted))


def plan_line(deliveries: int, concurrency: int, seed: int = 5) -> list[Delivery]:
    """The LINE deliveries of a run: new messages first, then a few redeliveries.

    Messages go to the users in turn, so consecutive deliveries come from different
    users. Each redelivery repeats an earlier delivery's event (same ``webhookEventId``
    and message) with a reply token of its own.

    Args:
        deliveries: how many webhook requests in all (at least 1).
        concurrency: how many are sent at a time.
        seed: the seed of the ids (user ids, event ids, reply tokens).

    Returns:
        The deliveries, in the order they are sent.
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
            text=QUESTIONS[k % len(QUESTIONS)],
            event_id="01" + hex32()[:24].upper(),
            reply_token=hex32(),
        )
        for k in range(originals)
    ]
    for r in range(redeliveries):
        original = plan[r * originals // redeliveries]
        plan.append(
            replace(
                original,
                index=originals + r,
                reply_token=hex32(),
                redelivery_of=original.index,
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


def confirmed_session(data: Any) -> str | None:
    """The session id a ``session_confirm`` carries; None if it carries none.

    The website chat confirms with ``{"session_id": ..., "resume_secret": ...}``, Rasa's
    own socketio channel (and this one before it issued resume secrets) with the id alone.
    """
    if isinstance(data, dict):
        data = data.get("session_id")
    return data if isinstance(data, str) and data else None


def web_scripts(sessions: int, messages: int) -> list[list[str]]:
    """The questions each website-chat session asks, in order (each starts elsewhere)."""
    return [
        [QUESTIONS[(session + turn) % len(QUESTIONS)] for turn in range(messages)]
        for session in range(sessions)
    ]


# --- what an answer looks like in each channel ----------------------------------------


def parts(texts: Iterable[str]) -> list[str]:
    """Texts cut at blank lines, the way Rasa's socketio channel sends them."""
    return [part for text in texts for part in text.strip().split("\n\n")]


def socket_view(rest_messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``bot_uttered`` texts the website chat gets for an answer REST gave."""
    shown: list[str] = []
    for message in rest_messages:
        text = message.get("text")
        shown.extend(parts([text]) if isinstance(text, str) else [""])
    return shown


def line_view(rest_messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The texts of an answer REST gave, cut like :func:`parts` (LINE keeps texts whole)."""
    return parts(str(m["text"]) for m in rest_messages if isinstance(m.get("text"), str))


# --- counting ----------------------------------------------------------------------


@dataclass
class LineOutcome:
    """What the benchmark saw of one delivery.

    Attributes:
        sent_at: when the request was sent (:func:`time.perf_counter`).
        status: the HTTP status of the webhook's answer (0: none, e.g. a timeout).
        ack_s: how long the answer took.
    """

    sent_at: float
    status: int = 0
    ack_s: float | None = None


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
        return (
            self.acknowledged == self.deliveries
            and self.missing == 0
            and self.duplicate_calls == 0
            and self.redeliveries_answered == 0
            and self.pushes == 0
            and self.mismatched == 0
        )


def count_line(
    plan: Sequence[Delivery],
    outcomes: Mapping[int, LineOutcome],
    calls: Sequence[ApiCall],
    expected: Mapping[int, list[str] | None],
    timeout_s: float,
) -> LineCounts:
    """Count what became of the planned deliveries, from the calls the stand-in saw.

    Args:
        plan: the deliveries.
        outcomes: what the benchmark saw of each, by index (a missing one was not sent).
        calls: every call the stand-in received.
        expected: per new message, REST's answer to the same turn as :func:`line_view`
            gives it (None: unknown, not compared).
        timeout_s: a reply arriving later than this after its delivery counts as missing.

    Returns:
        The counts.
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
    pushes = sum(1 for call in calls if call.path == PUSH_PATH and call.body.get("to") in users)
    expected_replies = len(plan) - redeliveries
    return LineCounts(
        deliveries=len(plan),
        acknowledged=len(acks),
        ack_s=acks,
        within_limit=sum(1 for ack in acks if ack <= LINE_ACK_LIMIT_S),
        replies_expected=expected_replies,
        replies_received=len(reply_s),
        missing=missing,
        duplicate_calls=duplicate_calls,
        redeliveries=redeliveries,
        redeliveries_answered=redeliveries_answered,
        pushes=pushes,
        mismatched=mismatched,
        reply_s=reply_s,
    )


@dataclass
class WebSession:
    """One website-chat session as its client saw it.

    Attributes:
        index: its place in the run.
        script: the questions it asks, in order.
        confirmed: whether the server confirmed a session.
        sent_at: when each question was sent (:func:`time.perf_counter`).
        inbox: every ``bot_uttered`` event received: arrival time and text.
    """

    index: int
    script: list[str]
    confirmed: bool = False
    sent_at: list[float] = field(default_factory=list)
    inbox: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class WebCounts:
    """The website-chat figures of a run."""

    sessions: int
    connected: int
    messages: int
    answered: int
    unanswered: int
    extra: int
    mismatched: int
    reply_s: list[float]

    @property
    def ok(self) -> bool:
        """Every session connected, every message answered once, in its own session."""
        return (
            self.connected == self.sessions
            and self.unanswered == 0
            and self.extra == 0
            and self.mismatched == 0
        )


def count_web(
    sessions: Sequence[WebSession],
    expected: Mapping[tuple[int, int], list[str] | None],
    timeout_s: float,
) -> WebCounts:
    """Count what each session received against what it should have.

    The events a session receives after sending a question and before sending the
    next belong to that question's answer. An answer is complete with as many events
    as ``expected`` holds; events beyond them are extra (an answer delivered twice, or
    to this session instead of another), events with other texts are mismatched.
    Events before the first question are extra.

    Args:
        sessions: the sessions.
        expected: per (session, turn), the ``bot_uttered`` texts of the answer (None:
            unknown; then the first event completes the answer and nothing is compared).
        timeout_s: an answer completed later than this counts as unanswered.

    Returns:
        The counts.
    """
    answered = extra = mismatched = 0
    reply_s: list[float] = []
    for session in sessions:
        sent = session.sent_at
        first = sent[0] if sent else math.inf
        extra += sum(1 for at, _ in session.inbox if at < first)
        for turn, started in enumerate(sent):
            until = sent[turn + 1] if turn + 1 < len(sent) else math.inf
            got = [(at, text) for at, text in session.inbox if started <= at < until]
            wanted = expected.get((session.index, turn))
            need = len(wanted) if wanted else 1
            if len(got) >= need and got[need - 1][0] - started <= timeout_s:
                answered += 1
                reply_s.append(got[need - 1][0] - started)
            if wanted:
                extra += max(0, len(got) - need)
                if len(got) >= need and [text for _, text in got[:need]] != wanted:
                    mismatched += 1
    messages = sum(len(session.script) for session in sessions)
    return WebCounts(
        sessions=len(sessions),
        connected=sum(1 for session in sessions if session.confirmed),
        messages=messages,
        answered=answered,
        unanswered=messages - answered,
        extra=extra,
        mismatched=mismatched,
        reply_s=reply_s,
    )


# --- the traffic ---------------------------------------------------------------------


@dataclass
class Latencies:
    """Reply latencies of one kind of traffic.

    Attributes:
        label: what the traffic was.
        concurrency: how many messages were in flight at most.
        seconds: one latency per answered message.
        errors: messages that got no answer.
        wall_s: how long the whole phase took.
    """

    label: str
    concurrency: int
    seconds: list[float] = field(default_factory=list)
    errors: int = 0
    wall_s: float = 0.0

    def ms(self, pct: float) -> float | None:
        """The ``pct``-th percentile in milliseconds; None without measurements."""
        return percentile(self.seconds, pct) * 1000 if self.seconds else None

    @property
    def max_ms(self) -> float | None:
        """The slowest, in milliseconds."""
        return max(self.seconds) * 1000 if self.seconds else None

    @property
    def per_second(self) -> float | None:
        """Answered messages per second of the phase."""
        return len(self.seconds) / self.wall_s if self.wall_s > 0 else None


async def _pool(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Run ``job(0)`` … ``job(count - 1)`` in order, at most ``concurrency`` at a time.

    Returns:
        The wall time in seconds.
    """
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:  # shared: each index is taken by one worker
            await job(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return time.perf_counter() - started


async def _rest_turn(
    http: aiohttp.ClientSession, url: str, sender: str, text: str
) -> tuple[float, list[dict[str, Any]]] | None:
    """One REST message: its latency and the bot's messages; None on any failure."""
    started = time.perf_counter()
    try:
        async with http.post(url, json={"sender": sender, "message": text}) as answer:
            body = await answer.json(content_type=None) if answer.status == 200 else None
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
        return None
    if not isinstance(body, list) or not body:
        return None
    return time.perf_counter() - started, [m for m in body if isinstance(m, dict)]


async def rest_like_line(
    http: aiohttp.ClientSession,
    url: str,
    plan: Sequence[Delivery],
    concurrency: int,
    label: str,
) -> tuple[Latencies, dict[int, list[str] | None]]:
    """The LINE plan's new messages through REST, in the same conversations.

    Returns:
        The latencies and, per delivery, the answer as :func:`line_view` gives it.
    """
    messages = [delivery for delivery in plan if not delivery.is_redelivery]
    result = Latencies(label, min(concurrency, len(messages)))
    expected: dict[int, list[str] | None] = {}
    locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
    sender = f"rest-{uuid.uuid4().hex[:8]}"

    async def job(index: int) -> None:
        delivery = messages[index]
        async with locks[delivery.user]:  # one conversation answers one message at a time
            done = await _rest_turn(http, url, f"{sender}-{delivery.user}", delivery.text)
        if done is None:
            result.errors += 1
            expected[delivery.index] = None
        else:
            result.seconds.append(done[0])
            expected[delivery.index] = line_view(done[1]) or None

    result.wall_s = await _pool(len(messages), concurrency, job)
    return result, expected


async def rest_like_web(
    http: aiohttp.ClientSession, url: str, scripts: Sequence[Sequence[str]]
) -> tuple[Latencies, dict[tuple[int, int], list[str] | None]]:
    """The website-chat scripts through REST, all conversations at once.

    Returns:
        The latencies and, per (session, turn), the answer as :func:`socket_view` gives
        it.
    """
    result = Latencies("REST", len(scripts))
    expected: dict[tuple[int, int], list[str] | None] = {}
    run_id = uuid.uuid4().hex[:6]

    async def job(session: int) -> None:
        for turn, text in enumerate(scripts[session]):
            done = await _rest_turn(http, url, f"rest-web-{run_id}-{session}", text)
            if done is None:
                result.errors += 1
                expected[(session, turn)] = None
            else:
                result.seconds.append(done[0])
                expected[(session, turn)] = socket_view(done[1]) or None

    result.wall_s = await _pool(len(scripts), len(scripts), job)
    return result, expected


async def line_traffic(
    http: aiohttp.ClientSession,
    webhook_url: str,
    stand_in: LineStandIn,
    plan: Sequence[Delivery],
    channel_secret: str,
    concurrency: int,
    timeout_s: float,
) -> tuple[dict[int, LineOutcome], float]:
    """Send the plan: new messages waiting for their replies, then the redeliveries.

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

    wall = await _pool(len(messages), concurrency, message_job)
    await _pool(len(repeats), concurrency, repeat_job)
    return outcomes, wall


def _engineio_on_old_aiohttp() -> None:
    """Let python-engineio's asyncio client open WebSockets with the pinned aiohttp.

    python-engineio 4.15 (its ``asyncio-client`` extra asks for aiohttp 3.11) builds
    ``aiohttp.ClientWSTimeout(ws_close=...)`` for ``ws_connect``, a class aiohttp 3.9
    (pinned by this project) does not have: there the ``timeout`` argument of
    ``ws_connect`` is that same close timeout, in seconds. Only this benchmark's process
    is changed, and only while aiohttp lacks the class.
    """
    if not hasattr(aiohttp, "ClientWSTimeout"):

        def close_timeout(ws_close: float | None = None, ws_receive: float | None = None) -> float:
            return 10.0 if ws_close is None else ws_close

        setattr(aiohttp, "ClientWSTimeout", close_timeout)  # noqa: B010 - absent in aiohttp 3.9


async def web_traffic(
    rasa_url: str,
    scripts: Sequence[Sequence[str]],
    expected: Mapping[tuple[int, int], list[str] | None],
    timeout_s: float,
) -> tuple[list[WebSession], float]:
    """Run every website-chat session at once, then listen :data:`GRACE_S` longer.

    A session whose answer does not come within ``timeout_s`` stops there (its later
    questions count as unanswered).

    Returns:
        The sessions as their clients saw them, and the wall time until the last
        session finished.
    """
    _engineio_on_old_aiohttp()
    sessions = [WebSession(index, list(script)) for index, script in enumerate(scripts)]
    clients: list[Any] = []

    async def run_session(session: WebSession) -> None:
        client = socketio.AsyncClient(reconnection=False)
        clients.append(client)
        confirmed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        arrived = asyncio.Event()

        async def on_confirm(data: Any) -> None:
            session_id = confirmed_session(data)
            if session_id is not None and not confirmed.done():
                confirmed.set_result(session_id)

        async def on_bot_message(data: Any) -> None:
            text = data.get("text") if isinstance(data, dict) else None
            session.inbox.append((time.perf_counter(), text if isinstance(text, str) else ""))
            arrived.set()

        client.on("session_confirm", on_confirm)
        client.on("bot_uttered", on_bot_message)
        try:
            await client.connect(
                rasa_url,
                transports=["websocket"],
                socketio_path=SOCKETIO_PATH,
                wait_timeout=timeout_s,
            )
            await client.emit("session_request", {"session_id": None})
            session_id = await asyncio.wait_for(confirmed, timeout_s)
        except (socketio.exceptions.ConnectionError, asyncio.TimeoutError):
            return
        session.confirmed = True
        for turn, text in enumerate(session.script):
            wanted = expected.get((session.index, turn))
            need = len(wanted) if wanted else 1
            before = len(session.inbox)
            session.sent_at.append(time.perf_counter())
            await client.emit("user_uttered", {"message": text, "session_id": session_id})
            deadline = session.sent_at[-1] + timeout_s
            while len(session.inbox) - before < need:
                arrived.clear()
                left = deadline - time.perf_counter()
                if left <= 0:
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(arrived.wait(), left)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(run_session(session) for session in sessions))
        wall = time.perf_counter() - started
        await asyncio.sleep(GRACE_S)
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)
    return sessions, wall


# --- the run ---------------------------------------------------------------------------


@dataclass
class Results:
    """Everything the report shows."""

    line: LineCounts
    web: WebCounts
    rest_sequential: Latencies
    rest_line: Latencies
    line_latency: Latencies
    rest_web: Latencies
    web_latency: Latencies
    concurrency: int
    messages_per_session: int
    line_users: int
    timeout_s: float

    @property
    def ok(self) -> bool:
        """Nothing dropped or duplicated in either channel."""
        return self.line.ok and self.web.ok


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _warm_up(
    http: aiohttp.ClientSession,
    rest: aiohttp.ClientSession,
    assistant: RunningAssistant,
    stand_in: LineStandIn,
    channel_secret: str,
    timeout_s: float,
) -> None:
    """One message through each path first: the first requests load things lazily."""
    for text in QUESTIONS:
        await _rest_turn(rest, assistant.rest_url, "warm-up", text)
    probe = replace(plan_line(1, 1, seed=0)[0], user_id=f"U{uuid.uuid4().hex}")
    body = webhook_body([text_event(probe)])
    async with http.post(
        f"{assistant.rasa_url}/webhooks/line/webhook",
        data=body,
        headers=signed_headers(channel_secret, body),
    ) as answer:
        if answer.status != 200:
            raise RuntimeError(f"the LINE webhook answered {answer.status}: is the channel on?")
    if await stand_in.wait_reply(probe.reply_token, timeout_s) is None:
        raise RuntimeError("the LINE channel did not reply to the warm-up message")
    sessions, _ = await web_traffic(assistant.rasa_url, [QUESTIONS[:1]], {}, timeout_s)
    if not sessions[0].inbox:
        raise RuntimeError("the website chat did not answer the warm-up message")


async def measure(
    assistant: RunningAssistant,
    stand_in: LineStandIn,
    stand_in_port: int,
    channel_secret: str,
    *,
    deliveries: int,
    sessions: int,
    messages_per_session: int,
    concurrency: int,
    timeout_s: float,
) -> Results:
    """Run every phase against running servers whose LINE API is ``stand_in``."""
    await stand_in.start(stand_in_port)
    plan = plan_line(deliveries, concurrency, seed=secrets.randbits(32))
    scripts = web_scripts(sessions, messages_per_session)
    rest_timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=rest_timeout) as http,
            # The REST channel answers only requests with the HTTP API token.
            aiohttp.ClientSession(timeout=rest_timeout, headers=assistant.rest_headers) as rest,
        ):
            _progress("warm-up …")
            await _warm_up(http, rest, assistant, stand_in, channel_secret, timeout_s)
            url = assistant.rest_url
            _progress("REST, one message at a time …")
            rest_sequential, _ = await rest_like_line(rest, url, plan, 1, "REST sequential")
            _progress(f"REST, {concurrency} at a time …")
            rest_line, expected_line = await rest_like_line(rest, url, plan, concurrency, "REST")
            _progress(f"LINE, {deliveries} deliveries, {concurrency} at a time …")
            outcomes, line_wall = await line_traffic(
                http,
                f"{assistant.rasa_url}/webhooks/line/webhook",
                stand_in,
                plan,
                channel_secret,
                concurrency,
                timeout_s,
            )
            _progress(f"REST, {sessions} conversations at once …")
            rest_web, expected_web = await rest_like_web(rest, url, scripts)
            _progress(f"website chat, {sessions} sessions at once …")
            web_sessions, web_wall = await web_traffic(
                assistant.rasa_url, scripts, expected_web, timeout_s
            )
    finally:
        await stand_in.close()
    line = count_line(plan, outcomes, stand_in.calls, expected_line, timeout_s)
    web = count_web(web_sessions, expected_web, timeout_s)
    return Results(
        line=line,
        web=web,
        rest_sequential=rest_sequential,
        rest_line=rest_line,
        line_latency=Latencies(
            "LINE (webhook sent → reply call)",
            min(concurrency, line.replies_expected),
            line.reply_s,
            line.missing,
            line_wall,
        ),
        rest_web=rest_web,
        web_latency=Latencies(
            "website chat (question sent → whole answer)",
            sessions,
            web.reply_s,
            web.unanswered,
            web_wall,
        ),
        concurrency=concurrency,
        messages_per_session=messages_per_session,
        line_users=len({delivery.user for delivery in plan}),
        timeout_s=timeout_s,
    )


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (the servers copy them when started)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(
    deliveries: int = 200,
    sessions: int = 50,
    messages_per_session: int = 3,
    concurrency: int = 8,
    timeout_s: float = 60.0,
) -> tuple[Results, str]:
    """Start the servers once, measure both channels and the baseline, stop them.

    Returns:
        The results and the report.
    """
    machine = collect()
    started_at = datetime.now(timezone.utc)
    clock = time.monotonic()
    channel_secret, access_token = secrets.token_hex(16), secrets.token_hex(24)
    stand_in_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-channels-") as tmp:
        var_dir = Path(tmp)
        ports: dict[str, Any] = {
            f.name: free_port() for f in fields(Settings) if f.name.endswith("_port")
        }
        settings = replace(
            load_settings(),
            var_dir=var_dir,
            database_url=f"sqlite:///{var_dir / 'app.db'}",
            rasa_token=uuid.uuid4().hex,
            rest_enabled=True,  # the baseline; off unless enabled, then token-bound
            **ports,
        )
        line_env = {
            "LINE_CHANNEL_SECRET": channel_secret,
            "LINE_CHANNEL_ACCESS_TOKEN": access_token,
            "LINE_API_BASE_URL": f"http://127.0.0.1:{stand_in_port}",
        }
        model = train_if_needed()
        _progress("starting the servers …")
        with (
            _environment(line_env),
            running(settings, model, log_dir=var_dir / "logs") as assistant,
        ):
            results = asyncio.run(
                measure(
                    assistant,
                    LineStandIn(access_token),
                    stand_in_port,
                    channel_secret,
                    deliveries=deliveries,
                    sessions=sessions,
                    messages_per_session=messages_per_session,
                    concurrency=concurrency,
                    timeout_s=timeout_s,
                )
            )
    header = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "took": f"{(time.monotonic() - clock) / 60:.1f} min",
        "machine": (
            f"nproc {machine.nproc} · {machine.cpu_model} · 1-min load average "
            f"{machine.load_average:.2f} at start, {os.getloadavg()[0]:.2f} at end"
        ),
        "software": f"Python {machine.python} · Rasa {machine.rasa} · git {machine.git_revision}",
    }
    return results, report(results, header)


# --- the report ----------------------------------------------------------------------


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def _latency_row(row: Latencies, against: Latencies | None) -> str:
    p50, p95 = row.ms(50), row.ms(95)
    rate = row.per_second
    ratio_50 = _times(ratio(p50, against.ms(50))) if against else "—"
    ratio_95 = _times(ratio(p95, against.ms(95))) if against else "—"
    baseline = f"{against.label} at {against.concurrency}" if against else ""
    return (
        f"| {row.label} | {row.concurrency} | {len(row.seconds)} | {row.errors} | "
        f"{_ms(p50)} | {_ms(p95)} | {_ms(row.max_ms)} | "
        f"{'—' if rate is None else f'{rate:.1f}'} | {ratio_50} | {ratio_95} | {baseline} |"
    )


def report(results: Results, header: Mapping[str, str]) -> str:
    """The Markdown report of a run.

    Args:
        results: the figures.
        header: ``date``, ``took``, ``machine`` and ``software`` lines.

    Returns:
        The report.
    """
    line, web = results.line, results.web
    ack = Latencies("ack", results.concurrency, line.ack_s)
    verdict = "yes" if results.ok else "**NO** (see the counts above)"
    lines = [
        f"## Channels: LINE webhooks and website chat ({header['date']})",
        "",
        f"- Date: {header['date']} · took {header['took']}",
        f"- Machine: {header['machine']}",
        f"- Software: {header['software']}",
        "- Servers: the action server and the rasa server started once, with the trained "
        "model, a database of their own, and the LINE API replaced by a stand-in on "
        "loopback that records every call.",
        f"- LINE: {line.deliveries} signed webhook deliveries ({line.replies_expected} "
        f"messages from {results.line_users} user ids, then {line.redeliveries} "
        f"redelivered), {results.concurrency} at a time; each sender waits for the reply "
        "before its next message.",
        f"- Website chat: {web.sessions} socket.io sessions at once (WebSocket), "
        f"{_count(results.messages_per_session, 'question')} each, one after another, each "
        "waiting for the whole answer.",
        f"- A reply later than {results.timeout_s:.0f} s counts as missing.",
        f"- {LINE_DOCS}",
        "",
        "### LINE webhook",
        "",
        "| figure | value |",
        "| :--- | ---: |",
        f"| deliveries acknowledged (HTTP 200) | {line.acknowledged} of {line.deliveries} |",
        f"| acknowledgement p50 / p95 / max | {_ms(ack.ms(50))} / {_ms(ack.ms(95))} / "
        f"{_ms(ack.max_ms)} ms |",
        f"| acknowledged within LINE's {LINE_ACK_LIMIT_S:.0f} s | {line.within_limit} of "
        f"{line.deliveries} |",
        f"| replies received | {line.replies_received} of {line.replies_expected} |",
        f"| missing replies | {line.missing} |",
        f"| duplicate reply calls (same replyToken) | {line.duplicate_calls} |",
        f"| redeliveries answered again | {line.redeliveries_answered} of {line.redeliveries} |",
        f"| push calls | {line.pushes} |",
        f"| replies differing from REST's answer to the same turn | {line.mismatched} |",
        "",
        "### Website chat",
        "",
        "| figure | value |",
        "| :--- | ---: |",
        f"| sessions connected (session_confirm) | {web.connected} of {web.sessions} |",
        f"| messages answered | {web.answered} of {web.messages} |",
        f"| messages unanswered within {results.timeout_s:.0f} s | {web.unanswered} |",
        f"| extra bot messages (answer twice or to another session) | {web.extra} |",
        f"| answers differing from REST's answer to the same turn | {web.mismatched} |",
        "",
        "### Reply latency against the REST channel (same run, same servers)",
        "",
        "| traffic | in flight | answered | missing | p50 ms | p95 ms | max ms | msg/s "
        "| ratio p50 | ratio p95 | against |",
        "| :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :--- |",
        _latency_row(results.rest_sequential, None),
        _latency_row(results.rest_line, None),
        _latency_row(results.line_latency, results.rest_line),
        _latency_row(results.rest_web, None),
        _latency_row(results.web_latency, results.rest_web),
        "",
        f"Nothing dropped or duplicated: {verdict}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 when nothing was dropped or duplicated, else 1."""
    parser = argparse.ArgumentParser(prog="python -m bench.channels", description=__doc__)
    parser.add_argument("--line-deliveries", type=int, default=200)
    parser.add_argument("--web-sessions", type=int, default=50)
    parser.add_argument(
        "--messages-per-session",
        type=int,
        default=3,
        help="questions per website-chat session (the guard allows 20 a minute)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="LINE deliveries in flight")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a reply")
    args = parser.parse_args(argv)
    for name in ("line_deliveries", "web_sessions", "messages_per_session", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    results, text = run(
        deliveries=args.line_deliveries,
        sessions=args.web_sessions,
        messages_per_session=args.messages_per_session,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
    )
    print(text, flush=True)
    return 0 if results.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
