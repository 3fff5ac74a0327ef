"""bench.line_edge on a real nginx and real intake processes: what its figures stand on.

A small round (40 deliveries a burst): every delivery reaches the intake through the
cluster's own nginx configuration and is logged there, the CPU of each side is read,
and nothing is left behind: no intake process, no nginx, no body in the inbox.
"""

from __future__ import annotations

import os

import pytest
import redis

from bench import line_edge
from bot.channels.line.inbox import inbox_key

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists("/usr/sbin/nginx"), reason="nginx is not installed"),
]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_round_is_measured_at_the_edge_and_leaves_nothing_behind(monkeypatch):
    # A Redis database of its own (the benchmark's is 13; the unit tests use 5 and 12).
    monkeypatch.setattr(line_edge, "REDIS_URL", "redis://127.0.0.1:6379/14")
    secret = "e2e-edge-secret"
    client = redis.Redis.from_url(line_edge.REDIS_URL)
    # An interrupted run's bodies: not counted as this run's.
    client.rpush(inbox_key(), b"left over")
    with line_edge.running_edge(2, secret) as edge:
        pids = [*edge.intake_pids, edge.nginx_pgid]
        cold = line_edge.burst(edge, 40, secret)
        # The bodies wait in the inbox (no rasa server here), signed as LINE signs.
        assert client.llen(inbox_key()) == 39
        kept = line_edge.burst(edge, 40, secret)
    assert not any(alive(pid) for pid in pids)
    assert client.exists(inbox_key()) == 0
    client.close()

    for one in (cold, kept):
        # 40 planned, one a redelivery of an earlier event: the burst sends the 39 new.
        assert one.deliveries == one.statuses_ok == 39
        assert len(one.edge_s) == 39  # each read from nginx's own log, this burst's only
        assert all(0 <= seconds < 2 for seconds in one.edge_s)
        assert one.client_cpu_s > 0
    # The intake did the work: its processes' CPU over both bursts is above a tick.
    assert cold.intake_cpu_s + kept.intake_cpu_s > 0
