"""One and two replicas behind nginx, in the same run: ``python -m bench.cluster``.

The cluster starts as ``make cluster`` starts it (:func:`bot.cluster.cluster_running`:
each replica a rasa server and an action server, which the rasa servers reach through
nginx, the first with the chat page, the console and the worker; nginx the one public
port; the app database and the tracker store in PostgreSQL, locks and shared state in
Redis), first with one replica, then with two, each on a fresh PostgreSQL database
``privacy_bench_cluster_…`` (created and dropped here) and Redis db 11 (emptied before
and after). The LINE API is a stand-in on loopback (bench/line.py). On each, through
nginx:

1. ``--conversations`` REST conversations at once, ``--turns`` questions each, each
   waiting for its answer before the next: turns a second, p50/p95 turn latency,
   errors, the CPU time each process used meanwhile, and turns stored twice (user
   events in the tracker store beyond the messages sent);
2. ``--line-deliveries`` signed LINE webhook deliveries as one burst (every user's
   message at once, then a few redeliveries): the acknowledgement's p50/p95 and the
   time to the reply call at the stand-in; reply calls made twice, redeliveries
   answered. The burst is the intake's first (nginx opens its connections to the
   intake meanwhile); then the same again with new users, on the connections kept.
   Just before, the same burst's new messages go from the same client to
   :mod:`bench.bare_server`, which answers 200 and does nothing else: the baseline of
   the acknowledgement at the client on this machine;
3. ``--verifications`` identity verifications one after another: the time from the
   member's message that triggers the code (the birth date) to the SMS line in the demo
   outbox (``sent_at``, written by whichever deliverer claimed the row: the action
   server right after its commit, or the worker); codes written twice.

It prints a Markdown report with the ratios two replicas / one replica, and exits 1 when
anything failed or was duplicated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import aiohttp
import redis
import sqlalchemy as sa
import uvloop

from bench import cli
from bench.channels import QUESTIONS, rest_baseline, socket_view, web_scripts
from bench.cpu import cpu_seconds, group_members, machine_busy_seconds, used_between
from bench.line import (
    LineCounts,
    LineStandIn,
    burst_acks,
    count_line,
    line_environment,
    line_traffic,
    new_message_requests,
    plan_line,
)
from bench.report import DASH, Machine, header, num, table, times
from bench.rest import REST_WEBHOOK, post_message, send_conversations
from bench.servers import LOOPBACK, child_env, free_port, local_url, server
from bench.stats import Timings, ratio
from bot.cluster import RunningCluster, cluster_running
from bot.core.heap import freeze_startup_objects
from bot.launcher import train_if_needed
from bot.settings import load_settings

logger = logging.getLogger(__name__)

POSTGRES = os.environ.get("PRIVACY_BOT_BENCH_CLUSTER_POSTGRES", "postgresql://postgres@127.0.0.1")
REDIS_URL = os.environ.get("PRIVACY_BOT_BENCH_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/11")
DATABASE_PREFIX = "privacy_bench_cluster_"
LINE_ACK_TARGET_S = 0.050  # issue 23's target for the acknowledgement's p95
# 山田 太郎, the demo member: up to the message that makes the action server send a code.
VERIFICATION_TURNS = ("自分の登録内容を確認したいです", "記号1001 番号23")
CODE_TRIGGER = "昭和60年4月1日"
PHONE = "+819012345678"  # where his codes go
OUTBOX_POLL_S = 0.005
# Each server process by the module it runs (bot.launcher.running starts them).
PROCESS_NAMES = {
    "bot.rasa_server": "rasa server",
    "bot.action_server": "action server",
    "bot.worker": "worker",
    "bot.console": "console",
    "bot.channels.webpage": "chat page",
    "bot.channels.line.intake": "LINE intake",
}
INTAKE_NAME = PROCESS_NAMES["bot.channels.line.intake"]
# nginx's access line (deploy/nginx/cluster.conf.template): '... "POST /path HTTP/1.1"
# 200 upstream(s) 0.003 0.004', the last figures the last upstream's
# $upstream_response_time and $request_time, in seconds (ms resolution).
ACCESS_LINE = re.compile(r'"POST (\S+) HTTP/[\d.]+" (\d{3}) .* (\S+) ([\d.]+)$')
RANKS = ("replica", "nginx", "PostgreSQL", "benchmark")  # the CPU table's order


@dataclass(frozen=True)
class Sizes:
    """What a run sends (see the command line's options)."""

    conversations: int = 40
    turns: int = 10
    deliveries: int = 200
    verifications: int = 20
    timeout_s: float = 60.0
    # The burst to bench.bare_server before the first LINE burst (--no-baseline: none).
    baseline: bool = True


@dataclass(frozen=True)
class SmsCounts:
    """The verification codes of a run."""

    verifications: int
    errors: int  # turns that failed or got no answer, code not found in time
    trigger_s: list[float]  # the birth date's REST answer
    delivered_s: list[float]  # the birth date sent → the SMS line's sent_at
    lines: int  # SMS lines to the demo member in the outbox
    codes_twice: int  # lines repeating a code already written
    rows: dict[str, int]  # verification_code rows of outbound_messages, by status
    by_actions: int  # "sent (sms)" in the action servers' logs
    by_worker: int  # … in the worker's log

    @property
    def ok(self) -> bool:
        """Every code delivered once, nothing failed."""
        sent = self.rows.get("sent", 0)
        return not self.errors and not self.codes_twice and self.lines == sent == self.verifications


@dataclass(frozen=True)
class LineBurst:
    """One burst of LINE deliveries through the edge."""

    counts: LineCounts
    wall_s: float  # the first delivery → the last reply call
    # nginx's $request_time of each delivery: the acknowledgement as the edge served it,
    # without the benchmark client's own queueing.
    edge_ack_s: list[float]
    # Of that, the time its upstream (the intake) took: $upstream_response_time.
    intake_ack_s: list[float]
    # The CPU the intake's processes used from just before the burst to its last reply
    # (they do nothing else meanwhile; /proc counts in ticks of 10 ms per process).
    intake_cpu_s: float | None = None

    @property
    def intake_cpu_ms_per_delivery(self) -> float | None:
        """The intake's CPU per delivery sent, in ms (as bench.line_edge counts it)."""
        if self.intake_cpu_s is None or not self.counts.deliveries:
            return None
        return self.intake_cpu_s * 1000 / self.counts.deliveries


@dataclass
class ReplicaRun:
    """Everything measured on one cluster size."""

    replicas: int
    turns: Timings
    turns_stored_twice: int
    turns_not_stored: int
    cpu_s: dict[str, float]  # during the conversations, by process
    machine_busy_s: float  # every process of the machine, meanwhile
    line: LineBurst
    # The same burst again, nginx's connections to the intake now open (kept an hour).
    again: LineBurst
    # The burst's new messages to bench.bare_server instead, just before: at the client.
    bare_ack_s: list[float]
    sms: SmsCounts

    @property
    def ok(self) -> bool:
        """No error and no duplicate in any phase."""
        return (
            not self.turns.errors
            and not self.turns_stored_twice
            and not self.turns_not_stored
            and self.line.counts.ok
            and self.again.counts.ok
            and self.sms.ok
        )


# --- where the cluster keeps its state -----------------------------------------------------


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A new PostgreSQL database ``privacy_bench_cluster_<label>_…``, dropped afterwards."""
    admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    name = f"{DATABASE_PREFIX}{label}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def empty_redis() -> Iterator[str]:
    """Redis db 11, emptied before and after (the cluster's keys have no prefix of ours)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@contextmanager
def bench_cluster(replicas: int, label: str, model: Path) -> Iterator[RunningCluster]:
    """The cluster with ``replicas`` replicas on free ports and state of its own."""
    with (
        fresh_database(label) as database_url,
        empty_redis() as redis_url,
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder,
    ):
        settings = replace(
            load_settings(),  # the LINE settings from the environment (see run)
            var_dir=Path(folder),
            database_url=database_url,
            tracker_store_url=None,  # the app database, as `make cluster` has it
            redis_url=redis_url,
            lock_store_url=None,
            rasa_port=free_port(),
            action_port=free_port(),
            webchat_port=free_port(),
            console_port=free_port(),
            rasa_token=uuid.uuid4().hex,
            rest_enabled=True,
            # Every verification is the same demo member's, many a minute.
            verification_sms_per_member_day=1000,
            verification_sms_per_minute=100_000,
        )
        logger.info("starting the cluster with %d replica(s) …", replicas)
        with cluster_running(
            settings,
            model,
            public_port=free_port(),
            second_ports=(free_port(), free_port()),
            # A free port each: the one after another free port may be taken.
            actions_port=free_port(),
            intake_port=free_port(),
            replicas=replicas,
        ) as cluster:
            yield cluster


# --- CPU time of the cluster's processes ---------------------------------------------------


class CpuMeter:
    """Reads the CPU time of every process of a cluster, by a label per process."""

    def __init__(self, cluster: RunningCluster) -> None:
        """Names every process group of ``cluster`` and finds its database's backends."""
        self.groups: dict[int, str] = {}
        for number, replica in enumerate(cluster.replicas, 1):
            for process in replica.processes:
                module = str(process.args[2]) if isinstance(process.args, list) else ""
                name = PROCESS_NAMES.get(module, module)
                self.groups[process.pid] = f"replica {number}: {name}"
        self.groups[cluster.nginx.pid] = "nginx (master and workers)"
        self.database = sa.engine.make_url(cluster.replicas[0].settings.database_url).database
        self.admin = sa.create_engine(f"{POSTGRES}/postgres")

    def reading(self) -> dict[str, dict[int, float]]:
        """The CPU seconds so far of each process, by label."""
        by_label: dict[str, list[int]] = {label: [] for label in self.groups.values()}
        for pid, pgid in group_members(self.groups).items():
            by_label[self.groups[pgid]].append(pid)
        with self.admin.connect() as connection:
            backends = connection.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
                {"name": self.database},
            )
            by_label["PostgreSQL (the database's backends)"] = list(backends.scalars())
        by_label["benchmark client (this process)"] = [os.getpid()]
        return {label: cpu_seconds(pids) for label, pids in by_label.items()}

    def intake_seconds(self) -> dict[int, float]:
        """The CPU seconds so far of each of LINE's intake processes, by pid."""
        wanted = {pid for pid, label in self.groups.items() if label.endswith(INTAKE_NAME)}
        return cpu_seconds(group_members(wanted))

    def close(self) -> None:
        """Closes the connection to PostgreSQL."""
        self.admin.dispose()


# --- the phases ---------------------------------------------------------------------------


def edge(cluster: RunningCluster) -> str:
    """The cluster's public address (nginx), with the loopback address for a name."""
    return cluster.url.replace("localhost", LOOPBACK)


def rest_url(cluster: RunningCluster) -> str:
    """The REST channel through nginx."""
    return f"{edge(cluster)}{REST_WEBHOOK}"


def stored_turns(cluster: RunningCluster, prefix: str) -> dict[str, int]:
    """User events in the tracker store per conversation whose sender starts ``prefix``."""
    engine = sa.create_engine(cluster.replicas[0].settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT sender_id, count(*) FROM events WHERE type_name = 'user' "
                    "AND sender_id LIKE :pattern GROUP BY sender_id"
                ),
                {"pattern": f"rest:{prefix}-%"},
            ).all()
    finally:
        engine.dispose()
    return {str(sender): int(count) for sender, count in rows}


