"""compose's Redis keeps LINE's acknowledged deliveries across a crash.

The intake answers LINE 200 once a body is in Redis (bot/channels/line/inbox.py), and
LINE does not send an acknowledged delivery again: a Redis that restarts empty would
lose every body still waiting. The test runs Debian's ``redis-server`` with the
arguments of compose's ``redis`` service, queues a body through the inbox, kills the
server with SIGKILL and starts it again on the same directory.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from redis import asyncio as redis_asyncio

from bench.servers import free_port
from bot.channels.line.inbox import LineInbox
from bot.settings import PROJECT_ROOT

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")

BODY = b'{"destination":"U0","events":[{"type":"message"}]}'


def compose_arguments() -> list[str]:
    """The ``redis`` service's command after the program's name."""
    compose = yaml.safe_load((PROJECT_ROOT / "deploy" / "compose.yaml").read_text("utf-8"))
    command = compose["services"]["redis"].get("command") or ["redis-server"]
    assert command[0] == "redis-server"
    return list(command[1:])


class Server:
    """One redis-server on loopback, its files in ``directory``."""

    def __init__(self, directory: Path, arguments: list[str]) -> None:
        self.port = free_port()
        self.args = [
            str(REDIS_SERVER), *arguments,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process and server.process.poll() is None:
            server.kill()


def survives_a_kill(server: Server) -> bool:
    """Queue a body, wait past the append-only file's one-second flush, SIGKILL, restart."""

    async def put() -> None:
        inbox = LineInbox(redis_asyncio.Redis.from_url(server.url))
        await inbox.put(BODY, "c2lnbmF0dXJl")
        await inbox.close()

    async def take() -> tuple[bytes, str] | None:
        inbox = LineInbox(redis_asyncio.Redis.from_url(server.url))
        try:
            return await inbox.take(wait_s=0.1)
        finally:
            await inbox.close()

    server.start()
    asyncio.run(put())
    time.sleep(1.5)
    server.kill()
    server.start()
    return asyncio.run(take()) == (BODY, "c2lnbmF0dXJl")


def test_a_queued_delivery_survives_sigkill_of_composes_redis(servers, tmp_path):
    server = Server(tmp_path, compose_arguments())
    servers.append(server)
    assert survives_a_kill(server)


def test_without_the_append_only_file_it_would_be_lost(servers, tmp_path):
    # What the setting is for: Redis's defaults snapshot far less often than this.
    server = Server(tmp_path, [])
    servers.append(server)
    assert not survives_a_kill(server)
