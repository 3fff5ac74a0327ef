"""Running an action's blocking work off the action server's event loop, with a deadline.

rasa-sdk serves every conversation's actions on one asyncio loop. The domain code in
``bot/`` is plain blocking Python (SQLAlchemy, the SMS sender), so an action that
called it directly would hold every other member's action while it waited on the
database or a carrier. :func:`in_thread` runs such work in a bounded pool of worker
threads (``ACTION_THREADS``, 8 by default) and gives it ``ACTION_TIMEOUT_SECONDS``
(10 by default, well under the 5 minutes the rasa server waits for an action).

Eight threads: each unit of work mostly waits on the database, so two cores keep
eight busy; eight stay under SQLAlchemy's default pool (5 connections plus 10
overflow), so a thread never queues for a connection, and two replicas hold at most
16 of PostgreSQL's 100 connections.

A thread cannot be stopped, so a timed-out unit of work is made to end without effect:

- on PostgreSQL each unit of work's statements get the time left as their
  ``statement_timeout`` (lock waits included), so a query held by a lock fails in the
  thread soon after the member was answered;
- :func:`actions.common.db_session` asks :meth:`Work.may_commit` before committing.
  Once the loop has given up, the commit is refused and the transaction rolls back;
  once a commit has begun, the loop waits for it and uses its result. Either way the
  member's reply matches what the database holds.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

from bot.settings import load_settings

logger = logging.getLogger(__name__)
T = TypeVar("T")


class WorkTimedOutError(Exception):
    """The action's work outlived its deadline: the member was already answered."""


class Work:
    """One action's blocking work: its deadline, and who decides its outcome.

    The loop and the worker thread settle, under a lock held only for the check,
    whether the loop gave up first (the thread must not commit) or the thread began
    committing first (the loop must wait for it).
    """

    def __init__(self, timeout_s: float) -> None:
        """Start the clock: ``timeout_s`` seconds from now."""
        self.deadline = time.monotonic() + timeout_s
        self._lock = threading.Lock()
        self._abandoned = False
        self._committing = False

    def seconds_left(self) -> float:
        """Seconds until the deadline (0 once it passed)."""
        return max(0.0, self.deadline - time.monotonic())

    def may_commit(self) -> None:
        """Called by the worker thread right before a commit.

        Raises:
            WorkTimedOutError: the loop gave up, or the deadline passed: roll back.
        """
        with self._lock:
            if self._abandoned or time.monotonic() >= self.deadline:
                self._abandoned = True
                raise WorkTimedOutError()
            self._committing = True

    def abandon(self) -> bool:
        """Called by the loop at the deadline: True if the work now ends without effect.

        False when a commit already began: its outcome is the action's.
        """
        with self._lock:
            if self._committing:
                return False
            self._abandoned = True
            return True


_current: contextvars.ContextVar[Work | None] = contextvars.ContextVar("offloop_work", default=None)
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def current_work() -> Work | None:
    """The work this thread runs for an action, None outside :func:`in_thread`."""
    return _current.get()


def limit_statements(session: Session) -> None:
    """Give the unit of work's PostgreSQL statements the time left to the deadline.

    ``SET LOCAL`` semantics (``set_config(..., true)``): it ends with the transaction,
    so a pooled connection keeps no limit for another caller. Outside an action's
    work, and on SQLite (whose waits are bounded by its busy timeout), nothing changes.
    """
    work = current_work()
    if work is None or session.get_bind().dialect.name != "postgresql":
        return
    milliseconds = max(1, int(work.seconds_left() * 1000))
    session.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(milliseconds)}
    )


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=load_settings().action_threads, thread_name_prefix="action-work"
            )
        return _executor


def shutdown() -> None:
    """Wait for the work still running and close the pool (the next call opens one)."""
    global _executor
    with _executor_lock:
        pool, _executor = _executor, None
    if pool is not None:
        pool.shutdown(wait=True)


async def in_thread(work: Callable[..., T], *args: Any) -> T:
    """Run ``work(*args)`` in the action pool; its result, or why it has none.

    Args:
        work: blocking code; it must not touch the dispatcher or anything of the loop.
        args: its arguments.

    Returns:
        What ``work`` returned.

    Raises:
        WorkTimedOutError: it did not finish within ``ACTION_TIMEOUT_SECONDS``; nothing it
            did in a unit of work of ``actions.common.db_session`` was committed.
        Exception: whatever ``work`` raised.
    """
    limit = Work(load_settings().action_timeout_seconds)
    context = contextvars.copy_context()
    context.run(_current.set, limit)
    future = asyncio.get_running_loop().run_in_executor(_pool(), context.run, work, *args)
    done, _ = await asyncio.wait({future}, timeout=limit.seconds_left())
    if not done and limit.abandon():
        future.cancel()  # still queued: it never starts
        # Its exception, if any, would be logged as never retrieved; it is expected.
        future.add_done_callback(_forget)
        raise WorkTimedOutError()
    return await future


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
