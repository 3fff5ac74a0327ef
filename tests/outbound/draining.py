"""Running the worker's deliverer in a test: on a clock past every backoff."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from bot.outbound.outbox import Carriers, Deliverer, RetryPolicy


def drain(
    sessions: Any,
    carriers: Carriers,
    rounds: int = 10,
    policy: RetryPolicy | None = None,
) -> int:
    """Deliver until nothing is due, each round an hour later than the last.

    Returns:
        How many messages were sent.
    """
    moment = [datetime.now(timezone.utc)]

    def clock() -> datetime:
        return moment[0]

    deliverer = Deliverer(sessions, carriers, policy or RetryPolicy(), clock=clock)
    sent = 0
    for _ in range(rounds):
        moment[0] += timedelta(hours=1)
        sent += deliverer.run_once()
    return sent
