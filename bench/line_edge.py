"""``python -m bench.line_edge``: LINE's burst at the edge alone, cold and on kept connections.

``bench.cluster`` measures the acknowledgement of a LINE burst inside the whole cluster,
where the rasa servers start the burst's turns while it is still arriving. This takes
them away: each round starts nothing but nginx (``deploy/nginx/cluster.conf.template``,
as ``make cluster`` fills it in) and LINE's intake (``bot.channels.line.intake``, as many
processes as ``make cluster`` starts), sends a burst of signed deliveries at once (the
burst is the intake's first: nginx opens its connections to the intake during it), then
a second burst on the connections nginx kept, and stops both. Each burst's bodies are
deleted from the inbox afterwards: no rasa server takes them here.

For each burst it prints nginx's ``$request_time`` (the acknowledgement as the edge
served it), how many were within issue 23's 50 ms, and the CPU each side used per
delivery: the intake's processes, nginx's workers and this client (``/proc``, in ticks
of 10 ms per process). What a cold burst costs beyond a kept one is the connections
nginx opens to the intake; what the three sides use together, on a machine's cores,
bounds how fast any burst can be acknowledged there.

Redis: ``PRIVACY_BOT_BENCH_EDGE_REDIS_URL`` (default db 13 of the local server).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import redis
import uvloop

from bench import cli
from bench.cluster import LINE_ACK_TARGET_S, request_times
from bench.cpu import cpu_seconds, group_members, used_between
from bench.line import burst_acks, new_message_requests
from bench.report import Machine, header, num, table
from bench.servers import LOOPBACK, child_env, free_port, local_url, server
from bench.stats import Timings
from bot.channels.line.inbox import inbox_key
from bot.cluster import nginx_config, start_nginx
from bot.core.heap import freeze_startup_objects
from bot.launcher import stop
from bot.settings import load_settings

logger = logging.getLogger(__name__)

REDIS_URL = os.environ.get("PRIVACY_BOT_BENCH_EDGE_REDIS_URL", "redis://127.0.0.1:6379/13")
WEBHOOK = "/webhooks/line/webhook"
TEXT = "保険証の記号と番号は何に使われますか"
LISTEN_STATE = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Burst:
    """One burst through the edge: nginx's times and the CPU each side used."""

    edge_s: list[float]  # nginx's $request_time of each acknowledged delivery
    statuses_ok: int  # answered 200 at the client
    deliveries: int
    intake_cpu_s: float
    nginx_cpu_s: float
    client_cpu_s: float

    def per_delivery_ms(self, seconds: float) -> float:
        """``seconds`` of CPU over the burst's deliveries, in ms each."""
        return seconds * 1000 / self.deliveries

    @property
    def within_target(self) -> int:
        """Deliveries acknowledged at the edge within issue 23's target."""
        return sum(1 for seconds in self.edge_s if seconds <= LINE_ACK_TARGET_S)


@dataclass(frozen=True)
class Round:
    """A cold burst, then the same size again on the connections nginx kept."""

    cold: Burst
    kept: Burst


def listeners(port: int, table_path: Path = Path("/proc/net/tcp")) -> int:
    """How many sockets listen on ``port`` (each ``SO_REUSEPORT`` process has its own)."""
    found = 0
    for line in table_path.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == LISTEN_STATE and fields[1].endswith(f":{port:04X}"):
            found += 1
    return found


@dataclass(frozen=True)
class Edge:
    """A running edge: where to send, whose CPU to read, where nginx logs."""

    webhook_url: str
    intake_pids: list[int]
    nginx_pgid: int
    access_log: Path


@contextlib.contextmanager
def running_edge(processes: int, secret: str) -> Iterator[Edge]:
    """The edge of ``make cluster``: nginx and ``processes`` intake processes.

    Every intake process listens (its own socket on the shared port) before nginx
    starts. The inbox is empty at the start; on the way out both are stopped and the
    bodies queued meanwhile deleted.
    """
    intake_port, public_port, actions_port, nowhere = (free_port() for _ in range(4))
    env = child_env(
        {
            "REDIS_URL": REDIS_URL,
            "LINE_CHANNEL_SECRET": secret,
            "LINE_INTAKE_PORT": str(intake_port),
        }
    )
    command = [sys.executable, "-m", "bot.channels.line.intake"]
    command += ["--reuse-port"] if processes > 1 else []
    health = f"{local_url(intake_port)}/webhooks/line/"
    empty_inbox()  # what an interrupted run left would count as this run's
    with contextlib.ExitStack() as stack:
        stack.callback(empty_inbox)
        prefix = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-edge-")))
        intakes = [
            stack.enter_context(server(f"line intake {n}", command, health, env, deadline_s=60))
            for n in range(1, processes + 1)
        ]
        wait_for_listeners(intake_port, processes)
        # The cluster's own nginx configuration. Its rasa servers and chat page are a
        # closed port: only LINE's webhook is sent here, and the intake answers it.
        dead = f"{LOOPBACK}:{nowhere}"
        config = nginx_config(
            prefix,
            f"{LOOPBACK}:{public_port}",
            [dead],
            dead,
            [dead],
            f"{LOOPBACK}:{actions_port}",
            f"{LOOPBACK}:{intake_port}",
        )
        nginx = start_nginx(prefix, config)
        stack.callback(stop, [nginx])
        wait_for_listeners(public_port, 1)
        yield Edge(
            f"{local_url(public_port)}{WEBHOOK}",
            [intake.pid for intake in intakes],
            nginx.pid,
            prefix / "access.log",
        )


