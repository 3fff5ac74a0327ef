"""The targets, computed as ratios against the baseline measured in the same run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.results import NluScores, SystemRun
from bench.stats import ratio

ACCURACY_GOAL = 0.95
THROUGHPUT_RATIO_GOAL = 0.8
P95_RATIO_GOAL = 1.5


@dataclass(frozen=True)
class Target:
    """One target: its measured value, the goal and whether it is met.

    Attributes:
        name: What is measured.
        value: The measured value (None when it could not be measured).
        goal: The goal as text, e.g. "≥ 0.95".
        met: Whether the goal is met (None when there is no value).
        detail: The figures the value was computed from.
    """

    name: str
    value: float | None
    goal: str
    met: bool | None
    detail: str


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def accuracy_target(product: NluScores | None, default: NluScores | None) -> Target:
    """Product intent accuracy ≥ 0.95, with its difference to the default pipeline."""
    value = product.accuracy if product else None
    baseline = default.accuracy if default else None
    difference = None if value is None or baseline is None else value - baseline
    return Target(
        name="intent accuracy on the holdout (product pipeline)",
        value=value,
        goal=f"≥ {ACCURACY_GOAL:.2f}",
        met=None if value is None else value >= ACCURACY_GOAL,
        detail=f"default pipeline {_fmt(baseline, '.3f')}; difference {_fmt(difference, '+.3f')}",
    )


def throughput_target(
    product: SystemRun | None, baseline: SystemRun | None, conversations: int
) -> Target:
    """Throughput at ``conversations`` concurrent conversations, product / rasa init ≥ 0.8."""
    mine = product.concurrent.throughput if product and product.concurrent else None
    theirs = baseline.concurrent.throughput if baseline and baseline.concurrent else None
    value = ratio(mine, theirs)
    return Target(
        name=f"throughput at {conversations} concurrent conversations, product / rasa init",
        value=value,
        goal=f"≥ {THROUGHPUT_RATIO_GOAL:.1f}",
        met=None if value is None else value >= THROUGHPUT_RATIO_GOAL,
        detail=f"{_fmt(mine, '.2f')} / {_fmt(theirs, '.2f')} msg/s",
    )


def p95_target(product: SystemRun | None, baseline: SystemRun | None) -> Target:
    """p95 latency of one sequential conversation, product / rasa init ≤ 1.5."""
    mine = product.sequential.p95_ms if product and product.sequential else None
    theirs = baseline.sequential.p95_ms if baseline and baseline.sequential else None
    value = ratio(mine, theirs)
    return Target(
        name="p95 latency of 1 conversation, product / rasa init",
        value=value,
        goal=f"≤ {P95_RATIO_GOAL:.1f}",
        met=None if value is None else value <= P95_RATIO_GOAL,
        detail=f"{_fmt(mine, '.1f')} / {_fmt(theirs, '.1f')} ms",
    )


def evaluate(
    product_nlu: NluScores | None,
    default_nlu: NluScores | None,
    product: SystemRun | None,
    baseline: SystemRun | None,
    conversations: int,
) -> list[Target]:
    """All targets of the report, in order."""
    return [
        accuracy_target(product_nlu, default_nlu),
        throughput_target(product, baseline, conversations),
        p95_target(product, baseline),
    ]