async def warm_up(
    rest: aiohttp.ClientSession,
    cluster: RunningCluster,
    stand_in: LineStandIn,
    secret: str,
) -> None:
    """One REST message and one LINE delivery straight to each replica: lazy loading."""
    run = uuid.uuid4().hex[:6]
    for number, replica in enumerate(cluster.replicas, 1):
        reply = await post_message(rest, replica.rest_url, f"warm-{run}-{number}", QUESTIONS[0], 60)
        if reply.error or not reply.messages:
            raise RuntimeError(f"replica {number} did not answer the warm-up message")
        probe = plan_line(1, 1, QUESTIONS, seed=secrets.randbits(32))
        webhook = f"{replica.rasa_url}/webhooks/line/webhook"
        await line_traffic(webhook, stand_in, probe, secret, 1, 60)
        if not await stand_in.wait_reply(probe[0].reply_token, 0):
            raise RuntimeError(f"replica {number} did not answer the LINE warm-up delivery")


def outbox_lines(path: Path, start: int) -> tuple[list[dict[str, str]], int]:
    """The outbox's complete lines from byte ``start`` on, and where the next one starts."""
    try:
        data = path.read_bytes()[start:]
    except FileNotFoundError:
        return [], start
    complete = data[: data.rfind(b"\n") + 1]
    lines = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line]
    return lines, start + len(complete)


