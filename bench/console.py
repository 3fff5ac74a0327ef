"""The staff console at scale: ``python -m bench.console``.

Per backend (a SQLite file; PostgreSQL when reachable) it seeds two databases
(bench/console_seed.py): a large one of ``--escalations`` escalations and ``--events``
Rasa events over one conversation each, among them one long conversation of
``--long-events`` events, and a baseline of ``--baseline-escalations`` and
``--baseline-events`` with the same long and typical conversation.

It serves both at once with the real console (``python -m bot.console``), signs an
agent in to each through the login form and times the pages staff use: the queue
(first and last page), an escalation page with its transcript for the typical and the
long conversation, the long one's earlier lines (``?before=``) and the poll for new
lines (``/lines?after=``) of both. After a warm-up the two consoles take turns request
by request, so that other load on the machine slows both alike. It prints p50/p95 in
ms per page and backend, the ratios large/baseline, and how the planner reads each
query the console's code sends.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench import cli
from bench.console_seed import (
    AGENT,
    AGENT_PASSWORD,
    OFFICER,
    TYPICAL_EVENTS,
    Scale,
    Seeded,
    seed_database,
)
from bench.databases import Backend, backends, explain
from bench.report import DASH, Machine, header, num, table, times, timing_line
from bench.servers import child_env, free_port, local_url, server
from bench.stats import Timings, ratio
from bot.db.session import dispose

logger = logging.getLogger(__name__)

PAGE_TITLES = {
    "queue": "queue, first page",
    "queue_deep": "queue, deep page",
    "typical": f"escalation + transcript, typical conversation ({TYPICAL_EVENTS} events)",
    "long": "escalation + transcript, long conversation",
    "long_before": "long conversation, earlier lines (`?before=`)",
    "poll": "new lines poll, long conversation (`/lines?after=`, nothing new)",
    "poll_typical": "new lines poll, typical conversation (nothing new)",
}
PAGES = tuple(PAGE_TITLES)
# The privacy officer's overview (issue 22), timed signed in as the officer.
INSIGHT_TITLES = {
    "insights_7": "overview, last 7 days (`/insights?days=7`)",
    "insights_30": "overview, last 30 days (`/insights?days=30`)",
    "insights_90": "overview, last 90 days (`/insights?days=90`)",
    "unanswered_30": "not understood, last 30 days (`/insights/unanswered?days=30`)",
}
INSIGHT_PAGES = tuple(INSIGHT_TITLES)
PLAN_TITLES = {
    **PAGE_TITLES,
    **INSIGHT_TITLES,
    "insights_90_app": "overview, last 90 days: the app database's queries",
}
PLAN_STEP = r"Scan|SCAN|SEARCH|Sort|TEMP B-TREE"  # the plan lines that say how a table is read


def _last_queue_page(seeded: Seeded) -> int:
    from bot.handoff.queue import PAGE_SIZE

    return max(1, math.ceil(seeded.open_count / PAGE_SIZE))


def query_plans(seeded: Seeded, now: datetime) -> dict[str, list[str]]:
    """How the databases read the pages' queries, by page key.

    The statements are those the console's own code sends, captured while calling it
    on the seeded databases and explained with their parameters; the plan lines kept
    say how a table is read (``Index Scan ...``, ``SEARCH ... USING INDEX ...``).
    """
    from bot.console.escalations import LINES_PER_PAGE
    from bot.handoff.queue import queue_page
    from bot.handoff.transcripts import read_transcript
    from bot.insights.figures import Figures, app_figures, events_figures
    from bot.insights.period import Period
    from bot.insights.unanswered import unanswered_messages

    def figures() -> Figures:
        return Figures(Period.ending(now, 90), now)

    long, typical = seeded.long_sender, seeded.typical_sender
    app = sa.create_engine(seeded.url, future=True)
    tracker = sa.create_engine(seeded.tracker_url, future=True)
    calls: dict[str, tuple[sa.engine.Engine, Callable[[Any], Any]]] = {
        "queue_deep": (
            app,
            lambda db: queue_page(Session(bind=db), now, _last_queue_page(seeded)),
        ),
        "long": (tracker, lambda db: read_transcript(db, long, limit=LINES_PER_PAGE)),
        "long_before": (
            tracker,
            lambda db: read_transcript(
                db, long, before_event_id=seeded.long_middle_event, limit=LINES_PER_PAGE
            ),
        ),
        "poll": (
            tracker,
            lambda db: read_transcript(db, long, after_event_id=seeded.long_last_event),
        ),
        "poll_typical": (
            tracker,
            lambda db: read_transcript(db, typical, after_event_id=seeded.typical_last_event),
        ),
        "insights_90": (tracker, lambda db: events_figures(db, figures())),
        "insights_90_app": (app, lambda db: app_figures(Session(bind=db), figures())),
        "unanswered_30": (
            tracker,
            lambda db: unanswered_messages(db, Period.ending(now, 30), limit=5),
        ),
    }
    captured: list[tuple[str, Any]] = []

    def capture(*arguments: Any) -> None:
        _, _, statement, parameters, _, _ = arguments
        captured.append((statement, parameters))

    plans: dict[str, list[str]] = {}
    for key, (engine, call) in calls.items():
        captured.clear()
        with engine.connect() as connection:
            sa.event.listen(engine, "before_cursor_execute", capture)
            try:
                call(connection)
            finally:
                sa.event.remove(engine, "before_cursor_execute", capture)
            plans[key] = []
            for statement, parameters in captured:
                for line in explain(connection, statement, parameters):
                    if re.search(PLAN_STEP, line) and line not in plans[key]:
                        plans[key].append(line)
    app.dispose()
    tracker.dispose()
    return plans


def sign_in(base_url: str, name: str, password: str) -> requests.Session:
    """A ``requests.Session`` signed in through the login form, as a browser would."""
    http = requests.Session()
    form = http.get(urljoin(base_url, "/login"), timeout=30)
    form.raise_for_status()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if csrf is None:
        raise RuntimeError("the login form has no csrf field")
    credentials = {"name": name, "password": password, "csrf": csrf.group(1)}
    answer = http.post(urljoin(base_url, "/login"), data=credentials, timeout=30)
    if answer.status_code != 200 or not answer.url.rstrip("/").endswith("/queue"):
        raise RuntimeError(f"sign-in refused: {answer.status_code} at {answer.url}")
    return http


@contextmanager
def console_server(url: str, tracker_url: str, var_dir: Path, name: str) -> Iterator[str]:
    """``python -m bot.console`` on a free port over these databases; yields its base URL.

    As under the launcher, it reads its secrets from files in its var dir.
    """
    port = free_port()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(
        {
            "DATABASE_URL": url,
            "TRACKER_STORE_URL": tracker_url,
            "CONSOLE_PORT": str(port),
            "PRIVACY_BOT_VAR_DIR": str(var_dir),
            # Nothing listens there: the pages measured never call the rasa server.
            "RASA_PORT": str(free_port()),
        }
    )
    base = local_url(port)
    command = [sys.executable, "-m", "bot.console"]
    with server(f"console {name}", command, f"{base}/health", env, deadline_s=60.0):
        yield base


def pages_of(seeded: Seeded) -> dict[str, tuple[str, str]]:
    """The pages timed on a seeded database: path and a text each must contain.

    The queue shows the waiting escalations oldest first, then those in progress: its
    last page ends with the long conversation's (the newest in progress).
    """
    long = f"/escalations/{seeded.long_id}"
    typical = f"/escalations/{seeded.typical_id}"
    return {
        "queue": ("/queue", f"/escalations/{seeded.queue_first_id}"),
        "queue_deep": (f"/queue?page={_last_queue_page(seeded)}", long),
        "typical": (typical, seeded.typical_marker),
        "long": (long, seeded.long_marker),
        "long_before": (f"{long}?before={seeded.long_middle_event}", "出典"),
        "poll": (f"{long}/lines?after={seeded.long_last_event}", ""),
        # Its last event lies among a week of other conversations' newer ones.
        "poll_typical": (f"{typical}/lines?after={seeded.typical_last_event}", ""),
        **{f"insights_{days}": (f"/insights?days={days}", "<svg class") for days in (7, 30, 90)},
        "unanswered_30": ("/insights/unanswered?days=30", "会話を見る"),
    }


@dataclass
class Measured:
    """One database: its seed, its pages, their timings and sizes, its query plans."""

    seeded: Seeded
    pages: dict[str, tuple[str, str]]
    timings: dict[str, Timings] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)


def time_pages(
    consoles: Sequence[tuple[requests.Session, str, Measured]],
    samples: int,
    warmup: int,
    keys: Sequence[str] = PAGES,
) -> None:
    """GETs each page (of ``keys``) of every console in turn, ``warmup`` then ``samples`` times.

    One request at a time, the consoles taking turns: whatever else loads the machine
    slows all alike. The timings and sizes go to each console's ``Measured``; a page
    that answers anything but 200 or lacks its marker stops the run.
    """
    for key in keys:
        for turn in range(warmup + samples):
            for http, base_url, measured in consoles:
                path, marker = measured.pages[key]
                started = time.perf_counter()
                answer = http.get(urljoin(base_url, path), timeout=60, allow_redirects=False)
                body = answer.content
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"GET {path}: {answer.status_code}")
                if turn == 0:
                    if marker not in body.decode("utf-8", errors="replace"):
                        raise RuntimeError(f"GET {path}: {marker!r} not in the page")
                    measured.sizes[key] = len(body)
                if turn >= warmup:
                    measured.timings.setdefault(key, Timings()).seconds.append(elapsed)


@dataclass
class BackendRun:
    """The baseline and large databases of one backend, or why it was skipped."""

    name: str
    baseline: Measured | None = None
    large: Measured | None = None
    skipped: str | None = None

    def ratios(self, key: str) -> tuple[float | None, float | None]:
        """large/baseline of p50 and p95 of a page."""
        if self.baseline is None or self.large is None:
            return None, None
        small, big = self.baseline.timings[key], self.large.timings[key]
        return ratio(big.ms(50), small.ms(50)), ratio(big.ms(95), small.ms(95))


@dataclass
class ConsoleResults:
    """Every backend's figures and the sizes of the run."""

    baseline: Scale
    large: Scale
    samples: int
    warmup: int
    backends: list[BackendRun]
    insight_samples: int = 0


