"""Formal-request cases at scale: ``python -m bench.cases``.

Builds, per backend (a SQLite file, and PostgreSQL in a schema of its own when a server
is reachable), two databases of the same ``members`` generated members (the code path of
``python -m bot.db upgrade --generate N``): a baseline with ``baseline-cases`` cases and a
large one with ``cases`` cases, bulk-loaded (``executemany`` in chunks on SQLite, ``COPY``
on PostgreSQL). On each it times, one transaction per call as the action server and the
staff CLI make them:

- ``confirm``: ``confirm_draft`` of a prepared disclosure draft (the whole draft -> case
  unit of work: locks, duplicate check, case number, case, history, audit);
- ``member_cases``: the case list (newest first, audited) of a random member who has
  cases (in the baseline about 1 case each, in the large one about ``cases/members``);
- ``list_cases``: the staff work list's first page (open cases by due date, audited).

Prints p50/p95 in ms, the large/baseline ratios, and the plan lines that show which
index serves ``member_cases`` and ``list_cases``. The cases follow the osaka-city-kyosai
profile (30-day period), received evenly over five years: most are closed, those of the
last 60 days are open.

PostgreSQL: ``PRIVACY_BOT_BENCH_POSTGRES_URL``, else ``PRIVACY_BOT_TEST_POSTGRES_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test`` (then user ``root``).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.lookup import _postgres_base, _postgres_schema
from bench.stats import percentile
from bot.cases import CaseType, DisclosureTarget, Method, confirm_draft, list_cases, member_cases
from bot.cases.drafts import start_draft, update_draft
from bot.cases.records import format_case_number
from bot.cases.rules import JST, due_on
from bot.cases.service import member_cases_statement
from bot.cases.staff import list_cases_statement
from bot.cases.types import OPEN_STATUSES
from bot.db.__main__ import main as db_cli
from bot.db.models import Case, Member
from bot.db.session import dispose, engine_for, session_factory
from bot.identity.verification import Conversation
from bot.policy.profiles.loader import cached_profile

NOW = datetime(2025, 6, 2, 1, 0, tzinfo=timezone.utc)  # Monday 10:00 in Japan
SPAN = timedelta(days=5 * 365)
OPEN_WINDOW = timedelta(days=60)
PROFILE_ID = "osaka-city-kyosai"
PERIOD_DAYS = 30
CHUNK = 20_000
OPERATIONS = ("confirm", "member_cases", "list_cases")

COLUMNS = (
    "case_number", "draft_id", "case_type", "target", "requester_member_id",
    "subject_member_id", "role", "agent_name", "agent_contact", "scope", "method", "reason",
    "wrong_text", "right_text", "channel", "sender_id", "status", "received_at",
    "period_days", "max_extension_days", "due_at", "awaiting_since", "paused_days",
    "extended_days", "extension_reason", "fee_kind", "fee_amount_yen", "fee_source",
    "outcome", "legal_ground", "explanation", "decided_at", "closed_at", "updated_at",
)  # fmt: skip
_TYPES = (
    [("disclosure", target.value) for target in DisclosureTarget] * 20
    + [("correction", None)] * 15
    + [("suspension", None)] * 10
    + [("third_party_stop", None)] * 5
    + [("purpose_notice", None)] * 10
)
_OUTCOME = {
    "disclosure": "disclosed",
    "correction": "corrected",
    "suspension": "suspended",
    "third_party_stop": "stopped",
    "purpose_notice": "notified",
}
_RECENT_STATUSES = (
    ["received"] * 30 + ["awaiting_documents"] * 15 + ["under_review"] * 40 + ["extended"] * 10
) + ["decided"] * 5
_OLD_STATUSES = ["closed"] * 90 + ["withdrawn"] * 7 + ["decided"] * 3


def _stamp(moment: datetime | None) -> str | None:
    # The text SQLAlchemy itself stores on SQLite, and a literal PostgreSQL reads.
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def generated_cases(
    count: int, member_ids: Sequence[int], seed: int = 20250602
) -> Iterator[tuple[Any, ...]]:
    """``count`` cases in receipt order over five years before NOW, as column tuples."""
    rng = random.Random(seed)
    start = NOW - SPAN
    sequences: dict[int, int] = {}
    for index in range(count):
        received = start + SPAN * ((index + rng.random()) / count)
        year = received.astimezone(JST).year
        sequences[year] = sequences.get(year, 0) + 1
        kind, target = rng.choice(_TYPES)
        member = rng.choice(member_ids)
        recent = NOW - received < OPEN_WINDOW
        status = rng.choice(_RECENT_STATUSES if recent else _OLD_STATUSES)
        decided = status in ("decided", "closed")
        agent = rng.random() < 0.02
        due = due_on(received, PERIOD_DAYS)
        extended = 10 if status == "extended" else 0
        if due is not None and extended:
            due += timedelta(days=extended)
        yield (
            format_case_number(year, sequences[year]),
            None,
            kind,
            target,
            member,
            member,
            "appointed_agent" if agent else "self",
            "代理人 甲" if agent else None,
            None,
            "[]",
            "paper" if kind == "disclosure" else None,
            "理由" if kind in ("suspension", "third_party_stop") else None,
            "誤" if kind == "correction" else None,
            "正" if kind == "correction" else None,
            "rest",
            None,
            status,
            _stamp(received),
            PERIOD_DAYS,
            30,
            _stamp(due),
            _stamp(received + timedelta(days=1)) if status == "awaiting_documents" else None,
            0,
            extended,
            "資料の確認" if extended else None,
            "detailed_rules" if kind in ("disclosure", "purpose_notice") else "none_by_law",
            None,
            "第29条・第21条第4号" if kind in ("disclosure", "purpose_notice") else None,
            _OUTCOME[kind] if decided else None,
            None,
            None,
            _stamp(received + timedelta(days=20)) if decided else None,
            _stamp(received + timedelta(days=25)) if status in ("closed", "withdrawn") else None,
            _stamp(received),
        )


def _load_sqlite(url: str, rows: Iterator[tuple[Any, ...]]) -> dict[int, int]:
    connection = engine_for(url).raw_connection()
    years: dict[int, int] = {}
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA cache_size = -262144")  # 256 MiB while loading
        cursor.execute("BEGIN IMMEDIATE")
        statement = (
            f"INSERT INTO cases ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        )
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(row)
            _count_year(years, row[0])
            if len(batch) == CHUNK:
                cursor.executemany(statement, batch)
                batch.clear()
        if batch:
            cursor.executemany(statement, batch)
        cursor.executemany(
            "INSERT INTO case_number_sequences (year, last_value) VALUES (?, ?)",
            sorted(years.items()),
        )
        cursor.execute("COMMIT")
    finally:
        connection.close()
    return years


def _load_postgres(url: str, rows: Iterator[tuple[Any, ...]]) -> dict[int, int]:
    connection = engine_for(url).raw_connection()
    years: dict[int, int] = {}
    try:
        cursor = connection.cursor()
        copy = f"COPY cases ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
        while True:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            written = 0
            for row in rows:
                writer.writerow(row)  # None -> an unquoted empty field: NULL
                _count_year(years, row[0])
                written += 1
                if written == CHUNK * 5:
                    break
            if not written:
                break
            buffer.seek(0)
            cursor.copy_expert(copy, buffer)
        cursor.executemany(
            "INSERT INTO case_number_sequences (year, last_value) VALUES (%s, %s)",
            sorted(years.items()),
        )
        # Statistics now rather than whenever autovacuum gets to it.
        cursor.execute("ANALYZE cases")
        cursor.execute("ANALYZE members")
        connection.commit()
    finally:
        connection.close()
    return years


def _count_year(years: dict[int, int], case_number: str) -> None:
    _, year, value = case_number.split("-")
    years[int(year)] = max(years.get(int(year), 0), int(value))


def _cycle(items: list[int], count: int) -> list[int]:
    return (items * (count // len(items) + 1))[:count]


def _timed(samples: int, step: Callable[[int], Any]) -> list[float]:
    times = []
    for index in range(samples):
        started = time.perf_counter()
        step(index)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _measure(url: str, member_ids: Sequence[int], samples: int) -> dict[str, list[float]]:
    sessions = session_factory(url)
    profile = cached_profile(PROFILE_ID)
    rng = random.Random(7)
    who = _cycle(rng.sample(list(member_ids), min(samples, len(member_ids))), samples)
    # Members who look at their cases have some: in the baseline few members do.
    with sessions.begin() as session:
        requesters = list(session.execute(sa.select(Case.requester_member_id).distinct()).scalars())
    readers = _cycle(rng.sample(requesters, min(samples, len(requesters))), samples)
    drafts = []
    for index, member in enumerate(who):
        conversation = Conversation(f"bench-{index}", "session", "bench")
        with sessions.begin() as session:
            draft = start_draft(session, conversation, member, CaseType.DISCLOSURE, NOW)
            update_draft(
                session,
                conversation,
                draft.id,
                NOW,
                target=DisclosureTarget.RETAINED_DATA,
                method=Method.PAPER,
                scope=[f"bench-{index}"],
            )
        drafts.append((conversation, draft.id))

    def confirm(index: int) -> None:
        conversation, draft_id = drafts[index]
        with sessions.begin() as session:
            opened = confirm_draft(session, conversation, draft_id, profile, NOW)
        if not opened.created:
            raise RuntimeError(f"draft {draft_id} did not create a case")

    def listing(index: int) -> None:
        with sessions.begin() as session:
            member_cases(session, readers[index], now=NOW)

    def work_list(index: int) -> None:
        with sessions.begin() as session:
            if not list_cases(session, NOW, staff="bench"):
                raise RuntimeError("the work list is empty")

    return {
        "confirm": _timed(samples, confirm),
        "member_cases": _timed(samples, listing),
        "list_cases": _timed(samples, work_list),
    }


def _plan_lines(url: str, statement: Any) -> list[str]:
    engine = engine_for(url)
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    backend = engine.dialect.name
    with engine.connect() as connection:
        if backend == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            lines = [str(row[-1]) for row in rows]
        else:
            lines = [str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}").all()]
    found = []
    for line in lines:
        # Only the lines naming an index; costs and subquery aliases vary run to run.
        text = re.sub(r"\s*\(cost=[^)]*\)|\s+cases_\d+\b", "", line.replace("->", ""))
        text = " ".join(text.split())
        if re.search(r"\b(ix|pk|uq)_cases", text) and text not in found:
            found.append(text)
    return found


def _explain(url: str, member_id: int) -> dict[str, list[str]]:
    return {
        "member_cases": _plan_lines(url, member_cases_statement(member_id, 10)),
        "list_cases": _plan_lines(url, list_cases_statement(OPEN_STATUSES, 50)),
    }


def _build(name: str, url: str, members: int, cases: int, samples: int) -> dict[str, Any]:
    started = time.perf_counter()
    db_cli(["--url", url, "upgrade", "--generate", str(members)])
    members_s = time.perf_counter() - started
    try:
        with session_factory(url).begin() as session:
            member_ids = list(session.execute(sa.select(Member.id).order_by(Member.id)).scalars())
        started = time.perf_counter()
        loader = _load_sqlite if name == "SQLite" else _load_postgres
        loader(url, generated_cases(cases, member_ids))
        load_s = time.perf_counter() - started
        times = _measure(url, member_ids, samples)
        plans = _explain(url, member_ids[len(member_ids) // 2])
    finally:
        dispose(url)
    figures: dict[str, Any] = {
        "members": members,
        "cases": cases,
        "members_s": members_s,
        "load_s": load_s,
        "plans": plans,
    }
    for operation, values in times.items():
        figures[f"{operation}_p50_ms"] = percentile(values, 50)
        figures[f"{operation}_p95_ms"] = percentile(values, 95)
    print(
        f"{name:<11} {cases:>9,} cases, {members:,} members (cases loaded in {load_s:6.1f} s): "
        + "  ".join(
            f"{op} p50 {figures[f'{op}_p50_ms']:6.2f} p95 {figures[f'{op}_p95_ms']:6.2f} ms"
            for op in OPERATIONS
        ),
        flush=True,
    )
    return figures


def _compare(name: str, baseline: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    ratios = {
        f"ratio_{op}_{pct}": large[f"{op}_{pct}_ms"] / baseline[f"{op}_{pct}_ms"]
        for op in OPERATIONS
        for pct in ("p50", "p95")
    }
    print(
        f"{name:<11} large/baseline ({large['cases']:,} vs {baseline['cases']:,} cases): "
        + "  ".join(
            f"{op} p50 {ratios[f'ratio_{op}_p50']:.2f}× p95 {ratios[f'ratio_{op}_p95']:.2f}×"
            for op in OPERATIONS
        ),
        flush=True,
    )
    for operation, lines in large["plans"].items():
        for line in lines or ["(no index in the plan!)"]:
            print(f"{name:<11} plan {operation}: {line}", flush=True)
    return {"baseline": baseline, "large": large, **ratios}


def _run_backend(
    name: str, urls: Callable[[str], Any], members: int, cases: int, baseline: int, samples: int
) -> dict[str, Any]:
    with urls("baseline") as url:
        small = _build(name, url, members, baseline, samples)
    with urls("large") as url:
        large = _build(name, url, members, cases, samples)
    return _compare(name, small, large)


def run_cases_benchmark(
    members: int = 100_000, cases: int = 1_000_000, baseline_cases: int = 1000, samples: int = 300
) -> dict[str, Any]:
    """Time case creation and listings on ``cases`` and on ``baseline_cases`` cases.

    Returns:
        ``{"sqlite": {...}, "postgresql": {...}}``, each with ``baseline`` and ``large``
        figures (load time, p50/p95 per operation in ms, plan lines) and their ratios;
        ``"postgresql"`` holds ``{"skipped": reason}`` when unreachable.
    """
    if members < 1 or cases < 1 or baseline_cases < 1 or samples < 1:
        raise ValueError("members, cases, baseline cases and samples must be positive")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cases-") as tmp:

        class _SqliteFile:
            def __init__(self, label: str) -> None:
                self.url = f"sqlite:///{Path(tmp) / f'{label}.db'}"

            def __enter__(self) -> str:
                return self.url

            def __exit__(self, *exc: object) -> None:
                dispose(self.url)

        results["sqlite"] = _run_backend(
            "SQLite", _SqliteFile, members, cases, baseline_cases, samples
        )
    base, problem = _postgres_base()
    if base is None:
        print(f"PostgreSQL  skipped: not reachable ({problem})", flush=True)
        results["postgresql"] = {"skipped": problem}
    else:
        results["postgresql"] = _run_backend(
            "PostgreSQL",
            lambda label: _postgres_schema(base),
            members,
            cases,
            baseline_cases,
            samples,
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.cases", description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--baseline-cases", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    run_cases_benchmark(args.members, args.cases, args.baseline_cases, args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