async def verifications(
    rest: aiohttp.ClientSession, cluster: RunningCluster, count: int, timeout_s: float
) -> SmsCounts:
    """``count`` verifications of the demo member, one after another, each timed."""
    first = cluster.replicas[0]
    outbox, url, run = first.settings.outbox_path, rest_url(cluster), uuid.uuid4().hex[:6]
    _, offset = outbox_lines(outbox, 0)
    errors, trigger_s, delivered_s = 0, [], []
    for index in range(count):
        sender = f"bench-sms-{run}-{index}"
        replies = [
            await post_message(rest, url, sender, text, timeout_s) for text in VERIFICATION_TURNS
        ]
        sent_at = time.time()
        trigger = await post_message(rest, url, sender, CODE_TRIGGER, timeout_s)
        line: dict[str, str] | None = None
        while line is None and time.time() - sent_at < timeout_s:
            lines, offset = outbox_lines(outbox, offset)
            line = next((found for found in lines if found.get("to") == PHONE), None)
            if line is None:
                await asyncio.sleep(OUTBOX_POLL_S)
        code = re.search(r"\d{6}", line["text"]) if line else None
        if line is None or code is None:
            errors += 1
            continue
        delivered_s.append(datetime.fromisoformat(line["sent_at"]).timestamp() - sent_at)
        trigger_s.append(trigger.seconds)
        replies += [trigger, await post_message(rest, url, sender, code.group(), timeout_s)]
        errors += sum(1 for reply in replies if reply.error or not reply.messages)
    return count_sms(cluster, count, errors, trigger_s, delivered_s)