def measure_backend(
    backend: Backend,
    baseline: Scale,
    large: Scale,
    samples: int,
    warmup: int,
    now: datetime,
    insight_samples: int = 0,
) -> BackendRun:
    """Seeds a baseline and a large database, serves both, signs in to both, times the pages.

    ``samples`` timed requests per page and database, after ``warmup`` untimed ones;
    ``now`` is the seeds' clock. With ``insight_samples``, a privacy officer signs in
    too and times the overview's pages that many times.
    """
    databases: dict[str, Measured] = {}
    with ExitStack() as stack:
        for label, scale in (("baseline", baseline), ("large", large)):
            url = stack.enter_context(backend.fresh_database(label))
            seeded = seed_database(url, scale, now)
            stack.callback(dispose, seeded.tracker_url)
            dispose(url)  # the console has connections of its own
            dispose(seeded.tracker_url)
            logger.info(
                "%s %s: %s escalations, %s events seeded in %.1f s",
                backend.name,
                label,
                f"{seeded.escalations:,}",
                f"{seeded.events:,}",
                seeded.seed_s,
            )
            databases[label] = Measured(seeded, pages_of(seeded), plans=query_plans(seeded, now))
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-console-")))
        consoles, officers = [], []
        for label, measured in databases.items():
            name = f"{backend.name.lower()}-{label}"
            seeded = measured.seeded
            base = stack.enter_context(
                console_server(seeded.url, seeded.tracker_url, var_dir / label, name)
            )
            consoles.append((sign_in(base, AGENT, AGENT_PASSWORD), base, measured))
            officers.append((sign_in(base, OFFICER, AGENT_PASSWORD), base, measured))
        time_pages(consoles, samples, warmup)
        if insight_samples:
            time_pages(officers, insight_samples, warmup, INSIGHT_PAGES)
    for label, measured in databases.items():
        logger.info(timing_line(f"{backend.name} {label}", measured.timings))
    return BackendRun(backend.name, databases["baseline"], databases["large"])


