"""LINE webhooks and website-chat sessions on the running servers: ``python -m bench.channels``.

The real servers start once (bench.servers.running_product) with the LINE API replaced
by a stand-in (bench/line.py). Measured: signed LINE deliveries, ``--concurrency`` at a
time, each user waiting for the reply before writing again, a few of them redeliveries
that must get no answer; ``--web-sessions`` socket.io sessions at once, each asking
``--messages-per-session`` questions and waiting for the whole answer (as many
``bot_uttered`` events as REST gave messages for the same turn, cut at blank lines);
and as the baseline, on the same servers in the same run, the same questions in the
same conversations through the REST channel. It prints a Markdown report and exits 1
when anything was dropped or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from unittest import mock

import aiohttp
import socketio

from bench import cli
from bench.line import (
    LINE_ACK_LIMIT_S,
    LineCounts,
    LineStandIn,
    conversations,
    count_line,
    line_environment,
    line_traffic,
    parts,
    plan_line,
)
from bench.report import DASH, Machine, header, num, table, times
from bench.rest import Reply, send_conversations
from bench.servers import free_port, running_product
from bench.stats import Timings, ratio
from bot.launcher import RunningAssistant

logger = logging.getLogger(__name__)

# Policy questions the assistant answers from the organization's published policy.
QUESTIONS = (
    "個人情報の利用目的を教えてください",
    "口座情報は何に使われますか",
    "個人情報はどうやって守られていますか",
    "開示請求の手数料はいくらですか",
    "安全管理について教えてください",
    "第三者に提供されることはありますか",
)
LINE_DOCS = (
    "LINE counts a webhook as failed with `request_timeout` when the bot server has not "
    "answered within 2 seconds, and with `error_status_code` for a status outside 2xx "
    "(https://developers.line.biz/en/docs/messaging-api/check-webhook-error-statistics/); "
    "it recommends processing webhook events asynchronously "
    "(https://developers.line.biz/en/docs/messaging-api/receiving-messages/)."
)
WEB_LABEL = "website chat (question sent → whole answer)"
GRACE_S = 3.0  # after the last message: how long to keep listening for late duplicates

# The texts of each answer (None: unknown), by (conversation, turn).
Expected = Mapping[tuple[int, int], list[str] | None]


def web_scripts(sessions: int, messages: int) -> list[list[str]]:
    """The questions each website-chat session asks, in order (each starts elsewhere)."""
    return [
        [QUESTIONS[(session + turn) % len(QUESTIONS)] for turn in range(messages)]
        for session in range(sessions)
    ]


def socket_view(rest_messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``bot_uttered`` texts the website chat gets for an answer REST gave."""
    shown: list[str] = []
    for message in rest_messages:
        text = message.get("text")
        shown.extend(parts([text]) if isinstance(text, str) else [""])
    return shown


