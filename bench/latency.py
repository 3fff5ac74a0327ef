"""REST latency, throughput, start-up and peak memory of two assistants, for `python -m bench`.

Each assistant is trained in full (timed), served, sent a fixed seeded sample of
messages (a warm-up, one sequential conversation, then concurrent conversations) and
stopped; one at a time, so that they never share the machine. The product's servers
start from its own entry points, its secrets in files of the run's var dir and every
REST call with the HTTP API token; `rasa init`'s are stock `rasa run` with Rasa's REST
channel.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.nlu import holdout_texts
from bench.report import DASH, num, table
from bench.rest import REST_WEBHOOK, Reply, send_conversations
from bench.servers import (
    LOOPBACK,
    VAR_DIR,
    ProcessGroup,
    child_env,
    free_port,
    local_url,
    run_command,
    server,
)
from bench.stats import Timings
from bench.training import COMMAND_TIMEOUT_S, TrainingRun, rasa_command, train
from bot.settings import PROJECT_ROOT, write_private

logger = logging.getLogger(__name__)

RASA_INIT_DIR = VAR_DIR / "rasa-init"
PRODUCT_REST_CHANNEL = "bot.channels.rest.OperatorRestInput"  # as credentials.yml names it
PRODUCT_NOTE = (
    "servers as `make run` starts them: `python -m bot.action_server` (every call with the "
    "shared secret) and `python -m bot.rasa_server` (API token from the var dir); REST "
    "channel `bot.channels.rest.OperatorRestInput`, every request with the token as a bearer "
    "header, its guard's rate limit raised to the longest conversation sent; tracker and "
    "lock store in memory"
)
RASA_INIT_NOTE = (
    "no action server: `rasa init` leaves the action endpoint commented out, so only its "
    "rasa server runs; Rasa's stock REST channel, no token"
)
# English messages that match the intents of the `rasa init` assistant.
RASA_INIT_MESSAGES = (
    "hello", "hi there", "good morning", "hey", "I am sad", "I feel very unhappy today",
    "not good", "great", "I am feeling very good", "amazing", "goodbye", "bye bye",
    "see you later", "are you a bot?", "am I talking to a human?", "yes", "of course", "no",
    "not really", "that sounds good",
)  # fmt: skip
SEED = 20240601  # of the message sample
REQUEST_TIMEOUT_S = 30.0
PHASE_DEADLINE_S = 300.0  # no request of a measuring phase starts later


@dataclass(frozen=True)
class Settings:
    """How many messages each assistant is sent (a `--quick` run: fewer)."""

    quick: bool = False
    sequential_messages: int = 200  # in the one sequential conversation
    conversations: int = 20  # at once, in the concurrent phase
    messages_per_conversation: int = 10
    warmup_messages: int = 5  # before measuring

    @property
    def concurrent_messages(self) -> int:
        """Messages of the concurrent phase in all."""
        return self.conversations * self.messages_per_conversation


def seeded_sample(pool: Sequence[str], count: int, seed: int) -> list[str]:
    """``count`` items of ``pool``, shuffled with ``seed``: every item before any repeats."""
    if not pool:
        raise ValueError("cannot sample from an empty pool")
    rng = random.Random(seed)
    sample: list[str] = []
    while len(sample) < count:
        batch = list(pool)
        rng.shuffle(batch)
        sample.extend(batch[: count - len(sample)])
    return sample


@dataclass(frozen=True)
class MessagePlan:
    """Every message one assistant is sent: warm-up, sequential, concurrent conversations."""

    warmup: list[str]
    sequential: list[str]
    concurrent: list[list[str]]

    @property
    def longest_conversation(self) -> int:
        """The most messages any one conversation sends (at least 1)."""
        everyone = (self.warmup, self.sequential, *self.concurrent)
        return max(1, *(len(messages) for messages in everyone))


def plan_messages(pool: Sequence[str], settings: Settings) -> MessagePlan:
    """Draws the plan from ``pool``: the same pool and settings give the same plan."""
    ordered = sorted(set(pool))
    concurrent = seeded_sample(ordered, settings.concurrent_messages, SEED + 1)
    size = settings.messages_per_conversation
    return MessagePlan(
        warmup=seeded_sample(ordered, settings.warmup_messages, SEED + 2),
        sequential=seeded_sample(ordered, settings.sequential_messages, SEED),
        concurrent=[concurrent[start : start + size] for start in range(0, len(concurrent), size)],
    )


@dataclass
class RestPhase(Timings):
    """A phase's timings, the messages it meant to send and the answers with no message."""

    planned: int = 0
    empty_replies: int = 0


