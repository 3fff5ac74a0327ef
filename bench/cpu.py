"""CPU time that processes used, read from ``/proc`` (Linux), for the benchmarks' reports.

A process's CPU time is its user plus system time (``utime`` and ``stime`` of
``/proc/PID/stat``); a phase's share is the difference between two readings. A process
that ends between two readings takes its time with it: the readings understate, never
overstate, what was used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    """What the benchmarks read of one ``/proc/PID/stat`` line."""

    pgrp: int  # the process group (a server and its children share one)
    cpu_ticks: int  # utime + stime, in clock ticks


def parse_stat(line: str) -> Stat:
    """The process group and CPU ticks of a ``/proc/PID/stat`` line.

    The command name (field 2) is in parentheses and may itself hold spaces and
    parentheses, so the fields are counted from the last ``)``.

    Raises:
        ValueError: If the line is not shaped like one.
    """
    _, closing, rest = line.rpartition(")")
    fields = rest.split()
    if not closing or len(fields) < 13:
        raise ValueError("not a /proc/PID/stat line")
    # After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15), 1-based in proc(5).
    return Stat(pgrp=int(fields[2]), cpu_ticks=int(fields[11]) + int(fields[12]))


def read_stat(pid: int) -> Stat | None:
    """The :class:`Stat` of process ``pid``; None when it has gone."""
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text())
    except (OSError, ValueError):
        return None


def group_members(pgids: Iterable[int]) -> dict[int, int]:
    """Every live process in one of the groups ``pgids``: its group, by pid."""
    wanted = set(pgids)
    members: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name))
            if stat is not None and stat.pgrp in wanted:
                members[int(entry.name)] = stat.pgrp
    return members


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """The CPU seconds each live process of ``pids`` has used so far."""
    found = {pid: read_stat(pid) for pid in pids}
    return {pid: stat.cpu_ticks / TICKS_PER_S for pid, stat in found.items() if stat}


def used_between(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds used between two :func:`cpu_seconds` readings of the same processes.

    A process first seen in ``after`` started in between: all its time counts. One
    missing from ``after`` ended in between: what it used since ``before`` is lost.
    """
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def parse_machine_stat(text: str) -> tuple[float, float]:
    """Busy and total CPU seconds of all processors, from ``/proc/stat``'s ``cpu`` line.

    Busy is everything but ``idle`` and ``iowait``; ``guest`` time is already counted
    in ``user`` and is not added twice.

    Raises:
        ValueError: If the text has no ``cpu`` line.
    """
    for line in text.splitlines():
        name, *values = line.split()
        if name == "cpu":
            ticks = [int(value) for value in values[:8]]  # user … steal
            idle = ticks[3] + ticks[4]
            return (sum(ticks) - idle) / TICKS_PER_S, sum(ticks) / TICKS_PER_S
    raise ValueError("no cpu line in /proc/stat")


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used so far (all processors)."""
    busy, _ = parse_machine_stat((PROC / "stat").read_text())
    return busy
