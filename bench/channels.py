"""LINE webhooks and website-chat sessions on the running servers: ``python -m bench.channels``.

The real servers start once (bench.servers.running_product) with the LINE API replaced by
a stand-in (bench/line.py). Measured: signed LINE deliveries, ``--concurrency`` at a time,
each sender waiting for the reply before writing again, a few of them redeliveries that
must get no answer; ``--web-sessions`` socket.io sessions at once, each asking
``--messages-per-session`` questions and waiting for the whole answer (as many
``bot_uttered`` events as REST gave messages for the same turn, cut at blank lines as
Rasa's socketio channel cuts them); and as the baseline, on the same servers in the same
run, the same questions in the same conversations through the REST channel. It prints a
Markdown report and exits 1 when anything was dropped or duplicated.
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
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from unittest import mock

import aiohttp
import socketio

from bench import cli
from bench.line import (
    LINE_ACK_LIMIT_S,
    Delivery,
    LineCounts,
    LineStandIn,
    count_line,
    line_traffic,
    parts,
    plan_line,
    signed_headers,
    text_event,
    webhook_body,
)
from bench.report import DASH, Machine, header, num, table, times
from bench.rest import pool, post_message
from bench.servers import LOOPBACK, free_port, running_product
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
GRACE_S = 3.0  # after the last message: how long to keep listening for late duplicates
SOCKETIO_PATH = "/socket.io"


def confirmed_session(data: Any) -> str | None:
    """The session id a ``session_confirm`` carries; None if it carries none.

    The website chat confirms with ``{"session_id": ..., "resume_secret": ...}``, Rasa's
    own socketio channel with the id alone.
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