@dataclass(frozen=True)
class MemoryPeak:
    """Peak resident memory (VmHWM) of one server's process group."""

    process: str
    peak_mib: float
    processes: int


@dataclass
class SystemRun:
    """Everything measured of one assistant's servers."""

    system: str
    startup_s: dict[str, float] = field(default_factory=dict)
    sequential: RestPhase | None = None
    concurrent: RestPhase | None = None
    memory: list[MemoryPeak] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Served:
    """An assistant's running servers: its REST webhook, what each request carries."""

    url: str
    headers: dict[str, str]
    processes: list[ProcessGroup]  # the rasa server first


def run_conversations(
    served: Served, conversations: Sequence[Sequence[str]], sender_prefix: str
) -> RestPhase:
    """Runs every conversation at once, each sending its messages one after another."""
    planned = sum(len(messages) for messages in conversations)
    logger.info("sending %d messages in %d conversation(s)", planned, len(conversations))

    async def drive() -> tuple[dict[tuple[int, int], Reply], float]:
        async with aiohttp.ClientSession(headers=served.headers) as http:
            return await send_conversations(
                http,
                served.url,
                conversations,
                sender_prefix,
                len(conversations),
                REQUEST_TIMEOUT_S,
                PHASE_DEADLINE_S,
            )

    replies, wall_s = asyncio.run(drive())
    phase = RestPhase(wall_s=wall_s, planned=planned)
    for reply in replies.values():
        if reply.error is not None:
            phase.fail(reply.error)
        else:
            phase.seconds.append(reply.seconds)
            phase.empty_replies += not reply.messages
    p95 = f"{phase.ms(95):.0f}" if phase.ok else "-"
    logger.info("%d/%d answered, p95 %s ms", phase.ok, planned, p95)
    return phase


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    return dict(loaded) if isinstance(loaded, dict) else {}


