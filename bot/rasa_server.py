"""``python -m bot.rasa_server``: ``rasa run`` with its secret kept off the command line.

The launcher starts the rasa server through this module with the model, credentials
and endpoints files as arguments; the HTTP API token is read here, from ``RASA_TOKEN``
or ``var/rasa_token`` (mode 0600), and handed to Rasa's own command-line entry point
inside this process. ``ps`` shows the exec arguments, which never contain it. The server
listens on ``PRIVACY_BOT_BIND_HOST`` (loopback by default): members reach the channels
through nginx (``deploy/nginx/``), and nothing public reaches the HTTP API. A session
continues in a new one after ``SESSION_TURN_LIMIT`` messages (``bot.rasa_sessions``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from bot.core.heap import freeze_startup_objects
from bot.settings import SettingsError, ensure_rasa_token, load_settings

_FREEZES = "_privacy_bot_freezes"

# Rasa options this module sets itself; given on the command line they are refused.
OWN_OPTIONS = ("--auth-token", "-i", "--interface", "--enable-api", "--port", "-p")


def rasa_argv(args: Sequence[str], token: str, host: str, port: int) -> list[str]:
    """The arguments Rasa's ``main()`` reads: ``rasa run`` with the API on, bound, token set.

    Args:
        args: further ``rasa run`` arguments (model, credentials, endpoints...).
        token: the HTTP API token.
        host: the address to listen on.
        port: the port.

    Raises:
        SettingsError: If ``args`` tries to set one of :data:`OWN_OPTIONS`.
    """
    for arg in args:
        if arg.split("=", 1)[0] in OWN_OPTIONS:
            raise SettingsError(f"{arg.split('=', 1)[0]} is set from the settings, not here")
    return [
        "rasa", "run", *args,
        "--enable-api",
        "--interface", host,
        "--port", str(port),
        "--auth-token", token,
    ]  # fmt: skip


def freeze_after_loading() -> None:
    """Freeze the start-up objects once Rasa has loaded the model (:mod:`bot.core.heap`).

    Rasa loads the model in a listener of its own (``rasa.core.run.load_agent_on_start``,
    looked up when ``rasa run`` starts the server) and offers no hook after it, hence
    the wrapped function. Idempotent.
    """
    import rasa.core.run as rasa_run

    load = rasa_run.load_agent_on_start
    if getattr(load, _FREEZES, False):
        return

    async def load_then_freeze(*args: Any, **kwargs: Any) -> Any:
        loaded = await load(*args, **kwargs)
        freeze_startup_objects()
        return loaded

    setattr(load_then_freeze, _FREEZES, True)
    rasa_run.load_agent_on_start = load_then_freeze


def main(argv: Sequence[str] | None = None) -> int:
    """Run the rasa server until stopped; 2 when the settings are unusable."""
    try:
        settings = load_settings()
        if settings.redis_url:
            # Fail here, with the settings' message, rather than in a channel's traceback.
            from bot.channels.shared_state import require_reachable

            require_reachable(settings.redis_url)
        token = ensure_rasa_token(settings)
        sys.argv = rasa_argv(
            list(sys.argv[1:] if argv is None else argv),
            token,
            settings.bind_host,
            settings.rasa_port,
        )
    except SettingsError as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    from rasa.__main__ import main as rasa_main  # slow to import: after the checks

    from bot.rasa_sessions import install

    # A long conversation continues in a new Rasa session every so many messages.
    install(settings.session_turn_limit)
    freeze_after_loading()
    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