def socket_view(rest_messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``bot_uttered`` texts the website chat gets for an answer REST gave."""
    shown: list[str] = []
    for message in rest_messages:
        text = message.get("text")
        shown.extend(parts([text]) if isinstance(text, str) else [""])
    return shown


def line_view(rest_messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The texts of an answer REST gave, cut like :func:`~bench.line.parts`."""
    return parts(str(m["text"]) for m in rest_messages if isinstance(m.get("text"), str))


@dataclass
class WebSession:
    """One website-chat session as its client saw it.

    Attributes:
        index: Its place in the run.
        script: The questions it asks, in order.
        confirmed: Whether the server confirmed a session.
        sent_at: When each question was sent (:func:`time.perf_counter`).
        inbox: Every ``bot_uttered`` event received: arrival time and text.
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
        return self.connected == self.sessions and not (
            self.unanswered or self.extra or self.mismatched
        )


def count_web(
    sessions: Sequence[WebSession],
    expected: Mapping[tuple[int, int], list[str] | None],
    timeout_s: float,
) -> WebCounts:
    """Counts what each session received against what it should have.

    The events a session receives after sending a question and before sending the next
    belong to that question's answer, complete with as many events as ``expected``
    holds; events beyond them are extra (an answer delivered twice, or to this session
    instead of another), events with other texts are mismatched. Events before the
    first question are extra.

    Args:
        sessions: The sessions.
        expected: Per (session, turn), the texts of the answer (None: unknown; then the
            first event completes the answer and nothing is compared).
        timeout_s: An answer completed later than this counts as unanswered.
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


# --- the traffic ---------------------------------------------------------------------


async def rest_like_line(
    http: aiohttp.ClientSession,
    url: str,
    plan: Sequence[Delivery],
    concurrency: int,
    timeout_s: float,
) -> tuple[Timings, dict[int, list[str] | None]]:
    """The LINE plan's new messages through REST, in the same conversations.

    Returns:
        The timings and, per delivery, the answer as :func:`line_view` gives it.
    """
    messages = [delivery for delivery in plan if not delivery.is_redelivery]
    timings = Timings()
    expected: dict[int, list[str] | None] = {}
    locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
    sender = f"rest-{uuid.uuid4().hex[:8]}"

    async def job(index: int) -> None:
        delivery = messages[index]
        async with locks[delivery.user]:  # one conversation answers one message at a time
            reply = await post_message(
                http, url, f"{sender}-{delivery.user}", delivery.text, timeout_s
            )
        if reply.error or not reply.messages:
            timings.fail(reply.error or "no answer")
            expected[delivery.index] = None
        else:
            timings.seconds.append(reply.seconds)
            expected[delivery.index] = line_view(reply.messages) or None

    timings.wall_s = await pool(len(messages), concurrency, job)
    return timings, expected


async def rest_like_web(
    http: aiohttp.ClientSession, url: str, scripts: Sequence[Sequence[str]], timeout_s: float
) -> tuple[Timings, dict[tuple[int, int], list[str] | None]]:
    """The website-chat scripts through REST, all conversations at once.

    Returns:
        The timings and, per (session, turn), the answer as :func:`socket_view` gives it.
    """
    timings = Timings()
    expected: dict[tuple[int, int], list[str] | None] = {}
    run_id = uuid.uuid4().hex[:6]

    async def job(session: int) -> None:
        for turn, text in enumerate(scripts[session]):
            reply = await post_message(http, url, f"rest-web-{run_id}-{session}", text, timeout_s)
            if reply.error or not reply.messages:
                timings.fail(reply.error or "no answer")
                expected[(session, turn)] = None
            else:
                timings.seconds.append(reply.seconds)
                expected[(session, turn)] = socket_view(reply.messages) or None

    timings.wall_s = await pool(len(scripts), len(scripts), job)
    return timings, expected


def _engineio_on_old_aiohttp() -> None:
    """Lets python-engineio's asyncio client open WebSockets with the pinned aiohttp.

    python-engineio 4.15 builds ``aiohttp.ClientWSTimeout(ws_close=...)`` for
    ``ws_connect``, a class aiohttp 3.9 (pinned by this project) does not have: there the
    ``timeout`` argument of ``ws_connect`` is that same close timeout, in seconds. Only
    this benchmark's process is changed, and only while aiohttp lacks the class.
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
    """Runs every website-chat session at once, then listens :data:`GRACE_S` longer.

    A session whose answer does not come within ``timeout_s`` stops there (its later
    questions count as unanswered).

    Returns:
        The sessions as their clients saw them, and the wall time until the last ended.
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
        wall_s = time.perf_counter() - started
        await asyncio.sleep(GRACE_S)
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)
    return sessions, wall_s


# --- the run ---------------------------------------------------------------------------


