"""Pure helpers that turn raw measurements into figures."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from bench.results import ConfusionPair, LatencySummary


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of ``values`` with linear interpolation.

    This is numpy's default ("linear") method: the value at rank
    ``pct / 100 * (n - 1)`` of the sorted values, interpolated between neighbours.

    Args:
        values: The sample; must not be empty.
        pct: The percentile, between 0 and 100.

    Returns:
        The interpolated percentile.

    Raises:
        ValueError: If ``values`` is empty or ``pct`` is outside [0, 100].
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {pct}")
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    fraction = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def summarize_latencies(
    latencies_s: Sequence[float],
    *,
    planned: int,
    sent: int,
    empty_replies: int,
    wall_s: float,
    error_kinds: Mapping[str, int],
) -> LatencySummary:
    """Summarizes one measuring phase.

    Args:
        latencies_s: Latencies of the successful requests, in seconds.
        planned: Requests the phase meant to send.
        sent: Requests actually sent (fewer if the deadline passed).
        empty_replies: Successful requests whose reply held no bot message.
        wall_s: Wall time of the whole phase, in seconds.
        error_kinds: Failed requests, counted by kind of failure.

    Returns:
        Percentiles in milliseconds and throughput in successful messages per second.
    """
    ms = [latency * 1000 for latency in latencies_s]
    ok = len(ms)
    return LatencySummary(
        planned=planned,
        sent=sent,
        ok=ok,
        errors=sum(error_kinds.values()),
        empty_replies=empty_replies,
        p50_ms=percentile(ms, 50) if ms else None,
        p95_ms=percentile(ms, 95) if ms else None,
        mean_ms=sum(ms) / ok if ms else None,
        max_ms=max(ms) if ms else None,
        wall_s=wall_s,
        throughput=ok / wall_s if wall_s > 0 else 0.0,
        error_kinds=dict(error_kinds),
    )


def confusion_pairs(pairs: Iterable[tuple[str, str]], top: int) -> list[ConfusionPair]:
    """Counts (true, predicted) pairs of misclassified messages, most frequent first.

    Pairs whose true and predicted labels are equal are ignored. Ties are broken by
    the labels' names, so the order is stable.

    Args:
        pairs: One (true label, predicted label) pair per misclassified message.
        top: How many pairs to return at most.

    Returns:
        The ``top`` most frequent confusions.
    """
    counts = Counter((true, predicted) for true, predicted in pairs if true != predicted)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [ConfusionPair(true, predicted, count) for (true, predicted), count in ranked[:top]]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def seeded_sample(pool: Sequence[str], count: int, seed: int) -> list[str]:
    """A fixed pseudo-random sample of ``count`` items drawn from ``pool``.

    The pool is shuffled with ``seed``; when more items are needed than it holds,
    it is reshuffled and drawn again, so every item is used before any repeats.

    Args:
        pool: The items to draw from; must not be empty if ``count`` > 0.
        count: How many items to return.
        seed: The seed; the same pool, count and seed give the same sample.

    Returns:
        The sample, in drawing order.

    Raises:
        ValueError: If the pool is empty but items are requested.
    """
    if count > 0 and not pool:
        raise ValueError("cannot sample from an empty pool")
    rng = random.Random(seed)
    sample: list[str] = []
    while len(sample) < count:
        batch = list(pool)
        rng.shuffle(batch)
        sample.extend(batch[: count - len(sample)])
    return sample


def chunk(items: Sequence[str], size: int) -> list[list[str]]:
    """Splits ``items`` into consecutive lists of ``size`` (the last may be shorter)."""
    if size <= 0:
        raise ValueError(f"chunk size must be positive, got {size}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
