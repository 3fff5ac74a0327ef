"""The image's entry point: one command per process of the assistant (deploy/Dockerfile).

    rasa [ARGS]   the rasa server: writes var/endpoints.yml from the settings, then runs
                  ``python -m bot.rasa_server`` with the model built into the image
    actions       ``python -m bot.action_server``
    console       the staff console, reaching the rasa servers' HTTP API at ``RASA_URL``
    webchat       ``python -m bot.channels.webpage`` (the chat page)
    worker        ``python -m bot.worker`` (outbox delivery, retention on a schedule)
    line-intake   ``python -m bot.channels.line.intake`` (LINE's deliveries acknowledged
                  and queued in Redis for the rasa servers; needs ``REDIS_URL``)
    migrate       ``python -m bot.db upgrade`` (run once before the others start)
    anything else is run as given, e.g. ``python -m bot.staff create-account 田中 --role agent``

Everything is read from the environment under the names of ``bot/settings.py``. Two
variables exist only here, because in a cluster the processes are on different hosts
and ``bot/settings.py`` assumes one machine (``settings.rasa_url`` and
``settings.action_endpoint_url`` are loopback addresses):

- ``ACTION_ENDPOINT_URL``: where the rasa server calls the action servers
  (``http://actions:5055/webhook``; a Service or a compose service name).
- ``RASA_URL``: where the console reaches a rasa server's HTTP API (``http://rasa:5005``):
  any replica will do, the socket.io manager in Redis carries a staff reply to the
  replica that holds the member's socket.

The secrets (``RASA_TOKEN``, ``ACTION_SERVER_SECRET``, ``PRIVACY_BOT_SECRET``) must be
given, in the environment or as files in the var dir: a process that generated its own
would not agree with the other replicas (codes hashed on one could not be checked on
another), so a missing one stops the process here. The chat page, the migrations and
LINE's intake read none of them; the intake checks LINE's signature with
``LINE_CHANNEL_SECRET`` (through ``credentials.yml``, as the rasa server does) and
stops by itself without ``REDIS_URL``. It is started without the settings it does not
use (:data:`INTAKE_SETTINGS`), whatever the env file gives every process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.settings import (
    ENVIRONMENT,
    PROJECT_ROOT,
    SECRETS,
    Settings,
    SettingsError,
    ensure_action_secret,
    ensure_rasa_token,
    load_settings,
    write_private,
)

# The processes that read the shared secrets (the chat page, migrations and LINE's
# intake read none).
NEEDS_SECRETS = frozenset({"rasa", "actions", "console", "worker"})
SECRET_FILES = {"RASA_TOKEN": "rasa_token", "ACTION_SERVER_SECRET": "action_secret",
                "PRIVACY_BOT_SECRET": "secret"}  # fmt: skip
# LINE's intake reads what any stranger sends before anything else does: of the
# settings it gets only those it uses (not the database URLs, the shared secrets or
# Twilio's), as on Kubernetes, where its Secret keys are chosen one by one.
INTAKE_SETTINGS = frozenset(
    {"REDIS_URL", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_INTAKE_PORT",
     "PRIVACY_BOT_BIND_HOST"}
)  # fmt: skip
# Read here only (see the module's doc).
DEPLOY_ONLY = frozenset({"ACTION_ENDPOINT_URL", "RASA_URL"})
COMMANDS: dict[str, list[str]] = {
    "actions": ["-m", "bot.action_server"],
    "webchat": ["-m", "bot.channels.webpage"],
    "worker": ["-m", "bot.worker"],
    "line-intake": ["-m", "bot.channels.line.intake"],
    "migrate": ["-m", "bot.db", "upgrade"],
}


def process_environment(command: str, env: dict[str, str]) -> dict[str, str]:
    """The environment ``command`` runs with.

    For LINE's intake, without the settings it does not use; variables that are no
    setting (``PATH``, Python's) stay.
    """
    if command != "line-intake":
        return env
    settings = {*ENVIRONMENT.values(), *SECRETS.values(), *DEPLOY_ONLY}
    return {name: value for name, value in env.items()
            if name not in settings or name in INTAKE_SETTINGS}  # fmt: skip


def missing_secrets(settings: Settings, env: dict[str, str]) -> list[str]:
    """The shared secrets given neither in the environment nor as a var/ file."""
    return [
        variable
        for variable in SECRETS.values()
        if not env.get(variable, "").strip()
        and not (settings.var_dir / SECRET_FILES[variable]).is_file()
    ]


def redis_lock_url(settings: Settings, env: dict[str, str]) -> str | None:
    """Rasa's lock store: ``LOCK_STORE_URL``, else ``REDIS_URL``, else none (in memory)."""
    url = settings.lock_store_url or env.get("REDIS_URL", "").strip() or None
    if url is not None and urlsplit(url).scheme not in ("redis", "rediss"):
        raise SettingsError(f"REDIS_URL must be a redis:// URL, got {urlsplit(url).scheme!r}")
    return url


def endpoints(settings: Settings, env: dict[str, str]) -> dict[str, Any]:
    """The rasa server's endpoints: the action servers, the SQL tracker store, Redis locks.

    Raises:
        SettingsError: If ``ACTION_ENDPOINT_URL`` is missing or not http(s), or several
            rasa servers would share a tracker store with locks in memory.
    """
    from bot.action_server import bearer
    from bot.launcher import lock_store_config, tracker_store_config

    action_url = env.get("ACTION_ENDPOINT_URL", "").strip()
    if urlsplit(action_url).scheme not in ("http", "https"):
        raise SettingsError("ACTION_ENDPOINT_URL must be the action servers' http(s) URL")
    config: dict[str, Any] = {
        "action_endpoint": {
            "url": action_url,
            "headers": {"Authorization": bearer(ensure_action_secret(settings))},
        },
        "tracker_store": tracker_store_config(settings.tracker_url),
    }
    lock_url = redis_lock_url(settings, env)
    if lock_url is None:
        # Two replicas with in-memory locks would process one conversation's messages
        # at the same time and interleave their events.
        raise SettingsError("a rasa replica needs LOCK_STORE_URL or REDIS_URL (Redis locks)")
    config["lock_store"] = lock_store_config(lock_url)
    return config


def rasa_args(settings: Settings, env: dict[str, str], args: Sequence[str]) -> list[str]:
    """Write var/endpoints.yml (mode 0600: it holds secrets) and return the server's args."""
    from bot.launcher import model_path

    path = settings.var_dir / "endpoints.yml"
    text = yaml.safe_dump(endpoints(settings, env), allow_unicode=True, sort_keys=False)
    write_private(path, text)
    extra = list(args)
    if not any(arg.split("=", 1)[0] in ("--model", "-m") for arg in extra):
        model = model_path()
        if not model.exists():
            raise SettingsError(
                f"no model for this code at {model} (build the image's default target, "
                "or mount the models/ that `make train` made from the same commit)"
            )
        extra = ["--model", str(model), *extra]
    return [
        "-m", "bot.rasa_server",
        "--credentials", str(PROJECT_ROOT / "credentials.yml"),
        "--endpoints", str(path),
        *extra,
    ]  # fmt: skip


def run_console(settings: Settings, env: dict[str, str]) -> int:
    """Serve the staff console as ``python -m bot.console`` does, with the rasa API at RASA_URL."""
    import logging

    from aiohttp import web

    from bot.console.app import create_app
    from bot.db.session import session_factory
    from bot.handoff.rasa_api import RasaApi
    from bot.handoff.transcripts import tracker_engine

    rasa_url = env.get("RASA_URL", "").strip().rstrip("/")
    if urlsplit(rasa_url).scheme not in ("http", "https"):
        raise SettingsError("RASA_URL must be the rasa servers' http(s) URL")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(
        settings,
        session_factory(settings.database_url),
        tracker_engine(settings.tracker_url),
        RasaApi(rasa_url, ensure_rasa_token(settings)),
    )
    web.run_app(app, host=settings.bind_host, port=settings.console_port, print=None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Start the process named by the first argument; 2 when the settings are unusable."""
    args = list(sys.argv[1:] if argv is None else argv) or ["rasa"]
    command, rest = args[0], args[1:]
    env = dict(os.environ)
    try:
        settings = load_settings(env)
        if command in NEEDS_SECRETS and (missing := missing_secrets(settings, env)):
            raise SettingsError(
                f"{', '.join(missing)} must be given to every replica (env file or secret)"
            )
        Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
        if command == "console":
            return run_console(settings, env)
        if command == "rasa":
            python_args = rasa_args(settings, env, rest)
        elif command in COMMANDS:
            python_args = [*COMMANDS[command], *rest]
        else:
            os.execvp(command, args)
    except SettingsError as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    os.execve(sys.executable, [sys.executable, *python_args], process_environment(command, env))
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
