"""How soon a verification code reaches the demo SMS sender, through the outbox.

``python -m bench.outbox [--runs 30] [--postgres URL]``: on a fresh SQLite file (and on
PostgreSQL when given), issues verification codes with the real service
(:func:`bot.identity.verification.submit_factors`, demo member 山田 太郎) and measures
the time from the code being issued (the end of the step, before its commit) to the
SMS being handed to the demo sender (``OutboxSender``, the ``var/outbox.jsonl`` file):

- after commit: the process that wrote the row sends it right after its commit;
- worker alone: the writer sends nothing (as if it died after its commit) and a
  :class:`bot.worker.Worker` with the default ``OUTBOX_POLL_SECONDS`` (1) sends it.

Prints the median, p95 and max of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from bot.core.conversation import Conversation
from bot.db.demo import load_demo
from bot.db.migrate import upgrade
from bot.db.session import dispose, session_factory
from bot.identity import verification
from bot.outbound.sender import AFTER_COMMIT_KEY
from bot.outbound.sms import OutboxSender
from bot.settings import load_settings

TARO = ("1001", "23", date(1985, 4, 1))
LIMITS = verification.SmsLimits(per_member_day=1_000_000, per_minute=1_000_000)


class TimedSender(OutboxSender):
    """The demo sender, noting when each SMS was handed to it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.handed: list[float] = []
        self.event = threading.Event()

    def send(self, to: str, text: str) -> None:
        """Write the line as the demo sender does, then note the time."""
        super().send(to, text)
        self.handed.append(time.perf_counter())
        self.event.set()


def _issue(sessions: sessionmaker, sender: TimedSender, worker_only: bool) -> float:
    """Issue one code; returns the time it was issued (perf_counter)."""
    conversation = Conversation(f"bench-{uuid.uuid4().hex[:8]}", "s", "rest")
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        outcome = verification.submit_factors(session, conversation, *TARO, sender, now, LIMITS)
        assert outcome.status is verification.Status.CODE_SENT, outcome
        issued = time.perf_counter()
        if worker_only:
            session.info.pop(AFTER_COMMIT_KEY)
    return issued


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered):7.1f} ms, p95 {p95:7.1f} ms, max {ordered[-1]:7.1f} ms"
    )


def measure(url: str, runs: int, var_dir: Path) -> dict[str, list[float]]:
    """Both paths on the database at ``url`` (migrated, demo members loaded)."""
    from bot.outbound.outbox import Carriers
    from bot.worker import Worker

    upgrade(url)
    sessions = session_factory(url)
    with sessions.begin() as session:
        load_demo(session)
    sender = TimedSender(var_dir / "outbox.jsonl")
    after_commit = []
    for _ in range(runs):
        issued = _issue(sessions, sender, worker_only=False)
        after_commit.append((sender.handed[-1] - issued) * 1000)

    settings = load_settings({**os.environ, "DATABASE_URL": url})
    worker = Worker(settings, Carriers(sms=sender))
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    worker_alone = []
    spread = random.Random(23)
    try:
        for _ in range(runs):
            sender.event.clear()
            issued = _issue(sessions, sender, worker_only=True)
            if not sender.event.wait(10):
                raise RuntimeError("the worker did not send within 10 s")
            worker_alone.append((sender.handed[-1] - issued) * 1000)
            # Spread the codes over the worker's poll, as members' messages are.
            time.sleep(spread.uniform(0.0, 1.0))
    finally:
        worker.stop()
        runner.join(10)
    with sessions.begin() as session:
        kept = session.execute(sa.text("SELECT count(*) FROM outbound_messages")).scalar_one()
    assert kept == 2 * runs
    dispose(url)
    return {"after commit": after_commit, "worker alone": worker_alone}


def main() -> None:
    """Run the measurement and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres", help="a PostgreSQL URL whose database may be written")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        var_dir = Path(temp)
        os.environ.setdefault("PRIVACY_BOT_SECRET", "bench-secret")
        os.environ["PRIVACY_BOT_VAR_DIR"] = str(var_dir)
        targets = {"SQLite": f"sqlite:///{var_dir / 'app.db'}"}
        if args.postgres:
            targets["PostgreSQL"] = args.postgres
        print(f"Verification code issued → handed to the demo SMS sender ({args.runs} codes)")
        for name, url in targets.items():
            for path, values in measure(url, args.runs, var_dir).items():
                print(f"  {name:10} {path:12}: {_percentiles(values)}")


if __name__ == "__main__":
    main()