def wait_for_listeners(port: int, wanted: int, timeout_s: float = 30.0) -> None:
    """Waits until ``wanted`` sockets listen on ``port``.

    Raises:
        RuntimeError: If they do not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while listeners(port) < wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{wanted} listener(s) on port {port} expected")
        time.sleep(0.05)


def empty_inbox() -> None:
    """Deletes the bodies the intake queued: no rasa server takes them here."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(inbox_key())
    finally:
        client.close()


# --- the bursts ----------------------------------------------------------------------


def burst(edge: Edge, deliveries: int, secret: str) -> Burst:
    """One burst through ``edge``: nginx's times and each side's CPU."""
    requests = new_message_requests(edge.webhook_url, deliveries, secret, [TEXT])
    log_start = edge.access_log.stat().st_size
    workers = list(group_members([edge.nginx_pgid]))
    intake_before, nginx_before = cpu_seconds(edge.intake_pids), cpu_seconds(workers)
    client_before = time.process_time()
    acks = uvloop.run(burst_acks(edge.webhook_url, requests))
    client_cpu_s = time.process_time() - client_before
    intake_cpu_s = used_between(intake_before, cpu_seconds(edge.intake_pids))
    nginx_cpu_s = used_between(nginx_before, cpu_seconds(workers))
    time.sleep(0.2)  # nginx writes a request's log line after its answer
    return Burst(
        edge_s=request_times(edge.access_log, log_start, WEBHOOK),
        statuses_ok=len(acks),
        deliveries=len(requests),
        intake_cpu_s=intake_cpu_s,
        nginx_cpu_s=nginx_cpu_s,
        client_cpu_s=client_cpu_s,
    )


def measure_round(processes: int, deliveries: int) -> Round:
    """A fresh edge: a cold burst, a quiet second, the burst again."""
    secret = secrets.token_hex(16)
    with running_edge(processes, secret) as edge:
        time.sleep(1)  # the intakes' start-up work done
        cold = burst(edge, deliveries, secret)
        time.sleep(1)
        kept = burst(edge, deliveries, secret)
    return Round(cold, kept)


# --- the report ------------------------------------------------------------------------


def report(rounds: Sequence[Round], processes: int, details: Sequence[str]) -> str:
    """The rounds' table and a summary, in Markdown."""
    target_ms = f"{LINE_ACK_TARGET_S * 1000:.0f}"

    def cells(one: Burst) -> list[str]:
        timings = Timings(one.edge_s)
        return [
            f"{num(timings.ms(50), '.0f')} / {num(timings.ms(95), '.0f')}",
            f"{one.within_target} of {len(one.edge_s)}",
            " / ".join(
                num(one.per_delivery_ms(seconds), ".2f")
                for seconds in (one.intake_cpu_s, one.nginx_cpu_s, one.client_cpu_s)
            ),
        ]

    rows = [
        [str(number), *cells(one.cold), *cells(one.kept)] for number, one in enumerate(rounds, 1)
    ]
    heads = [
        "round",
        "cold: edge p50 / p95 ms",
        f"cold: within {target_ms} ms",
        "cold: CPU per delivery ms, intake / nginx / client",
        "kept: edge p50 / p95 ms",
        f"kept: within {target_ms} ms",
        "kept: CPU per delivery ms, intake / nginx / client",
    ]

    def summary(label: str, bursts: list[Burst]) -> str:
        p95s = [Timings(one.edge_s).ms(95) or 0.0 for one in bursts]
        met = sum(1 for p95 in p95s if p95 <= LINE_ACK_TARGET_S * 1000)
        intake = statistics.median(one.per_delivery_ms(one.intake_cpu_s) for one in bursts)
        return (
            f"- {label}: edge p95 {min(p95s):.0f}–{max(p95s):.0f} ms, within {target_ms} ms "
            f"in {met} of {len(bursts)} bursts; the intake's CPU per delivery, median "
            f"{intake:.2f} ms"
        )

    return "\n".join(
        [
            *details,
            "",
            f"nginx (the cluster's configuration) and {processes} intake process(es), "
            "nothing else of the cluster; each round a fresh edge: a cold burst, then the "
            "same again on the connections nginx kept.",
            "",
            *table(heads, rows, "l" + "r" * (len(heads) - 1)),
            "",
            summary("cold bursts", [one.cold for one in rounds]),
            summary("kept connections", [one.kept for one in rounds]),
            "- acknowledged with 200 at the client: "
            + ", ".join(
                f"{one.cold.statuses_ok}+{one.kept.statuses_ok} of "
                f"{one.cold.deliveries + one.kept.deliveries}"
                for one in rounds
            ),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0 when every delivery was acknowledged, else 1."""
    parser = cli.parser("python -m bench.line_edge", __doc__)
    parser.add_argument("--rounds", type=cli.at_least(1), default=6)
    parser.add_argument("--deliveries", type=cli.at_least(2), default=200)
    parser.add_argument(
        "--processes", type=cli.at_least(1), default=load_settings().line_intake_processes,
        help="intake processes (default: as make cluster starts them)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def measure_and_print() -> int:
        machine, started = Machine.collect(), datetime.now(timezone.utc)
        # This process stands in for LINE's servers: a full collection of its heap would
        # stop the burst it sends (bot.core.heap).
        freeze_startup_objects()
        rounds = []
        for number in range(1, args.rounds + 1):
            logger.info("round %d of %d …", number, args.rounds)
            rounds.append(measure_round(args.processes, args.deliveries))
        print(report(rounds, args.processes, header(started, machine)))
        answered = all(
            one.cold.statuses_ok == one.cold.deliveries
            and one.kept.statuses_ok == one.kept.deliveries
            for one in rounds
        )
        return 0 if answered else 1

    return cli.run(measure_and_print)


if __name__ == "__main__":
    raise SystemExit(main())
