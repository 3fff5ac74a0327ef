"""Train when needed and run every process of the assistant, stopping them together.

``python -m bot.launcher train`` trains only when the training data, domain, config or
NLU components changed; ``python -m bot.launcher run`` also starts the action server,
the rasa server, the website chat's page (``bot.channels.webpage``), the staff console
(``bot.console``) and the worker (``bot.worker``: outbox retries, scheduled retention
purge), waits until all answer and prints where to talk to the assistant.
Ctrl-C stops everything it started.

The rasa server keeps every conversation in its SQL tracker store (``events`` table,
``settings.tracker_url``: ``TRACKER_STORE_URL``, else the app database, or
``tracker.db`` beside a SQLite app database), where the staff console reads
transcripts; with ``LOCK_STORE_URL`` (or else ``REDIS_URL``) its conversation locks are
in Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from bot.action_server import bearer
from bot.channels.webpage import WebchatError, check_files
from bot.db.demo import demo_member_for, load_demo
from bot.db.migrate import upgrade
from bot.db.models import StaffAccount
from bot.db.session import session_factory
from bot.policy.profiles.loader import ProfileError, load_profile
from bot.retention import purge_configured
from bot.settings import (
    PROJECT_ROOT,
    Settings,
    SettingsError,
    ensure_action_secret,
    ensure_rasa_token,
    environment_of,
    load_settings,
    write_private,
)

MODEL_PREFIX = "privacy-assistant"
# Everything a trained model depends on: a change here means a new model.
TRAINING_INPUTS = ("config.yml", "domain.yml", "data", "bot/nlu")
RASA = str(Path(sys.executable).with_name("rasa"))
# No telemetry leaves the machine, whichever way the launcher was started.
QUIET_ENV = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
}


def training_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A short hash of every file the model is trained from."""
    digest = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.suffix in {".pyc"} or "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def model_path(root: Path = PROJECT_ROOT) -> Path:
    """Where the model for the current training inputs is (or will be)."""
    return root / "models" / f"{MODEL_PREFIX}-{training_fingerprint(root)}.tar.gz"


def train_if_needed(root: Path = PROJECT_ROOT) -> Path:
    """Train a model unless one for the current inputs exists; return its path."""
    target = model_path(root)
    if target.exists():
        print(f"モデルは最新です: {target.relative_to(root)}", flush=True)
        return target
    print("学習データが変わったため、モデルを学習します（数分かかります）…", flush=True)
    started = time.monotonic()
    subprocess.run(
        [RASA, "train", "--out", str(target.parent), "--fixed-model-name", target.name[:-7]],
        cwd=root,
        env={**os.environ, **QUIET_ENV},
        check=True,
    )
    print(f"学習が終わりました（{time.monotonic() - started:.0f}秒）: {target}", flush=True)
    return target


# Named, not imported: importing it loads Rasa, which the launcher and console need not.
REDACTING_STORE = "bot.redacting_tracker_store.RedactingSQLTrackerStore"


def tracker_store_config(url: str) -> dict[str, Any]:
    """Rasa's ``tracker_store`` endpoint for an SQLAlchemy URL.

    The store is Rasa's SQL tracker store masking members' form answers and personal
    values on save (:class:`bot.redacting_tracker_store.RedactingSQLTrackerStore`); it
    takes the parameters of Rasa's ``SQL`` type.

    Rasa builds its own URL from parts: ``dialect`` (the SQLAlchemy driver name),
    ``url`` (the host), ``port``, ``db``, ``username``, ``password`` and ``query`` (the
    URL's query options, e.g. ``options=-csearch_path=...`` for a PostgreSQL schema).
    For SQLite only ``db``, the file, counts.

    Raises:
        SettingsError: If the URL cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as error:
        raise SettingsError("TRACKER_STORE_URL is not a database URL") from error
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            # Rasa's server and the console are separate processes: they must share a file.
            raise SettingsError("the tracker store must be an SQLite file, not in memory")
        return {"type": REDACTING_STORE, "dialect": "sqlite", "db": parsed.database}
    config: dict[str, Any] = {
        "type": REDACTING_STORE,
        "dialect": parsed.drivername,
        "url": parsed.host,
        "port": parsed.port,
        "db": parsed.database,
        "username": parsed.username,
        "password": parsed.password,
        "query": {
            key: value if isinstance(value, str) else value[-1]
            for key, value in parsed.query.items()
        },
    }
    return {key: value for key, value in config.items() if value not in (None, {})}


def lock_store_config(url: str) -> dict[str, Any]:
    """Rasa's ``lock_store`` endpoint (``RedisLockStore``) for a ``redis://`` URL."""
    parsed = make_url(url)
    config: dict[str, Any] = {
        "type": "redis",
        "url": parsed.host or "localhost",
        "port": parsed.port or 6379,
        "db": int(parsed.database or 0),
        "username": parsed.username,
        "password": parsed.password,
        "use_ssl": parsed.drivername == "rediss",
    }
    # redis://:password@host has an empty user name: none, not "".
    return {key: value for key, value in config.items() if value not in (None, "")}


