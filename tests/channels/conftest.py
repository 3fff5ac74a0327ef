"""A real Redis for the channels' shared-state tests: a key prefix per test, cleaned up.

Redis at ``PRIVACY_BOT_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/5``); without
one the tests that need it skip with the reason, unless ``PRIVACY_BOT_REQUIRE_REDIS=1``
(then they fail).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

REDIS_URL = os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")


@dataclass(frozen=True)
class RedisSpace:
    """Where one test keeps its keys: the Redis URL and a prefix of its own."""

    url: str
    prefix: str

    def stored_keys(self) -> list[str]:
        """The test's keys, now."""
        client = redis.Redis.from_url(self.url, decode_responses=True)
        try:
            return sorted(client.scan_iter(match=f"{self.prefix}*"))
        finally:
            client.close()


@pytest.fixture
def redis_space() -> Iterator[RedisSpace]:
    """A key prefix of the test's own on the test Redis; its keys deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        client.close()
        if os.environ.get("PRIVACY_BOT_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {type(error).__name__}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {type(error).__name__}")
    space = RedisSpace(REDIS_URL, f"test:{uuid.uuid4().hex}:")
    try:
        yield space
    finally:
        for key in client.scan_iter(match=f"{space.prefix}*"):
            client.delete(key)
        client.close()


def closed_port_url() -> str:
    """A Redis URL where nothing listens (a port just freed), with a password in it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://:s3cret-pw@127.0.0.1:{port}/0"
