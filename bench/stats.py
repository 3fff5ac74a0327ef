"""Measured durations turned into figures: percentiles, ratios, timings."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile of ``values`` (not empty), interpolated as numpy does."""
    if not values:
        raise ValueError("percentile of an empty sample")
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
    """How long the requests of one kind took, which failed, and the phase's wall time."""

    seconds: list[float] = field(default_factory=list)  # one per successful request
    failures: dict[str, int] = field(default_factory=dict)  # by kind: "timeout", "HTTP 500"
    wall_s: float = 0.0  # of the whole phase (for the rate)

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