def write_endpoints(settings: Settings) -> Path:
    """The rasa server's endpoints file: this run's action server, tracker and lock store.

    Written with mode 0600: it holds the action server's secret (sent as a bearer
    header with every action call) and may hold the database's password.
    """
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path = settings.var_dir / "endpoints.yml"
    endpoints: dict[str, Any] = {
        "action_endpoint": {
            "url": settings.action_endpoint_url,
            "headers": {"Authorization": bearer(ensure_action_secret(settings))},
        },
        "tracker_store": tracker_store_config(settings.tracker_url),
    }
    if settings.lock_url:  # LOCK_STORE_URL, else REDIS_URL
        endpoints["lock_store"] = lock_store_config(settings.lock_url)
    write_private(path, yaml.safe_dump(endpoints, allow_unicode=True, sort_keys=False))
    return path


def wait_until_up(url: str, deadline_s: float, process: subprocess.Popen[bytes]) -> None:
    """Poll ``url`` until it answers 200, the process dies, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            code = process.returncode
            raise RuntimeError(f"{url} のサーバーが起動中に終了しました (exit {code})")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} が {deadline_s:.0f} 秒以内に応答しませんでした")


@dataclass
class RunningAssistant:
    """The processes of a running assistant and where to reach them.

    ``token`` is the HTTP API token; the REST channel, when enabled, takes the same
    token as ``Authorization: Bearer`` (:attr:`rest_headers`).
    """

    rasa_url: str
    action_url: str
    token: str
    processes: list[subprocess.Popen[bytes]]
    settings: Settings
    webchat_url: str = ""  # the website chat's page; empty when not started
    console_url: str = ""  # the staff console; empty when not started

    @property
    def var_dir(self) -> Path:
        """Where the servers keep their database, outbox and logs."""
        return self.settings.var_dir

    @property
    def rest_url(self) -> str:
        """The REST channel's webhook (answers only with :attr:`rest_headers`)."""
        return f"{self.rasa_url}/webhooks/rest/webhook"

    @property
    def rest_headers(self) -> dict[str, str]:
        """What a REST call must carry: the HTTP API token as a bearer token."""
        return {"Authorization": f"Bearer {self.token}"}


def _spawn(
    args: list[str], env: dict[str, str], log: Path | None, nice: int = 0
) -> subprocess.Popen[bytes]:
    output = open(log, "ab") if log else None  # noqa: SIM115 - lives as long as the process
    # A process group of its own, so stopping it also stops anything it started.
    process = subprocess.Popen(
        args, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=output, start_new_session=True
    )
    if nice:
        lower_priority(process.pid, nice)
    return process


