"""The LINE burst's baseline: bench.bare_server answers a burst, bench.line times it."""

from __future__ import annotations

import asyncio
import sys

from bench.line import burst_acks, plan_line, prepared_request, signed_request
from bench.servers import child_env, free_port, local_url, server


def test_a_burst_to_the_bare_server_is_answered_and_timed_delivery_by_delivery():
    port = free_port()
    url = f"{local_url(port)}/webhooks/line/webhook"
    plan = plan_line(40, 40, ["個人情報の利用目的を教えてください"], seed=3)
    requests = [prepared_request(url, *signed_request(delivery, "s" * 32)) for delivery in plan]
    command = [sys.executable, "-m", "bench.bare_server", str(port)]
    with server("bare server", command, f"{local_url(port)}/", child_env(), deadline_s=30):
        acks = asyncio.run(burst_acks(url, requests))
    assert len(acks) == 40
    assert all(0 < seconds < 30 for seconds in acks)
    # Stopped with the block: the same burst now gets no answer at all.
    assert asyncio.run(burst_acks(url, requests[:3])) == []
