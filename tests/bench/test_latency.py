"""How `python -m bench` (bench/latency.py, bench/servers.py) starts and talks to the servers.

The product's servers are started as the launcher starts them: its own entry points, the
secrets in files of the run's var dir, none in the environment, the action endpoint
with its bearer header, the REST channel on and every request carrying the HTTP API
token. `rasa init`'s server keeps Rasa's stock REST channel, without a token. Both send
one POST per message. Only the action server is started here: the rasa server needs a
trained model (`make bench`).
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from bench import latency
from bench.latency import (
    PRODUCT_REST_CHANNEL,
    Served,
    Settings,
    SystemRun,
    measure,
    plan_messages,
    product_env,
    product_rasa_server_command,
    product_server_files,
    rasa_init_server_files,
)
from bench.nlu import holdout_texts
from bench.servers import CommandError, child_env, free_port, local_url, run_command, server
from bot.channels.rest import SENDER, OperatorRestInput
from bot.rasa_server import rasa_argv
from bot.settings import SECRETS, load_settings

SMALL = Settings(
    sequential_messages=7, conversations=3, messages_per_conversation=2, warmup_messages=2
)


@pytest.fixture
def product(tmp_path, monkeypatch) -> tuple[dict[str, str], int, int]:
    """The product's environment, with every secret set in the benchmark's own."""
    for name in SECRETS.values():
        monkeypatch.setenv(name, f"from-the-environment-{name}")
    action_port, rasa_port = free_port(), free_port()
    return product_env(tmp_path / "var", action_port, rasa_port), action_port, rasa_port


def test_the_product_s_environment_has_its_settings_and_no_secret(product, tmp_path):
    env, action_port, rasa_port = product
    assert not set(SECRETS.values()) & set(env)
    settings = load_settings(env)
    assert settings.rest_enabled
    assert (settings.action_port, settings.rasa_port) == (action_port, rasa_port)
    assert settings.bind_host == "127.0.0.1"
    assert settings.var_dir == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'app.db'}"
    assert settings.rasa_token is None and settings.action_secret is None
    assert env["RASA_TELEMETRY_ENABLED"] == "false"


def test_the_product_s_files_carry_the_secrets_of_its_var_dir(product, tmp_path, monkeypatch):
    env, action_port, _ = product
    plan = plan_messages(holdout_texts(), Settings())
    endpoints, credentials, headers = product_server_files(
        env, tmp_path / "servers", plan.longest_conversation
    )
    var_dir = tmp_path / "var"
    assert (var_dir / "app.db").exists()
    secret = (var_dir / "action_secret").read_text().strip()
    token = (var_dir / "rasa_token").read_text().strip()
    assert secret and token and "from-the-environment" not in secret + token
    written = yaml.safe_load(endpoints.read_text())
    # The launcher's action endpoint; tracker and lock store in memory.
    assert f":{action_port}/webhook" in written["action_endpoint"]["url"]
    assert written == {
        "action_endpoint": {
            "url": load_settings(env).action_endpoint_url,
            "headers": {"Authorization": f"Bearer {secret}"},
        }
    }
    channels = yaml.safe_load(credentials.read_text())
    assert channels == {PRODUCT_REST_CHANNEL: {"max_messages_per_minute": 200}}
    for path in (endpoints, credentials):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert headers == {"Authorization": f"Bearer {token}"}

    # The product's channel, built as the rasa server builds it from these files, takes
    # the token and lets the whole sequential conversation through at once.
    for name in SECRETS.values():
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    channel = OperatorRestInput.from_credentials(channels[PRODUCT_REST_CHANNEL])
    assert isinstance(channel, OperatorRestInput)
    assert channel.authorized(headers["Authorization"])
    assert not channel.authorized("Bearer another")
    guard = channel.guard
    verdicts = [asyncio.run(guard.admit_async("rest:seq", text)) for text in plan.sequential]
    assert len(verdicts) == 200
    assert all(verdict.reply is None and verdict.text for verdict in verdicts)


def test_the_rasa_server_command_is_what_bot_rasa_server_takes(tmp_path):
    model, endpoints, credentials = tmp_path / "m.tar.gz", tmp_path / "e.yml", tmp_path / "c.yml"
    command = product_rasa_server_command(model, endpoints, credentials)
    assert command[:3] == [sys.executable, "-m", "bot.rasa_server"]
    argv = rasa_argv(command[3:], "token", "127.0.0.1", 5005)  # refuses what it sets itself
    assert argv[:2] == ["rasa", "run"] and "--enable-api" in argv
    for option, value in (
        ("--model", model),
        ("--endpoints", endpoints),
        ("--credentials", credentials),
    ):
        assert argv[argv.index(option) + 1] == str(value)


def test_rasa_init_keeps_rasa_s_rest_channel_without_an_action_server(tmp_path, monkeypatch):
    monkeypatch.setattr(latency, "RASA_INIT_DIR", tmp_path)
    (tmp_path / "endpoints.yml").write_text(
        "action_endpoint:\n  url: http://localhost:5055/webhook\nx: 1\n"
    )
    endpoints, credentials = rasa_init_server_files(tmp_path / "servers")
    assert yaml.safe_load(endpoints.read_text()) == {"x": 1}
    assert credentials.read_text() == "rest: null\n"


def test_the_plan_s_longest_conversation():
    plan = plan_messages(["a", "b"], SMALL)
    assert plan.longest_conversation == 7
    nothing = Settings(sequential_messages=0, conversations=0, warmup_messages=0)
    assert plan_messages(["a"], nothing).longest_conversation == 1


# --- what the driver sends ---------------------------------------------------------------


@contextmanager
def _rest_stand_in() -> Iterator[tuple[str, list[tuple[str | None, str]]]]:
    """A REST webhook that answers every POST and records its header and sender."""
    seen: list[tuple[str | None, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers.get("Authorization"), body["sender"]))
            answer = json.dumps([{"recipient_id": body["sender"], "text": "ok"}]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/webhooks/rest/webhook", seen
    finally:
        http.shutdown()
        http.server_close()


@pytest.mark.parametrize(
    ("key", "headers"), [("product", {"Authorization": "Bearer t0ken"}), ("rasa-init", {})]
)
def test_one_post_per_message_with_the_assistant_s_headers_and_valid_senders(
    key, headers, tmp_path
):
    plan = plan_messages(holdout_texts(), SMALL)
    # The run's directory as bench.__main__ makes it: its name is in every sender id.
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{uuid.uuid4().hex[:8]}-", dir=tmp_path))
    run = SystemRun(system=key)
    with _rest_stand_in() as (url, seen):
        measure(Served(url, headers, []), plan, run, f"bench-{run_dir.name}-{key}")
    assert len(seen) == len(plan.warmup) + len(plan.sequential) + SMALL.concurrent_messages
    assert {authorization for authorization, _ in seen} == {headers.get("Authorization")}
    senders = {sender for _, sender in seen}
    assert len(senders) == 1 + 1 + SMALL.conversations
    assert all(SENDER.fullmatch(sender) for sender in senders), senders
    assert run.sequential is not None and run.sequential.ok == len(plan.sequential)
    assert run.sequential.planned == len(plan.sequential) and run.sequential.empty_replies == 0
    assert run.concurrent is not None and run.concurrent.ok == SMALL.concurrent_messages


# --- the servers: started in a group of their own, ready when they answer, always stopped ---


def test_a_failing_command_reports_its_log_and_a_slow_one_is_stopped(tmp_path):
    python = [sys.executable, "-c"]
    assert run_command("ok", [*python, "pass"], child_env(), 60, tmp_path) >= 0
    with pytest.raises(CommandError, match=r"exited with 3(.|\n)*to the log"):
        run_command("fails", [*python, "print('to the log'); exit(3)"], child_env(), 60, tmp_path)
    with pytest.raises(CommandError, match="did not finish within 1 s"):
        run_command("slow", [*python, "import time; time.sleep(60)"], child_env(), 1, tmp_path)
    never_ready = server("never ready", [*python, "pass"], local_url(free_port()), child_env())
    with pytest.raises(CommandError, match="exited with 0 before it was ready"), never_ready:
        pass


def test_the_action_server_answers_only_with_the_endpoints_header(product, tmp_path):
    env, action_port, _ = product
    endpoints, _, _ = product_server_files(env, tmp_path / "servers", 7)
    header = yaml.safe_load(endpoints.read_text())["action_endpoint"]["headers"]
    url = local_url(action_port)
    command = [sys.executable, "-m", "bot.action_server"]
    with server("test product action server", command, url + "/health", env, 120) as process:
        assert process.startup_s > 0
        assert requests.get(url + "/actions", timeout=10).status_code == 401
        assert requests.get(url + "/actions", headers=header, timeout=10).status_code == 200
        process.sample_memory()
        assert process.processes_seen >= 1 and process.peak_mib > 10
