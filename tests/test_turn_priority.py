"""`make cluster` on one machine: the edge first, the turn work after it.

The rasa and action servers are started at a lower CPU priority (bot/launcher.py,
``lower_priority``) so that nginx and LINE's intake acknowledge a burst before the turns
it starts take the cores; the intake runs as several processes on one port. The tests
start real processes and read what the kernel says of them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis

from bench.servers import free_port
from bot.channels.line.signature import sign
from bot.launcher import _spawn
from bot.settings import SettingsError, load_settings
from tests.channels.conftest import REDIS_URL
from tests.channels.line.support import body, text_event
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET

# A child that starts a thread after a moment, as Rasa and TensorFlow start theirs
# while the server loads, then waits to be read.
CHILD = (
    "import threading, time\n"
    "time.sleep(0.3)\n"
    "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
    "time.sleep(30)\n"
)
AUTOGROUP = Path("/proc/self/autogroup")


def thread_nice_values(pid: int) -> list[int]:
    """The nice value of every thread of ``pid`` (field 19 of each task's stat)."""
    values = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        values.append(int(stat.rpartition(")")[2].split()[16]))
    return values


@pytest.fixture
def child() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(10)


def wait_for_threads(pid: int, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(list(Path(f"/proc/{pid}/task").iterdir())) < count:
        assert time.monotonic() < deadline, "the child's thread did not start"
        time.sleep(0.05)


def test_the_turn_work_runs_at_the_nice_value_given_with_every_thread_it_starts(child):
    process = _spawn([sys.executable, "-c", CHILD], dict(os.environ), None, nice=10)
    child.append(process)
    wait_for_threads(process.pid, 2)
    assert thread_nice_values(process.pid) == [10, 10]
    if AUTOGROUP.exists():
        # Its session's share of the CPU against other sessions (nginx, the intake).
        assert Path(f"/proc/{process.pid}/autogroup").read_text().split()[-1] == "10"


def test_other_processes_keep_the_default_priority(child):
    process = _spawn([sys.executable, "-c", CHILD], dict(os.environ), None)
    child.append(process)
    wait_for_threads(process.pid, 2)
    assert thread_nice_values(process.pid) == [os.getpriority(os.PRIO_PROCESS, 0)] * 2
    if AUTOGROUP.exists():
        assert Path(f"/proc/{process.pid}/autogroup").read_text().split()[-1] == "0"


def test_the_settings_refuse_a_priority_or_a_process_count_out_of_range():
    assert load_settings({}).cluster_turn_nice == 10
    assert load_settings({"CLUSTER_TURN_NICE": "0"}).cluster_turn_nice == 0
    assert load_settings({}).line_intake_processes == 2
    for name, value in [
        ("CLUSTER_TURN_NICE", "20"),
        ("CLUSTER_TURN_NICE", "-5"),
        ("LINE_INTAKE_PROCESSES", "0"),
        ("LINE_INTAKE_PROCESSES", "two"),
    ]:
        with pytest.raises(SettingsError, match=name):
            load_settings({name: value})


# --- the intake's processes on one port --------------------------------------------------


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/webhooks/line/", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


async def deliver(port: int, count: int) -> list[int]:
    """``count`` signed deliveries, each on a connection of its own."""
    url = f"http://127.0.0.1:{port}/webhooks/line/webhook"

    async def one(number: int) -> int:
        raw = body(text_event(f"質問 {number}", token=f"t{number}", n=number))
        headers = {
            "Content-Type": "application/json",
            "X-Line-Signature": sign(CHANNEL_SECRET, raw),
        }
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
            http.post(url, data=raw, headers=headers) as response,
        ):
            return response.status

    return list(await asyncio.gather(*(one(number) for number in range(count))))


def test_two_intake_processes_share_the_port_and_one_answers_when_the_other_dies(child):
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    # A database of its own: the intake process writes the product's key.
    url = REDIS_URL.rsplit("/", 1)[0] + "/12"
    inbox = redis.Redis.from_url(url)
    inbox.delete("privacy-bot:line:inbox")
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "LINE_INTAKE_PORT": str(port),
        "LINE_CHANNEL_SECRET": CHANNEL_SECRET,
        "LINE_CHANNEL_ACCESS_TOKEN": ACCESS_TOKEN,
    }
    for _ in range(2):
        process = _spawn(
            [sys.executable, "-m", "bot.channels.line.intake", "--reuse-port"], env, None
        )
        child.append(process)
    deadline = time.monotonic() + 60
    while not healthy(port):
        assert all(process.poll() is None for process in child), "an intake stopped"
        assert time.monotonic() < deadline, "the intake did not start"
        time.sleep(0.1)
    time.sleep(1)  # the second process may bind a moment after the first answers
    assert all(process.poll() is None for process in child), "the port was not shared"
    try:
        assert asyncio.run(deliver(port, 20)) == [200] * 20
        child[0].send_signal(signal.SIGKILL)
        child[0].wait(10)
        assert asyncio.run(deliver(port, 20)) == [200] * 20
        assert inbox.llen("privacy-bot:line:inbox") == 40
    finally:
        inbox.delete("privacy-bot:line:inbox")
        inbox.close()
        client.close()
