"""The REST load driver: bounded conversations against one Rasa server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from bench.results import LatencySummary
from bench.stats import summarize_latencies

logger = logging.getLogger(__name__)

REST_WEBHOOK = "/webhooks/rest/webhook"


@dataclass(frozen=True)
class _Sample:
    latency_s: float
    error: str | None
    empty_reply: bool


async def _send(
    session: aiohttp.ClientSession, url: str, sender: str, text: str, timeout_s: float
) -> _Sample:
    start = time.perf_counter()
    try:
        async with session.post(
            url,
            json={"sender": sender, "message": text},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            body = await response.json(content_type=None)
            elapsed = time.perf_counter() - start
            if response.status != 200:
                return _Sample(elapsed, f"HTTP {response.status}", False)
            return _Sample(elapsed, None, not body)
    except asyncio.TimeoutError:
        return _Sample(time.perf_counter() - start, "timeout", False)
    except (aiohttp.ClientError, ValueError) as exc:
        return _Sample(time.perf_counter() - start, type(exc).__name__, False)


async def _conversation(
    session: aiohttp.ClientSession,
    url: str,
    sender: str,
    messages: Sequence[str],
    timeout_s: float,
    deadline: float,
) -> list[_Sample]:
    samples: list[_Sample] = []
    for text in messages:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        samples.append(await _send(session, url, sender, text, min(timeout_s, remaining)))
    return samples


async def _drive(
    url: str,
    conversations: Sequence[Sequence[str]],
    sender_prefix: str,
    timeout_s: float,
    deadline_s: float,
    headers: Mapping[str, str] | None,
) -> tuple[list[_Sample], float]:
    connector = aiohttp.TCPConnector(limit=max(1, len(conversations)))
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        deadline = time.monotonic() + deadline_s
        start = time.perf_counter()
        results = await asyncio.gather(
            *(
                _conversation(
                    session, url, f"{sender_prefix}-{index}", messages, timeout_s, deadline
                )
                for index, messages in enumerate(conversations)
            )
        )
        wall_s = time.perf_counter() - start
    return [sample for samples in results for sample in samples], wall_s


def run_conversations(
    server_url: str,
    conversations: Sequence[Sequence[str]],
    *,
    sender_prefix: str,
    timeout_s: float,
    deadline_s: float,
    headers: Mapping[str, str] | None = None,
) -> LatencySummary:
    """Runs conversations concurrently, each sending its messages one after another.

    One conversation is the sequential case. The number of requests is fixed by
    ``conversations``; each request has a timeout and no request starts after the
    deadline, so the phase always ends. Every message is one POST, with ``headers``
    (the product's REST channel wants its token there; Rasa's stock one wants none).

    Args:
        server_url: The Rasa server's base URL (loopback).
        conversations: The messages of each conversation (one sender id each).
        sender_prefix: Sender ids are ``{sender_prefix}-{index}``.
        timeout_s: Timeout of one request.
        deadline_s: Deadline of the whole phase.
        headers: Sent with every request (e.g. ``Authorization``).

    Returns:
        The phase's latency and throughput figures.
    """
    planned = sum(len(messages) for messages in conversations)
    logger.info(
        "sending %d messages in %d conversation(s) to %s", planned, len(conversations), server_url
    )
    samples, wall_s = asyncio.run(
        _drive(
            server_url + REST_WEBHOOK, conversations, sender_prefix, timeout_s, deadline_s, headers
        )
    )
    summary = summarize_latencies(
        [sample.latency_s for sample in samples if sample.error is None],
        planned=planned,
        sent=len(samples),
        empty_replies=sum(sample.empty_reply for sample in samples if sample.error is None),
        wall_s=wall_s,
        error_kinds=Counter(sample.error for sample in samples if sample.error is not None),
    )
    logger.info(
        "%d/%d ok, p50 %s ms, p95 %s ms, %.2f msg/s",
        summary.ok,
        planned,
        f"{summary.p50_ms:.0f}" if summary.p50_ms is not None else "-",
        f"{summary.p95_ms:.0f}" if summary.p95_ms is not None else "-",
        summary.throughput,
    )
    return summary
