"""Child processes: each in its own process group, always stopped, memory sampled."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bench.results import MemoryPeak
from bench.settings import LOOPBACK

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 20.0
_LOG_TAIL_LINES = 30


class CommandError(RuntimeError):
    """A command failed, timed out or a server died; the message holds its log's tail."""


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' if it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on the loopback address that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _group_members(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid``."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces): state ppid pgrp ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _vm_hwm_kib(pid: int) -> int | None:
    """VmHWM (peak resident set size) of ``pid`` in KiB, None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


class ManagedProcess:
    """A child process started in a new session (its own process group).

    Leaving the ``with`` block (normally, on error or on Ctrl-C) stops the whole
    group: SIGTERM, then SIGKILL after a grace period. The peak memory of every
    process seen in the group is sampled on request and just before stopping.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
    ) -> None:
        """Starts ``command`` with its output going to ``log_path``.

        Args:
            name: A short name for progress lines and the report.
            command: The command line.
            cwd: The working directory.
            env: The environment.
            log_path: Where stdout and stderr go (overwritten).
        """
        self.name = name
        self.log_path = log_path
        self._peaks_kib: dict[int, int] = {}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        logger.info("starting %s: %s (log: %s)", name, " ".join(command), log_path)
        try:
            self._popen = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            self._log.close()
            raise
        self.pid = self._popen.pid

    def __enter__(self) -> ManagedProcess:
        """Returns the process itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stops the process group."""
        self.stop()

    def returncode(self) -> int | None:
        """The exit code, or None while the process runs."""
        return self._popen.poll()

    def wait(self, timeout_s: float) -> int:
        """Waits for the process to exit.

        Args:
            timeout_s: How long to wait at most.

        Returns:
            The exit code.

        Raises:
            CommandError: If the process is still running after ``timeout_s``.
        """
        try:
            return self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise CommandError(f"{self.name} did not finish within {timeout_s:.0f} s") from exc

    def sample_memory(self) -> None:
        """Records the current VmHWM of every live process in the group."""
        if self.returncode() is not None:
            return
        for pid in _group_members(self.pid):
            kib = _vm_hwm_kib(pid)
            if kib is not None:
                self._peaks_kib[pid] = max(kib, self._peaks_kib.get(pid, 0))

    def memory_peak(self) -> MemoryPeak:
        """The sum over the group's processes of each one's sampled peak."""
        return MemoryPeak(
            process=self.name,
            peak_mib=sum(self._peaks_kib.values()) / 1024,
            processes=len(self._peaks_kib),
        )

    def stop(self) -> None:
        """Stops the whole process group (idempotent)."""
        try:
            if self._popen.poll() is None:
                self.sample_memory()
                self._signal_group(signal.SIGTERM)
                try:
                    self._popen.wait(timeout=_STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    logger.warning("%s ignored SIGTERM; killing it", self.name)
                    self._signal_group(signal.SIGKILL)
                    self._popen.wait(timeout=_STOP_GRACE_S)
            # Children that outlived the leader still belong to the group.
            self._signal_group(signal.SIGKILL)
        finally:
            self._log.close()

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)


def run_command(
    name: str,
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    timeout_s: float,
) -> float:
    """Runs a command to completion and returns its wall time in seconds.

    Args:
        name: A short name for progress lines and errors.
        command: The command line.
        cwd: The working directory.
        env: The environment.
        log_path: Where its output goes.
        timeout_s: How long it may take; it is killed after that.

    Returns:
        The wall time of the command, in seconds.

    Raises:
        CommandError: If it fails or times out.
    """
    start = time.perf_counter()
    with ManagedProcess(name, command, cwd=cwd, env=env, log_path=log_path) as process:
        code = process.wait(timeout_s)
    seconds = time.perf_counter() - start
    if code != 0:
        raise CommandError(f"{name} exited with {code} (log: {log_path}):\n{log_tail(log_path)}")
    logger.info("%s finished in %.1f s", name, seconds)
    return seconds
