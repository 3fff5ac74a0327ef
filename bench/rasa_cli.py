"""The Rasa command lines the benchmark runs: init, train, test nlu, run, run actions."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.procs import run_command
from bench.results import TrainingRun
from bench.settings import LOG_DIR, LOOPBACK, project_relative

logger = logging.getLogger(__name__)


def rasa_executable() -> list[str]:
    """The `rasa` console script of the running interpreter's environment."""
    script = Path(sys.executable).with_name("rasa")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "rasa"]


def rasa_env(cache_dir: Path | None = None) -> dict[str, str]:
    """The environment of a Rasa command.

    Args:
        cache_dir: Rasa's training cache directory; a fresh one makes a cold training.

    Returns:
        The current environment with telemetry off and unbuffered output.
    """
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    if cache_dir is not None:
        env["RASA_CACHE_DIRECTORY"] = str(cache_dir)
    return env


def rasa_package_dir() -> Path:
    """The installed rasa package's directory (found without importing rasa)."""
    spec = importlib.util.find_spec("rasa")
    if spec is None or spec.origin is None:
        raise RuntimeError("rasa is not installed in this environment")
    return Path(spec.origin).parent


def initial_project_file(name: str) -> Path:
    """A file of the project template that `rasa init` copies (e.g. config.yml)."""
    return rasa_package_dir() / "cli" / "initial_project" / name


def default_config_file() -> Path:
    """Rasa's default config, which auto-fills an empty pipeline or policies."""
    return rasa_package_dir() / "engine" / "recipes" / "config_files" / "default_config.yml"


def shown(command: list[str], cwd: Path) -> str:
    """A command line as a person would type it in ``cwd`` (paths made relative)."""
    prefix = rasa_executable()
    if command[: len(prefix)] == prefix:
        command = ["rasa", *command[len(prefix) :]]
    parts = []
    for part in command:
        path = Path(part)
        if path.is_absolute() and path.is_relative_to(cwd):
            parts.append(str(path.relative_to(cwd)))
        else:
            parts.append(part)
    return " ".join(parts)


def init_project(init_dir: Path, timeout_s: float) -> float:
    """Creates the `rasa init --no-prompt` assistant in ``init_dir`` (it also trains one).

    Args:
        init_dir: An empty or missing directory.
        timeout_s: How long `rasa init` may take.

    Returns:
        The wall time of `rasa init`, in seconds.
    """
    init_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cache-", dir=init_dir.parent) as cache:
        return run_command(
            "rasa init",
            [*rasa_executable(), "init", "--no-prompt", "--init-dir", str(init_dir)],
            cwd=init_dir.parent,
            env=rasa_env(Path(cache)),
            log_path=LOG_DIR / "rasa-init.log",
            timeout_s=timeout_s,
        )


def train(
    label: str,
    *,
    project_dir: Path,
    config: Path,
    data: Path,
    domain: Path | None,
    out_dir: Path,
    nlu_only: bool,
    timeout_s: float,
) -> tuple[Path, TrainingRun]:
    """Trains a model with a cold training cache and times it.

    Args:
        label: Names the model file, the log and the report row.
        project_dir: The working directory (custom components are imported from it).
        config: The model configuration.
        data: The training data (file or directory).
        domain: The domain (full trainings only).
        out_dir: Where the model goes.
        nlu_only: `rasa train nlu` instead of `rasa train`.
        timeout_s: How long the training may take.

    Returns:
        The model's path and the timed run.
    """
    command = [*rasa_executable(), "train"]
    if nlu_only:
        command += ["nlu", "--nlu", str(data)]
    else:
        command += ["--data", str(data), "--domain", str(domain)]
    command += ["--config", str(config)]
    destination = ["--out", str(out_dir), "--fixed-model-name", label]
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = out_dir / f"cache-{label}"
    try:
        seconds = run_command(
            f"training {label}",
            [*command, *destination],
            cwd=project_dir,
            env=rasa_env(cache),
            log_path=LOG_DIR / f"train-{label}.log",
            timeout_s=timeout_s,
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    model = out_dir / f"{label}.tar.gz"
    if not model.exists():
        raise RuntimeError(f"training {label} wrote no model at {model}")
    return model, TrainingRun(
        label,
        project_relative(project_dir),
        shown(command, project_dir),
        seconds,
        os.getloadavg()[0],
    )


def evaluate_nlu(
    label: str,
    *,
    project_dir: Path,
    model: Path,
    nlu_data: Path,
    out_dir: Path,
    timeout_s: float,
) -> Path:
    """Evaluates an NLU model with `rasa test nlu` (no plots) and returns its output dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        *rasa_executable(),
        *("test", "nlu", "--model", str(model), "--nlu", str(nlu_data)),
        *("--out", str(out_dir), "--no-plot"),
    ]
    run_command(
        f"evaluating {label}",
        command,
        cwd=project_dir,
        env=rasa_env(),
        log_path=LOG_DIR / f"test-nlu-{label}.log",
        timeout_s=timeout_s,
    )
    return out_dir


def run_server_command(model: Path, endpoints: Path, credentials: Path, port: int) -> list[str]:
    """The `rasa run` command of a REST server bound to the loopback address."""
    return [
        *rasa_executable(),
        "run",
        "--enable-api",
        *("--model", str(model)),
        *("--endpoints", str(endpoints)),
        *("--credentials", str(credentials)),
        *("--interface", LOOPBACK),
        *("--port", str(port)),
    ]


def action_server_command(port: int) -> list[str]:
    """The `rasa run actions` command of an action server on ``port``."""
    return [*rasa_executable(), "run", "actions", "--port", str(port)]


def product_action_server_command() -> list[str]:
    """The product's action server, as the launcher starts it.

    ``python -m bot.action_server`` listens on ``PRIVACY_BOT_BIND_HOST`` at
    ``ACTION_PORT`` and answers only calls with the shared secret of the var dir.
    """
    return [sys.executable, "-m", "bot.action_server"]


def product_rasa_server_command(model: Path, endpoints: Path, credentials: Path) -> list[str]:
    """The product's rasa server, as the launcher starts it.

    ``python -m bot.rasa_server`` is `rasa run --enable-api` on ``PRIVACY_BOT_BIND_HOST``
    at ``RASA_PORT``, with the HTTP API token read from the var dir (never on the
    command line).
    """
    return [
        *(sys.executable, "-m", "bot.rasa_server"),
        *("--model", str(model)),
        *("--endpoints", str(endpoints)),
        *("--credentials", str(credentials)),
    ]


def installed_rasa_version() -> str:
    """The installed Rasa's version."""
    return importlib.metadata.version("rasa")
