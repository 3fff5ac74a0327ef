"""Formal-request cases at scale: ``python -m bench.cases``.

Per backend (a SQLite file; PostgreSQL when reachable) it builds two databases of the
same ``--members`` generated members (as ``python -m bot.db upgrade --generate N``
does): a baseline with ``--baseline-cases`` cases and a large one with ``--cases``
cases, bulk-loaded. On each it times, one transaction per call as the action server and
the staff CLI make them:

- ``confirm``: ``confirm_draft`` of a prepared disclosure draft (locks, duplicate
  check, case number, case, history, audit);
- ``member_cases``: the case list (newest first, audited) of a random member who has
  cases (in the baseline about 1 case each, in the large one about ``cases/members``);
- ``list_cases``: the staff work list's first page (open cases by due date, audited).

It prints p50/p95 in ms, the ratios large/baseline, and the plan lines that show which
index serves ``member_cases`` and ``list_cases``. The cases follow the osaka-city-kyosai
profile (30-day period), received evenly over five years: most are closed, those of the
last 60 days are open.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import cli
from bench.databases import Backend, analyze, backends, bulk_load, explain, stamp
from bench.report import ratio_line, timing_line
from bench.stats import Timings
from bot.cases import CaseType, DisclosureTarget, Method, confirm_draft, list_cases, member_cases
from bot.cases.drafts import start_draft, update_draft
from bot.cases.records import format_case_number
from bot.cases.rules import due_on
from bot.cases.service import member_cases_statement
from bot.cases.staff import list_cases_statement
from bot.cases.types import OPEN_STATUSES
from bot.core.conversation import Conversation
from bot.core.japan_time import JST
from bot.db.__main__ import main as db_cli
from bot.db.models import Case, Member
from bot.db.session import engine_for, session_factory
from bot.policy.profiles.loader import cached_profile

NOW = datetime(2025, 6, 2, 1, 0, tzinfo=timezone.utc)  # Monday 10:00 in Japan
SPAN = timedelta(days=5 * 365)
OPEN_WINDOW = timedelta(days=60)
PROFILE_ID = "osaka-city-kyosai"
PERIOD_DAYS = 30
TYPES = (
    [("disclosure", target.value) for target in DisclosureTarget] * 20
    + [("correction", None)] * 15
    + [("suspension", None)] * 10
    + [("third_party_stop", None)] * 5
    + [("purpose_notice", None)] * 10
)
OUTCOMES = {
    "disclosure": "disclosed",
    "correction": "corrected",
    "suspension": "suspended",
    "third_party_stop": "stopped",
    "purpose_notice": "notified",
}
RECENT_STATUSES = (
    ["received"] * 30 + ["awaiting_documents"] * 15 + ["under_review"] * 40 + ["extended"] * 10
) + ["decided"] * 5
OLD_STATUSES = ["closed"] * 90 + ["withdrawn"] * 7 + ["decided"] * 3


def generated_cases(
    count: int, member_ids: Sequence[int], sequences: dict[int, int], seed: int = 20250602
) -> Iterator[dict[str, Any]]:
    """``count`` cases in receipt order over five years before NOW, as table rows.

    Each year's last case number goes to ``sequences``.
    """
    rng = random.Random(seed)
    for index in range(count):
        received = NOW - SPAN + SPAN * ((index + rng.random()) / count)
        year = received.astimezone(JST).year
        sequences[year] = sequences.get(year, 0) + 1
        kind, target = rng.choice(TYPES)
        member = rng.choice(member_ids)
        recent = NOW - received < OPEN_WINDOW
        status = rng.choice(RECENT_STATUSES if recent else OLD_STATUSES)
        decided = status in ("decided", "closed")
        agent = rng.random() < 0.02
        extended = 10 if status == "extended" else 0
        fee_applies = kind in ("disclosure", "purpose_notice")
        yield {
            "case_number": format_case_number(year, sequences[year]),
            "case_type": kind,
            "target": target,
            "requester_member_id": member,
            "subject_member_id": member,
            "role": "appointed_agent" if agent else "self",
            "agent_name": "代理人 甲" if agent else None,
            "scope": "[]",
            "method": "paper" if kind == "disclosure" else None,
            "reason": "理由" if kind in ("suspension", "third_party_stop") else None,
            "wrong_text": "誤" if kind == "correction" else None,
            "right_text": "正" if kind == "correction" else None,
            "channel": "rest",
            "status": status,
            "received_at": stamp(received),
            "period_days": PERIOD_DAYS,
            "max_extension_days": 30,
            "due_at": stamp(due_on(received, PERIOD_DAYS + extended)),
            "awaiting_since": (
                stamp(received + timedelta(days=1)) if status == "awaiting_documents" else None
            ),
            "paused_days": 0,
            "extended_days": extended,
            "extension_reason": "資料の確認" if extended else None,
            "fee_kind": "detailed_rules" if fee_applies else "none_by_law",
            "fee_source": "第29条・第21条第4号" if fee_applies else None,
            "outcome": OUTCOMES[kind] if decided else None,
            "decided_at": stamp(received + timedelta(days=20)) if decided else None,
            "closed_at": (
                stamp(received + timedelta(days=25)) if status in ("closed", "withdrawn") else None
            ),
            "updated_at": stamp(received),
        }


def _cycle(items: list[int], count: int) -> list[int]:
    return (items * (count // len(items) + 1))[:count]


def time_operations(url: str, member_ids: Sequence[int], samples: int) -> dict[str, Timings]:
    """Times ``samples`` calls of each operation on a loaded database."""
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
    timings = {"confirm": Timings(), "member_cases": Timings(), "list_cases": Timings()}
    for conversation, draft_id in drafts:
        with timings["confirm"].timing(), sessions.begin() as session:
            opened = confirm_draft(session, conversation, draft_id, profile, NOW)
        if not opened.created:
            raise RuntimeError(f"draft {draft_id} did not create a case")
    for member in readers:
        with timings["member_cases"].timing(), sessions.begin() as session:
            member_cases(session, member, now=NOW)
    for _ in range(samples):
        with timings["list_cases"].timing(), sessions.begin() as session:
            if not list_cases(session, NOW, staff="bench"):
                raise RuntimeError("the work list is empty")
    return timings


def plan_lines(url: str, statement: Any) -> list[str]:
    """The lines of the planner's plan for ``statement`` that name an index of ``cases``."""
    engine = engine_for(url)
    sql = str(statement.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        lines = explain(connection, sql)
    found = []
    for line in lines:
        text = re.sub(r"\s+cases_\d+\b", "", line)  # PostgreSQL's subquery aliases vary
        if re.search(r"\b(ix|pk|uq)_cases", text) and text not in found:
            found.append(text)
    return found


def measure(
    backend: Backend, label: str, members: int, cases: int, samples: int
) -> dict[str, Timings]:
    """Builds one database on ``backend``, prints its timings and, if large, its plans."""
    with backend.fresh_database(label) as url:
        db_cli(["--url", url, "upgrade", "--generate", str(members)])
        with session_factory(url).begin() as session:
            member_ids = list(session.execute(sa.select(Member.id).order_by(Member.id)).scalars())
        started = time.perf_counter()
        sequences: dict[int, int] = {}
        bulk_load(url, "cases", generated_cases(cases, member_ids, sequences))
        years = [{"year": year, "last_value": last} for year, last in sorted(sequences.items())]
        bulk_load(url, "case_number_sequences", years)
        analyze(url, "cases", "members")
        load_s = time.perf_counter() - started
        timings = time_operations(url, member_ids, samples)
        member = member_ids[len(member_ids) // 2]
        plans = {
            "member_cases": plan_lines(url, member_cases_statement(member, 10)),
            "list_cases": plan_lines(url, list_cases_statement(OPEN_STATUSES, 50)),
        }
    name = f"{backend.name:<11}"
    what = f"{cases:>9,} cases, {members:,} members (cases loaded in {load_s:6.1f} s)"
    print(timing_line(f"{name} {what}", timings))
    if label == "large":
        for operation, lines in plans.items():
            for line in lines or ["(no index in the plan!)"]:
                print(f"{name} plan {operation}: {line}")
    return timings


def run(members: int, cases: int, baseline_cases: int, samples: int) -> int:
    """Measures every backend's baseline and large database."""
    with tempfile.TemporaryDirectory(prefix="bench-cases-") as folder:
        for backend in backends(Path(folder)):
            name = f"{backend.name:<11}"
            if backend.skipped is not None:
                print(f"{name} skipped: not reachable ({backend.skipped})")
                continue
            small = measure(backend, "baseline", members, baseline_cases, samples)
            large = measure(backend, "large", members, cases, samples)
            label = f"{name} large/baseline ({cases:,} vs {baseline_cases:,} cases)"
            print(ratio_line(label, small, large))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = cli.parser("python -m bench.cases", __doc__)
    parser.add_argument("--members", type=cli.at_least(1), default=100_000)
    parser.add_argument("--cases", type=cli.at_least(1), default=1_000_000)
    parser.add_argument("--baseline-cases", type=cli.at_least(1), default=1000)
    parser.add_argument("--samples", type=cli.at_least(1), default=300)
    args = parser.parse_args(argv)
    return cli.run(lambda: run(args.members, args.cases, args.baseline_cases, args.samples))


if __name__ == "__main__":
    raise SystemExit(main())
