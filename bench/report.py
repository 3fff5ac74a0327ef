"""What the benchmarks print: Markdown tables, figures, timing lines, the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.stats import Timings, ratio
from bot.settings import PROJECT_ROOT

DASH = "—"


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; ``align`` holds 'l' or 'r' per column (default: left)."""
    marks = [
        "---:" if align[column : column + 1] == "r" else ":---" for column in range(len(header))
    ]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(marks) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def num(value: float | None, pattern: str = ".3f") -> str:
    """``value`` formatted with ``pattern``, or a dash when it is missing."""
    return DASH if value is None else format(value, pattern)


def times(value: float | None) -> str:
    """A ratio as "1.23×", or a dash when it is missing."""
    return DASH if value is None else f"{value:.2f}×"


def timing_line(label: str, timings: Mapping[str, Timings]) -> str:
    """``label``, then p50 and p95 in ms of each kind of request."""
    figures = (
        f"{key} p50 {num(found.ms(50), '6.2f')} p95 {num(found.ms(95), '6.2f')} ms"
        for key, found in timings.items()
    )
    return f"{label}: " + "  ".join(figures)


def ratio_line(label: str, baseline: Mapping[str, Timings], large: Mapping[str, Timings]) -> str:
    """``label``, then the ratios large/baseline of p50 and p95 of each kind of request."""
    figures = (
        f"{key} p50 {times(ratio(large[key].ms(50), small.ms(50)))} "
        f"p95 {times(ratio(large[key].ms(95), small.ms(95)))}"
        for key, small in baseline.items()
    )
    return f"{label}: " + "  ".join(figures)


def _proc_field(path: str, key: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.strip()


@dataclass(frozen=True)
class Machine:
    """The machine and software the figures were measured with, read at the start."""

    nproc: int
    cpu_model: str
    memory_gib: float
    python: str
    rasa: str
    rasa_sdk: str
    tensorflow: str
    jsonschema: str  # Rasa validates every action server reply with it: it sets that cost
    git_revision: str
    load_average: float  # 1 minute, at the start: other work on the machine makes noise

    @classmethod
    def collect(cls) -> Machine:
        """Reads this machine's processors, memory, load and versions."""
        try:
            revision = _git("rev-parse", "--short", "HEAD")
            if _git("status", "--porcelain"):
                revision += " (uncommitted changes)"
        except (OSError, subprocess.SubprocessError):
            revision = "n/a"
        memory_kib = _proc_field("/proc/meminfo", "MemTotal") or "0 kB"
        return cls(
            nproc=len(os.sched_getaffinity(0)),
            cpu_model=_proc_field("/proc/cpuinfo", "model name") or platform.processor() or "?",
            memory_gib=int(memory_kib.split()[0]) / 1024**2,
            python=platform.python_version(),
            rasa=_version("rasa"),
            rasa_sdk=_version("rasa-sdk"),
            tensorflow=_version("tensorflow"),
            jsonschema=_version("jsonschema"),
            git_revision=revision,
            load_average=os.getloadavg()[0],
        )


def header(started: datetime, machine: Machine, *details: str) -> list[str]:
    """The lines every report starts with: when, how long, ``details``, machine, software."""
    took = (datetime.now(timezone.utc) - started).total_seconds() / 60
    return [
        f"- Date: {started:%Y-%m-%d %H:%M %Z} · took {took:.1f} min",
        *details,
        f"- Machine: nproc {machine.nproc} · {machine.cpu_model} · {machine.memory_gib:.1f} GiB "
        f"RAM · 1-min load average {machine.load_average:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end (other work on the machine makes the figures noisy)",
        f"- Software: Python {machine.python} · Rasa {machine.rasa} · Rasa SDK "
        f"{machine.rasa_sdk} · TensorFlow {machine.tensorflow} · jsonschema "
        f"{machine.jsonschema} · git {machine.git_revision}",
    ]
