"""bot.cluster before anything starts: where its state goes, what it refuses, its nginx."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from bot.cluster import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    NGINX,
    cluster_running,
    cluster_settings,
    ensure_postgres,
    ensure_redis,
    nginx_config,
)
from bot.settings import SettingsError, load_settings


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_cluster_defaults_to_its_own_postgres_database_and_redis_db():
    settings = cluster_settings(load_settings({}), {})
    assert (settings.database_url, settings.redis_url) == (DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL)
    assert settings.lock_url == DEFAULT_REDIS_URL  # Rasa's locks too
    assert settings.tracker_url == DEFAULT_DATABASE_URL


def test_managed_servers_are_taken_from_the_environment():
    env = {
        "DATABASE_URL": "postgresql://privacy:pw@db.example.jp:5432/privacy",
        "REDIS_URL": "rediss://:pw@cache.example.jp:6380/0",
    }
    settings = cluster_settings(load_settings(env), env)
    assert (settings.database_url, settings.redis_url) == tuple(env.values())


def test_sqlite_is_refused_in_japanese():
    env = {"DATABASE_URL": "sqlite:///var/app.db"}
    with pytest.raises(SettingsError, match="PostgreSQL"):
        cluster_settings(load_settings(env), env)


def test_unreachable_servers_are_refused_without_their_password():
    port = closed_port()
    with pytest.raises(SettingsError, match="接続できません") as postgres:
        ensure_postgres(f"postgresql://postgres:hunter2@127.0.0.1:{port}/x")
    with pytest.raises(SettingsError, match="接続できません") as redis:
        ensure_redis(f"redis://:hunter2@127.0.0.1:{port}/3")
    assert "hunter2" not in str(postgres.value) + str(redis.value)


@pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")
@pytest.mark.parametrize("rasa", [["127.0.0.1:1", "127.0.0.1:2"], ["127.0.0.1:1"]])
def test_the_nginx_configuration_is_accepted_by_nginx(tmp_path: Path, rasa: list[str]):
    (tmp_path / "temp").mkdir()
    actions = [f"127.0.0.1:5{address[-1]}" for address in rasa]
    conf = nginx_config(
        tmp_path, "127.0.0.1:18000", rasa, "127.0.0.1:3", actions, "127.0.0.1:4", "127.0.0.1:6"
    )
    assert "${" not in conf
    # LINE's webhook goes to the intake, and to any rasa server only when it fails.
    assert "server 127.0.0.1:6;" in conf
    line = conf[conf.index("location = /webhooks/line/webhook") :]
    assert "proxy_pass http://privacy_line_intake;" in line.split("}")[1]
    assert "error_page 502 503 504 = @line_direct;" in line
    # Both upstreams (any replica; socket.io sticky) list every rasa server, and only them.
    assert conf.count("server 127.0.0.1:1 ") == 2
    assert conf.count("server 127.0.0.1:2 ") == 2 * (len(rasa) == 2)
    # The action servers, once each, behind the rasa servers' own loopback listener.
    assert [conf.count(f"server {address} ") for address in actions] == [1] * len(rasa)
    assert "listen 127.0.0.1:4;" in conf
    (tmp_path / "nginx.conf").write_text(conf, "utf-8")
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("replicas", [0, 3])
def test_a_cluster_has_one_or_two_replicas(replicas: int, tmp_path: Path):
    settings = cluster_settings(load_settings({}), {})
    started = cluster_running(settings, tmp_path / "model.tar.gz", replicas=replicas)
    with pytest.raises(ValueError, match="1 or 2"), started:
        pytest.fail("started")  # pragma: no cover
