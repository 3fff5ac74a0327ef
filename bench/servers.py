"""Starting what the benchmarks measure, and always stopping it.

Commands and servers run in a process group of their own: leaving the ``with`` block
(normally, on an error or on Ctrl-C) stops the whole group, children included. The
product's servers start from its own entry points (``python -m bot.action_server``,
``bot.rasa_server``, ``bot.console``) with its secrets in files of their var dir, as the
launcher starts them, or all together through :func:`bot.launcher.running`
(:func:`running_product`).
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

VAR_DIR = PROJECT_ROOT / "var" / "bench"
"""Everything the benchmarks keep: logs, reports, the `rasa init` project."""
LOG_DIR = VAR_DIR / "logs"
LOOPBACK = "127.0.0.1"
_STOP_GRACE_S = 20.0


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
    """This environment with Rasa quiet, output unbuffered, ``values`` set and no secret.

    The product's servers then read their secrets from files in their var dir, as
    under the launcher.
    """
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
    """A command in a session of its own, its output in ``LOG_DIR/<name>.log``.

    Attributes:
        name: Its name in progress lines, its log's name and the report.
        log_path: Where its output goes.
        startup_s: How long it took to answer (:meth:`wait_until_ready`).
    """

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path = PROJECT_ROOT
    ) -> None:
        """Starts ``command`` in ``cwd`` with the environment ``env``."""
        self.name = name
        self.log_path = LOG_DIR / f"{name.replace(' ', '-')}.log"
        self.startup_s = 0.0
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

    def __enter__(self) -> ProcessGroup:
        """Returns the group itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stops the group."""
        self.stop()

    def failure(self, what: str) -> CommandError:
        """An error saying ``what`` happened, with the tail of the log."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        tail = "\n".join(lines[-30:])
        return CommandError(f"{self.name} {what} (log: {self.log_path}):\n{tail}")

    def wait(self, timeout_s: float) -> int:
        """Waits for the command to end and returns its exit status.

        Raises:
            CommandError: If it still runs after ``timeout_s``.
        """
        try:
            return self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise self.failure(f"did not finish within {timeout_s:.0f} s") from exc

    def wait_until_ready(self, url: str, deadline_s: float) -> None:
        """Polls ``url`` until it answers 200; the time it took goes to ``startup_s``.

        Raises:
            CommandError: If the process exits or does not answer within ``deadline_s``.
        """
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
                self._popen.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM; killing it", self.name)
                self._signal(signal.SIGKILL)
                self._popen.wait(timeout=_STOP_GRACE_S)
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
    with ProcessGroup(name, command, env, cwd) as process:
        code = process.wait(timeout_s)
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
    with ProcessGroup(name, command, env, cwd) as process:
        process.wait_until_ready(ready_url, deadline_s)
        yield process


@contextlib.contextmanager
def running_product(**changes: Any) -> Iterator[RunningAssistant]:
    """The product's servers as `make run` starts them, trained first if needed.

    :func:`bot.launcher.running` on a var dir, SQLite database and free ports of their
    own, with the REST channel on (every call then carries the HTTP API token).

    Args:
        **changes: Settings changed besides (e.g. the SMS limits).
    """
    from bot.launcher import running, train_if_needed

    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        var_dir = Path(folder)
        ports = {f.name: free_port() for f in fields(Settings) if f.name.endswith("_port")}
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
