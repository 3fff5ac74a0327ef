"""Starting what the benchmarks measure, and always stopping it.

Commands and servers run in a process group of their own: leaving the ``with`` block
(normally, on an error or on Ctrl-C) stops the whole group, children included. The
product's servers get no secret in their environment: they read their secrets from
files of their var dir, as under the launcher.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings import PROJECT_ROOT, SECRETS, Settings, load_settings

if TYPE_CHECKING:
    from bot.launcher import RunningAssistant

logger = logging.getLogger(__name__)

VAR_DIR = PROJECT_ROOT / "var" / "bench"  # logs, reports, the `rasa init` project
LOG_DIR = VAR_DIR / "logs"
LOOPBACK = "127.0.0.1"
STOP_GRACE_S = 20.0


class CommandError(RuntimeError):
    """A command failed or timed out, or a server died; the message ends with its log."""


def free_port() -> int:
    """A TCP port on the loopback address that is free right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def local_url(port: int) -> str:
    """The base URL of a server on ``port`` of the loopback address."""
    return f"http://{LOOPBACK}:{port}"


def child_env(values: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment with Rasa quiet, output unbuffered, ``values`` set and no secret."""
    env = {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        **(values or {}),
    }
    for name in SECRETS.values():
        env.pop(name, None)
    return env


def _peak_memory_kib(pgid: int) -> dict[int, int]:
    """VmHWM (peak resident set size) of each live process of group ``pgid``, in KiB."""
    peaks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The fields after the command name (which may hold spaces): state ppid pgrp ...
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[int(entry.name)] = int(line.split()[1])
    return peaks


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ProcessGroup:
    """A command in a session of its own, its output in ``LOG_DIR/<name>.log``."""

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path = PROJECT_ROOT
    ) -> None:
        """Starts ``command`` in ``cwd`` with the environment ``env``."""
        self.name = name  # in progress lines, the log's name and the report
        self.log_path = LOG_DIR / f"{name.replace(' ', '-')}.log"
        self.startup_s = 0.0  # how long it took to answer (wait_until_ready)
        self._peaks_kib: dict[int, int] = {}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting %s: %s (log: %s)", name, " ".join(command), self.log_path)
        with self.log_path.open("wb") as log:
            self._popen = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The command's process id (also its session's and group's)."""
        return self._popen.pid

    def failure(self, what: str) -> CommandError:
        """An error saying ``what`` happened, with the tail of the log."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        tail = "\n".join(lines[-30:])
        return CommandError(f"{self.name} {what} (log: {self.log_path}):\n{tail}")

    def wait(self, timeout_s: float) -> int:
        """Waits for the command to end: its exit status (CommandError after ``timeout_s``)."""
        try:
            return self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise self.failure(f"did not finish within {timeout_s:.0f} s") from exc

    def wait_until_ready(self, url: str, deadline_s: float) -> None:
        """Polls ``url`` until it answers 200 (``startup_s``); CommandError if it never does."""
        started = time.monotonic()
        while time.monotonic() - started < deadline_s:
            if self._popen.poll() is not None:
                raise self.failure(f"exited with {self._popen.returncode} before it was ready")
            if _answers(url):
                self.startup_s = time.monotonic() - started
                logger.info("%s is ready after %.1f s", self.name, self.startup_s)
                return
            time.sleep(0.5)
        raise self.failure(f"did not answer {url} within {deadline_s:.0f} s")

    def sample_memory(self) -> None:
        """Records the peak memory so far of every live process of the group."""
        if self._popen.poll() is None:
            for pid, kib in _peak_memory_kib(self._popen.pid).items():
                self._peaks_kib[pid] = max(kib, self._peaks_kib.get(pid, 0))

    @property
    def peak_mib(self) -> float:
        """The sum over the group's processes of each one's sampled peak, in MiB."""
        return sum(self._peaks_kib.values()) / 1024

    @property
    def processes_seen(self) -> int:
        """How many processes of the group were sampled."""
        return len(self._peaks_kib)

    def stop(self) -> None:
        """Stops the whole group: SIGTERM, then SIGKILL after a grace period (idempotent)."""
        if self._popen.poll() is None:
            self.sample_memory()
            self._signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM; killing it", self.name)
                self._signal(signal.SIGKILL)
                self._popen.wait(timeout=STOP_GRACE_S)
        self._signal(signal.SIGKILL)  # children that outlived the leader are still in the group

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)


def run_command(
    name: str, command: Sequence[str], env: Mapping[str, str], timeout_s: float, cwd: Path
) -> float:
    """Runs ``command`` in ``cwd`` to its end and returns its wall time in seconds.

    Raises:
        CommandError: If it fails or takes longer than ``timeout_s`` (it is stopped).
    """
    started = time.perf_counter()
    process = ProcessGroup(name, command, env, cwd)
    try:
        code = process.wait(timeout_s)
    finally:
        process.stop()
    if code != 0:
        raise process.failure(f"exited with {code}")
    seconds = time.perf_counter() - started
    logger.info("%s finished in %.1f s", name, seconds)
    return seconds


@contextlib.contextmanager
def server(
    name: str,
    command: Sequence[str],
    ready_url: str,
    env: Mapping[str, str],
    deadline_s: float = 300.0,
    cwd: Path = PROJECT_ROOT,
) -> Iterator[ProcessGroup]:
    """A server, once it answers ``ready_url`` with 200; stopped when the block ends."""
    process = ProcessGroup(name, command, env, cwd)
    try:
        process.wait_until_ready(ready_url, deadline_s)
        yield process
    finally:
        process.stop()


@contextlib.contextmanager
def running_product(**changes: Any) -> Iterator[RunningAssistant]:
    """The product's servers as `make run` starts them (bot.launcher.running), trained.

    On a var dir, SQLite database and free ports of their own, with the REST channel on
    (every call then carries the HTTP API token) and the settings ``changes``.
    """
    from bot.launcher import running, train_if_needed

    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        var_dir = Path(folder)
        names = [setting.name for setting in fields(Settings)]
        ports = {name: free_port() for name in names if name.endswith("_port")}
        settings = replace(
            load_settings(),
            var_dir=var_dir,
            database_url=f"sqlite:///{var_dir / 'app.db'}",
            rasa_token=uuid.uuid4().hex,
            rest_enabled=True,
            **{**ports, **changes},
        )
        with running(settings, train_if_needed(), log_dir=var_dir / "logs") as assistant:
            yield assistant