def count_sms(
    cluster: RunningCluster,
    count: int,
    errors: int,
    trigger_s: list[float],
    delivered_s: list[float],
) -> SmsCounts:
    """What the outbox file, the outbox table and the deliverers' logs say of the codes."""
    first = cluster.replicas[0]
    lines, _ = outbox_lines(first.settings.outbox_path, 0)
    texts = Counter(line["text"] for line in lines if line.get("to") == PHONE)
    engine = sa.create_engine(first.settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT status, count(*) FROM outbound_messages "
                    "WHERE purpose = 'verification_code' GROUP BY status"
                )
            ).all()
    finally:
        engine.dispose()
    logs = first.settings.var_dir / "logs"

    def sent_in(pattern: str) -> int:
        return sum(
            path.read_text("utf-8", errors="replace").count("sent (sms)")
            for path in logs.glob(pattern)
        )

    return SmsCounts(
        verifications=count,
        errors=errors,
        trigger_s=trigger_s,
        delivered_s=delivered_s,
        lines=sum(texts.values()),
        codes_twice=sum(times - 1 for times in texts.values()),
        rows={str(status): int(number) for status, number in rows},
        by_actions=sent_in("replica-*/actions.log"),
        by_worker=sent_in("replica-*/worker.log"),
    )


async def measure(
    cluster: RunningCluster,
    stand_in: LineStandIn,
    secret: str,
    sizes: Sizes,
    bare_url: str | None,
) -> ReplicaRun:
    """Every phase on a running cluster whose LINE API is ``stand_in``.

    ``bare_url``: :mod:`bench.bare_server`'s, for the baseline burst (None: no baseline).
    """
    run, replicas = uuid.uuid4().hex[:6], len(cluster.replicas)
    meter = CpuMeter(cluster)
    headers = cluster.replicas[0].rest_headers
    # No cap on the client's connections (aiohttp's default is 100): the conversations
    # must leave the client at once, not queue inside it.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers=headers
    ) as rest:
        await warm_up(rest, cluster, stand_in, secret)
        scripts = web_scripts(sizes.conversations, sizes.turns)
        prefix = f"bench-{run}"
        logger.info("%d replica(s): %d conversations at once …", replicas, len(scripts))
        before, busy_before = meter.reading(), machine_busy_seconds()
        replies, wall_s = await send_conversations(
            rest, rest_url(cluster), scripts, prefix, len(scripts), sizes.timeout_s
        )
        after, busy = meter.reading(), machine_busy_seconds() - busy_before
        turns, _ = rest_baseline(replies, wall_s, socket_view)
        sent = Counter(f"rest:{prefix}-{index}" for index, _ in replies)
        stored = stored_turns(cluster, prefix)
        twice = sum(max(0, stored.get(sender, 0) - n) for sender, n in sent.items())
        lost = sum(max(0, n - stored.get(sender, 0)) for sender, n in sent.items())

        logger.info("%d replica(s): the LINE burst to a bare server …", replicas)
        bare = await bare_burst(bare_url, secret, sizes) if bare_url else []
        await asyncio.sleep(1)  # the bare server's connections closed, as a quiet second
        logger.info("%d replica(s): %d LINE deliveries at once …", replicas, sizes.deliveries)
        line = await line_burst(cluster, stand_in, secret, sizes, meter)
        logger.info("%d replica(s): the LINE burst again …", replicas)
        again = await line_burst(cluster, stand_in, secret, sizes, meter)

        logger.info("%d replica(s): %d verifications …", replicas, sizes.verifications)
        sms = await verifications(rest, cluster, sizes.verifications, sizes.timeout_s)
    meter.close()
    cpu = {label: used_between(before.get(label, {}), pids) for label, pids in after.items()}
    return ReplicaRun(replicas, turns, twice, lost, cpu, busy, line, again, bare, sms)


