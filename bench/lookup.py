"""Verification lookups on a large member table: ``python -m bench.lookup``.

Builds a SQLite file database (and a PostgreSQL one, in a schema of its own, when a
server is reachable) with ``members`` generated members through the same code path as
``python -m bot.db upgrade --generate N``, then times ``submit_factors`` calls, one
transaction each as the action server makes them: hits (the right factors: a code is
issued and "sent" to a sender that keeps nothing) and misses (a wrong birth date or an
unknown number: a failure is counted). Prints p50/p95 in milliseconds per backend.

PostgreSQL: ``PRIVACY_BOT_BENCH_POSTGRES_URL``, else ``PRIVACY_BOT_TEST_POSTGRES_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test`` (then user ``root``).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from bench.stats import percentile
from bot.db.__main__ import main as db_cli
from bot.db.demo import generated_member
from bot.db.session import dispose, session_factory
from bot.identity.verification import Conversation, SmsLimits, Status, submit_factors

POSTGRES_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
# A thousand codes issued in seconds, all at NOW: the product's SMS rate (30 a minute)
# would refuse most. The counting still runs, so its cost is in the figures.
UNLIMITED = SmsLimits(per_member_day=1000, per_minute=10**6)


class _NullSender:
    """Sends nothing: the benchmark measures the database, not a carrier."""

    def send(self, to: str, text: str) -> None:
        """Drop the message."""


@contextmanager
def _bench_secret() -> Iterator[None]:
    # A secret of its own, so the run neither needs nor creates var/secret.
    saved = os.environ.get("PRIVACY_BOT_SECRET")
    os.environ["PRIVACY_BOT_SECRET"] = saved or f"bench-{uuid.uuid4().hex}"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PRIVACY_BOT_SECRET"]


def _postgres_base() -> tuple[str | None, str]:
    configured = os.environ.get("PRIVACY_BOT_BENCH_POSTGRES_URL") or os.environ.get(
        "PRIVACY_BOT_TEST_POSTGRES_URL"
    )
    problems = []
    for url in (configured,) if configured else POSTGRES_URLS:
        engine = sa.create_engine(url, future=True, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return url, ""
        except sa.exc.OperationalError as error:
            problems.append(f"{url}: {str(error.orig).strip().splitlines()[0]}")
        finally:
            engine.dispose()
    return None, "; ".join(problems)


@contextmanager
def _postgres_schema(base: str) -> Iterator[str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, future=True)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _time_lookups(url: str, members: int, lookups: int) -> dict[str, float]:
    sessions = session_factory(url)
    sender = _NullSender()
    rng = random.Random(20250106)
    # Distinct members, so that no number collects three failures and gets locked.
    picks = rng.sample(range(members), min(lookups, members))
    times: dict[str, list[float]] = {"hit": [], "miss": []}
    for turn, index in enumerate(picks):
        member = generated_member(index)
        kind = "hit" if turn % 2 == 0 else "miss"
        symbol, number, born = member["symbol"], member["number"], member["birth_date"]
        if kind == "miss" and turn % 4 == 1:
            born += timedelta(days=1)  # an existing number, the wrong birth date
        elif kind == "miss":
            symbol, number = "4999", str(turn)  # a number nobody has
        conversation = Conversation(f"bench-{turn}", "session", "bench")
        started = time.perf_counter()
        with sessions.begin() as session:
            outcome = submit_factors(
                session, conversation, symbol, number, born, sender, NOW, limits=UNLIMITED
            )
        times[kind].append((time.perf_counter() - started) * 1000)
        expected = Status.CODE_SENT if kind == "hit" else Status.MISMATCH
        if outcome.status is not expected:
            raise RuntimeError(f"lookup {turn}: {outcome.status} instead of {expected}")
    return {
        f"{kind}_{name}_ms": percentile(values, pct)
        for kind, values in times.items()
        for name, pct in (("p50", 50), ("p95", 95))
    } | {"hits": len(times["hit"]), "misses": len(times["miss"])}


def _run_backend(name: str, url: str, members: int, lookups: int) -> dict[str, Any]:
    started = time.perf_counter()
    db_cli(["--url", url, "upgrade", "--generate", str(members)])
    build_s = time.perf_counter() - started
    try:
        figures: dict[str, Any] = {"members": members, "build_s": build_s}
        figures |= _time_lookups(url, members, lookups)
    finally:
        dispose(url)
    print(
        f"{name:<11} {members:>8} members (built in {build_s:5.1f} s)  "
        f"hit p50 {figures['hit_p50_ms']:6.2f} ms  p95 {figures['hit_p95_ms']:6.2f} ms   "
        f"miss p50 {figures['miss_p50_ms']:6.2f} ms  p95 {figures['miss_p95_ms']:6.2f} ms   "
        f"({figures['hits']} hits, {figures['misses']} misses)",
        flush=True,
    )
    return figures


def _with_ratio(name: str, baseline: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    ratios = {
        f"ratio_{key}": full[key] / baseline[key]
        for key in ("hit_p50_ms", "hit_p95_ms", "miss_p50_ms", "miss_p95_ms")
    }
    print(
        f"{name:<11} {full['members']} vs {baseline['members']} members: hit p50 "
        f"{ratios['ratio_hit_p50_ms']:.2f}×, p95 {ratios['ratio_hit_p95_ms']:.2f}×; miss p50 "
        f"{ratios['ratio_miss_p50_ms']:.2f}×, p95 {ratios['ratio_miss_p95_ms']:.2f}×",
        flush=True,
    )
    return {"baseline": baseline, "full": full, **ratios}


def run_lookup_benchmark(members: int = 100_000, lookups: int = 2000) -> dict[str, Any]:
    """Time ``lookups`` submit_factors calls (half hits, half misses) per backend.

    Each backend is measured twice in the same run: on a baseline table just large
    enough for the lookups (``lookups`` members) and on ``members`` members; the ratio
    says what the table's size costs.

    Returns:
        ``{"sqlite": {...}, "postgresql": {...}}``, each with ``baseline`` and ``full``
        figures (build time, p50/p95 of hits and misses in ms) and their ratios;
        ``"postgresql"`` holds ``{"skipped": reason}`` when unreachable.
    """
    if members < lookups or lookups < 2:
        raise ValueError("need at least 2 lookups and as many members as lookups")
    results: dict[str, Any] = {}
    with _bench_secret(), tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        small = _run_backend("SQLite", f"sqlite:///{Path(tmp) / 'small.db'}", lookups, lookups)
        full = _run_backend("SQLite", f"sqlite:///{Path(tmp) / 'app.db'}", members, lookups)
        results["sqlite"] = _with_ratio("SQLite", small, full)
        base, problem = _postgres_base()
        if base is None:
            print(f"PostgreSQL  skipped: not reachable ({problem})")
            results["postgresql"] = {"skipped": problem}
        else:
            with _postgres_schema(base) as url:
                small = _run_backend("PostgreSQL", url, lookups, lookups)
            with _postgres_schema(base) as url:
                full = _run_backend("PostgreSQL", url, members, lookups)
            results["postgresql"] = _with_ratio("PostgreSQL", small, full)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.lookup", description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args(argv)
    run_lookup_benchmark(args.members, args.lookups)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