def lower_priority(pid: int, nice: int) -> None:
    """Give the process ``pid`` (just started, its own session) the nice value ``nice``.

    Linux's scheduler first shares the CPU between sessions (autogroups) and only then
    between the threads of a session by their nice values: every server here is a
    session of its own, so a nice value alone would weigh nothing against nginx or the
    intake. Both are set: the session's (``/proc/<pid>/autogroup``) and the main
    thread's, which the threads Rasa and TensorFlow start later inherit (Python has
    started none yet when Popen returns). Where either is missing (another kernel, a
    container that forbids it) the process keeps the default priority.
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice), encoding="ascii")


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the processes (and their children), politely first."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def prepare_database(settings: Settings) -> None:
    """Create or upgrade the app database and load the demo members (idempotent)."""
    upgrade(settings.database_url)
    with session_factory(settings.database_url).begin() as session:
        load_demo(session)
    # Retention runs at every start; a long-running deployment also schedules
    # `python -m bot.db purge` (docs/handoff.md).
    purge_configured(settings, datetime.now(timezone.utc))


def prepare_tracker_store(settings: Settings) -> None:
    """Put a SQLite tracker store in WAL mode before the rasa server opens it.

    Rasa leaves SQLite in its default journal mode, where a reader (the staff console
    reading a transcript) holds up the rasa server's writes; in WAL mode readers and
    the writer go on side by side. The mode is kept in the file.
    """
    url = make_url(settings.tracker_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(url.database)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
    finally:
        connection.close()


def has_staff_account(settings: Settings) -> bool:
    """Whether the app database has an active staff account (who can sign in)."""
    with session_factory(settings.database_url).begin() as session:
        found = session.execute(
            sa.select(StaffAccount.id).where(StaffAccount.active.is_(True)).limit(1)
        ).first()
    return found is not None


def port_in_use(port: int) -> bool:
    """Whether something on this machine already answers on ``port``."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running(
    settings: Settings,
    model: Path,
    log_dir: Path | None = None,
    startup_s: float = 240,
    webchat: bool = False,
    console: bool = False,
    worker: bool = True,
    line_intake: bool = False,
    turn_nice: int = 0,
) -> Iterator[RunningAssistant]:
    """Start the action server and the rasa server; stop them on exit.

    Args:
        settings: ports, var dir, database and organization of this run.
        model: the trained model the rasa server loads.
        log_dir: where each server's output goes (discarded when None).
        startup_s: how long each server may take to answer.
        webchat: also start the website chat's page (``bot.channels.webpage``) on
            ``settings.webchat_port``. Off unless asked for (``make run``, the
            browser tests), so that benchmarks and other tests need no fixed port.
        console: also start the staff console (``bot.console``) on
            ``settings.console_port``; off unless asked for, like the web chat.
        worker: also start the worker (``bot.worker``: the outbox's retries and the
            scheduled retention purge).
        line_intake: also start LINE's intake (``bot.channels.line.intake``) on
            ``settings.line_intake_port``: several replicas (``make cluster``) have
            one, which needs ``REDIS_URL``; ``settings.line_intake_processes``
            processes share the port.
        turn_nice: the nice value of the rasa and action servers (:func:`lower_priority`);
            0 leaves them as they are.

    Raises:
        WebchatError: If the web chat is asked for and its files are missing or its
            port is taken (another server answering there would pass for it).
        SettingsError: If the console is asked for and its port is taken, or the
            tracker store URL cannot be used.
    """
    if webchat:
        check_files()  # before anything starts: a missing npm install is a clear error
        if port_in_use(settings.webchat_port):
            raise WebchatError(
                f"WEBCHAT_PORT {settings.webchat_port} は別のプログラムが使用中です"
                "（.env で別のポートを指定してください）"
            )
    if console and port_in_use(settings.console_port):
        raise SettingsError(
            f"CONSOLE_PORT {settings.console_port} は別のプログラムが使用中です"
            "（.env で別のポートを指定してください）"
        )
    token = ensure_rasa_token(settings)
    if settings.rasa_token:
        # The servers read secrets from var/ files (mode 0600), not from their
        # environment, which every child process and crash reporter gets to see.
        write_private(settings.var_dir / "rasa_token", settings.rasa_token)
    if settings.action_secret:
        write_private(settings.var_dir / "action_secret", settings.action_secret)
    if settings.secret:
        write_private(settings.var_dir / "secret", settings.secret)
    endpoints = write_endpoints(settings)  # before anything starts: a bad URL is clear
    prepare_database(settings)
    prepare_tracker_store(settings)
    # The servers read their settings from the environment: hand on these settings
    # exactly (tests run on a var dir, database and limits of their own), the secrets
    # left out (written to var/ files above).
    env = {**os.environ, **QUIET_ENV}
    for variable, value in environment_of(settings).items():
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    local = settings.local_host
    try:
        actions = _spawn(
            [sys.executable, "-m", "bot.action_server"],
            env,
            log_dir / "actions.log" if log_dir else None,
            turn_nice,
        )
        processes.append(actions)
        server = _spawn(
            [
                sys.executable, "-m", "bot.rasa_server",
                "--model", str(model),
                "--credentials", str(PROJECT_ROOT / "credentials.yml"),
                "--endpoints", str(endpoints),
            ],
            env,
            log_dir / "rasa.log" if log_dir else None,
            turn_nice,
        )  # fmt: skip
        processes.append(server)

        def start(module: str, log_name: str, health_url: str | None = None, *args: str) -> None:
            process = _spawn(
                [sys.executable, "-m", module, *args],
                env,
                log_dir / log_name if log_dir else None,
            )
            processes.append(process)
            if health_url:
                wait_until_up(health_url, startup_s, process)

        webchat_url = ""
        if webchat:
            # The website chat's page: files only, up long before the rasa server.
            webchat_url = f"http://{local}:{settings.webchat_port}/"
            start("bot.channels.webpage", "webchat.log", f"{webchat_url}health")
        console_url = ""
        if console:
            # The staff console: up in seconds; it reaches the rasa server only when
            # staff reply, hand back or close.
            console_url = f"http://{local}:{settings.console_port}/"
            start("bot.console", "console.log", f"{console_url}health")
        if worker:
            # No port: it only works the database. Each process delivers its own
            # messages right after its commit; the worker retries what is left.
            start("bot.worker", "worker.log")
        if line_intake:
            intake_url = f"http://{local}:{settings.line_intake_port}/webhooks/line/"
            # One process per core: a burst's acknowledgements are mostly per-request
            # work in Python, which one process does on one core.
            shared = ["--reuse-port"] if settings.line_intake_processes > 1 else []
            for _ in range(settings.line_intake_processes):
                start("bot.channels.line.intake", "line-intake.log", intake_url, *shared)
        action_url = f"http://{local}:{settings.action_port}"
        rasa_url = f"http://{local}:{settings.rasa_port}"
        wait_until_up(f"{action_url}/health", startup_s, actions)
        wait_until_up(f"{rasa_url}/", startup_s, server)
        yield RunningAssistant(
            rasa_url, action_url, token, processes, settings, webchat_url, console_url
        )
    finally:
        stop(processes)


