"""The two assistants whose servers are measured: the product and `rasa init`'s."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import datasets, rasa_cli
from bench.latency import run_conversations
from bench.messages import RASA_INIT_MESSAGES, MessagePlan, plan_messages
from bench.procs import ManagedProcess, free_port
from bench.results import SystemRun, TrainingRun
from bench.servers import (
    base_url,
    declares_action_endpoint,
    read_yaml_mapping,
    start_server,
    stock_endpoints,
    wait_until_ready,
    write_server_files,
)
from bench.settings import (
    HOLDOUT_PATH,
    LOOPBACK,
    PRODUCT_CONFIG,
    PRODUCT_DATA,
    PRODUCT_DOMAIN,
    PRODUCT_ENDPOINTS,
    RASA_INIT_DIR,
    ROOT,
    Settings,
)

logger = logging.getLogger(__name__)

_VERSION_MARKER = ".bench-rasa-version"
# The product's REST channel as credentials.yml names it (bot/channels/rest.py).
PRODUCT_REST_CHANNEL = "bot.channels.rest.OperatorRestInput"


@dataclass(frozen=True)
class Assistant:
    """An assistant to train and serve.

    Attributes:
        key: A short name for files and sender ids ("product", "rasa-init").
        title: Its name in the report.
        project_dir: Its project directory (the working directory of its commands).
        config: Its model configuration.
        domain: Its domain.
        data: Its training data directory.
        endpoints: Its endpoints.yml (the action endpoint is replaced).
        action_server: Whether to run its action server.
        messages: What it is sent.
        notes: Remarks for the report.
        secured: Whether its servers are the product's, started as the launcher starts
            them (:func:`_start_product`); otherwise stock `rasa run` (and `rasa run
            actions`) with Rasa's REST channel (:func:`_start_stock`).
    """

    key: str
    title: str
    project_dir: Path
    config: Path
    domain: Path
    data: Path
    endpoints: Path
    action_server: bool
    messages: MessagePlan
    notes: tuple[str, ...] = ()
    secured: bool = False


def product_assistant(settings: Settings) -> Assistant:
    """The product, sent Japanese member questions drawn from the held-out texts."""
    return Assistant(
        key="product",
        title="product",
        project_dir=ROOT,
        config=PRODUCT_CONFIG,
        domain=PRODUCT_DOMAIN,
        data=PRODUCT_DATA,
        endpoints=PRODUCT_ENDPOINTS,
        action_server=True,
        messages=plan_messages(
            datasets.texts(HOLDOUT_PATH),
            f"seeded sample of the texts of {HOLDOUT_PATH.relative_to(ROOT)}",
            settings,
        ),
        notes=(
            "servers as `make run` starts them: `python -m bot.action_server` (every call "
            "with the shared secret) and `python -m bot.rasa_server` (API token from the var "
            "dir); REST channel `bot.channels.rest.OperatorRestInput`, every request with the "
            "token as a bearer header, its guard's rate limit raised to the longest "
            "conversation sent; tracker and lock store in memory",
        ),
        secured=True,
    )


def ensure_rasa_init_project(timeout_s: float) -> str | None:
    """Creates var/bench/rasa-init with `rasa init --no-prompt` unless it is current.

    The project is reused across runs while it was made by the installed Rasa.

    Args:
        timeout_s: How long `rasa init` may take.

    Returns:
        A note for the report if it was (re)created, else None.
    """
    version = rasa_cli.installed_rasa_version()
    marker = RASA_INIT_DIR / _VERSION_MARKER
    if marker.exists() and marker.read_text().strip() == version:
        return None
    shutil.rmtree(RASA_INIT_DIR, ignore_errors=True)
    seconds = rasa_cli.init_project(RASA_INIT_DIR, timeout_s)
    marker.write_text(version + "\n")
    return f"`rasa init --no-prompt` created var/bench/rasa-init in this run ({seconds:.0f} s)."


def rasa_init_assistant(settings: Settings) -> Assistant:
    """The `rasa init` assistant, sent English messages matching its intents."""
    endpoints = RASA_INIT_DIR / "endpoints.yml"
    action_server = declares_action_endpoint(endpoints)
    note = (
        "action server: `rasa run actions` in its project"
        if action_server
        else "no action server: `rasa init` leaves the action endpoint commented out, "
        "so only its rasa server runs"
    ) + "; Rasa's stock REST channel, no token"
    return Assistant(
        key="rasa-init",
        title="rasa init",
        project_dir=RASA_INIT_DIR,
        config=RASA_INIT_DIR / "config.yml",
        domain=RASA_INIT_DIR / "domain.yml",
        data=RASA_INIT_DIR / "data",
        endpoints=endpoints,
        action_server=action_server,
        messages=plan_messages(
            RASA_INIT_MESSAGES, "English messages matching its intents", settings
        ),
        notes=(note,),
    )


def _sample_memory(processes: list[ManagedProcess]) -> None:
    for process in processes:
        process.sample_memory()


def _measure(
    assistant: Assistant,
    served: Served,
    run: SystemRun,
    settings: Settings,
    run_id: str,
) -> None:
    plan = assistant.messages
    url, processes = served.url, served.processes
    prefix = f"bench-{run_id}-{assistant.key}"
    timeouts: dict[str, Any] = {
        "timeout_s": settings.request_timeout_s,
        "deadline_s": settings.phase_deadline_s,
        "headers": served.headers,
    }
    logger.info("%s: warming up with %d messages", assistant.title, len(plan.warmup))
    warmup = run_conversations(url, [plan.warmup], sender_prefix=f"{prefix}-warmup", **timeouts)
    if warmup.ok < len(plan.warmup):
        run.notes.append(f"warm-up: {warmup.ok}/{len(plan.warmup)} messages answered")
    _sample_memory(processes)
    logger.info("%s: 1 conversation, sequential", assistant.title)
    run.sequential = run_conversations(
        url, [plan.sequential], sender_prefix=f"{prefix}-seq", **timeouts
    )
    _sample_memory(processes)
    logger.info("%s: %d concurrent conversations", assistant.title, len(plan.concurrent))
    run.concurrent = run_conversations(
        url, plan.concurrent, sender_prefix=f"{prefix}-conc", **timeouts
    )


@dataclass(frozen=True)
class Served:
    """An assistant's running servers.

    Attributes:
        url: The rasa server's base URL.
        headers: What every REST request carries.
        processes: The servers, the rasa server first.
    """

    url: str
    headers: dict[str, str]
    processes: list[ManagedProcess]


def product_env(var_dir: Path, action_port: int, rasa_port: int) -> dict[str, str]:
    """The environment of the product's servers, as the launcher gives it.

    A var dir and SQLite database of the run's own, the ports given, the loopback
    address, the REST channel on; no secret (``RASA_TOKEN``, ``ACTION_SERVER_SECRET``,
    ``PRIVACY_BOT_SECRET`` are removed): the servers read them from files in the var
    dir, generated there on first use.
    """
    from bot.settings import SECRETS

    env = rasa_cli.rasa_env()
    env.update(
        {
            "PRIVACY_BOT_VAR_DIR": str(var_dir),
            "DATABASE_URL": f"sqlite:///{var_dir / 'app.db'}",
            "ACTION_PORT": str(action_port),
            "RASA_PORT": str(rasa_port),
            "PRIVACY_BOT_BIND_HOST": LOOPBACK,
            "PRIVACY_BOT_REST": "true",
        }
    )
    for name in SECRETS.values():
        env.pop(name, None)
    return env


def product_server_files(
    assistant: Assistant, env: dict[str, str], directory: Path
) -> tuple[Path, Path, dict[str, str]]:
    """Prepares the product's database and the rasa server's files.

    The endpoints are the project's endpoints.yml with the action endpoint the
    launcher writes (``bot.launcher.write_endpoints``: this run's action server and its
    secret as a bearer header); the tracker and lock stores stay in memory, as in every
    run of this benchmark. The credentials open only the product's REST channel, its
    guard's rate limit raised to the longest conversation of the plan: the sequential
    conversation sends faster than the 60 a minute of ``credentials.yml``, and a limited
    message would be timed as an answer.

    Args:
        assistant: The product.
        env: Its servers' environment (:func:`product_env`).
        directory: Where the files go.

    Returns:
        The endpoints and credentials paths, and the headers of a REST request.
    """
    from bot.action_server import bearer
    from bot.launcher import prepare_database, write_endpoints
    from bot.settings import ensure_rasa_token, load_settings

    product = load_settings(env)
    prepare_database(product)
    endpoints = read_yaml_mapping(assistant.endpoints)
    endpoints["action_endpoint"] = read_yaml_mapping(write_endpoints(product))["action_endpoint"]
    credentials = {
        PRODUCT_REST_CHANNEL: {"max_messages_per_minute": assistant.messages.longest_conversation}
    }
    endpoints_path, credentials_path = write_server_files(directory, endpoints, credentials)
    return endpoints_path, credentials_path, {"Authorization": bearer(ensure_rasa_token(product))}


# Starts one server of the assistant (a role, its command, its readiness URL, its
# environment or None for Rasa's) and waits until it answers.
Serve = Callable[[str, list[str], str, dict[str, str] | None], ManagedProcess]


def _start_product(assistant: Assistant, model: Path, run_dir: Path, serve: Serve) -> Served:
    action_port, rasa_port = free_port(), free_port()
    env = product_env(run_dir / "var", action_port, rasa_port)
    endpoints, credentials, headers = product_server_files(
        assistant, env, run_dir / "servers" / assistant.key
    )
    action = serve(
        "action server",
        rasa_cli.product_action_server_command(),
        base_url(action_port) + "/health",
        env,
    )
    server = serve(
        "rasa server",
        rasa_cli.product_rasa_server_command(model, endpoints, credentials),
        base_url(rasa_port) + "/",
        env,
    )
    return Served(base_url(rasa_port), headers, [server, action])


def _start_stock(assistant: Assistant, model: Path, run_dir: Path, serve: Serve) -> Served:
    actions: list[ManagedProcess] = []
    action_port = None
    if assistant.action_server:
        action_port = free_port()
        command = rasa_cli.action_server_command(action_port)
        actions.append(serve("action server", command, base_url(action_port) + "/health", None))
    endpoints, credentials = write_server_files(
        run_dir / "servers" / assistant.key,
        stock_endpoints(assistant.endpoints, action_port),
        {"rest": None},  # Rasa's REST channel, as `rasa init` writes it
    )
    port = free_port()
    command = rasa_cli.run_server_command(model, endpoints, credentials, port)
    server = serve("rasa server", command, base_url(port) + "/", None)
    return Served(base_url(port), {}, [server, *actions])


def benchmark(
    assistant: Assistant, run_dir: Path, settings: Settings, run_id: str
) -> tuple[SystemRun, TrainingRun]:
    """Trains the full model, starts the servers, measures latency and memory, stops them.

    Args:
        assistant: What to benchmark.
        run_dir: The run's temporary directory (model and server files go there).
        settings: Message counts and timeouts.
        run_id: Distinguishes this run's sender ids.

    Returns:
        The server figures and the timed training.
    """
    model, training = rasa_cli.train(
        f"full-{assistant.key}",
        project_dir=assistant.project_dir,
        config=assistant.config,
        data=assistant.data,
        domain=assistant.domain,
        out_dir=run_dir / "models",
        nlu_only=False,
        timeout_s=settings.command_timeout_s,
    )
    run = SystemRun(system=assistant.title, notes=list(assistant.notes))
    start = _start_product if assistant.secured else _start_stock
    with ExitStack() as stack:

        def serve(
            role: str, command: list[str], ready_url: str, env: dict[str, str] | None
        ) -> ManagedProcess:
            name = f"{assistant.key} {role}"
            process = stack.enter_context(start_server(name, command, assistant.project_dir, env))
            run.startup_s[role] = wait_until_ready(process, ready_url, settings.startup_deadline_s)
            return process

        served = start(assistant, model, run_dir, serve)
        _measure(assistant, served, run, settings, run_id)
        for process in served.processes:  # the rasa server first, then its action server
            process.stop()
    run.memory = [process.memory_peak() for process in served.processes]
    return run, training
