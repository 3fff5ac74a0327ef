"""The staff console benchmark (bench/console.py, bench/console_seed.py): its seed, and
one small real run.

The seed must be what the console really reads: Rasa's own ``events`` table filled
with events Rasa can load back, in the amounts asked for. The small run starts the
real console on a SQLite file and on a PostgreSQL schema and checks that the figures
are sane (every request answered, percentiles in order, ratios computed); it asserts
no timings.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa
from rasa.shared.core.events import Event

from bench.console import (
    INSIGHT_PAGES,
    PAGE_TITLES,
    PAGES,
    ConsoleResults,
    console_server,
    main,
    report,
    run_console_benchmark,
)
from bench.console_seed import (
    AGENT,
    MIN_EVENTS,
    TYPICAL_EVENTS,
    Conversation,
    Scale,
    conversation_events,
    default_tracker_url,
    event_row,
    plan_conversations,
    seed_database,
)
from bench.databases import backends
from bot.core.conversation import channel_of
from bot.db.migrate import upgrade
from bot.db.models import AuditLog, Escalation, StaffAccount, StaffMessage
from bot.db.session import dispose, engine_for
from bot.handoff.relay import STAFF_PREFIX
from bot.handoff.transcripts import read_transcript, tracker_engine
from tests.db_fixtures import backend_of, postgres_base_url

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)


def _plan(status: str, events: int, verified: bool = True) -> Conversation:
    return Conversation(
        index=0,
        sender_id="f" * 32,
        channel="socketio",
        status=status,
        handoff_at=NOW - timedelta(days=1),
        events=events,
        verified=verified,
        staff="tanaka" if status != "waiting" else None,
    )


# --- the plan ----------------------------------------------------------------------------


def test_the_plan_has_the_sizes_asked_for_and_the_measured_conversations_in_progress():
    scale = Scale(escalations=500, events=60_000, long_events=3_000)
    plans, typical, long = plan_conversations(scale, NOW)
    assert len(plans) == 500
    assert sum(plan.events for plan in plans) == 60_000
    assert plans[long].events == 3_000 and plans[typical].events == TYPICAL_EVENTS
    assert min(plan.events for plan in plans) >= MIN_EVENTS
    statuses = Counter(plan.status for plan in plans)
    assert statuses["closed"] == 400  # 20 % open
    assert statuses["waiting"] > 0 and statuses["in_progress"] > 0
    assert plans[long].status == plans[typical].status == "in_progress"
    assert plans[long].staff == plans[typical].staff == AGENT
    assert len({plan.sender_id for plan in plans}) == 500
    # Conversation ids as the channels name them: web:…, line:U…, rest:….
    assert all(channel_of(plan.sender_id) == plan.channel for plan in plans)
    assert {plan.sender_id.split(":")[0] for plan in plans} == {"web", "line", "rest"}
    # In time order over six months; the open ones in the last week, none in the future.
    times = [plan.handoff_at for plan in plans]
    assert times == sorted(times)
    assert NOW - times[0] <= timedelta(days=180)
    assert all(NOW - plan.handoff_at <= timedelta(days=7) for plan in plans[400:])
    assert all(plan.handoff_at < NOW - timedelta(hours=2) for plan in plans)
    assert all(plan.status == "closed" for plan in plans[:400])
    # The same seed gives the baseline the same long and typical conversation.
    small, small_typical, small_long = plan_conversations(Scale(50, 8_000, 3_000), NOW)
    assert small[small_long].events == 3_000 and small[small_typical].events == TYPICAL_EVENTS


def test_sizes_the_plan_cannot_write_are_refused():
    with pytest.raises(ValueError):
        Scale(escalations=100, events=5_000, long_events=3_000).check()  # too few events
    with pytest.raises(ValueError):
        Scale(escalations=2, events=5_000, long_events=1_000).check()
    with pytest.raises(ValueError):
        Scale(escalations=100, events=100_000, long_events=150).check()  # long < typical×2
    with pytest.raises(SystemExit) as refused:
        main(["--events", "1000"])
    assert refused.value.code == 2


# --- the events ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "events", "verified"),
    [
        ("waiting", 40, False),
        ("waiting", 100, True),
        ("in_progress", TYPICAL_EVENTS, True),
        ("closed", MIN_EVENTS, False),
        ("closed", 250, True),
        ("in_progress", 2_000, True),
    ],
)
def test_a_conversation_is_exactly_its_planned_events_and_rasa_reads_them_back(
    status, events, verified
):
    plan = _plan(status, events, verified)
    rng = random.Random(1)
    events_at = conversation_events(plan, rng)
    rows = [event_row(plan.sender_id, plan.channel, at, spec, rng) for at, spec in events_at]
    assert len(rows) == events
    stamps = [row["timestamp"] for row in rows]
    assert stamps == sorted(stamps)
    kinds = Counter(row["type_name"] for row in rows)
    assert kinds["session_started"] >= 1 and kinds["pause"] == 1
    assert kinds["resume"] == (1 if status == "closed" else 0)
    assert (kinds["user"] > 0) and (kinds["bot"] > 0) and (kinds["action"] > 0)
    for row in rows:
        as_dict = json.loads(row["data"])
        event = Event.from_parameters(as_dict)  # what Rasa does when it loads a tracker
        assert event is not None and event.type_name == row["type_name"]
        assert as_dict["timestamp"] == row["timestamp"]
        if row["type_name"] == "user":
            assert row["intent_name"] == as_dict["parse_data"]["intent"]["name"]
            assert len(as_dict["parse_data"]["intent_ranking"]) == 10
        if row["type_name"] == "action":
            assert row["action_name"] == as_dict["name"]
    # The pause is when the escalation was opened.
    paused = next(row["timestamp"] for row in rows if row["type_name"] == "pause")
    assert paused == pytest.approx(plan.handoff_at.timestamp(), abs=0.01)
    staff_lines = [json.loads(row["data"]) for row in rows if '"staff"' in row["data"]]
    if status == "waiting":
        assert not staff_lines
    else:
        assert staff_lines
        assert all(line["text"].startswith(STAFF_PREFIX) for line in staff_lines)
        assert all(line["metadata"]["staff"] == "tanaka" for line in staff_lines)


def test_the_seed_fills_rasa_s_table_and_the_transcript_reader_finds_every_kind_of_line(
    db_url, secret
):
    scale = Scale(escalations=20, events=2_000, long_events=400)
    seeded = seed_database(db_url, scale, NOW)
    assert (seeded.escalations, seeded.events, seeded.long_events) == (20, 2_000, 400)
    assert sum(seeded.statuses.values()) == 20 and seeded.open_count == 4
    # Where the product keeps Rasa's events by default: beside a SQLite file, else the same.
    if backend_of(db_url) == "sqlite":
        assert seeded.tracker_url.endswith("/tracker.db") and seeded.tracker_url != db_url
    else:
        assert seeded.tracker_url == db_url
    events = engine_for(seeded.tracker_url)
    inspector = sa.inspect(events)
    # Rasa's own table definition: its columns and its index on sender_id.
    assert {column["name"] for column in inspector.get_columns("events")} == {
        "id", "sender_id", "type_name", "timestamp", "intent_name", "action_name", "data",
    }  # fmt: skip
    assert sorted(ix["column_names"] for ix in inspector.get_indexes("events")) == [
        ["sender_id"], ["timestamp"], ["type_name", "timestamp", "intent_name", "sender_id"],
    ]  # fmt: skip
    with events.connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
        senders = connection.execute(
            sa.text("SELECT count(DISTINCT sender_id) FROM events")
        ).scalar_one()
    with engine_for(db_url).connect() as connection:
        statuses = dict(
            connection.execute(
                sa.select(Escalation.status, sa.func.count()).group_by(Escalation.status)
            ).all()
        )
        long_sender = connection.execute(
            sa.select(Escalation.sender_id).where(Escalation.id == seeded.long_id)
        ).scalar_one()
        agent = connection.execute(
            sa.select(StaffAccount.role).where(StaffAccount.name == AGENT)
        ).scalar_one()
        audits = connection.execute(sa.select(sa.func.count()).select_from(AuditLog)).scalar_one()
        replies = connection.execute(
            sa.select(sa.func.count()).select_from(StaffMessage)
        ).scalar_one()
    assert (count, senders) == (2_000, 20)
    assert statuses == seeded.statuses
    assert agent == "agent"
    assert audits > 20 and replies > 0
    dispose(db_url)
    dispose(seeded.tracker_url)
    reader = tracker_engine(seeded.tracker_url)
    with reader.connect() as connection:
        page = read_transcript(connection, long_sender, limit=1000)
        earlier = read_transcript(
            connection, long_sender, before_event_id=seeded.long_middle_event, limit=50
        )
        newer = read_transcript(connection, long_sender, after_event_id=seeded.long_last_event)
    reader.dispose()
    speakers = Counter(line.speaker for line in page.lines)
    assert set(speakers) == {"member", "assistant", "staff", "system"}
    assert page.lines[-1].masked_text == seeded.long_marker
    assert {line.staff for line in page.lines if line.speaker == "staff"} == {AGENT}
    kinds = {seg.field.kind for line in page.lines for seg in line.segments if seg.field}
    assert {"member_number", "birth_date", "phone"} <= kinds  # the verification is masked
    assert all(line.event_id < seeded.long_middle_event for line in earlier.lines)
    assert len(earlier.lines) == 50
    assert newer.lines == []


def test_the_console_gets_no_secret_from_the_environment_and_keeps_its_own(tmp_path, monkeypatch):
    for name in ("RASA_TOKEN", "PRIVACY_BOT_SECRET"):
        monkeypatch.setenv(name, "from-the-environment")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    var_dir = tmp_path / "console-var"
    with console_server(url, default_tracker_url(url), var_dir, "secrets-test") as base:
        assert requests.get(f"{base}/health", timeout=10).status_code == 200
    # As under the launcher: the token and the secret are files of its var dir.
    for name in ("rasa_token", "secret"):
        kept = var_dir / name
        assert kept.stat().st_mode & 0o077 == 0
        assert kept.read_text().strip() not in ("", "from-the-environment")


def test_each_sqlite_database_keeps_its_events_apart(tmp_path):
    # The product keeps them in tracker.db beside the app database: one folder each.
    (sqlite,) = backends(tmp_path, ["sqlite"])
    with sqlite.fresh_database("baseline") as small, sqlite.fresh_database("large") as large:
        assert small != large
        assert default_tracker_url(small) != default_tracker_url(large)


# --- one small run against the real console -------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_small_run_times_every_page_and_reports_sane_figures(backend, secret):
    if backend == "postgresql":
        postgres_base_url()  # skips, or fails under PRIVACY_BOT_REQUIRE_POSTGRES=1
    # More than 50 open escalations in the large one: its deep queue page is page 2.
    large = Scale(escalations=300, events=14_000, long_events=600, cases=200)
    baseline = Scale(escalations=10, events=1_200, long_events=600, cases=10)
    samples = 5
    results = run_console_benchmark(
        large, baseline, samples=samples, warmup=1, wanted=[backend], insight_samples=2
    )
    assert isinstance(results, ConsoleResults)
    (run,) = results.backends
    assert run.skipped is None and run.baseline is not None and run.large is not None
    assert run.large.pages["queue_deep"][0] == "/queue?page=2"
    assert run.baseline.pages["queue_deep"][0] == "/queue?page=1"
    for measured, scale in ((run.baseline, baseline), (run.large, large)):
        assert measured.seeded.escalations == scale.escalations
        assert measured.seeded.events == scale.events
        assert measured.seeded.long_events == scale.long_events
        assert set(measured.timings) == {*PAGES, *INSIGHT_PAGES}
        for key, timings in measured.timings.items():
            assert len(timings.seconds) == (2 if key in INSIGHT_PAGES else samples), key
            assert all(value > 0 for value in timings.seconds), key
            p50, p95 = timings.ms(50), timings.ms(95)
            assert p50 is not None and p95 is not None
            assert 0 < p50 <= p95 <= max(timings.seconds) * 1000, key
            if key.startswith("poll"):
                assert measured.sizes[key] == 0  # nothing new after the last line
            else:
                assert measured.sizes[key] > 1000, key
    for key in (*PAGES, *INSIGHT_PAGES):
        r50, r95 = run.ratios(key)
        assert r50 is not None and r95 is not None
        assert math.isfinite(r50) and r50 > 0 and math.isfinite(r95) and r95 > 0
    # How each database reads the pages' queries, from the statements the console sends.
    assert set(run.large.plans) == {
        "queue_deep", "long", "long_before", "poll", "poll_typical",
        "insights_90", "insights_90_app", "unanswered_30",
    }  # fmt: skip
    assert all(run.large.plans.values())
    if backend == "sqlite":  # no statistics: SQLite's plan does not depend on the data
        for key in ("long", "long_before", "poll", "poll_typical"):
            assert any("ix_events_sender_id" in line for line in run.large.plans[key]), key
        # The overview's counts come from its covering index, never from a table scan.
        plan = run.large.plans["insights_90"]
        assert any("COVERING INDEX ix_events_insights_time" in line for line in plan), plan
        assert any("ix_events_insights_not_stated" in line for line in plan), plan
        assert not any(line.startswith("SCAN events") for line in plan), plan
    text = report(results, ["- Date: 2026-11-24 01:00 UTC · took 0.5 min", "- Machine: nproc 2"])
    table_rows = [line for line in text.splitlines() if line.startswith(f"| {run.name} |")]
    assert len(table_rows) == len(PAGES) + len(INSIGHT_PAGES)
    assert "### Privacy officer's overview (issue 22)" in text
    assert all("×" in line for line in table_rows)
    assert "300 escalations" in text and "14,000" in text
    assert f"{run.name} large, plan of {PAGE_TITLES['long']}" in text
