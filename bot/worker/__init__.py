"""The worker: delivers the outbox and runs the retention purge on a schedule.

``python -m bot.worker`` runs one :class:`Worker` until SIGTERM or SIGINT. Each round
(every ``OUTBOX_POLL_SECONDS``) it settles the claims of deliverers that died
(:meth:`bot.outbound.outbox.Deliverer.recover`) and sends the messages that are due: those
the process that wrote them could not send right after its commit, retried with
backoff. Every ``RETENTION_PURGE_MINUTES``, the first time at start, it runs
:func:`bot.retention.purge` with the periods of the settings. Several workers may run:
the claims keep them from sending a message twice. ``make run`` starts one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from bot.db.session import engine_for, session_factory
from bot.outbound.outbox import Carriers, Deliverer, RetryPolicy, configured_carriers
from bot.retention import policy_of, purge
from bot.settings import Settings

logger = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Worker:
    """One worker process's loop over the outbox and the purge."""

    def __init__(
        self,
        settings: Settings,
        carriers: Carriers | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Build the worker from ``settings``.

        Args:
            settings: the databases, the carriers' configuration, the periods.
            carriers: how messages leave (default: the configured ones).
            clock: the current time (aware UTC).
        """
        self.settings = settings
        self.sessions = session_factory(settings.database_url)
        self.deliverer = Deliverer(
            self.sessions,
            carriers or configured_carriers(),
            RetryPolicy(
                max_attempts=settings.outbox_max_attempts,
                lease_s=float(settings.outbox_lease_seconds),
            ),
            clock=clock,
        )
        self.clock = clock
        self._stop = threading.Event()

    def purge(self) -> None:
        """Run the retention purge once; a failure is logged, the next round retries."""
        try:
            result = purge(
                self.sessions,
                engine_for(self.settings.tracker_url),
                self.clock(),
                policy_of(self.settings),
            )
        except Exception:  # the worker goes on delivering; the next purge tries again
            logger.exception("retention purge failed")
            return
        logger.info(
            "retention purge: %d events, %d outbound numbers masked",
            result.events,
            result.outbound_masked,
        )

    def deliver(self) -> int:
        """One round over the outbox; a failure is logged, the next round retries."""
        try:
            return self.deliverer.run_once()
        except Exception:  # e.g. the database restarting: try again next round
            logger.exception("outbox round failed")
            return 0

    def run(self) -> None:
        """Deliver and purge until :meth:`stop` is called."""
        purge_every = self.settings.retention_purge_minutes * 60
        next_purge = time.monotonic()
        logger.info("worker %s started", self.deliverer.owner)
        while not self._stop.is_set():
            if time.monotonic() >= next_purge:
                self.purge()
                next_purge = time.monotonic() + purge_every
            sent = self.deliver()
            if sent == 0:
                self._stop.wait(self.settings.outbox_poll_seconds)
        logger.info("worker %s stopped", self.deliverer.owner)

    def stop(self) -> None:
        """End :meth:`run` after the current round."""
        self._stop.set()