async def line_burst(
    cluster: RunningCluster, stand_in: LineStandIn, secret: str, sizes: Sizes, meter: CpuMeter
) -> LineBurst:
    """One burst of new users through the edge."""
    plan = plan_line(sizes.deliveries, sizes.deliveries, QUESTIONS, secrets.randbits(32))
    webhook = f"{edge(cluster)}/webhooks/line/webhook"
    access_log = cluster.replicas[0].var_dir / "nginx" / "access.log"
    log_start = access_log.stat().st_size
    calls_before = len(stand_in.calls)
    intake_before = meter.intake_seconds()
    outcomes, wall_s = await line_traffic(
        webhook, stand_in, plan, secret, sizes.deliveries, sizes.timeout_s
    )
    intake_cpu_s = used_between(intake_before, meter.intake_seconds())
    await asyncio.sleep(3)  # late duplicates of a reply call would come now
    return LineBurst(
        counts=count_line(plan, outcomes, stand_in.calls[calls_before:], {}, sizes.timeout_s),
        wall_s=wall_s,
        edge_ack_s=request_times(access_log, log_start, "/webhooks/line/webhook"),
        intake_ack_s=request_times(access_log, log_start, "/webhooks/line/webhook", upstream=True),
        intake_cpu_s=intake_cpu_s,
    )


@contextmanager
def bare_server(wanted: bool) -> Iterator[str | None]:
    """:mod:`bench.bare_server` on a free loopback port: its URL; unless ``wanted``, None."""
    if not wanted:
        yield None
        return
    port = free_port()
    command = [sys.executable, "-m", "bench.bare_server", str(port)]
    with server("bare server", command, f"{local_url(port)}/", child_env(), deadline_s=30):
        yield local_url(port)


async def bare_burst(url: str, secret: str, sizes: Sizes) -> list[float]:
    """The burst's new messages, prepared as for the edge, sent at once to ``url``.

    ``url`` is :mod:`bench.bare_server`'s: the client-side acknowledgement of each, with
    nothing but the machine, the kernel and this client in it.
    """
    webhook = f"{url}/webhooks/line/webhook"
    requests = new_message_requests(webhook, sizes.deliveries, secret, QUESTIONS)
    return await burst_acks(webhook, requests)


def request_times(access_log: Path, start: int, path: str, upstream: bool = False) -> list[float]:
    """The ``$request_time`` (s) nginx logged for POSTs to ``path`` from byte ``start`` on.

    With ``upstream``, the last upstream's ``$upstream_response_time`` instead, where
    one answered (``-`` when none did).
    """
    with access_log.open("rb") as log:
        log.seek(start)
        lines = log.read().decode("utf-8", "replace").splitlines()
    found = [ACCESS_LINE.search(line) for line in lines]
    figures = [match.group(4 - upstream) for match in found if match and match.group(1) == path]
    return [float(figure) for figure in figures if figure.replace(".", "", 1).isdigit()]


