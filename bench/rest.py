"""Conversations through the REST channel (``POST /webhooks/rest/webhook``), timed."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

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
    messages = [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []
    return Reply(seconds, messages)


async def pool(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> float:
    """Runs ``job(0)`` … ``job(count - 1)``, ``concurrency`` at a time; returns the wall time."""
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:  # shared: each index is taken by one worker
            await job(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    return time.perf_counter() - started


async def send_conversations(
    http: aiohttp.ClientSession,
    url: str,
    conversations: Sequence[Sequence[str]],
    sender_prefix: str,
    concurrency: int,
    timeout_s: float,
    deadline_s: float = math.inf,
) -> tuple[dict[tuple[int, int], Reply], float]:
    """Sends each conversation's messages in turn, ``concurrency`` conversations at a time.

    Each message is one POST to ``url`` from the sender ``{sender_prefix}-{index}``;
    each request has a timeout and none starts after the deadline. Returns the reply to
    each message sent, by (conversation, turn), and the wall time.
    """
    replies: dict[tuple[int, int], Reply] = {}
    deadline = time.monotonic() + deadline_s

    async def conversation(index: int) -> None:
        for turn, text in enumerate(conversations[index]):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sender = f"{sender_prefix}-{index}"
            replies[index, turn] = await post_message(http, url, sender, text, min(timeout_s, left))

    wall_s = await pool(len(conversations), concurrency, conversation)
    return replies, wall_s
