"""Verification lookups on a large member table: ``python -m bench.lookup``.

Per backend (a SQLite file; PostgreSQL when reachable, see bench/databases.py) it builds
a database of ``--members`` generated members (the code path of ``python -m bot.db
upgrade --generate N``) and, in the same run, a baseline of ``--lookups`` members, then
times ``submit_factors`` calls, one transaction each as the action server makes them:
hits (the right factors: a code is issued to a sender that keeps nothing) and misses (a
wrong birth date or an unknown number: a failure is counted). It prints p50/p95 in ms of
both and the ratios large/baseline.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

from bench import cli
from bench.databases import backends
from bench.report import ratio_line, timing_line
from bench.stats import Timings
from bot.core.conversation import Conversation
from bot.db.__main__ import main as db_cli
from bot.db.demo import generated_member
from bot.db.session import session_factory
from bot.identity.verification import SmsLimits, Status, submit_factors

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
# A thousand codes issued in seconds, all at NOW: the product's SMS rate (30 a minute)
# would refuse most. The counting still runs, so its cost is in the figures.
UNLIMITED = SmsLimits(per_member_day=1000, per_minute=10**6)


class _NullSender:
    """Sends nothing: the benchmark measures the database, not a carrier."""

    def send(self, to: str, text: str) -> None:
        """Drops the message."""


def time_lookups(url: str, members: int, lookups: int) -> dict[str, Timings]:
    """Times ``lookups`` submit_factors calls on ``url``, half hits, half misses."""
    sessions = session_factory(url)
    sender = _NullSender()
    timings = {"hit": Timings(), "miss": Timings()}
    # Distinct members, so that no number collects three failures and gets locked.
    picks = random.Random(20250106).sample(range(members), min(lookups, members))
    for turn, index in enumerate(picks):
        member = generated_member(index)
        kind = "hit" if turn % 2 == 0 else "miss"
        symbol, number, born = member["symbol"], member["number"], member["birth_date"]
        if kind == "miss" and turn % 4 == 1:
            born += timedelta(days=1)  # an existing number, the wrong birth date
        elif kind == "miss":
            symbol, number = "4999", str(turn)  # a number nobody has
        conversation = Conversation(f"bench-{turn}", "session", "bench")
        with timings[kind].timing(), sessions.begin() as session:
            outcome = submit_factors(
                session, conversation, symbol, number, born, sender, NOW, limits=UNLIMITED
            )
        expected = Status.CODE_SENT if kind == "hit" else Status.MISMATCH
        if outcome.status is not expected:
            raise RuntimeError(f"lookup {turn}: {outcome.status} instead of {expected}")
    return timings


def run(members: int, lookups: int) -> int:
    """Measures every backend on ``members`` members and on a baseline of ``lookups``."""
    # A secret of its own, so the run neither needs nor creates var/secret.
    secret = os.environ.get("PRIVACY_BOT_SECRET") or f"bench-{uuid.uuid4().hex}"
    with (
        mock.patch.dict(os.environ, {"PRIVACY_BOT_SECRET": secret}),
        tempfile.TemporaryDirectory(prefix="bench-lookup-") as folder,
    ):
        for backend in backends(Path(folder)):
            if backend.skipped is not None:
                print(f"{backend.name:<11} skipped: not reachable ({backend.skipped})")
                continue
            measured = {}
            for label, size in (("baseline", lookups), ("large", members)):
                with backend.fresh_database(label) as url:
                    started = time.perf_counter()
                    db_cli(["--url", url, "upgrade", "--generate", str(size)])
                    built_s = time.perf_counter() - started
                    found = measured[label] = time_lookups(url, size, lookups)
                what = (
                    f"{found['hit'].ok} hits, {found['miss'].ok} misses; built in {built_s:.1f} s"
                )
                print(timing_line(f"{backend.name:<11} {size:>8,} members ({what})", found))
            label = f"{backend.name:<11} large/baseline ({members:,} vs {lookups:,} members)"
            print(ratio_line(label, measured["baseline"], measured["large"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = cli.parser("python -m bench.lookup", __doc__)
    parser.add_argument("--members", type=cli.at_least(2), default=100_000)
    parser.add_argument("--lookups", type=cli.at_least(2), default=2000)
    args = parser.parse_args(argv)
    if args.members < args.lookups:
        parser.error("--members must be at least --lookups")
    return cli.run(lambda: run(args.members, args.lookups))


if __name__ == "__main__":
    raise SystemExit(main())