def run(sizes: Sizes) -> tuple[list[ReplicaRun], str]:
    """One replica, then two, in the same run: the results and the report."""
    machine, started = Machine.collect(), datetime.now(timezone.utc)
    secret, access_token = secrets.token_hex(16), secrets.token_hex(24)
    stand_in, stand_in_port = LineStandIn(access_token), free_port()
    # The servers read the LINE channel's settings from the environment they start in.
    line_env = line_environment(secret, access_token, stand_in_port)
    results: list[ReplicaRun] = []

    async def on(cluster: RunningCluster, bare_url: str | None) -> ReplicaRun:
        # The client stands in for LINE's servers and the members: a full collection of
        # its own heap (up to 95 ms) would stop the burst it sends (bot.core.heap).
        freeze_startup_objects()
        await stand_in.start(stand_in_port)
        try:
            return await measure(cluster, stand_in, secret, sizes, bare_url)
        finally:
            await stand_in.close()

    model = train_if_needed()
    with mock.patch.dict(os.environ, line_env), bare_server(sizes.baseline) as bare_url:
        for replicas, label in ((1, "one"), (2, "two")):
            with bench_cluster(replicas, label, model) as cluster:
                # uvloop (Sanic's, installed with Rasa): the client shares the cluster's
                # cores, and asyncio's own loop spends more of them on each connection.
                results.append(uvloop.run(on(cluster, bare_url)))
    return results, report(results, sizes, header(started, machine))


# --- the report ---------------------------------------------------------------------------


def _ms(values: Sequence[float], pct: float) -> str:
    return num(Timings(list(values)).ms(pct), ",.1f")


