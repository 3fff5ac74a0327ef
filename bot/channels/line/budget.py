"""One rate budget per LINE channel for the Messaging API calls, shared by the replicas.

LINE limits the reply and push calls per channel (2,000 requests a second each, per
its API reference) and answers 429 beyond; it advises a token-bucket limiter on the
sending side with headroom, shared by every sender of the channel. The budget here is
a GCRA token bucket (the generic cell rate algorithm: one stored time per bucket) of
:data:`CALLS_PER_SECOND` with a burst of :data:`BURST`, one for reply and push together,
so that a burst of thousands of members writing after a notice stays under LINE's limit
instead of being retried with backoff.

- :class:`LocalRateBudget` keeps the bucket in the process (``make run``);
- :class:`SharedRateBudget` keeps it in Redis (``REDIS_URL``), one per channel access
  token (hashed), so that every replica spends from the same budget. Its script reads
  Redis' own clock: at 1,500 calls a second a slot is 0.7 ms, less than the replicas'
  clocks may differ. While Redis fails it spends from its per-process twin.

A call *reserves* its slot and then waits until the slot comes, so that concurrent
callers queue in order rather than all retrying at the next tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from bot.channels.shared_state import KEY_PREFIX, REDIS_ERRORS, Outage

# 75 % of LINE's 2,000 a second, with a burst of 100: at most 1,600 calls in any second,
# headroom for the arrival jitter LINE warns about and for pushes sent from elsewhere.
CALLS_PER_SECOND = 1500
BURST = 100

Sleep = Callable[[float], Awaitable[None]]

# KEYS: the bucket. ARGV: slot in µs, tolerance in µs. Returns the wait in µs. The key
# lives until its time is past (then a full bucket is what a missing key means).
_RESERVE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local wait = tat - tonumber(ARGV[2]) - now
if wait < 0 then
  wait = 0
end
if tat < now then
  tat = now
end
tat = tat + tonumber(ARGV[1])
local ttl = math.floor((tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', ttl))
return wait
"""


def channel_key(access_token: str) -> str:
    """What names a channel's budget: a hash of its access token, never the token."""
    return hashlib.sha256(access_token.encode("utf-8")).hexdigest()[:16]


class RateBudget(Protocol):
    """What the API client spends from before each call."""

    async def take(self) -> None:
        """Wait until the next call may go."""
        ...


class LocalRateBudget:
    """A GCRA token bucket in the process."""

    def __init__(
        self,
        per_second: float = CALLS_PER_SECOND,
        burst: int = BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Create a full bucket.

        Args:
            per_second: calls a second in the long run.
            burst: calls that may go at once after a quiet spell.
            clock: seconds from a monotonic clock.
            sleep: how to wait.
        """
        self.interval = 1.0 / per_second
        self.tolerance = burst * self.interval
        self._clock = clock
        self._sleep = sleep
        self._tat = 0.0  # the theoretical arrival time of the next call

    def reserve(self) -> float:
        """Reserve the next slot; the seconds to wait until it comes."""
        now = self._clock()
        wait = max(0.0, self._tat - self.tolerance - now)
        self._tat = max(self._tat, now) + self.interval
        return wait

    async def take(self) -> None:
        """Wait until the next call may go."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)


class SharedRateBudget:
    """A GCRA token bucket in Redis, one per channel, for every replica."""

    def __init__(
        self,
        client: Any,
        channel: str,
        per_second: float = CALLS_PER_SECOND,
        burst: int = BURST,
        *,
        prefix: str = KEY_PREFIX,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Create the budget (the bucket starts full).

        Args:
            client: a ``redis.asyncio.Redis``.
            channel: what names the channel (:func:`channel_key` of its token).
            per_second: calls a second in the long run.
            burst: calls that may go at once after a quiet spell.
            prefix: the start of the key (tests give their own).
            sleep: how to wait.
        """
        self.interval_us = max(1, round(1_000_000 / per_second))
        self.tolerance_us = burst * self.interval_us
        self._key = f"{prefix}line:budget:{channel}"
        self._reserve = client.register_script(_RESERVE)
        self._sleep = sleep
        self.fallback = LocalRateBudget(per_second, burst, sleep=sleep)
        self._outage = Outage("LINE API budget")

    async def reserve(self) -> float:
        """Reserve the next slot of the channel; the seconds to wait until it comes."""
        try:
            wait_us = await self._reserve(
                keys=[self._key], args=[self.interval_us, self.tolerance_us]
            )
        except REDIS_ERRORS as error:
            self._outage.failed(error)
            return self.fallback.reserve()
        self._outage.answered()
        return int(wait_us) / 1_000_000

    async def take(self) -> None:
        """Wait until the next call may go."""
        wait = await self.reserve()
        if wait > 0:
            await self._sleep(wait)
