"""Webhook event ids seen lately: a redelivered event is answered once.

LINE redelivers an event it thinks was not received (``deliveryContext.isRedelivery``);
the channel skips one whose ``webhookEventId`` it has already seen. With several rasa
servers the redelivery may reach another replica than the first delivery, so with
``REDIS_URL`` the ids are kept in Redis (:class:`SharedSeenEvents`: ``SET key 1 NX EX``,
one atomic command: of two replicas adding the same id, exactly one finds it new);
without it, in the process (:class:`SeenEvents`). Both keep an id for a day.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from bot.channels.shared_state import KEY_PREFIX, REDIS_ERRORS, Outage, key_part

# LINE redelivers for a limited time after the first attempt; a day covers it.
SEEN_TTL_S = 24 * 3600


class Seen(Protocol):
    """Where the channel records event ids."""

    async def add(self, event_id: str) -> bool:
        """Remember ``event_id``; True if it was new."""
        ...


class SeenEvents:
    """Webhook event ids seen lately by this process, bounded in number and age."""

    def __init__(self, limit: int = 20_000, ttl_s: float = SEEN_TTL_S) -> None:
        """Create an empty record.

        Args:
            limit: the most ids kept (the oldest go first).
            ttl_s: how long an id is kept, in seconds.
        """
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._ttl_s = ttl_s

    def add_now(self, event_id: str) -> bool:
        """Remember ``event_id``; True if it was new."""
        now = time.monotonic()
        while self._ids and (
            len(self._ids) >= self._limit or next(iter(self._ids.values())) < now - self._ttl_s
        ):
            self._ids.popitem(last=False)
        if event_id in self._ids:
            return False
        self._ids[event_id] = now
        return True

    async def add(self, event_id: str) -> bool:
        """:meth:`add_now`, as the :class:`Seen` protocol has it."""
        return self.add_now(event_id)


class SharedSeenEvents:
    """Webhook event ids seen lately by any replica, in Redis.

    While Redis fails, ids are recorded in the process (:attr:`fallback`): an event is
    then answered rather than dropped, at worst twice if its redelivery reaches another
    replica during the outage.
    """

    def __init__(self, client: Any, *, prefix: str = KEY_PREFIX, ttl_s: int = SEEN_TTL_S) -> None:
        """Create the record.

        Args:
            client: a ``redis.asyncio.Redis``.
            prefix: the start of every key (tests give their own).
            ttl_s: how long an id is kept, in seconds.
        """
        self._client = client
        self._prefix = f"{prefix}line:event:"
        self._ttl_s = ttl_s
        self.fallback = SeenEvents(ttl_s=ttl_s)
        self._outage = Outage("LINE webhook event ids")

    async def add(self, event_id: str) -> bool:
        """Remember ``event_id`` for every replica; True if no replica had seen it."""
        try:
            # The id's hash: LINE's ids are short, but a key's length should not be the
            # sender's to choose.
            new = await self._client.set(
                self._prefix + key_part(event_id), "1", nx=True, ex=self._ttl_s
            )
        except REDIS_ERRORS as error:
            self._outage.failed(error)
            return self.fallback.add_now(event_id)
        self._outage.answered()
        return bool(new)