def _write_server_files(
    directory: Path, endpoints: Mapping[str, Any], credentials: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Writes a rasa server's endpoints and credentials, readable by this user only."""
    paths = directory / "endpoints.yml", directory / "credentials.yml"
    for path, content in zip(paths, (endpoints, credentials), strict=True):
        write_private(path, yaml.safe_dump(dict(content), sort_keys=True))
    return paths


def product_env(var_dir: Path, action_port: int, rasa_port: int) -> dict[str, str]:
    """The product's servers' environment: own var dir, database and ports, REST on."""
    return child_env(
        {
            "PRIVACY_BOT_VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{var_dir / 'app.db'}",
            "ACTION_PORT": str(action_port),
            "RASA_PORT": str(rasa_port),
            "PRIVACY_BOT_BIND_HOST": LOOPBACK,
            "PRIVACY_BOT_REST": "true",
        }
    )


def product_server_files(
    env: Mapping[str, str], directory: Path, longest_conversation: int
) -> tuple[Path, Path, dict[str, str]]:
    """The product's database and rasa server files: endpoints, credentials, REST headers.

    The endpoints are the project's endpoints.yml with the launcher's action endpoint
    (its secret as a bearer header); tracker and lock store stay in memory. The
    credentials open only the product's REST channel, its guard's rate limit raised to
    ``longest_conversation``: a refused message would be timed as an answer.
    """
    from bot.action_server import bearer
    from bot.launcher import prepare_database, write_endpoints
    from bot.settings import ensure_rasa_token, load_settings

    product = load_settings(dict(env))
    prepare_database(product)
    endpoints = _read_yaml(PROJECT_ROOT / "endpoints.yml")
    endpoints["action_endpoint"] = _read_yaml(write_endpoints(product))["action_endpoint"]
    credentials = {PRODUCT_REST_CHANNEL: {"max_messages_per_minute": longest_conversation}}
    paths = _write_server_files(directory, endpoints, credentials)
    return *paths, {"Authorization": bearer(ensure_rasa_token(product))}


def product_rasa_server_command(model: Path, endpoints: Path, credentials: Path) -> list[str]:
    """The product's rasa server as the launcher starts it (its API token from the var dir)."""
    return [
        *(sys.executable, "-m", "bot.rasa_server", "--model", str(model)),
        *("--endpoints", str(endpoints), "--credentials", str(credentials)),
    ]


@contextmanager
def product_servers(model: Path, run_dir: Path, plan: MessagePlan) -> Iterator[Served]:
    """The product's action and rasa servers, from its own entry points."""
    action_port, rasa_port = free_port(), free_port()
    env = product_env(run_dir / "var", action_port, rasa_port)
    files = product_server_files(env, run_dir / "servers" / "product", plan.longest_conversation)
    endpoints, credentials, headers = files
    action_server = [sys.executable, "-m", "bot.action_server"]
    rasa_server = product_rasa_server_command(model, endpoints, credentials)
    actions_ready, rasa_ready = f"{local_url(action_port)}/health", f"{local_url(rasa_port)}/"
    with (
        server("product action server", action_server, actions_ready, env) as actions,
        server("product rasa server", rasa_server, rasa_ready, env) as rasa,
    ):
        yield Served(local_url(rasa_port) + REST_WEBHOOK, headers, [rasa, actions])


def ensure_rasa_init_project() -> str | None:
    """Creates var/bench/rasa-init with `rasa init` unless this Rasa did; a note if it did."""
    from importlib.metadata import version

    marker = RASA_INIT_DIR / ".bench-rasa-version"
    if marker.exists() and marker.read_text().strip() == version("rasa"):
        return None
    shutil.rmtree(RASA_INIT_DIR, ignore_errors=True)
    RASA_INIT_DIR.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="cache-", dir=VAR_DIR) as cache:
        seconds = run_command(
            "rasa init",
            rasa_command("init", "--no-prompt", "--init-dir", str(RASA_INIT_DIR)),
            child_env({"RASA_CACHE_DIRECTORY": cache}),
            COMMAND_TIMEOUT_S,
            cwd=VAR_DIR,
        )
    marker.write_text(version("rasa") + "\n")
    return f"`rasa init --no-prompt` created var/bench/rasa-init in this run ({seconds:.0f} s)."


def rasa_init_server_files(directory: Path) -> tuple[Path, Path]:
    """`rasa init`'s endpoints without the (commented-out) action endpoint; Rasa's REST."""
    endpoints = _read_yaml(RASA_INIT_DIR / "endpoints.yml")
    endpoints.pop("action_endpoint", None)
    return _write_server_files(directory, endpoints, {"rest": None})


@contextmanager
def rasa_init_server(model: Path, run_dir: Path) -> Iterator[Served]:
    """`rasa init`'s stock rasa server: `rasa run` in its project."""
    endpoints, credentials = rasa_init_server_files(run_dir / "servers" / "rasa-init")
    port = free_port()
    command = rasa_command("run", "--enable-api", "--model", str(model))
    command += ["--endpoints", str(endpoints), "--credentials", str(credentials)]
    command += ["--interface", LOOPBACK, "--port", str(port)]
    ready = f"{local_url(port)}/"
    with server("rasa-init rasa server", command, ready, child_env(), cwd=RASA_INIT_DIR) as rasa:
        yield Served(local_url(port) + REST_WEBHOOK, {}, [rasa])


def measure(served: Served, plan: MessagePlan, run: SystemRun, sender_prefix: str) -> None:
    """Sends the plan's warm-up, sequential and concurrent messages; samples memory."""
    warmup = run_conversations(served, [plan.warmup], f"{sender_prefix}-warmup")
    if warmup.ok < len(plan.warmup):
        run.notes.append(f"warm-up: {warmup.ok}/{len(plan.warmup)} messages answered")
    for process in served.processes:
        process.sample_memory()
    run.sequential = run_conversations(served, [plan.sequential], f"{sender_prefix}-seq")
    for process in served.processes:
        process.sample_memory()
    run.concurrent = run_conversations(served, plan.concurrent, f"{sender_prefix}-conc")


