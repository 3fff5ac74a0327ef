"""The servers' private side: the action server's secret, argv and secret files."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from dataclasses import fields, replace
from types import SimpleNamespace

import pytest
import yaml
from sanic.response import HTTPResponse

from bot.action_server import bearer, require_secret
from bot.launcher import write_endpoints
from bot.rasa_server import rasa_argv
from bot.settings import (
    ENVIRONMENT,
    SECRETS,
    Settings,
    SettingsError,
    ensure_action_secret,
    ensure_rasa_token,
    environment_of,
    load_settings,
    secret_file,
    write_private,
)

SECRET = "s3cret-value"


def checked(path: str, authorization: str | None) -> int | None:
    """The status the action server's middleware answers, None when it lets through."""
    headers = {} if authorization is None else {"Authorization": authorization}
    request = SimpleNamespace(path=path, headers=headers)
    answer: HTTPResponse | None = asyncio.run(
        require_secret(SECRET)(request)  # type: ignore[arg-type]
    )
    return None if answer is None else answer.status


@pytest.mark.parametrize(
    "authorization", [None, "", SECRET, "Bearer wrong", f"Bearer {SECRET}x", f"bearer {SECRET}"]
)
def test_an_action_call_without_the_secret_is_refused(authorization):
    assert checked("/webhook", authorization) == 401
    assert checked("/actions", authorization) == 401


def test_the_secret_opens_the_webhook_and_health_needs_none():
    assert checked("/webhook", bearer(SECRET)) is None
    assert checked("/health", None) is None


def test_the_endpoints_file_carries_the_secret_and_is_private(tmp_path):
    settings = replace(load_settings({}), var_dir=tmp_path, action_port=5999)
    path = write_endpoints(settings)
    endpoints = yaml.safe_load(path.read_text("utf-8"))
    action = endpoints["action_endpoint"]
    assert action["url"] == "http://127.0.0.1:5999/webhook"
    assert action["headers"] == {"Authorization": bearer(ensure_action_secret(settings))}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_rasa_token_is_set_inside_the_process_bound_to_the_settings():
    argv = rasa_argv(["--model", "m.tar.gz"], "tok", "127.0.0.1", 5999)
    assert argv[:4] == ["rasa", "run", "--model", "m.tar.gz"]
    assert argv[argv.index("--interface") + 1] == "127.0.0.1"
    assert argv[argv.index("--auth-token") + 1] == "tok"
    assert argv[argv.index("--port") + 1] == "5999"
    for own in ("--auth-token", "--interface=0.0.0.0", "-i", "--port"):
        with pytest.raises(SettingsError):
            rasa_argv([own, "x"], "tok", "127.0.0.1", 5999)


def test_servers_bind_loopback_unless_told_otherwise():
    assert load_settings({}).bind_host == "127.0.0.1"
    assert load_settings({"PRIVACY_BOT_BIND_HOST": "0.0.0.0"}).local_host == "127.0.0.1"
    assert load_settings({"PRIVACY_BOT_BIND_HOST": "::1"}).rasa_url == "http://[::1]:5005"
    assert load_settings({"PRIVACY_BOT_BIND_HOST": "localhost"}).bind_host == "127.0.0.1"
    for bad in ("example.com", "0.0.0.0; rm", "127.0.0.1:80"):
        with pytest.raises(SettingsError, match="PRIVACY_BOT_BIND_HOST"):
            load_settings({"PRIVACY_BOT_BIND_HOST": bad})


def test_secret_files_are_private_from_their_first_byte(tmp_path, monkeypatch):
    # Every file this process creates would be world-readable under umask 0: the
    # secret must still be 0600 from the moment it exists.
    monkeypatch.setattr(os, "umask", os.umask)
    old = os.umask(0)
    try:
        value = secret_file(tmp_path / "var" / "rasa_token")
        write_private(tmp_path / "written", "token")
    finally:
        os.umask(old)
    for path in (tmp_path / "var" / "rasa_token", tmp_path / "written"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(value) >= 32 and value == secret_file(tmp_path / "var" / "rasa_token")
    assert [p.name for p in (tmp_path / "var").iterdir()] == ["rasa_token"]  # no drafts left


def test_racing_processes_end_up_with_one_secret(tmp_path):
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda: seen.append(secret_file(tmp_path / "action_secret")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1


def test_a_token_from_the_environment_wins_over_the_file(tmp_path):
    settings = replace(load_settings({"RASA_TOKEN": "from-env"}), var_dir=tmp_path)
    assert ensure_rasa_token(settings) == "from-env"
    (tmp_path / "action_secret").write_text("", "utf-8")
    with pytest.raises(SettingsError, match="empty"):
        ensure_action_secret(replace(settings, action_secret=None))


def test_the_servers_get_exactly_the_launchers_settings_and_no_secret(tmp_path):
    # Every setting has a variable, or is a secret: a new setting the launcher could
    # not hand on would silently fall back to its default in the servers.
    assert {f.name for f in fields(Settings)} == set(ENVIRONMENT) | set(SECRETS)
    settings = replace(
        load_settings({"DATABASE_URL": "postgresql://bot@db/app"}),
        rasa_token="t",
        var_dir=tmp_path,
        rest_enabled=True,
        bind_host="10.0.0.5",
        verification_sms_per_member_day=1000,
        console_trusted_proxies=("127.0.0.1/32", "10.0.0.0/24"),
        secret="hashing-secret",
        action_secret="action-secret",
    )
    environment = environment_of(settings)
    assert all(environment[name] is None for name in SECRETS.values())
    handed_on = {name: value for name, value in environment.items() if value is not None}
    assert "t" not in handed_on.values() and "hashing-secret" not in handed_on.values()
    # The tracker store is handed on resolved, so every server uses the same one.
    expected = replace(settings, tracker_store_url=settings.tracker_url)
    assert replace(load_settings(handed_on), rasa_token="t", secret="hashing-secret",
                   action_secret="action-secret") == expected  # fmt: skip
