"""Starting the Rasa and action servers and waiting until they answer."""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bench.procs import CommandError, ManagedProcess, log_tail
from bench.rasa_cli import rasa_env
from bench.settings import LOG_DIR, LOOPBACK
from bot.settings import write_private

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.5


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping ({} if the file is missing or all comments)."""
    if not path.exists():
        return {}
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(loaded) if isinstance(loaded, dict) else {}


def declares_action_endpoint(endpoints: Path) -> bool:
    """Whether an endpoints file configures an action server."""
    endpoint = read_yaml_mapping(endpoints).get("action_endpoint")
    return isinstance(endpoint, dict) and bool(endpoint.get("url"))


def stock_endpoints(base_endpoints: Path, action_port: int | None) -> dict[str, Any]:
    """A stock assistant's endpoints: ``base_endpoints`` with this run's action server.

    ``action_endpoint`` points at the action server on ``action_port``, or is removed
    when there is none.
    """
    endpoints = read_yaml_mapping(base_endpoints)
    if action_port is None:
        endpoints.pop("action_endpoint", None)
    else:
        endpoints["action_endpoint"] = {"url": f"http://{LOOPBACK}:{action_port}/webhook"}
    return endpoints


def write_server_files(
    directory: Path, endpoints: Mapping[str, Any], credentials: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Writes the temporary endpoints and credentials files of one Rasa server.

    Both are readable by this user only (``bot.settings.write_private``): the product's
    endpoints hold the action server's secret.

    Args:
        directory: Where to write the files.
        endpoints: The endpoints (``action_endpoint`` and the like).
        credentials: The channels the server opens and their options.

    Returns:
        The endpoints and credentials paths.
    """
    endpoints_path = directory / "endpoints.yml"
    credentials_path = directory / "credentials.yml"
    write_private(endpoints_path, yaml.safe_dump(dict(endpoints), sort_keys=True))
    write_private(credentials_path, yaml.safe_dump(dict(credentials), sort_keys=True))
    return endpoints_path, credentials_path


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until_ready(process: ManagedProcess, url: str, deadline_s: float) -> float:
    """Polls ``url`` until it answers 200 and returns how long that took.

    Args:
        process: The server; if it exits, waiting stops at once.
        url: The readiness URL (GET / of a Rasa server, GET /health of an action server).
        deadline_s: How long to wait at most.

    Returns:
        Seconds from now until the server answered.

    Raises:
        CommandError: If the server exits or does not answer before the deadline.
    """
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        code = process.returncode()
        if code is not None:
            raise CommandError(
                f"{process.name} exited with {code} before it was ready "
                f"(log: {process.log_path}):\n{log_tail(process.log_path)}"
            )
        if _answers(url):
            elapsed = time.monotonic() - start
            logger.info("%s is ready after %.1f s", process.name, elapsed)
            return elapsed
        time.sleep(_POLL_INTERVAL_S)
    raise CommandError(
        f"{process.name} did not answer {url} within {deadline_s:.0f} s "
        f"(log: {process.log_path}):\n{log_tail(process.log_path)}"
    )


def start_server(
    name: str, command: list[str], project_dir: Path, env: Mapping[str, str] | None = None
) -> ManagedProcess:
    """Starts a server from ``project_dir`` (stop it with ``with`` or ``stop``).

    Args:
        name: Its name in progress lines, the report and its log's file name.
        command: Its command line.
        project_dir: The working directory.
        env: The environment (default: :func:`~bench.rasa_cli.rasa_env`).
    """
    return ManagedProcess(
        name,
        command,
        cwd=project_dir,
        env=rasa_env() if env is None else env,
        log_path=LOG_DIR / f"{name.replace(' ', '-')}.log",
    )


def base_url(port: int) -> str:
    """The loopback base URL of a server on ``port``."""
    return f"http://{LOOPBACK}:{port}"