def report(results: Sequence[ReplicaRun], sizes: Sizes, header_lines: Sequence[str]) -> str:
    """The Markdown report of a run (one replica first, then two)."""
    settings = load_settings()  # as bench_cluster started the clusters
    heads = [f"{run.replicas} replica{'s' if run.replicas > 1 else ''}" for run in results]
    one, two = results[0], results[-1]
    turn_rows = []
    for run in results:
        cpu_total = sum(seconds for label, seconds in run.cpu_s.items() if "client" not in label)
        turn_rows.append(
            [
                str(run.replicas),
                f"{run.turns.ok} of {run.turns.ok + run.turns.errors}",
                str(run.turns.errors),
                f"{run.turns_stored_twice} / {run.turns_not_stored}",
                num(run.turns.wall_s, ".1f"),
                num(run.turns.per_second, ".2f"),
                num(run.turns.ms(50), ",.0f"),
                num(run.turns.ms(95), ",.0f"),
                num(run.turns.max_ms, ",.0f"),
                num(cpu_total, ".1f"),
                num(ratio(cpu_total * 1000, run.turns.ok), ",.0f"),
                num(ratio(run.machine_busy_s, run.turns.wall_s), ".2f"),
            ]
        )
    labels = sorted({label for run in results for label in run.cpu_s}, key=_process_order)
    cpu_rows = [
        [
            label,
            *(
                f"{run.cpu_s[label]:.1f} s ({run.cpu_s[label] / run.turns.wall_s:.0%})"
                if label in run.cpu_s and run.turns.wall_s
                else DASH
                for run in results
            ),
        ]
        for label in labels
    ]

    def row(label: str, figure: Callable[[ReplicaRun], str]) -> list[str]:
        return [label, *(figure(run) for run in results)]

    def spread(values: Sequence[float], *pcts: float) -> str:
        return " / ".join(_ms(values, pct) for pct in pcts)

    target_ms = f"{LINE_ACK_TARGET_S * 1000:.0f}"

    def burst_rows(burst: Callable[[ReplicaRun], LineBurst]) -> list[list[str]]:
        return [
            row(
                "deliveries acknowledged (HTTP 200)",
                lambda r: f"{burst(r).counts.acknowledged} of {burst(r).counts.deliveries}",
            ),
            row(
                "acknowledgement at the edge (nginx $request_time) p50 / p95 / max ms",
                lambda r: spread(burst(r).edge_ack_s, 50, 95, 100),
            ),
            row(
                "of which at the intake (nginx $upstream_response_time) p50 / p95 / max ms",
                lambda r: spread(burst(r).intake_ack_s, 50, 95, 100),
            ),
            row(
                f"acknowledged within {target_ms} ms at the edge",
                lambda r: (
                    f"{_within(burst(r).edge_ack_s, LINE_ACK_TARGET_S)} "
                    f"of {len(burst(r).edge_ack_s)}"
                ),
            ),
            row(
                "the intake's CPU per delivery (all its processes) ms",
                lambda r: num(burst(r).intake_cpu_ms_per_delivery, ".2f"),
            ),
            row(
                "acknowledgement at the client p50 / p95 / max ms",
                lambda r: spread(burst(r).counts.ack_s, 50, 95, 100),
            ),
            row(
                "… at the client, p95 over the bare server's (baseline below)",
                lambda r: times(
                    ratio(Timings(burst(r).counts.ack_s).ms(95), Timings(r.bare_ack_s).ms(95))
                ),
            ),
            row(
                f"acknowledged within {target_ms} ms at the client",
                lambda r: (
                    f"{_within(burst(r).counts.ack_s, LINE_ACK_TARGET_S)} "
                    f"of {burst(r).counts.deliveries}"
                ),
            ),
            row(
                "reply calls received",
                lambda r: (
                    f"{burst(r).counts.replies_received} of {burst(r).counts.replies_expected}"
                ),
            ),
            row(
                "delivery sent → reply call p50 / p95 / max ms",
                lambda r: spread(burst(r).counts.reply_s, 50, 95, 100),
            ),
            row(
                "the burst's last reply call, s after the first delivery",
                lambda r: num(burst(r).wall_s, ".1f"),
            ),
            row("missing replies", lambda r: str(burst(r).counts.missing)),
            row(
                "duplicate reply calls (same replyToken)",
                lambda r: str(burst(r).counts.duplicate_calls),
            ),
            row(
                "redeliveries answered again",
                lambda r: (
                    f"{burst(r).counts.redeliveries_answered} of {burst(r).counts.redeliveries}"
                ),
            ),
            row("push calls", lambda r: str(burst(r).counts.pushes)),
        ]

    sms_rows = [
        row("verifications", lambda r: str(r.sms.verifications)),
        row("failed turns or codes not delivered", lambda r: str(r.sms.errors)),
        row(
            "birth date sent → SMS in the outbox p50 / p95 / max ms",
            lambda r: spread(r.sms.delivered_s, 50, 95, 100),
        ),
        row(
            "birth date sent → REST answer p50 / p95 ms", lambda r: spread(r.sms.trigger_s, 50, 95)
        ),
        row(
            "SMS lines in the outbox / codes written twice",
            lambda r: f"{r.sms.lines} / {r.sms.codes_twice}",
        ),
        row(
            "code rows by status",
            lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r.sms.rows.items())) or DASH,
        ),
        row(
            "sent by the action servers / by the worker",
            lambda r: f"{r.sms.by_actions} / {r.sms.by_worker}",
        ),
    ]
    cpu_per_turn = [
        ratio(sum(s for label, s in r.cpu_s.items() if "client" not in label), r.turns.ok)
        for r in results
    ]
    ceiling = [ratio(len(os.sched_getaffinity(0)), per_turn) for per_turn in cpu_per_turn]
    verdict = "yes" if all(run.ok for run in results) else "**NO** (see the counts above)"
    lines = [
        "## Several replicas (make bench-cluster)",
        "",
        *header_lines,
        "- Cluster: `bot.cluster.cluster_running` with one replica, then with two (each a "
        "rasa server and an action server, reached through nginx; the first also the chat "
        "page, the console and the worker), nginx the one port, PostgreSQL (a fresh "
        "database each) and Redis db 11; the LINE API a stand-in on loopback. Everything "
        "through nginx.",
        f"- Conversations: {sizes.conversations} REST conversations at once, {sizes.turns} "
        "policy questions each, each waiting for its answer.",
        f"- LINE: {sizes.deliveries} signed deliveries as one burst (every user's message "
        "at once, then the redeliveries), acknowledged by the intake "
        f"({settings.line_intake_processes} process(es) on one port; the rasa and action "
        f"servers at nice {settings.cluster_turn_nice}: `LINE_INTAKE_PROCESSES`, "
        "`CLUSTER_TURN_NICE`; nginx passes a delivery to a rasa server only when the intake "
        "fails). The acknowledgement at the edge is nginx's "
        "`$request_time` (first byte read to last byte sent); at the client it also holds "
        "the time this one Python process takes to open the burst's connections and send it "
        "(signed before the burst and written as raw HTTP/1.1 on a new connection each, on "
        "uvloop: bench/line.py). The burst is the intake's first: nginx opens its "
        "connections to the intake during it. Then the same burst again, with new users, "
        "on the connections nginx has kept (for an hour, as after any earlier burst "
        "within it).",
        f"- SMS: {sizes.verifications} verifications of the demo member one after another; "
        "the time is from sending the birth date to the `sent_at` of the code's line in the "
        "demo outbox.",
        "",
        f"### {sizes.conversations} conversations at once",
        "",
        *table(
            [
                "replicas",
                "answered",
                "errors",
                "stored twice / not stored",
                "wall s",
                "turns/s",
                "p50 ms",
                "p95 ms",
                "max ms",
                "cluster CPU s",
                "CPU ms/turn",
                "machine busy (cores)",
            ],
            turn_rows,
            "rrrrrrrrrrrr",
        ),
        "",
        f"Two replicas / one: throughput {times(ratio(two.turns.per_second, one.turns.per_second))}"
        f", p50 {times(ratio(two.turns.ms(50), one.turns.ms(50)))}, "
        f"p95 {times(ratio(two.turns.ms(95), one.turns.ms(95)))}. "
        "Cluster CPU: every process below but the benchmark client; machine busy: CPU "
        "seconds of every process on the machine (other work included) per second.",
        "",
        "CPU time during the conversations (share of one core over the phase):",
        "",
        *table(["process", *heads], cpu_rows, "l" + "r" * len(heads)),
        "",
        "At the CPU time per turn measured, all "
        f"{len(os.sched_getaffinity(0))} cores busy would carry at most "
        + " / ".join(
            f"{num(found, '.1f')} turns/s ({head})"
            for found, head in zip(ceiling, heads, strict=True)
        )
        + ".",
        "",
        "### LINE burst",
        "",
        *table(["figure", *heads], burst_rows(lambda r: r.line), "l" + "r" * len(heads)),
        "",
        "### The burst again, on the connections to the intake nginx kept",
        "",
        *table(["figure", *heads], burst_rows(lambda r: r.again), "l" + "r" * len(heads)),
        "",
        "Baseline, just before the first burst (the cluster up and idle): the same "
        "burst's new messages from the same client to `bench.bare_server`, which answers "
        "200 and does nothing else (aiohttp on uvloop, one process, as the intake is "
        "served), at the client p50 / p95 / max ms: "
        + " · ".join(
            f"{spread(run.bare_ack_s, 50, 95, 100)} ({head}; {len(run.bare_ack_s)} answered)"
            for run, head in zip(results, heads, strict=True)
        )
        + ". What this server takes is the machine's, the kernel's and the client's share "
        "of an acknowledgement; the rest is nginx's and the intake's.",
        "",
        "### Verification code by SMS",
        "",
        *table(["figure", *heads], sms_rows, "l" + "r" * len(heads)),
        "",
        f"No error and no duplicate in any phase: {verdict}",
    ]
    return "\n".join(lines)


