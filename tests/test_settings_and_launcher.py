import asyncio
import os
import shutil
import socket
import stat
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from bot.db.models import StaffAccount
from bot.db.session import session_factory
from bot.launcher import (
    REDACTING_STORE,
    RunningAssistant,
    _print_how_to_talk,
    has_staff_account,
    model_path,
    prepare_tracker_store,
    running,
    training_fingerprint,
    write_endpoints,
)
from bot.settings import DEFAULT_ORG, Settings, SettingsError, load_settings
from tests.conftest import ROOT

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)


def test_defaults_need_no_environment():
    settings = load_settings({})
    assert settings.org_id == DEFAULT_ORG == "kokusai-kogyo-kenpo"
    assert (settings.rasa_port, settings.action_port) == (5005, 5055)
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "var/app.db"
    )
    assert settings.action_endpoint_url == "http://127.0.0.1:5055/webhook"
    assert settings.bind_host == "127.0.0.1" and settings.rest_enabled is False


def test_environment_overrides_and_bad_ports_are_refused():
    settings = load_settings({"PRIVACY_BOT_ORG": "coop-kyosai", "RASA_PORT": "6005"})
    assert (settings.org_id, settings.rasa_port) == ("coop-kyosai", 6005)
    with pytest.raises(SettingsError, match="ACTION_PORT"):
        load_settings({"ACTION_PORT": "55x"})
    with pytest.raises(SettingsError, match="RASA_PORT"):
        load_settings({"RASA_PORT": "70000"})