def run_console_benchmark(
    large: Scale,
    baseline: Scale,
    samples: int = 200,
    warmup: int = 10,
    wanted: Sequence[str] = ("sqlite", "postgresql"),
    insight_samples: int = 0,
) -> ConsoleResults:
    """Seeds, serves and times each backend's (PostgreSQL's if reachable) two databases."""
    now = datetime.now(timezone.utc)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-console-db-") as folder:
        for backend in backends(Path(folder), wanted):
            if backend.skipped is not None:
                logger.info("%s skipped: not reachable (%s)", backend.name, backend.skipped)
                runs.append(BackendRun(backend.name, skipped=backend.skipped))
            else:
                runs.append(
                    measure_backend(backend, baseline, large, samples, warmup, now, insight_samples)
                )
    return ConsoleResults(baseline, large, samples, warmup, runs, insight_samples)


def _pair(timings: Timings | None) -> str:
    if timings is None:
        return DASH
    return f"{num(timings.ms(50), ',.2f')} / {num(timings.ms(95), ',.2f')}"


def report(results: ConsoleResults, header_lines: Sequence[str]) -> str:
    """The Markdown report of a run, under ``header_lines`` (date, machine, software)."""
    small, big = results.baseline, results.large
    lines = [
        "## Staff console (`make bench-console`)",
        "",
        *header_lines,
        f"- Large database: {big.escalations:,} escalations (a fifth waiting or in progress, "
        "received in the last week; the others closed over six months, with their audit rows "
        f"and staff messages) and {big.events:,} Rasa tracker events over one conversation "
        f"each, among them one of {big.long_events:,} events.",
        f"- Baseline, same run: {small.escalations:,} escalations and {small.events:,} events, "
        f"with the same typical ({TYPICAL_EVENTS} events) and long conversation.",
        "- Both databases served at once by `python -m bot.console` on loopback; an agent "
        f"signed in to each through the login form; per page {results.warmup} warm-up "
        f"requests, then {results.samples} timed ones, the two consoles taking turns request "
        "by request (one request at a time), so that other load on the machine slows both "
        "alike; time until the whole body is read.",
        "",
    ]
    rows, notes = [], []
    for run in results.backends:
        if run.baseline is None or run.large is None:
            rows.append([run.name, f"skipped: {run.skipped}", DASH, DASH, DASH, DASH])
            continue
        for key in PAGES:
            r50, r95 = run.ratios(key)
            before, after = run.baseline.timings.get(key), run.large.timings.get(key)
            size = run.large.sizes.get(key)
            kib = DASH if size is None else f"{size / 1024:,.1f}"
            pair = f"{times(r50)} / {times(r95)}"
            rows.append([run.name, PAGE_TITLES[key], _pair(before), _pair(after), pair, kib])
        for label, measured in (("baseline", run.baseline), ("large", run.large)):
            seeded = measured.seeded
            counts = sorted(seeded.statuses.items())
            statuses = ", ".join(f"{status} {count:,}" for status, count in counts)
            notes.append(
                f"- {run.name} {label}: {seeded.escalations:,} escalations ({statuses}), "
                f"{seeded.events:,} events (long conversation {seeded.long_events:,}) seeded "
                f"in {seeded.seed_s:.1f} s, of which events {seeded.events_s:.1f} s; deep "
                f"queue page `{measured.pages['queue_deep'][0]}`."
            )
    for run in results.backends:
        for key, found in run.large.plans.items() if run.large else ():
            shown = "; ".join(f"`{line}`" for line in found) or "(no scan in the plan)"
            notes.append(f"- {run.name} large, plan of {PLAN_TITLES[key]}: {shown}")
    heads = ["backend", "page", "baseline p50 / p95 ms", "large p50 / p95 ms", "ratio p50 / p95"]
    lines += table([*heads, "KB (large)"], rows, "llrrrr")
    if results.insight_samples:
        lines += ["", *_insights_section(results, heads)]
    return "\n".join([*lines, "", *notes])


