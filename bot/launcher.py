"""Train when needed and run every process of the assistant, stopping them together.

``python -m bot.launcher train`` trains only when the training data, domain, config or
NLU components changed; ``python -m bot.launcher run`` also starts the action server,
the rasa server and the website chat's page (``bot.webserver``), waits until all answer
and prints where to talk to the assistant. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.db.demo import load_demo
from bot.db.migrate import upgrade
from bot.db.session import session_factory
from bot.profiles.loader import ProfileError, load_profile
from bot.settings import PROJECT_ROOT, Settings, SettingsError, load_settings
from bot.webserver import WebchatError, check_files

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


def ensure_token(settings: Settings) -> str:
    """The HTTP API token: from RASA_TOKEN, or one generated once and kept in var/."""
    if settings.rasa_token:
        return settings.rasa_token
    path = settings.var_dir / "rasa_token"
    if not path.exists():
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def write_endpoints(settings: Settings) -> Path:
    """An endpoints file pointing the rasa server at this run's action server."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    path = settings.var_dir / "endpoints.yml"
    path.write_text(f'action_endpoint:\n  url: "{settings.action_endpoint_url}"\n', "utf-8")
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
    """The processes of a running assistant and where to reach them."""

    rasa_url: str
    action_url: str
    token: str
    processes: list[subprocess.Popen[bytes]]
    settings: Settings
    webchat_url: str = ""  # the website chat's page; empty when not started

    @property
    def var_dir(self) -> Path:
        """Where the servers keep their database, outbox and logs."""
        return self.settings.var_dir

    @property
    def rest_url(self) -> str:
        """The REST channel's webhook."""
        return f"{self.rasa_url}/webhooks/rest/webhook"


def _spawn(args: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    output = open(log, "ab") if log else None  # noqa: SIM115 - lives as long as the process
    # A process group of its own, so stopping it also stops anything it started.
    return subprocess.Popen(
        args, cwd=PROJECT_ROOT, env=env, stdout=output, stderr=output, start_new_session=True
    )


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
) -> Iterator[RunningAssistant]:
    """Start the action server and the rasa server; stop them on exit.

    Args:
        settings: ports, var dir, database and organization of this run.
        model: the trained model the rasa server loads.
        log_dir: where each server's output goes (discarded when None).
        startup_s: how long each server may take to answer.
        webchat: also start the website chat's page (``bot.webserver``) on
            ``settings.webchat_port``. Off unless asked for (``make run``, the
            browser tests), so that benchmarks and other tests need no fixed port.

    Raises:
        WebchatError: If the web chat is asked for and its files are missing or its
            port is taken (another server answering there would pass for it).
    """
    if webchat:
        check_files()  # before anything starts: a missing npm install is a clear error
        if port_in_use(settings.webchat_port):
            raise WebchatError(
                f"WEBCHAT_PORT {settings.webchat_port} は別のプログラムが使用中です"
                "（.env で別のポートを指定してください）"
            )
    token = ensure_token(settings)
    prepare_database(settings)
    env = {
        **os.environ,
        **QUIET_ENV,
        # The servers read their settings from the environment: pass on the ones the
        # caller may have changed (tests run on a var dir and database of their own).
        "PRIVACY_BOT_ORG": settings.org_id,
        "PRIVACY_BOT_VAR_DIR": str(settings.var_dir),
        "DATABASE_URL": settings.database_url,
        "RASA_PORT": str(settings.rasa_port),
        "WEBCHAT_PORT": str(settings.webchat_port),
    }
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        actions = _spawn(
            [RASA, "run", "actions", "--port", str(settings.action_port), "--actions", "actions"],
            env,
            log_dir / "actions.log" if log_dir else None,
        )
        processes.append(actions)
        server = _spawn(
            [
                RASA, "run",
                "--model", str(model),
                "--port", str(settings.rasa_port),
                "--enable-api",
                "--auth-token", token,
                "--credentials", str(PROJECT_ROOT / "credentials.yml"),
                "--endpoints", str(write_endpoints(settings)),
            ],
            env,
            log_dir / "rasa.log" if log_dir else None,
        )  # fmt: skip
        processes.append(server)
        webchat_url = ""
        if webchat:
            # The website chat's page: files only, up long before the rasa server.
            page = _spawn(
                [sys.executable, "-m", "bot.webserver"],
                env,
                log_dir / "webchat.log" if log_dir else None,
            )
            processes.append(page)
            webchat_url = f"http://localhost:{settings.webchat_port}/"
            wait_until_up(f"{webchat_url}health", startup_s, page)
        action_url = f"http://localhost:{settings.action_port}"
        rasa_url = f"http://localhost:{settings.rasa_port}"
        wait_until_up(f"{action_url}/health", startup_s, actions)
        wait_until_up(f"{rasa_url}/", startup_s, server)
        yield RunningAssistant(rasa_url, action_url, token, processes, settings, webchat_url)
    finally:
        stop(processes)


def check_configuration(settings: Settings) -> None:
    """Fail before starting anything if the organization's profile is broken."""
    load_profile(settings.org_id, settings.profiles_dir)


def _print_how_to_talk(settings: Settings, assistant: RunningAssistant) -> None:
    profile = load_profile(settings.org_id, settings.profiles_dir)
    where_sms_go = (
        str(settings.outbox_path) if settings.sms_backend == "outbox" else "Twilio で送信"
    )
    print(
        f"""
アシスタントが起動しました（{profile.name}）。
  ブラウザでチャット: {assistant.webchat_url}
  ターミナルで話す:  make chat
  REST:              curl -s {assistant.rest_url} \\
                       -H 'Content-Type: application/json' \\
                       -d '{{"sender": "me", "message": "口座情報は何に使われますか"}}'
  HTTP API:          {assistant.rasa_url}/status?token=<var/rasa_token の値>
  アクションサーバー: {assistant.action_url}/health
本人確認を試す:    「自分の登録内容を確認したい」→ デモ会員 記号1001 番号23、1985年4月1日
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
    with running(settings, model, log_dir=settings.var_dir / "logs", webchat=True) as assistant:
        _print_how_to_talk(settings, assistant)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            while all(p.poll() is None for p in assistant.processes):
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
    try:
        settings = load_settings()
        check_configuration(settings)
        if args.command == "train":
            train_if_needed()
        elif args.command == "run":
            run(settings)
        elif args.command == "test-stories":
            test_stories(settings)
    except (ProfileError, SettingsError, WebchatError) as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"失敗しました: {' '.join(map(str, error.cmd))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
