"""The machine and software the figures were measured on."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from bench.results import MachineInfo
from bench.settings import ROOT


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


def _git_revision() -> str:
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "n/a"
    return f"{revision}{' (uncommitted changes)' if dirty else ''}"


def collect() -> MachineInfo:
    """Reads nproc, CPU model, memory and versions of this machine."""
    memory_kib = _proc_field("/proc/meminfo", "MemTotal") or "0 kB"
    return MachineInfo(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=_proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        memory_gib=int(memory_kib.split()[0]) / 1024**2,
        python=platform.python_version(),
        rasa=_version("rasa"),
        rasa_sdk=_version("rasa-sdk"),
        tensorflow=_version("tensorflow"),
        # Rasa validates every action server reply with it: its version sets that cost.
        jsonschema=_version("jsonschema"),
        git_revision=_git_revision(),
        load_average=os.getloadavg()[0],
    )
