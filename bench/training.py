"""Timed `rasa train` runs with a cold training cache, for `python -m bench`."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.report import num, table
from bench.servers import CommandError, child_env, run_command
from bot.settings import PROJECT_ROOT

COMMAND_TIMEOUT_S = 1800.0  # of one `rasa train`, `rasa test` or `rasa init`


@dataclass(frozen=True)
class TrainingRun:
    """One timed `rasa train` or `rasa train nlu`: where it ran, as typed there."""

    label: str  # names the model, the log and the report's row
    directory: str  # relative to the project root
    command: str  # without its --out/--fixed-model-name
    seconds: float
    load_average: float  # the machine's 1-minute load average when it ended


def rasa_command(*arguments: str) -> list[str]:
    """A `rasa` command line of the running interpreter's environment."""
    script = Path(sys.executable).with_name("rasa")
    executable = [str(script)] if script.exists() else [sys.executable, "-m", "rasa"]
    return [*executable, *arguments]


def rasa_file(*parts: str) -> Path:
    """A file of the installed rasa package, found without importing rasa."""
    spec = importlib.util.find_spec("rasa")
    if spec is None or spec.origin is None:
        raise RuntimeError("rasa is not installed in this environment")
    return Path(spec.origin).parent.joinpath(*parts)


def relative(path: Path | str, base: Path = PROJECT_ROOT) -> str:
    """``path`` relative to ``base`` ('.' for ``base`` itself) if it lies inside, else as is."""
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(base):
        return str(candidate.relative_to(base))
    return str(path)


def train(
    label: str,
    *,
    project_dir: Path,
    config: Path,
    data: Path,
    out_dir: Path,
    domain: Path | None = None,
) -> tuple[Path, TrainingRun]:
    """Trains a model in ``project_dir`` with a fresh cache: the model's path, the timed run.

    Without a ``domain`` only the NLU is trained (`rasa train nlu`).
    """
    if domain is None:
        arguments = ["train", "nlu", "--nlu", str(data)]
    else:
        arguments = ["train", "--data", str(data), "--domain", str(domain)]
    arguments += ["--config", str(config)]
    command = rasa_command(*arguments)
    cache = out_dir / f"cache-{label}"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        seconds = run_command(
            f"training {label}",
            [*command, "--out", str(out_dir), "--fixed-model-name", label],
            child_env({"RASA_CACHE_DIRECTORY": str(cache)}),
            COMMAND_TIMEOUT_S,
            cwd=project_dir,
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    model = out_dir / f"{label}.tar.gz"
    if not model.exists():
        raise CommandError(f"training {label} wrote no model at {model}")
    shown = " ".join(["rasa", *(relative(part, project_dir) for part in arguments)])
    return model, TrainingRun(
        label, relative(project_dir), shown, seconds, load_average=os.getloadavg()[0]
    )


def section(trainings: Sequence[TrainingRun]) -> list[str]:
    """The report's training section."""
    lines = ["", "## 3. Training time", ""]
    if not trainings:
        return [*lines, "No training ran."]
    rows = [
        [
            run.label,
            f"`{run.directory}`",
            f"`{run.command}`",
            num(run.seconds, ".1f"),
            num(run.load_average, ".2f"),
        ]
        for run in trainings
    ]
    return [
        *lines,
        *table(["model", "run in", "command", "seconds", "load after"], rows, "lllrr"),
        "",
        "Wall time of each command with a cold training cache (`RASA_CACHE_DIRECTORY` "
        "fresh), including Rasa's start-up; configs as written (no fewer epochs). "
        "'load after' is the 1-minute load average when the command ended (2 cores).",
    ]
