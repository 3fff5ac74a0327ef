"""The two assistants whose servers are measured: the product and `rasa init`'s."""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench import datasets, rasa_cli
from bench.latency import run_conversations
from bench.messages import RASA_INIT_MESSAGES, MessagePlan, plan_messages
from bench.procs import ManagedProcess, free_port
from bench.results import SystemRun, TrainingRun
from bench.servers import (
    base_url,
    declares_action_endpoint,
    start_action_server,
    start_rasa_server,
    wait_until_ready,
    write_server_files,
)
from bench.settings import (
    HOLDOUT_PATH,
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
        notes=("action server: `rasa run actions` from the project root",),
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
    )
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
    url: str,
    processes: list[ManagedProcess],
    run: SystemRun,
    settings: Settings,
    run_id: str,
) -> None:
    plan = assistant.messages
    prefix = f"bench-{run_id}-{assistant.key}"
    timeouts = {"timeout_s": settings.request_timeout_s, "deadline_s": settings.phase_deadline_s}
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


def _product_database(var_dir: Path) -> dict[str, str]:
    """A database of the run's own with the demo members; the action server's env."""
    from bot.launcher import prepare_database
    from bot.settings import load_settings

    env = {"PRIVACY_BOT_VAR_DIR": str(var_dir), "DATABASE_URL": f"sqlite:///{var_dir / 'app.db'}"}
    var_dir.mkdir(parents=True, exist_ok=True)
    prepare_database(load_settings({**os.environ, **env}))
    return env


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
    processes: list[ManagedProcess] = []
    with ExitStack() as stack:
        action_port = None
        if assistant.action_server:
            action_port = free_port()
            action = stack.enter_context(
                start_action_server(
                    f"{assistant.key} action server",
                    assistant.project_dir,
                    action_port,
                    _product_database(run_dir / "var"),
                )
            )
            processes.append(action)
            run.startup_s["action server"] = wait_until_ready(
                action, base_url(action_port) + "/health", settings.startup_deadline_s
            )
        endpoints, credentials = write_server_files(
            run_dir / "servers" / assistant.key, assistant.endpoints, action_port
        )
        port = free_port()
        server = stack.enter_context(
            start_rasa_server(
                f"{assistant.key} rasa server",
                assistant.project_dir,
                model,
                endpoints,
                credentials,
                port,
            )
        )
        processes.insert(0, server)
        run.startup_s["rasa server"] = wait_until_ready(
            server, base_url(port) + "/", settings.startup_deadline_s
        )
        _measure(assistant, base_url(port), processes, run, settings, run_id)
        for process in processes:  # the rasa server first, then its action server
            process.stop()
    run.memory = [process.memory_peak() for process in processes]
    return run, training
