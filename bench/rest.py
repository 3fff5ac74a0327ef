"""Messages through the REST channel (``POST /webhooks/rest/webhook``), each one timed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.stats import Timings

logger = logging.getLogger(__name__)

REST_WEBHOOK = "/webhooks/rest/webhook"


@dataclass(frozen=True)
class Reply:
    """The answer to one message: how long it took, the bot's messages, what failed."""

    seconds: float
    messages: list[dict[str, Any]]
    error: str | None = None


async def post_message(
    http: aiohttp.ClientSession, url: str, sender: str, text: str, timeout_s: float
) -> Reply:
    """Sends one message as one POST to the webhook ``url`` and reads the whole answer."""
    started = time.perf_counter()
    try:
        async with http.post(
            url,
            json={"sender": sender, "message": text},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            if response.status != 200:
                return Reply(time.perf_counter() - started, [], f"HTTP {response.status}")
            body = await response.json(content_type=None)
    except asyncio.TimeoutError:
        return Reply(time.perf_counter() - started, [], "timeout")
    except (aiohttp.ClientError, ValueError) as exc:
        return Reply(time.perf_counter() - started, [], type(exc).__name__)
    seconds = time.perf_counter() - started
    messages = [m for m in body if isinstance(m, dict)] if isinstance(body, list) else []
    return Reply(seconds, messages)


async def pool(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Runs ``job(0)`` … ``job(count - 1)`` in order, at most ``concurrency`` at a time.

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


@dataclass
class RestPhase(Timings):
    """The timings of a phase of REST traffic, with the messages it meant to send.

    Attributes:
        planned: Messages the phase meant to send (fewer are sent past its deadline).
        empty_replies: Answers that held no bot message.
    """

    planned: int = 0
    empty_replies: int = 0


def run_conversations(
    url: str,
    conversations: Sequence[Sequence[str]],
    *,
    headers: Mapping[str, str],
    sender_prefix: str,
    timeout_s: float,
    deadline_s: float,
) -> RestPhase:
    """Runs every conversation at once, each sending its messages one after another.

    One conversation is the sequential case. Each message is one POST with ``headers``
    (the product's REST channel wants its token there, Rasa's stock one nothing); each
    request has a timeout and none starts after the deadline, so the phase always ends.

    Args:
        url: The REST webhook.
        conversations: The messages of each conversation; sender ids are
            ``{sender_prefix}-{index}``.
        headers: Sent with every request.
        sender_prefix: Starts every sender id.
        timeout_s: Timeout of one request.
        deadline_s: Deadline of the whole phase.
    """
    phase = RestPhase(planned=sum(len(messages) for messages in conversations))
    logger.info("sending %d messages in %d conversation(s)", phase.planned, len(conversations))

    async def drive() -> None:
        connector = aiohttp.TCPConnector(limit=max(1, len(conversations)))
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            deadline = time.monotonic() + deadline_s

            async def conversation(index: int) -> None:
                for text in conversations[index]:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    sender = f"{sender_prefix}-{index}"
                    reply = await post_message(http, url, sender, text, min(timeout_s, left))
                    if reply.error is not None:
                        phase.fail(reply.error)
                    else:
                        phase.seconds.append(reply.seconds)
                        phase.empty_replies += not reply.messages

            phase.wall_s = await pool(len(conversations), len(conversations), conversation)

    asyncio.run(drive())
    logger.info(
        "%d/%d answered, p95 %s ms, %s msg/s",
        phase.ok,
        phase.planned,
        f"{phase.ms(95):.0f}" if phase.ok else "-",
        f"{phase.per_second:.2f}" if phase.per_second else "-",
    )
    return phase
