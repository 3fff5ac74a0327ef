"""``python -m bot.worker`` as a real process on PostgreSQL: SIGKILL while sending.

The worker is killed while it sends an SMS (its carrier, the demo outbox, is a FIFO no
one reads: the write blocks); restarted, the SMS is never sent again (it becomes
``unknown``). The second worker is killed while it pushes on LINE (the stand-in accepts
the push and never answers, as when LINE's answer is lost); the third pushes again with
the same ``X-Line-Retry-Key``: LINE answers 409 and the member sees the message once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.db.models import OutboundMessage
from bot.db.session import session_factory
from bot.outbound.sender import AFTER_COMMIT_KEY, LINE, SMS, enqueue
from tests.conftest import ROOT
from tests.db_fixtures import backend_of
from tests.line_stand_in import ACCESS_TOKEN

LINE_USER = "U4af4980629a0b8e5c1f3a7d9e2b6c001"


class HangingLine:
    """LINE that accepts a push and never answers it; a repeat of its key gets 409."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # (retry key, status; 0 = no answer)
        self.lock = threading.Lock()

    @contextmanager
    def serving(self) -> Iterator[str]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers.get("X-Line-Retry-Key", "")
                with state.lock:
                    seen = any(k == key for k, _ in state.calls)
                    state.calls.append((key, 409 if seen else 0))
                if not seen:
                    time.sleep(30)  # accepted; the answer never comes in time
                    return
                data = b'{"message": "The retry key is already accepted"}'
                self.send_response(409)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def statuses(sessions) -> dict[str, str]:
    with sessions.begin() as session:
        return {
            channel: status
            for channel, status in session.execute(
                sa.select(OutboundMessage.channel, OutboundMessage.status)
            )
        }


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.worker"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_a_worker_killed_while_sending_delivers_each_message_at_most_once(migrated_url, tmp_path):
    if backend_of(migrated_url) != "postgresql":
        pytest.skip("the crash test runs on PostgreSQL, as a cluster does")
    sessions = session_factory(migrated_url)
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        # Written by a process that died right after its commit: the worker's to send.
        enqueue(session, SMS, "+819012345678", "コード ******", now, send_text="コード 123456")
        enqueue(session, LINE, "hashed", "お知らせ", now, address=LINE_USER)
        session.info.pop(AFTER_COMMIT_KEY)
    fifo = tmp_path / "blocked-outbox"
    os.mkfifo(fifo)
    outbox = tmp_path / "outbox.jsonl"
    line = HangingLine()
    log = tmp_path / "worker.log"
    base = {
        **os.environ,
        "DATABASE_URL": migrated_url,
        "PRIVACY_BOT_VAR_DIR": str(tmp_path / "var"),
        "LINE_CHANNEL_ACCESS_TOKEN": ACCESS_TOKEN,
        "OUTBOX_LEASE_SECONDS": "2",
        "PYTHONPATH": str(ROOT),
    }

    def killed(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL

    with line.serving() as url:
        # 1. The SMS is claimed and its write blocks (the push waits behind it).
        first = worker({**base, "LINE_API_BASE_URL": url, "PRIVACY_BOT_OUTBOX": str(fifo)}, log)
        try:
            wait_until(
                lambda: statuses(sessions) == {LINE: "sending", SMS: "sending"}, 30, "claims"
            )
            time.sleep(0.5)
        finally:
            killed(first)
        assert line.calls == []
        # 2. After the lease the SMS is unknown; the push is accepted, never answered.
        env = {**base, "LINE_API_BASE_URL": url, "PRIVACY_BOT_OUTBOX": str(outbox)}
        second = worker(env, log)
        try:
            wait_until(lambda: len(line.calls) == 1, 30, "the first push")
            assert statuses(sessions) == {LINE: "sending", SMS: "unknown"}
        finally:
            killed(second)
        # 3. The push again, with its key: 409, sent.
        third = worker(env, log)
        try:
            wait_until(lambda: statuses(sessions) == {LINE: "sent", SMS: "unknown"}, 30, "recovery")
        finally:
            third.send_signal(signal.SIGTERM)
            third.wait(20)
    assert third.returncode == 0
    # The SMS: never sent again (the carrier's file stays empty), its code dropped.
    assert not outbox.exists() or outbox.read_text("utf-8") == ""
    with sessions.begin() as session:
        rows = {row.channel: row for row in session.execute(sa.select(OutboundMessage)).scalars()}
    assert rows[SMS].payload is None and rows[LINE].payload is None
    # The push: accepted once, repeated with the same key, answered 409 (shown once).
    assert [status for _, status in line.calls] == [0, 409]
    assert {key for key, _ in line.calls} == {rows[LINE].retry_key}
    text = log.read_text("utf-8")
    assert "123456" not in text and "+8190" not in text and LINE_USER not in text
    assert json.dumps("お知らせ")[1:-1] not in text