def test_the_model_is_retrained_only_when_training_inputs_change(tmp_path):
    for name in ("config.yml", "domain.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "bot" / "nlu", tmp_path / "bot" / "nlu")
    before = training_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("docs do not change the model", "utf-8")
    assert training_fingerprint(tmp_path) == before
    with (tmp_path / "data" / "rules.yml").open("a", encoding="utf-8") as rules:
        rules.write("\n")
    after = training_fingerprint(tmp_path)
    assert after != before
    assert model_path(tmp_path).name == f"privacy-assistant-{after}.tar.gz"


# --- the tracker store, the lock store and the staff console ------------------------------


def endpoints_of(settings: Settings) -> dict:
    path = write_endpoints(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a password
    return yaml.safe_load(path.read_text("utf-8"))


def test_the_tracker_store_is_the_app_database_but_not_its_sqlite_file():
    postgres = "postgresql://bot@db/app?options=-csearch_path%3Dx"
    assert load_settings({"DATABASE_URL": postgres}).tracker_url == postgres
    # SQLite locks the whole file per write: Rasa's writes get a file of their own.
    sqlite = load_settings({"DATABASE_URL": "sqlite:////srv/bot/app.db"})
    assert sqlite.tracker_url == "sqlite:////srv/bot/tracker.db"
    chosen = {"DATABASE_URL": postgres, "TRACKER_STORE_URL": "sqlite:////srv/t.db"}
    assert load_settings(chosen).tracker_url == "sqlite:////srv/t.db"


def test_the_endpoints_point_rasa_at_the_sql_tracker_store(tmp_path):
    settings = replace(load_settings({}), var_dir=tmp_path)
    endpoints = endpoints_of(settings)
    assert endpoints["action_endpoint"]["headers"]["Authorization"].startswith("Bearer ")
    assert endpoints == {
        "action_endpoint": {
            "url": "http://127.0.0.1:5055/webhook",
            "headers": endpoints["action_endpoint"]["headers"],
        },
        "tracker_store": {
            "type": REDACTING_STORE,
            "dialect": "sqlite",
            "db": str(Path(settings.database_url.removeprefix("sqlite:///")).parent / "tracker.db"),
        },
    }

    settings = load_settings(
        {
            "PRIVACY_BOT_VAR_DIR": str(tmp_path),
            "TRACKER_STORE_URL": "postgresql+psycopg2://bot:p%40ss%3Aword@db.example.jp:5433/"
            "conversations?options=-csearch_path%3Drasa&sslmode=require",
            "LOCK_STORE_URL": "rediss://:secret@cache.example.jp:6380/2",
        }
    )
    endpoints = endpoints_of(settings)
    assert endpoints["tracker_store"] == {
        "type": REDACTING_STORE,
        "dialect": "postgresql+psycopg2",
        "url": "db.example.jp",
        "port": 5433,
        "db": "conversations",
        "username": "bot",
        "password": "p@ss:word",
        "query": {"options": "-csearch_path=rasa", "sslmode": "require"},
    }
    assert endpoints["lock_store"] == {
        "type": "redis",
        "url": "cache.example.jp",
        "port": 6380,
        "db": 2,
        "password": "secret",
        "use_ssl": True,
    }
    with pytest.raises(SettingsError, match="in memory"):
        write_endpoints(replace(settings, tracker_store_url="sqlite://"))


def test_rasa_builds_its_tracker_store_from_the_endpoints_file(db_url, tmp_path):
    from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import read_endpoint_config

    settings = replace(load_settings({}), var_dir=tmp_path, tracker_store_url=db_url)
    config = read_endpoint_config(str(write_endpoints(settings)), "tracker_store")
    store = TrackerStore.create(config, Domain.empty())
    try:
        assert isinstance(store, SQLTrackerStore)
        tracker = DialogueStateTracker("member-1", [])
        tracker.update(UserUttered("こんにちは"))
        asyncio.run(store.save(tracker))
    finally:
        store.engine.dispose()
    # In the very database (and PostgreSQL schema) the URL names.
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT sender_id, type_name FROM events")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("member-1", "user")]


def test_rasa_builds_its_redis_lock_store_from_the_endpoints_file(tmp_path):
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.utils.endpoints import read_endpoint_config

    url = os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
    settings = replace(load_settings({}), var_dir=tmp_path, lock_store_url=url)
    store = LockStore.create(read_endpoint_config(str(write_endpoints(settings)), "lock_store"))
    assert isinstance(store, RedisLockStore)
    try:
        store.red.ping()
    except Exception as error:  # redis' own ConnectionError
        pytest.skip(f"Redis not reachable at {url}: {type(error).__name__}")

    async def lock_twice() -> None:
        async with store.lock("member-1"):
            assert store.get_lock("member-1") is not None
        async with store.lock("member-1"):
            pass

    asyncio.run(lock_twice())


def test_a_taken_console_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = replace(load_settings({}), var_dir=tmp_path, console_port=port)
        with (
            pytest.raises(SettingsError, match=f"CONSOLE_PORT {port}"),
            running(settings, Path("no-model.tar.gz"), console=True),
        ):
            pass  # pragma: no cover - never reached
    assert not (tmp_path / "rasa_token").exists()


def test_run_prints_the_console_and_how_to_create_a_staff_account(capsys, tmp_path):
    settings = replace(load_settings({}), var_dir=tmp_path)
    assistant = RunningAssistant(
        "http://localhost:5005",
        "http://localhost:5055",
        "token",
        [],
        settings,
        "http://localhost:8080/",
        "http://localhost:5002/",
    )
    _print_how_to_talk(settings, assistant, staff_account_exists=False)
    out = capsys.readouterr().out
    assert "スタッフ用コンソール: http://localhost:5002/" in out
    assert ".venv/bin/python -m bot.staff create-account NAME --role agent" in out
    _print_how_to_talk(settings, assistant, staff_account_exists=True)
    out = capsys.readouterr().out
    assert "スタッフ用コンソール: http://localhost:5002/" in out and "create-account" not in out


def test_run_says_which_addresses_are_public_and_whether_rest_is_on(capsys, tmp_path):
    settings = replace(load_settings({}), var_dir=tmp_path)
    assistant = RunningAssistant(
        "http://127.0.0.1:5005", "http://127.0.0.1:5055", "s3cr3t-t0ken", [], settings
    )
    _print_how_to_talk(settings, assistant)
    out = capsys.readouterr().out
    assert "公開アドレス:      なし（すべて 127.0.0.1 で待ち受け" in out
    assert "REST:              無効" in out and "s3cr3t-t0ken" not in out
    exposed = replace(settings, bind_host="0.0.0.0", rest_enabled=True)
    _print_how_to_talk(exposed, assistant)
    out = capsys.readouterr().out
    assert "公開アドレス:      0.0.0.0 のポート 5005, 5055, 8080, 5002" in out
    assert "ファイアウォールで閉じてください" in out
    # The REST line names the token's file, never the token itself.
    assert f"Bearer $(cat {tmp_path / 'rasa_token'})" in out and "s3cr3t-t0ken" not in out


def test_has_staff_account_reads_the_app_database(migrated_url, tmp_path):
    settings = replace(load_settings({}), var_dir=tmp_path, database_url=migrated_url)
    assert not has_staff_account(settings)

    def add(name: str, active: bool) -> None:
        with session_factory(migrated_url).begin() as session:
            session.add(StaffAccount(
                name=name, role="agent", password_salt="s", password_hash="h",
                active=active, created_at=NOW,
            ))  # fmt: skip

    add("retired", active=False)
    assert not has_staff_account(settings)  # who cannot sign in does not count
    add("tanaka", active=True)
    assert has_staff_account(settings)


def test_a_sqlite_tracker_store_is_made_in_wal_mode(tmp_path):
    settings = replace(
        load_settings({}), var_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db' / 'app.db'}"
    )
    prepare_tracker_store(settings)
    engine = sa.create_engine(settings.tracker_url)
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    finally:
        engine.dispose()
    assert (tmp_path / "db" / "tracker.db").exists() and mode == "wal"


def test_the_tracker_store_may_not_share_the_sqlite_file_of_the_app_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    with pytest.raises(SettingsError, match="TRACKER_STORE_URL"):
        load_settings({"DATABASE_URL": url, "TRACKER_STORE_URL": url})
    assert (
        load_settings({"DATABASE_URL": url}).tracker_url == f"sqlite:///{tmp_path / 'tracker.db'}"
    )


def test_redis_url_is_optional_and_must_be_a_redis_url():
    assert load_settings({}).redis_url is None
    for url in ("redis://127.0.0.1:6379/0", "rediss://:pw@cache.example.jp:6380/2"):
        assert load_settings({"REDIS_URL": url}).redis_url == url
    for bad in ("http://:hunter2@cache.example.jp", "127.0.0.1:6379", "valkey://x"):
        with pytest.raises(SettingsError, match="REDIS_URL must be a redis:// or rediss://") as e:
            load_settings({"REDIS_URL": bad})
        assert "hunter2" not in str(e.value)
    with pytest.raises(SettingsError, match="LOCK_STORE_URL"):
        load_settings({"LOCK_STORE_URL": "memcached://x"})


def test_the_lock_store_is_redis_url_unless_lock_store_url_names_another(tmp_path):
    def lock_store(**env: str) -> object:
        settings = load_settings({"PRIVACY_BOT_VAR_DIR": str(tmp_path), **env})
        return endpoints_of(settings).get("lock_store")

    assert lock_store() is None  # in memory, as make run has it
    assert lock_store(REDIS_URL="redis://cache.example.jp:6379/3") == {
        "type": "redis",
        "url": "cache.example.jp",
        "port": 6379,
        "db": 3,
        "use_ssl": False,
    }
    assert lock_store(
        REDIS_URL="redis://cache.example.jp:6379/3", LOCK_STORE_URL="rediss://locks.example.jp/1"
    ) == {"type": "redis", "url": "locks.example.jp", "port": 6379, "db": 1, "use_ssl": True}


def test_the_servers_the_launcher_starts_get_redis_url():
    from bot.settings import environment_of

    url = "redis://127.0.0.1:6379/4"
    environment = environment_of(load_settings({"REDIS_URL": url}))
    assert environment["REDIS_URL"] == url
    assert environment["LOCK_STORE_URL"] is None  # they derive it as the launcher did
    assert environment_of(load_settings({}))["REDIS_URL"] is None


def test_the_rasa_server_refuses_to_start_without_its_redis(monkeypatch, capsys, tmp_path):
    from bot.rasa_server import main

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PRIVACY_BOT_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("REDIS_URL", f"redis://:pw-in-url@127.0.0.1:{port}/0")
    assert main(["--model", "none.tar.gz"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"設定エラー: REDIS_URL: Redis at 127.0.0.1:{port}/0 does not answer")
    assert "pw-in-url" not in error
    assert not (tmp_path / "rasa_token").exists()  # stopped before anything was made


def test_rasa_builds_its_redis_lock_store_from_redis_url_alone(tmp_path):
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.utils.endpoints import read_endpoint_config

    url = os.environ.get("PRIVACY_BOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
    settings = load_settings({"PRIVACY_BOT_VAR_DIR": str(tmp_path), "REDIS_URL": url})
    store = LockStore.create(read_endpoint_config(str(write_endpoints(settings)), "lock_store"))
    assert isinstance(store, RedisLockStore)
    try:
        store.red.ping()
    except Exception as error:  # redis' own ConnectionError
        pytest.skip(f"Redis not reachable at {url}: {type(error).__name__}")
    conversation = f"test-{os.getpid()}-{tmp_path.name}"

    async def lock() -> None:
        async with store.lock(conversation):
            assert store.get_lock(conversation) is not None
        assert store.get_lock(conversation) is None

    asyncio.run(lock())