def check_configuration(settings: Settings) -> None:
    """Fail before starting anything if the organization's profile is broken."""
    load_profile(settings.org_id, settings.profiles_dir)


def exposure(settings: Settings) -> str:
    """Which addresses other machines can reach, in Japanese, for the start-up message."""
    ports = (
        f"{settings.rasa_port}, {settings.action_port}, "
        f"{settings.webchat_port}, {settings.console_port}"
    )
    if settings.bind_host.startswith("127.") or settings.bind_host == "::1":
        return (
            f"公開アドレス:      なし（すべて {settings.bind_host} で待ち受け、"
            "このマシンからのみ）\n"
            "                   外部に公開するときは nginx を使います（deploy/nginx/README.md）"
        )
    return (
        f"公開アドレス:      {settings.bind_host} のポート {ports}（PRIVACY_BOT_BIND_HOST）\n"
        "                   ※ 内部のサーバーがネットワークから届きます。"
        "前に nginx を置き、これらのポートはファイアウォールで閉じてください"
    )


def _print_how_to_talk(
    settings: Settings, assistant: RunningAssistant, staff_account_exists: bool = True
) -> None:
    profile = load_profile(settings.org_id, settings.profiles_dir)
    where_sms_go = (
        str(settings.outbox_path) if settings.sms_backend == "outbox" else "Twilio で送信"
    )
    console = ""
    if assistant.console_url:
        console = f"\n  スタッフ用コンソール: {assistant.console_url}"
        if not staff_account_exists:
            console += (
                "\n    （スタッフのアカウントがまだありません。作成するには:"
                "\n     .venv/bin/python -m bot.staff create-account NAME --role agent）"
            )
    token_file = settings.var_dir / "rasa_token"
    if settings.rest_enabled:
        rest = f"""  REST（試験・運用者用）: curl -s {assistant.rest_url} \\
                       -H "Authorization: Bearer $(cat {token_file})" \\
                       -H 'Content-Type: application/json' \\
                       -d '{{"sender": "me", "message": "口座情報は何に使われますか"}}'
  ターミナルで話す:  make chat"""
    else:
        rest = (
            "  REST:              無効（試験・運用者用。"
            "有効にするには .env で PRIVACY_BOT_REST=true）"
        )
    demo = demo_member_for(profile.id)
    parts = [part.label for part in profile.member_identifier.parts]
    numbers = [demo.symbol, demo.number] if len(parts) == 2 else [demo.number]
    demo_line = " ".join(f"{label}{value}" for label, value in zip(parts, numbers, strict=True))
    demo_line += f"、{demo.birth_date.year}年{demo.birth_date.month}月{demo.birth_date.day}日"
    print(
        f"""
アシスタントが起動しました（{profile.name}）。
  ブラウザでチャット: {assistant.webchat_url}
{rest}
  HTTP API:          {assistant.rasa_url}/status （Authorization: Bearer と {token_file} の値）
  アクションサーバー: {assistant.action_url}/health（呼び出しには共有の秘密が必要）{console}
{exposure(settings)}
本人確認を試す:    「自分の登録内容を確認したい」→ デモ会員 {demo_line}
                   （認証コードのSMS: {where_sms_go}）
ログ: {settings.var_dir / "logs"}    止めるには Ctrl-C
""",
        flush=True,
    )