def _within(values: Sequence[float], limit: float) -> int:
    return sum(1 for value in values if value <= limit)


def _process_order(label: str) -> tuple[int, str]:
    """Replicas first, then nginx, PostgreSQL and the client."""
    rank = next((place for place, start in enumerate(RANKS) if label.startswith(start)), 0)
    return (rank, label)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 when nothing failed or was duplicated, else 1."""
    parser = cli.parser("python -m bench.cluster", __doc__)
    parser.add_argument("--conversations", type=cli.at_least(1), default=40)
    parser.add_argument("--turns", type=cli.at_least(1), default=10, help="per conversation")
    parser.add_argument("--line-deliveries", type=cli.at_least(2), default=200)
    parser.add_argument("--verifications", type=cli.at_least(1), default=20)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a reply")
    parser.add_argument(
        "--no-baseline", action="store_true",
        help="no burst to bench.bare_server before the first LINE burst",
    )  # fmt: skip
    args = parser.parse_args(argv)
    sizes = Sizes(
        args.conversations,
        args.turns,
        args.line_deliveries,
        args.verifications,
        args.timeout,
        baseline=not args.no_baseline,
    )

    def measure_and_print() -> int:
        results, text = run(sizes)
        print(text)
        return 0 if all(result.ok for result in results) else 1

    return cli.run(measure_and_print)


if __name__ == "__main__":
    raise SystemExit(main())