def benchmark(key: str, run_dir: Path, settings: Settings) -> tuple[SystemRun, TrainingRun]:
    """Trains one assistant ("product" or "rasa-init"), serves it, measures it, stops it."""
    project = PROJECT_ROOT if key == "product" else RASA_INIT_DIR
    model, training = train(
        f"full-{key}",
        project_dir=project,
        config=project / "config.yml",
        data=project / "data",
        domain=project / "domain.yml",
        out_dir=run_dir / "models",
    )
    if key == "product":
        run = SystemRun("product", notes=[PRODUCT_NOTE])
        plan = plan_messages(holdout_texts(), settings)
        servers = product_servers(model, run_dir, plan)
    else:
        run = SystemRun("rasa init", notes=[RASA_INIT_NOTE])
        plan = plan_messages(RASA_INIT_MESSAGES, settings)
        servers = rasa_init_server(model, run_dir)
    with servers as served:
        run.startup_s = {process.name: process.startup_s for process in served.processes}
        measure(served, plan, run, f"bench-{run_dir.name}-{key}")
    run.memory = [
        MemoryPeak(process.name, process.peak_mib, process.processes_seen)
        for process in served.processes
    ]
    return run, training


def section(settings: Settings, systems: Sequence[SystemRun]) -> list[str]:
    """The report's latency section."""
    concurrency = f"{settings.conversations} concurrent conversations × "
    concurrency += str(settings.messages_per_conversation)
    lines = [
        "",
        "## 2. Latency through the REST channel",
        "",
        "- `POST /webhooks/rest/webhook` on 127.0.0.1, one server at a time, after "
        f"{settings.warmup_messages} warm-up messages; request timeout "
        f"{REQUEST_TIMEOUT_S:.0f} s, phase deadline {PHASE_DEADLINE_S:.0f} s.",
        "- p50/p95/mean are per message (successful requests); msg/s is answered messages "
        "per second of the phase's wall time. 'empty' counts replies with no bot message.",
    ]
    rows = []
    for run in systems:
        phases = (("1 conversation, sequential", run.sequential), (concurrency, run.concurrent))
        for load, phase in phases:
            if phase is None:
                rows.append([run.system, load, *([DASH] * 7)])
                continue
            rows.append(
                [
                    run.system,
                    load,
                    f"{phase.ok}/{phase.planned}",
                    str(phase.errors),
                    str(phase.empty_replies),
                    num(phase.ms(50), ".1f"),
                    num(phase.ms(95), ".1f"),
                    num(phase.mean_ms, ".1f"),
                    num(phase.per_second, ".2f"),
                ]
            )
    if rows:
        header = ["assistant", "load", "answered", "errors", "empty", "p50 ms", "p95 ms"]
        lines += ["", *table([*header, "mean ms", "msg/s"], rows, "llrrrrrrr"), ""]
    for run in systems:
        startup = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.startup_s.items())
        details = [*run.notes, f"ready after: {startup}" if startup else ""]
        for phase in (run.sequential, run.concurrent):
            if phase and phase.failures:
                kinds = ", ".join(f"{kind} × {count}" for kind, count in phase.failures.items())
                details.append(f"errors: {kinds}")
        lines.append(f"- {run.system}: " + "; ".join(detail for detail in details if detail) + ".")
    return lines


def memory_section(systems: Sequence[SystemRun]) -> list[str]:
    """The report's peak memory section."""
    lines = ["", "## 4. Peak memory of the servers", ""]
    peaks = [peak for run in systems for peak in run.memory]
    rows = [[peak.process, num(peak.peak_mib, ".0f"), str(peak.processes)] for peak in peaks]
    if not rows:
        return [*lines, "No server ran."]
    return [
        *lines,
        *table(["process", "VmHWM MiB", "processes"], rows, "lrr"),
        "",
        "VmHWM from /proc/<pid>/status, summed over the processes of the server's process "
        "group (children included), sampled during the run and before stopping.",
    ]