def run(settings: Settings) -> None:
    """Train if needed, start everything, and wait for Ctrl-C."""
    check_configuration(settings)
    model = train_if_needed()
    print("サーバーを起動しています…", flush=True)
    with running(
        settings, model, log_dir=settings.var_dir / "logs", webchat=True, console=True
    ) as assistant:
        _print_how_to_talk(settings, assistant, has_staff_account(settings))
        serve_until_interrupted(assistant.processes)


def serve_until_interrupted(processes: list[subprocess.Popen[bytes]]) -> None:
    """Wait for Ctrl-C or SIGTERM, or until one of ``processes`` ends, and say which."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print("サーバーが停止しました。ログを確認してください。", file=sys.stderr)
    except KeyboardInterrupt:
        print("\n停止しています…", flush=True)


def test_stories(settings: Settings) -> None:
    """Run the conversation tests (Rasa test stories) against the trained model."""
    out = settings.var_dir / "results" / "stories"
    subprocess.run(
        [
            RASA, "test", "core",
            "--model", str(train_if_needed()),
            "--stories", str(PROJECT_ROOT / "tests" / "stories"),
            "--out", str(out),
            "--fail-on-prediction-errors",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, **QUIET_ENV},
        check=True,
    )  # fmt: skip
    print(f"会話テストに合格しました（結果: {out}）", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bot.launcher")
    parser.add_argument("command", choices=["train", "run", "check", "test-stories"])
    args = parser.parse_args(argv)

    def command() -> None:
        settings = load_settings()
        check_configuration(settings)
        if args.command == "train":
            train_if_needed()
        elif args.command == "run":
            run(settings)
        elif args.command == "test-stories":
            test_stories(settings)

    return exit_code_of(command)


def exit_code_of(command: Callable[[], None]) -> int:
    """Run ``command``; a configuration error or a failed step is a message and a code."""
    try:
        command()
    except (ProfileError, SettingsError, WebchatError) as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"失敗しました: {' '.join(map(str, error.cmd))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
