"""Turning measured durations into figures: percentiles, ratios, timings, seeded samples."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of ``values``, interpolated linearly (numpy's default).

    The value at rank ``pct / 100 * (n - 1)`` of the sorted values, between neighbours.

    Raises:
        ValueError: If ``values`` is empty or ``pct`` is outside [0, 100].
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {pct}")
    ordered = sorted(values)
    rank = pct / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


@dataclass
class Timings:
    """How long the requests of one kind took, which failed, and the phase's wall time.

    Attributes:
        seconds: One duration per successful request.
        failures: Failed requests, counted by kind ("timeout", "HTTP 500", ...).
        wall_s: Wall time of the whole phase (for the rate).
    """

    seconds: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> int:
        """Successful requests."""
        return len(self.seconds)

    @property
    def errors(self) -> int:
        """Failed requests."""
        return sum(self.failures.values())

    def fail(self, kind: str) -> None:
        """Counts one failed request of ``kind``."""
        self.failures[kind] = self.failures.get(kind, 0) + 1

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Adds the duration of the block (nothing when it raises)."""
        started = time.perf_counter()
        yield
        self.seconds.append(time.perf_counter() - started)

    def ms(self, pct: float) -> float | None:
        """The ``pct``-th percentile in milliseconds; None without a success."""
        return percentile(self.seconds, pct) * 1000 if self.seconds else None

    @property
    def mean_ms(self) -> float | None:
        """The mean in milliseconds; None without a success."""
        return sum(self.seconds) / len(self.seconds) * 1000 if self.seconds else None

    @property
    def max_ms(self) -> float | None:
        """The slowest in milliseconds; None without a success."""
        return max(self.seconds) * 1000 if self.seconds else None

    @property
    def per_second(self) -> float | None:
        """Successful requests per second of the phase's wall time."""
        return self.ok / self.wall_s if self.wall_s > 0 else None


def seeded_sample(pool: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` items drawn from ``pool``, the same for the same pool, count and seed.

    The pool is shuffled with ``seed``; when more items are needed than it holds, it
    is reshuffled and drawn again, so every item is used before any repeats.

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
