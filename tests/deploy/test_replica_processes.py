"""A rasa replica and an action server started by the image's entry point, as compose does.

``migrate`` brings a PostgreSQL schema up to date, ``actions`` and ``rasa`` start from
the settings alone (as in deploy/env/app.env: PostgreSQL, Redis, the shared secrets,
ACTION_ENDPOINT_URL), the image's health check passes on the rasa server's route, a
member's message is answered through the action server, and the conversation is in the
PostgreSQL tracker store, where any other replica would read it.

Marked e2e: it needs the trained model (``make test`` trains before the end-to-end tests).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bot.launcher import model_path
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

ENTRYPOINT = PROJECT_ROOT / "deploy" / "docker" / "entrypoint.py"
HEALTHCHECK = PROJECT_ROOT / "deploy" / "docker" / "healthcheck.py"
REDIS_URL = os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
TOKEN = "replica-test-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str, process: subprocess.Popen[bytes], deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and process.poll() is None:
        check = subprocess.run([sys.executable, str(HEALTHCHECK), url], check=False, timeout=30)
        if check.returncode == 0:
            return True
        time.sleep(1)
    return False


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-3000:]


@pytest.fixture
def replica(db_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    if not model_path().exists():
        pytest.skip(f"no trained model at {model_path()} (make train)")
    rasa_port, action_port = _free_port(), _free_port()
    environment = {
        **os.environ,
        # The code of this checkout, whatever the editable install points at.
        "PYTHONPATH": str(PROJECT_ROOT),
        "PRIVACY_BOT_VAR_DIR": str(tmp_path),
        "PRIVACY_BOT_BIND_HOST": "127.0.0.1",
        "DATABASE_URL": db_url,
        "TRACKER_STORE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "LOCK_STORE_URL": REDIS_URL,
        "RASA_TOKEN": TOKEN,
        "ACTION_SERVER_SECRET": "replica-test-action-secret",
        "PRIVACY_BOT_SECRET": "replica-test-secret",
        "PRIVACY_BOT_REST": "true",
        "RASA_PORT": str(rasa_port),
        "ACTION_PORT": str(action_port),
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{action_port}/webhook",
    }
    migrate = subprocess.run(
        [sys.executable, str(ENTRYPOINT), "migrate"],
        env=environment,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    processes = []
    try:
        for name in ("actions", "rasa"):
            with open(tmp_path / f"{name}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, str(ENTRYPOINT), name],
                        env=environment,
                        cwd=PROJECT_ROOT,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                )
        actions, rasa = processes
        for url, process, name in (
            (f"http://127.0.0.1:{action_port}/health", actions, "actions"),
            (f"http://127.0.0.1:{rasa_port}/", rasa, "rasa"),
        ):
            assert _healthy(url, process, 300), _tail(tmp_path / f"{name}.log")
        yield f"http://127.0.0.1:{rasa_port}", environment
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# A replica's stores are PostgreSQL and Redis: the SQLite case of db_url does not apply.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_replica_answers_and_keeps_the_conversation_in_postgresql(replica):
    rasa_url, environment = replica
    sender = f"replica-{uuid.uuid4().hex[:8]}"
    answer = requests.post(
        f"{rasa_url}/webhooks/rest/webhook",
        json={"sender": sender, "message": "口座情報は何に使われますか"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    )
    assert answer.status_code == 200
    assert answer.json() and answer.json()[0].get("text")
    engine = sa.create_engine(environment["TRACKER_STORE_URL"])
    try:
        with engine.connect() as connection:
            types = connection.execute(
                sa.text("SELECT type_name FROM events WHERE sender_id = :sender ORDER BY id"),
                {"sender": f"rest:{sender}"},
            ).scalars()
            stored = list(types)
    finally:
        engine.dispose()
    assert "user" in stored and "bot" in stored
    # The endpoints the entry point wrote: Redis locks, the action servers with the secret.
    endpoints = (Path(environment["PRIVACY_BOT_VAR_DIR"]) / "endpoints.yml").read_text("utf-8")
    assert "type: redis" in endpoints and "Bearer replica-test-action-secret" in endpoints
