"""LINE's accepted webhook bodies, waiting in Redis until a rasa server has room.

With several replicas, LINE's deliveries are acknowledged by the intake
(:mod:`bot.channels.line.intake`), a small process that checks the signature and
appends the body, with that signature, to one Redis list; it never waits for a turn,
so a burst is acknowledged in milliseconds however busy the rasa servers are. Every
rasa server's LINE channel takes bodies from the list whenever it has room for one
(:meth:`bot.channels.line.lanes.Lanes.room`), checks the signature again and processes
the events as if LINE had sent them to it. So the work goes to the replica that is
free, and what is not taken yet waits in Redis, where a rasa server that dies cannot
lose it.

A body is taken with ``BLPOP``: at most once. A rasa server killed while it works on
a body loses that body's answer (at most ``LINE_MAX_CONCURRENT_EVENTS`` bodies, the
ones in progress), as it would had LINE delivered the body to it directly; taking
bodies back from a dead server's list would answer twice a turn that had already
reached Rasa.
"""

from __future__ import annotations

import asyncio

from redis import asyncio as redis_asyncio

from bot.channels.shared_state import COMMAND_TIMEOUT_S, CONNECT_TIMEOUT_S, KEY_PREFIX

# How long one BLPOP waits for a body before the consumer looks again (for a stop).
TAKE_WAIT_S = 1.0


def inbox_key(prefix: str = KEY_PREFIX) -> str:
    """The Redis key of the list, under ``prefix``."""
    return f"{prefix}line:inbox"


def encode(body: bytes, signature: str) -> bytes:
    """One list item: the signature (base64, no newline), a newline, the raw body."""
    return signature.encode("ascii") + b"\n" + body


def decode(item: bytes) -> tuple[bytes, str]:
    """The body and signature of a list item (see :func:`encode`)."""
    signature, _, body = item.partition(b"\n")
    return body, signature.decode("ascii", errors="replace")


def connect_blocking(url: str) -> redis_asyncio.Redis:
    """An asyncio client whose reads outlast a ``BLPOP`` of :data:`TAKE_WAIT_S`.

    The shared clients (:func:`bot.channels.shared_state.connect`) give up on a read
    after a second, which a blocking pop of a second would always reach.
    """
    return redis_asyncio.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=TAKE_WAIT_S + CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )


class LineInbox:
    """The Redis list of accepted webhook bodies, shared by the intake and the replicas."""

    def __init__(self, client: redis_asyncio.Redis, *, prefix: str = KEY_PREFIX) -> None:
        """Use ``client``'s Redis.

        Args:
            client: an asyncio Redis client (:func:`connect_blocking` for taking).
            prefix: the start of the key (tests give their own).
        """
        self._client = client
        self.key = inbox_key(prefix)
        # Bodies waiting for the next RPUSH, each with the future its caller awaits.
        self._batch: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def put(self, body: bytes, signature: str) -> None:
        """Append an accepted body; return once Redis has it.

        The bodies of concurrent callers go to Redis together, in one ``RPUSH`` of
        many values (a group commit): under a burst each delivery would otherwise cost
        a command of its own, and the client a connection of its own, which made the
        acknowledgements queue behind each other.

        One timeout covers the batch's command (a timer per batch, not per delivery:
        under a burst the per-delivery timers cost as much CPU as the command).

        Raises:
            redis.RedisError, OSError, asyncio.TimeoutError: If Redis did not take the
                body within ``COMMAND_TIMEOUT_S`` and a connection's set-up (then
                neither did it take the others of its batch).
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batch.append((encode(body, signature), done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                try:
                    await asyncio.wait_for(
                        self._client.rpush(self.key, *(item for item, _ in batch)),
                        COMMAND_TIMEOUT_S + CONNECT_TIMEOUT_S,
                    )
                except BaseException as error:  # every caller of the batch gets it
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._writer = None

    async def take(self, wait_s: float = TAKE_WAIT_S) -> tuple[bytes, str] | None:
        """The oldest body and its signature, waiting up to ``wait_s``; None if none came."""
        found = await self._client.blpop([self.key], timeout=wait_s)
        if found is None:
            return None
        _, item = found
        return decode(item)

    async def waiting(self) -> int:
        """How many bodies wait to be taken."""
        return int(await self._client.llen(self.key))

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()
