"""bench.cluster reads the acknowledgement nginx served from its access log."""

from __future__ import annotations

from pathlib import Path

from bench.cluster import request_times

LINES = [
    # Before the burst: not counted.
    '127.0.0.1 [07/Dec/2026:02:00:00 +0000] "POST /webhooks/line/webhook HTTP/1.1" 200 '
    "127.0.0.1:6 0.899 0.900",
    # The burst: by the intake; by a rasa server after the intake failed; a stranger's
    # refused body; and other routes meanwhile.
    '127.0.0.1 [07/Dec/2026:02:00:01 +0000] "POST /webhooks/line/webhook HTTP/1.1" 200 '
    "127.0.0.1:6 0.003 0.004",
    '127.0.0.1 [07/Dec/2026:02:00:01 +0000] "POST /webhooks/line/webhook HTTP/1.1" 200 '
    "127.0.0.1:6 : 127.0.0.1:1 0.002 : 0.027 0.031",
    '127.0.0.1 [07/Dec/2026:02:00:01 +0000] "POST /webhooks/line/webhook HTTP/1.1" 401 '
    "127.0.0.1:6 0.000 0.001",
    '127.0.0.1 [07/Dec/2026:02:00:01 +0000] "POST /webhooks/rest/webhook HTTP/1.1" 200 '
    "127.0.0.1:1 1.249 1.250",
    '127.0.0.1 [07/Dec/2026:02:00:01 +0000] "GET /webhooks/line/webhook HTTP/1.1" 403 - - 0.000',
]


def test_only_the_burst_posts_to_the_path_are_read(tmp_path: Path):
    log = tmp_path / "access.log"
    log.write_text(LINES[0] + "\n", "utf-8")
    start = log.stat().st_size
    with log.open("a", encoding="utf-8") as more:
        more.write("\n".join(LINES[1:]) + "\n")
    assert request_times(log, start, "/webhooks/line/webhook") == [0.004, 0.031, 0.001]
    assert request_times(log, 0, "/webhooks/rest/webhook") == [1.25]
    # The intake's own share; for the fallback, the rasa server's (the last upstream).
    assert request_times(log, start, "/webhooks/line/webhook", upstream=True) == [
        0.003,
        0.027,
        0.0,
    ]