def _insights_section(results: ConsoleResults, heads: list[str]) -> list[str]:
    """The privacy officer's pages: their own table, the target beside the large p95."""
    small, big = results.baseline, results.large
    lines = [
        "### Privacy officer's overview (issue 22)",
        "",
        f"- A privacy officer signed in to each console; per page {results.warmup} warm-up "
        f"and {results.insight_samples} timed requests, the consoles taking turns. Large: "
        f"{big.cases:,} cases over a year (a fifth open) besides the escalations, "
        f"verifications, SMS and events above; baseline: {small.cases:,} cases.",
        "- Target: the overview's p95 ≤ 500 ms on the large database.",
        "",
    ]
    rows = []
    for run in results.backends:
        if run.baseline is None or run.large is None:
            continue
        for key in INSIGHT_PAGES:
            r50, r95 = run.ratios(key)
            size = run.large.sizes.get(key)
            kib = DASH if size is None else f"{size / 1024:,.1f}"
            rows.append(
                [
                    run.name,
                    INSIGHT_TITLES[key],
                    _pair(run.baseline.timings.get(key)),
                    _pair(run.large.timings.get(key)),
                    f"{times(r50)} / {times(r95)}",
                    kib,
                ]
            )
    return [*lines, *table([*heads, "KB (large)"], rows, "llrrrr")]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = cli.parser("python -m bench.console", __doc__)
    parser.add_argument("--escalations", type=cli.at_least(3), default=10_000)
    parser.add_argument("--events", type=cli.at_least(1), default=1_000_000)
    parser.add_argument("--long-events", type=cli.at_least(1), default=5_000)
    parser.add_argument("--baseline-escalations", type=cli.at_least(3), default=100)
    parser.add_argument("--baseline-events", type=cli.at_least(1), default=10_000)
    parser.add_argument("--samples", type=cli.at_least(1), default=200)
    parser.add_argument("--warmup", type=cli.at_least(0), default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--cases", type=cli.at_least(0), default=10_000)
    parser.add_argument("--baseline-cases", type=cli.at_least(0), default=100)
    parser.add_argument(
        "--insight-samples",
        type=cli.at_least(0),
        default=50,
        help="timed requests per overview page (0: the overview is not measured)",
    )
    args = parser.parse_args(argv)
    large = Scale(args.escalations, args.events, args.long_events, args.cases)
    baseline = Scale(
        args.baseline_escalations, args.baseline_events, args.long_events, args.baseline_cases
    )
    try:
        large.check()
        baseline.check()
    except ValueError as error:
        parser.error(str(error))
    wanted = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)

    def measure() -> int:
        machine, started = Machine.collect(), datetime.now(timezone.utc)
        results = run_console_benchmark(
            large, baseline, args.samples, args.warmup, wanted, args.insight_samples
        )
        print(report(results, header(started, machine)))
        return 0

    return cli.run(measure)


if __name__ == "__main__":
    raise SystemExit(main())
