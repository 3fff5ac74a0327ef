"""How the latency benchmark (bench/systems.py) starts and talks to the servers.

The product's servers are started as the launcher starts them: its own entry points, the
secrets in files of the run's var dir, none in the environment, the action endpoint
with its bearer header, the REST channel on and every request carrying the HTTP API
token. `rasa init`'s server keeps Rasa's stock REST channel, without a token. Both send
one POST per message. Only the action server is started here: the rasa server needs a
trained model (`make bench`).
"""

from __future__ import annotations

import json
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from bench import rasa_cli
from bench.procs import free_port
from bench.results import SystemRun
from bench.servers import (
    base_url,
    start_server,
    stock_endpoints,
    wait_until_ready,
    write_server_files,
)
from bench.settings import ROOT, Settings
from bench.systems import (
    PRODUCT_REST_CHANNEL,
    Served,
    _measure,
    product_assistant,
    product_env,
    product_server_files,
)
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
    assistant = product_assistant(Settings())
    endpoints, credentials, headers = product_server_files(assistant, env, tmp_path / "servers")
    var_dir = tmp_path / "var"
    assert (var_dir / "app.db").exists()
    secret = (var_dir / "action_secret").read_text().strip()
    token = (var_dir / "rasa_token").read_text().strip()
    assert secret and token and "from-the-environment" not in secret + token
    written = yaml.safe_load(endpoints.read_text())
    # The launcher's action endpoint; tracker and lock store in memory, as before.
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
    verdicts = [channel.guard.admit("rest:seq", text) for text in assistant.messages.sequential]
    assert len(verdicts) == 200
    assert all(v.reply is None and v.text for v in verdicts)


def test_the_rasa_server_command_is_what_bot_rasa_server_takes(tmp_path):
    model, endpoints, credentials = tmp_path / "m.tar.gz", tmp_path / "e.yml", tmp_path / "c.yml"
    command = rasa_cli.product_rasa_server_command(model, endpoints, credentials)
    assert command[:3] == [sys.executable, "-m", "bot.rasa_server"]
    argv = rasa_argv(command[3:], "token", "127.0.0.1", 5005)  # refuses what it sets itself
    assert argv[:2] == ["rasa", "run"] and "--enable-api" in argv
    for option, value in (
        ("--model", model),
        ("--endpoints", endpoints),
        ("--credentials", credentials),
    ):
        assert argv[argv.index(option) + 1] == str(value)
    assert rasa_cli.product_action_server_command()[1:] == ["-m", "bot.action_server"]


def test_rasa_init_keeps_rasa_s_rest_channel_without_an_action_server(tmp_path):
    base = tmp_path / "endpoints.yml"
    base.write_text("action_endpoint:\n  url: http://localhost:5055/webhook\nx: 1\n")
    endpoints, credentials = write_server_files(
        tmp_path / "servers", stock_endpoints(base, None), {"rest": None}
    )
    assert yaml.safe_load(endpoints.read_text()) == {"x": 1}
    assert credentials.read_text() == "rest: null\n"
    assert stock_endpoints(base, 6000)["action_endpoint"] == {
        "url": "http://127.0.0.1:6000/webhook"
    }


def test_the_plan_s_longest_conversation():
    plan = product_assistant(SMALL).messages
    assert plan.longest_conversation == 7
    assert replace(plan, warmup=[], sequential=[], concurrent=[]).longest_conversation == 1


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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("key", "headers"), [("product", {"Authorization": "Bearer t0ken"}), ("rasa-init", {})]
)
def test_one_post_per_message_with_the_assistant_s_headers_and_valid_senders(
    key, headers, tmp_path
):
    assistant = replace(product_assistant(SMALL), key=key)
    # The run id as bench.runner makes it: the name of the run's temporary directory.
    run_id = Path(tempfile.mkdtemp(prefix=f"run-{uuid.uuid4().hex[:8]}-", dir=tmp_path)).name
    run = SystemRun(system=key)
    with _rest_stand_in() as (url, seen):
        _measure(assistant, Served(url, headers, []), run, SMALL, run_id)
    plan = assistant.messages
    assert len(seen) == len(plan.warmup) + len(plan.sequential) + SMALL.concurrent_messages
    assert {authorization for authorization, _ in seen} == {headers.get("Authorization")}
    senders = {sender for _, sender in seen}
    assert len(senders) == 1 + 1 + SMALL.conversations
    assert all(SENDER.fullmatch(sender) for sender in senders), senders
    assert run.sequential is not None and run.sequential.ok == len(plan.sequential)
    assert run.concurrent is not None and run.concurrent.ok == SMALL.concurrent_messages


# --- the product's action server, started as the benchmark starts it ----------------------


def test_the_action_server_answers_only_with_the_endpoints_header(product, tmp_path):
    env, action_port, _ = product
    endpoints, _, _ = product_server_files(product_assistant(SMALL), env, tmp_path / "servers")
    header = yaml.safe_load(endpoints.read_text())["action_endpoint"]["headers"]
    url = base_url(action_port)
    with start_server(
        "test product action server", rasa_cli.product_action_server_command(), ROOT, env
    ) as server:
        wait_until_ready(server, url + "/health", 120)
        assert requests.get(url + "/actions", timeout=10).status_code == 401
        assert requests.get(url + "/actions", headers=header, timeout=10).status_code == 200