def line_view(rest_messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The texts LINE gets for an answer REST gave, cut like :func:`~bench.line.parts`."""
    texts = [message.get("text") for message in rest_messages]
    return parts(text for text in texts if isinstance(text, str))


def rest_baseline(
    replies: Mapping[tuple[int, int], Reply],
    wall_s: float,
    view: Callable[[Sequence[Mapping[str, Any]]], list[str]],
) -> tuple[Timings, Expected]:
    """The REST replies' timings, and each answer as the other channel ``view``s it."""
    timings = Timings(wall_s=wall_s)
    expected: dict[tuple[int, int], list[str] | None] = {}
    for key, reply in replies.items():
        if reply.error or not reply.messages:
            timings.fail(reply.error or "no answer")
            expected[key] = None
        else:
            timings.seconds.append(reply.seconds)
            expected[key] = view(reply.messages) or None
    return timings, expected


@dataclass
class WebSession:
    """One website-chat session as its client saw it (times from time.perf_counter)."""

    index: int
    script: list[str]  # the questions it asks, in order
    confirmed: bool = False  # whether the server confirmed a session
    sent_at: list[float] = field(default_factory=list)  # when each question was sent
    inbox: list[tuple[float, str]] = field(default_factory=list)  # bot_uttered: arrival, text


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
        return self.connected == self.sessions and not (
            self.unanswered or self.extra or self.mismatched
        )


def count_web(sessions: Sequence[WebSession], expected: Expected, timeout_s: float) -> WebCounts:
    """Counts what each session received against what it should have.

    The events a session receives between sending a question and sending the next are
    that question's answer, complete with as many events as ``expected`` holds (with
    None, the first event completes it and nothing is compared); events beyond them
    are extra (an answer delivered twice, or to the wrong session), and so are events
    before the first question; an answer with other texts is mismatched, one completed
    later than ``timeout_s`` unanswered.
    """
    answered = extra = mismatched = 0
    reply_s: list[float] = []
    for session in sessions:
        sent = session.sent_at
        extra += sum(1 for at, _ in session.inbox if at < (sent[0] if sent else math.inf))
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


def _engineio_on_old_aiohttp() -> None:
    """Lets python-engineio's asyncio client open WebSockets with the pinned aiohttp.

    python-engineio 4.15 passes ``aiohttp.ClientWSTimeout(ws_close=...)``, which
    aiohttp 3.9 lacks; there the ``timeout`` of ``ws_connect`` is that close timeout in
    seconds. Only this benchmark's process is changed.
    """
    if not hasattr(aiohttp, "ClientWSTimeout"):

        def close_timeout(ws_close: float | None = None, ws_receive: float | None = None) -> float:
            return 10.0 if ws_close is None else ws_close

        setattr(aiohttp, "ClientWSTimeout", close_timeout)  # noqa: B010 - absent in aiohttp 3.9


async def web_traffic(
    rasa_url: str, scripts: Sequence[Sequence[str]], expected: Expected, timeout_s: float
) -> tuple[list[WebSession], float]:
    """Runs every website-chat session at once, then listens :data:`GRACE_S` longer.

    A session stops at an answer that does not come within ``timeout_s``. Returns the
    sessions as their clients saw them, and the wall time until the last ended.
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
            session_id = data.get("session_id") if isinstance(data, dict) else None
            if isinstance(session_id, str) and not confirmed.done():
                confirmed.set_result(session_id)

        async def on_bot_message(data: Any) -> None:
            text = data.get("text") if isinstance(data, dict) else None
            session.inbox.append((time.perf_counter(), text if isinstance(text, str) else ""))
            arrived.set()

        client.on("session_confirm", on_confirm)
        client.on("bot_uttered", on_bot_message)
        try:
            await client.connect(rasa_url, transports=["websocket"], wait_timeout=timeout_s)
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
        wall_s = time.perf_counter() - started
        await asyncio.sleep(GRACE_S)
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)
    return sessions, wall_s


# --- the run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """What a run sends (see the command line's options)."""

    deliveries: int = 200
    sessions: int = 50
    messages_per_session: int = 3
    concurrency: int = 8  # LINE deliveries (and REST messages like them) in flight
    timeout_s: float = 60.0


@dataclass
class Results:
    """Everything the report shows; ``latencies`` by the report's traffic keys."""

    sizes: Sizes
    line: LineCounts
    web: WebCounts
    latencies: dict[str, Timings]
    line_users: int

    @property
    def ok(self) -> bool:
        """Nothing dropped or duplicated in either channel."""
        return self.line.ok and self.web.ok


async def measure(
    assistant: RunningAssistant, stand_in: LineStandIn, channel_secret: str, sizes: Sizes
) -> Results:
    """Runs every phase against running servers whose LINE API is ``stand_in``."""
    timeout_s, concurrency = sizes.timeout_s, sizes.concurrency
    plan = plan_line(sizes.deliveries, concurrency, QUESTIONS, seed=secrets.randbits(32))
    line_texts = [[delivery.text for delivery in user] for user in conversations(plan)]
    scripts = web_scripts(sizes.sessions, sizes.messages_per_session)
    url, run = assistant.rest_url, uuid.uuid4().hex[:6]
    webhook = f"{assistant.rasa_url}/webhooks/line/webhook"
    # The REST channel answers only requests with the HTTP API token.
    async with aiohttp.ClientSession(headers=assistant.rest_headers) as rest:
        logger.info("warm-up: one message through each path loads what loads lazily")
        await send_conversations(rest, url, [QUESTIONS], f"warm-up-{run}", 1, timeout_s)
        probe = plan_line(1, 1, QUESTIONS, seed=secrets.randbits(32))
        await line_traffic(webhook, stand_in, probe, channel_secret, 1, timeout_s)
        if not await stand_in.wait_reply(probe[0].reply_token, 0):
            raise RuntimeError("no reply to the LINE warm-up message: is the channel on?")
        warmed, _ = await web_traffic(assistant.rasa_url, [QUESTIONS[:1]], {}, timeout_s)
        if not warmed[0].inbox:
            raise RuntimeError("the website chat did not answer the warm-up message")
        logger.info("REST, one message at a time …")
        replies, wall_s = await send_conversations(
            rest, url, line_texts, f"rest-seq-{run}", 1, timeout_s
        )
        rest_sequential, _ = rest_baseline(replies, wall_s, line_view)
        logger.info("REST, %d at a time …", concurrency)
        replies, wall_s = await send_conversations(
            rest, url, line_texts, f"rest-line-{run}", concurrency, timeout_s
        )
        rest_line, expected_line = rest_baseline(replies, wall_s, line_view)
        logger.info("LINE, %d deliveries, %d at a time …", len(plan), concurrency)
        outcomes, line_wall = await line_traffic(
            webhook, stand_in, plan, channel_secret, concurrency, timeout_s
        )
        logger.info("REST, %d conversations at once …", sizes.sessions)
        replies, wall_s = await send_conversations(
            rest, url, scripts, f"rest-web-{run}", sizes.sessions, timeout_s
        )
        rest_web, expected_web = rest_baseline(replies, wall_s, socket_view)
        logger.info("website chat, %d sessions at once …", sizes.sessions)
        sessions, web_wall = await web_traffic(assistant.rasa_url, scripts, expected_web, timeout_s)
    line = count_line(plan, outcomes, stand_in.calls, expected_line, timeout_s)
    web = count_web(sessions, expected_web, timeout_s)
    missing = {"missing": line.missing} if line.missing else {}
    unanswered = {"unanswered": web.unanswered} if web.unanswered else {}
    latencies = {
        "REST sequential": rest_sequential,
        "REST like LINE": rest_line,
        "LINE": Timings(line.reply_s, missing, line_wall),
        "REST like website chat": rest_web,
        "website chat": Timings(web.reply_s, unanswered, web_wall),
    }
    return Results(sizes, line, web, latencies, line_users=len(line_texts))


def run(sizes: Sizes) -> tuple[Results, str]:
    """Starts the servers once, measures both channels and the baseline: results, report."""
    machine, started = Machine.collect(), datetime.now(timezone.utc)
    channel_secret, access_token = secrets.token_hex(16), secrets.token_hex(24)
    stand_in, stand_in_port = LineStandIn(access_token), free_port()
    # The servers read the LINE channel's settings from the environment they start in.
    line_env = line_environment(channel_secret, access_token, stand_in_port)

    async def measure_with_stand_in(assistant: RunningAssistant) -> Results:
        await stand_in.start(stand_in_port)
        try:
            return await measure(assistant, stand_in, channel_secret, sizes)
        finally:
            await stand_in.close()

    with mock.patch.dict(os.environ, line_env), running_product() as assistant:
        results = asyncio.run(measure_with_stand_in(assistant))
    return results, report(results, header(started, machine))


def report(results: Results, header_lines: Sequence[str]) -> str:
    """The Markdown report of a run, under ``header_lines`` (date, machine, software)."""
    line, web, sizes = results.line, results.web, results.sizes
    in_flight = min(sizes.concurrency, line.replies_expected)
    ack = Timings(line.ack_s)
    acks = [num(ack.ms(50), ",.1f"), num(ack.ms(95), ",.1f"), num(ack.max_ms, ",.1f")]
    limit = f"{LINE_ACK_LIMIT_S:.0f}"
    line_rows = [
        ["deliveries acknowledged (HTTP 200)", f"{line.acknowledged} of {line.deliveries}"],
        ["acknowledgement p50 / p95 / max", " / ".join(acks) + " ms"],
        [f"acknowledged within LINE's {limit} s", f"{line.within_limit} of {line.deliveries}"],
        ["replies received", f"{line.replies_received} of {line.replies_expected}"],
        ["missing replies", str(line.missing)],
        ["duplicate reply calls (same replyToken)", str(line.duplicate_calls)],
        ["redeliveries answered again", f"{line.redeliveries_answered} of {line.redeliveries}"],
        ["push calls", str(line.pushes)],
        ["replies differing from REST's answer to the same turn", str(line.mismatched)],
    ]
    web_rows = [
        ["sessions connected (session_confirm)", f"{web.connected} of {web.sessions}"],
        ["messages answered", f"{web.answered} of {web.messages}"],
        [f"messages unanswered within {sizes.timeout_s:.0f} s", str(web.unanswered)],
        ["extra bot messages (answer twice or to another session)", str(web.extra)],
        ["answers differing from REST's answer to the same turn", str(web.mismatched)],
    ]
    # Each row: the latencies' key, its label, messages in flight at most, its baseline.
    traffic = [
        ("REST sequential", "REST sequential", 1, None),
        ("REST like LINE", "REST", in_flight, None),
        ("LINE", "LINE (webhook sent → reply call)", in_flight, "REST like LINE"),
        ("REST like website chat", "REST", sizes.sessions, None),
        ("website chat", WEB_LABEL, sizes.sessions, "REST like website chat"),
    ]
    latency_rows = []
    for key, label, most, against in traffic:
        found = results.latencies[key]
        baseline = results.latencies[against] if against else None
        latency_rows.append(
            [
                label,
                str(most),
                str(found.ok),
                str(found.errors),
                num(found.ms(50), ",.1f"),
                num(found.ms(95), ",.1f"),
                num(found.max_ms, ",.1f"),
                num(found.per_second, ".1f"),
                times(ratio(found.ms(50), baseline.ms(50))) if baseline else DASH,
                times(ratio(found.ms(95), baseline.ms(95))) if baseline else DASH,
                f"REST at {most}" if against else "",
            ]
        )
    heads = ["traffic", "in flight", "answered", "missing", "p50 ms", "p95 ms", "max ms", "msg/s"]
    plural = "" if sizes.messages_per_session == 1 else "s"
    verdict = "yes" if results.ok else "**NO** (see the counts above)"
    lines = [
        "## Channels: LINE webhooks and website chat",
        "",
        *header_lines,
        "- Servers: the action server and the rasa server started once, with the trained "
        "model, a database of their own, and the LINE API replaced by a stand-in on "
        "loopback that records every call.",
        f"- LINE: {line.deliveries} signed webhook deliveries ({line.replies_expected} "
        f"messages from {results.line_users} user ids, then {line.redeliveries} "
        f"redelivered), {in_flight} at a time; each sender waits for the reply before its "
        "next message.",
        f"- Website chat: {web.sessions} socket.io sessions at once (WebSocket), "
        f"{sizes.messages_per_session} question{plural} each, one after another, each waiting "
        "for the whole answer.",
        f"- A reply later than {sizes.timeout_s:.0f} s counts as missing.",
        f"- {LINE_DOCS}",
        "",
        "### LINE webhook",
        "",
        *table(["figure", "value"], line_rows, "lr"),
        "",
        "### Website chat",
        "",
        *table(["figure", "value"], web_rows, "lr"),
        "",
        "### Reply latency against the REST channel (same run, same servers)",
        "",
        *table([*heads, "ratio p50", "ratio p95", "against"], latency_rows, "lrrrrrrrrrl"),
        "",
        f"Nothing dropped or duplicated: {verdict}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 when nothing was dropped or duplicated, else 1."""
    parser = cli.parser("python -m bench.channels", __doc__)
    parser.add_argument("--line-deliveries", type=cli.at_least(1), default=200)
    parser.add_argument(
        "--web-sessions", type=cli.at_least(1), default=50, help="website-chat sessions at once"
    )
    parser.add_argument(
        "--messages-per-session",
        type=cli.at_least(1),
        default=3,
        help="questions per website-chat session (the guard allows 20 a minute)",
    )
    parser.add_argument(
        "--concurrency", type=cli.at_least(1), default=8, help="LINE deliveries in flight"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a reply")
    args = parser.parse_args(argv)
    sizes = Sizes(
        args.line_deliveries,
        args.web_sessions,
        args.messages_per_session,
        args.concurrency,
        args.timeout,
    )

    def measure_and_print() -> int:
        results, text = run(sizes)
        print(text)
        return 0 if results.ok else 1

    return cli.run(measure_and_print)


if __name__ == "__main__":
    raise SystemExit(main())
