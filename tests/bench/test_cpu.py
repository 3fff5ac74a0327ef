"""CPU time as the cluster benchmark reads it (bench/cpu.py): /proc's lines and its sums."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.cpu import (
    TICKS_PER_S,
    Stat,
    cpu_seconds,
    group_members,
    parse_machine_stat,
    parse_stat,
    used_between,
)

# proc(5)'s fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt
# majflt cmajflt utime stime cutime cstime …
TAIL = "S 1 4242 4242 0 -1 4194560 100 0 0 0 {utime} {stime} 77 88 20 0 1 0 500 1 1"


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields():
    line = f"1234 (rasa) (x) y z) {TAIL.format(utime=300, stime=45)}"
    assert parse_stat(line) == Stat(pgrp=4242, cpu_ticks=345)  # children's time not added


@pytest.mark.parametrize("line", ["", "1234 (rasa", "1234 (rasa) S 1 2"])
def test_what_is_not_a_stat_line_is_refused(line):
    with pytest.raises(ValueError):
        parse_stat(line)


def test_the_machine_is_busy_with_all_but_idle_and_iowait():
    # user nice system idle iowait irq softirq steal guest guest_nice
    text = "cpu  100 5 50 1000 40 3 2 0 30 0\ncpu0 50 2 25 500 20 1 1 0 15 0\nintr 1 2\n"
    busy, total = parse_machine_stat(text)
    assert busy == pytest.approx(160 / TICKS_PER_S)  # guest is inside user already
    assert total == pytest.approx(1200 / TICKS_PER_S)
    with pytest.raises(ValueError):
        parse_machine_stat("intr 1 2\n")


def test_a_phase_counts_new_processes_whole_and_loses_ended_ones():
    before = {1: 10.0, 2: 5.0, 3: 7.0}
    after = {1: 12.5, 2: 5.0, 4: 1.5}  # 3 ended, 4 started in between
    assert used_between(before, after) == pytest.approx(4.0)


def test_a_server_group_is_found_and_read_in_the_real_proc():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True
    )
    try:
        assert group_members([child.pid]) == {child.pid: child.pid}
        assert group_members([child.pid, os.getpgrp()])[os.getpid()] == os.getpgrp()
        readings = cpu_seconds([child.pid, os.getpid()])
        assert set(readings) == {child.pid, os.getpid()} and readings[os.getpid()] > 0
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds([child.pid]) == {}  # gone: nothing, not an error