@dataclass
class Results:
    """Everything the report shows.

    Attributes:
        latencies: Reply latencies of "REST sequential", "REST like LINE", "LINE", "REST
            like website chat" and "website chat".
        concurrency: LINE deliveries (and REST messages like them) in flight at most.
        sessions: Website-chat sessions (and REST conversations like them) at once.
    """

    line: LineCounts
    web: WebCounts
    latencies: dict[str, Timings]
    concurrency: int
    sessions: int
    messages_per_session: int
    line_users: int
    timeout_s: float

    @property
    def ok(self) -> bool:
        """Nothing dropped or duplicated in either channel."""
        return self.line.ok and self.web.ok


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
        await post_message(rest, assistant.rest_url, "warm-up", text, timeout_s)
    probe = replace(plan_line(1, 1, QUESTIONS, seed=0)[0], user_id=f"U{uuid.uuid4().hex}")
    body = webhook_body([text_event(probe)])
    webhook = f"{assistant.rasa_url}/webhooks/line/webhook"
    async with http.post(
        webhook, data=body, headers=signed_headers(channel_secret, body)
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
    """Runs every phase against running servers whose LINE API is ``stand_in``."""
    await stand_in.start(stand_in_port)
    plan = plan_line(deliveries, concurrency, QUESTIONS, seed=secrets.randbits(32))
    scripts = web_scripts(sessions, messages_per_session)
    url = assistant.rest_url
    try:
        async with (
            aiohttp.ClientSession() as http,
            # The REST channel answers only requests with the HTTP API token.
            aiohttp.ClientSession(headers=assistant.rest_headers) as rest,
        ):
            logger.info("warm-up …")
            await _warm_up(http, rest, assistant, stand_in, channel_secret, timeout_s)
            logger.info("REST, one message at a time …")
            rest_sequential, _ = await rest_like_line(rest, url, plan, 1, timeout_s)
            logger.info("REST, %d at a time …", concurrency)
            rest_line, expected_line = await rest_like_line(rest, url, plan, concurrency, timeout_s)
            logger.info("LINE, %d deliveries, %d at a time …", deliveries, concurrency)
            outcomes, line_wall = await line_traffic(
                http,
                f"{assistant.rasa_url}/webhooks/line/webhook",
                stand_in,
                plan,
                channel_secret,
                concurrency,
                timeout_s,
            )
            logger.info("REST, %d conversations at once …", sessions)
            rest_web, expected_web = await rest_like_web(rest, url, scripts, timeout_s)
            logger.info("website chat, %d sessions at once …", sessions)
            web_sessions, web_wall = await web_traffic(
                assistant.rasa_url, scripts, expected_web, timeout_s
            )
    finally:
        await stand_in.close()
    line = count_line(plan, outcomes, stand_in.calls, expected_line, timeout_s)
    web = count_web(web_sessions, expected_web, timeout_s)
    missing = {"missing": line.missing} if line.missing else {}
    unanswered = {"unanswered": web.unanswered} if web.unanswered else {}
    return Results(
        line=line,
        web=web,
        latencies={
            "REST sequential": rest_sequential,
            "REST like LINE": rest_line,
            "LINE": Timings(line.reply_s, missing, line_wall),
            "REST like website chat": rest_web,
            "website chat": Timings(web.reply_s, unanswered, web_wall),
        },
        concurrency=min(concurrency, line.replies_expected),
        sessions=sessions,
        messages_per_session=messages_per_session,
        line_users=len({delivery.user for delivery in plan}),
        timeout_s=timeout_s,
    )


def run(
    deliveries: int = 200,
    sessions: int = 50,
    messages_per_session: int = 3,
    concurrency: int = 8,
    timeout_s: float = 60.0,
) -> tuple[Results, str]:
    """Starts the servers once, measures both channels and the baseline, stops them.

    Returns:
        The results and the report.
    """
    machine, started = Machine.collect(), datetime.now(timezone.utc)
    channel_secret, access_token = secrets.token_hex(16), secrets.token_hex(24)
    stand_in_port = free_port()
    # The servers read the LINE channel's settings from the environment they start in.
    line_env = {
        "LINE_CHANNEL_SECRET": channel_secret,
        "LINE_CHANNEL_ACCESS_TOKEN": access_token,
        "LINE_API_BASE_URL": f"http://{LOOPBACK}:{stand_in_port}",
    }
    with mock.patch.dict(os.environ, line_env), running_product() as assistant:
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
    return results, report(results, header(started, machine))


def report(results: Results, header_lines: Sequence[str]) -> str:
    """The Markdown report of a run, under ``header_lines`` (date, machine, software)."""
    line, web, latencies = results.line, results.web, results.latencies
    ack = Timings(line.ack_s)
    questions = f"{results.messages_per_session} question"
    questions += "" if results.messages_per_session == 1 else "s"
    lines = [
        "## Channels: LINE webhooks and website chat",
        "",
        *header_lines,
        "- Servers: the action server and the rasa server started once, with the trained "
        "model, a database of their own, and the LINE API replaced by a stand-in on "
        "loopback that records every call.",
        f"- LINE: {line.deliveries} signed webhook deliveries ({line.replies_expected} "
        f"messages from {results.line_users} user ids, then {line.redeliveries} "
        f"redelivered), {results.concurrency} at a time; each sender waits for the reply "
        "before its next message.",
        f"- Website chat: {web.sessions} socket.io sessions at once (WebSocket), {questions} "
        "each, one after another, each waiting for the whole answer.",
        f"- A reply later than {results.timeout_s:.0f} s counts as missing.",
        f"- {LINE_DOCS}",
        "",
        "### LINE webhook",
        "",
        *table(
            ["figure", "value"],
            [
                ["deliveries acknowledged (HTTP 200)", f"{line.acknowledged} of {line.deliveries}"],
                [
                    "acknowledgement p50 / p95 / max",
                    f"{num(ack.ms(50), ',.1f')} / {num(ack.ms(95), ',.1f')} / "
                    f"{num(ack.max_ms, ',.1f')} ms",
                ],
                [
                    f"acknowledged within LINE's {LINE_ACK_LIMIT_S:.0f} s",
                    f"{line.within_limit} of {line.deliveries}",
                ],
                ["replies received", f"{line.replies_received} of {line.replies_expected}"],
                ["missing replies", str(line.missing)],
                ["duplicate reply calls (same replyToken)", str(line.duplicate_calls)],
                [
                    "redeliveries answered again",
                    f"{line.redeliveries_answered} of {line.redeliveries}",
                ],
                ["push calls", str(line.pushes)],
                ["replies differing from REST's answer to the same turn", str(line.mismatched)],
            ],
            "lr",
        ),
        "",
        "### Website chat",
        "",
        *table(
            ["figure", "value"],
            [
                ["sessions connected (session_confirm)", f"{web.connected} of {web.sessions}"],
                ["messages answered", f"{web.answered} of {web.messages}"],
                [f"messages unanswered within {results.timeout_s:.0f} s", str(web.unanswered)],
                ["extra bot messages (answer twice or to another session)", str(web.extra)],
                ["answers differing from REST's answer to the same turn", str(web.mismatched)],
            ],
            "lr",
        ),
        "",
        "### Reply latency against the REST channel (same run, same servers)",
        "",
    ]
    # Each row: the latencies' key, its label, messages in flight at most, its baseline.
    rows = [
        ("REST sequential", "REST sequential", 1, None),
        ("REST like LINE", "REST", results.concurrency, None),
        ("LINE", "LINE (webhook sent → reply call)", results.concurrency, "REST like LINE"),
        ("REST like website chat", "REST", results.sessions, None),
        (
            "website chat",
            "website chat (question sent → whole answer)",
            results.sessions,
            "REST like website chat",
        ),
    ]
    cells = []
    for key, label, in_flight, against in rows:
        found = latencies[key]
        baseline = latencies[against] if against else None
        cells.append(
            [
                label,
                str(in_flight),
                str(found.ok),
                str(found.errors),
                num(found.ms(50), ",.1f"),
                num(found.ms(95), ",.1f"),
                num(found.max_ms, ",.1f"),
                num(found.per_second, ".1f"),
                times(ratio(found.ms(50), baseline.ms(50))) if baseline else DASH,
                times(ratio(found.ms(95), baseline.ms(95))) if baseline else DASH,
                f"REST at {in_flight}" if against else "",
            ]
        )
    heads = ["traffic", "in flight", "answered", "missing", "p50 ms", "p95 ms", "max ms", "msg/s"]
    lines += table([*heads, "ratio p50", "ratio p95", "against"], cells, "lrrrrrrrrrl")
    verdict = "yes" if results.ok else "**NO** (see the counts above)"
    return "\n".join([*lines, "", f"Nothing dropped or duplicated: {verdict}"])


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

    def measure_and_print() -> int:
        results, text = run(
            args.line_deliveries,
            args.web_sessions,
            args.messages_per_session,
            args.concurrency,
            args.timeout,
        )
        print(text)
        return 0 if results.ok else 1

    return cli.run(measure_and_print)


if __name__ == "__main__":
    raise SystemExit(main())
