"""Accepted webhook events, processed a bounded number at a time, in order per member.

A Rasa turn is mostly CPU work done inside the event loop (NLU inference runs
synchronously between its awaits). Were every accepted webhook body a task of its own,
a burst of deliveries would make hundreds of such turns runnable at once, and each
pass of the loop would run a step of every one of them before the server read the
next request: acknowledgements that should take milliseconds took seconds. Here at
most ``limit`` jobs run at once; the others wait in memory, none is dropped.

Jobs share a lane when they concern the same member: a lane runs one job at a time,
in the order they were submitted, so a member's messages reach Rasa in the order LINE
sent them. Lanes take turns: after each job a lane with more work goes to the back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Lanes:
    """Runs jobs at most ``limit`` at once, one at a time and in order per lane."""

    def __init__(self, limit: int) -> None:
        """Create the lanes.

        Args:
            limit: how many jobs may run at once (at least 1).

        Raises:
            ValueError: If ``limit`` is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        # A lane is in _waiting from its first job until its last one has ended; it is
        # in _ready while it has work and no job running.
        self._waiting: dict[Hashable, deque[Job]] = {}
        self._ready: deque[Hashable] = deque()
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[None]] = set()
        # Set whenever a job ends: someone waiting in room() looks again.
        self._freed: asyncio.Event | None = None

    @property
    def running(self) -> int:
        """How many jobs are running now."""
        return len(self._tasks)

    @property
    def pending(self) -> int:
        """How many jobs wait for their turn."""
        return sum(len(jobs) for jobs in self._waiting.values())

    def submit(self, lane: Hashable, job: Job) -> None:
        """Queue ``job`` behind the lane's earlier jobs; it runs when a place is free.

        Must be called from within the running event loop.
        """
        jobs = self._waiting.get(lane)
        if jobs is None:
            self._waiting[lane] = deque([job])
            self._ready.append(lane)
        else:
            jobs.append(job)
        self._start(asyncio.get_running_loop())

    @property
    def full(self) -> bool:
        """Whether a job submitted now would have to wait."""
        return self.running + self.pending >= self.limit

    async def room(self) -> None:
        """Wait until a job submitted now would start at once.

        The inbox's consumer (:mod:`bot.channels.line.inbox`) takes a body only then,
        so that bodies this server cannot work on yet stay where another replica can
        take them.
        """
        while self.full:
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()

    async def drain(self) -> None:
        """Wait until every submitted job, including those still waiting, has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, lane: Hashable, job: Job) -> None:
        try:
            await job()
        except Exception as error:  # one failing job must not stop its lane
            logger.error("LINE job failed: %s", type(error).__name__)
        finally:
            if self._waiting[lane]:
                self._ready.append(lane)
            else:
                del self._waiting[lane]

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._freed is not None:
            self._freed.set()
        # A cancelled job means the loop is shutting down: start nothing more. Otherwise
        # the next job starts once this one has left the count (not from inside it).
        if not task.cancelled() and not task.get_loop().is_closed():
            self._start(task.get_loop())

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        while len(self._tasks) < self.limit and self._ready:
            lane = self._ready.popleft()
            task = loop.create_task(self._run(lane, self._waiting[lane].popleft()))
            self._tasks.add(task)
            task.add_done_callback(self._ended)
