"""``python -m bot.action_server``: rasa-sdk's action server, for the rasa server only.

The actions read and change members' verifications, cases and hand-offs, so the server
refuses every call that does not carry the shared secret the rasa server sends with
each action call (``Authorization: Bearer …``, written into ``var/endpoints.yml`` by the
launcher; compared in constant time). ``GET /health`` stays open: it says nothing.
It listens on ``PRIVACY_BOT_BIND_HOST`` (loopback by default) at ``ACTION_PORT``. The
secret is read from ``ACTION_SERVER_SECRET`` or ``var/action_secret``, never from the
command line, where ``ps`` would show it.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from asyncio import AbstractEventLoop
from collections.abc import Awaitable, Callable, Sequence

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.core.heap import freeze_startup_objects
from bot.settings import SettingsError, ensure_action_secret, load_settings

logger = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/health"})

Middleware = Callable[[Request], Awaitable[HTTPResponse | None]]


def bearer(secret: str) -> str:
    """The ``Authorization`` header value the rasa server sends."""
    return f"Bearer {secret}"


def require_secret(secret: str) -> Middleware:
    """A request middleware that answers 401 to any call without the secret.

    Args:
        secret: the shared secret.

    Returns:
        The middleware (None lets the request through).
    """
    expected = bearer(secret).encode("utf-8")

    async def check(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        given = request.headers.get("Authorization", "").encode("utf-8")
        if hmac.compare_digest(given, expected):
            return None
        logger.warning("Action call without the rasa server's secret refused")
        return response.json({"error": "unauthorized"}, status=401)

    return check


def build_app(secret: str, actions: str = "actions") -> Sanic:
    """The action server's app: rasa-sdk's, behind the secret, no CORS.

    No browser has any business calling it, so no CORS headers are sent at all.

    Args:
        secret: the shared secret.
        actions: the package the actions are registered from.
    """
    app = create_app(actions, cors_origins=None)
    app.register_middleware(require_secret(secret), "request")
    return app


async def _freeze_startup_objects(_app: Sanic, _loop: AbstractEventLoop) -> None:
    # Registered by main() alone: an app built in a test must not freeze the test's heap.
    freeze_startup_objects()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the actions until stopped; 2 when the settings are unusable."""
    parser = argparse.ArgumentParser(prog="python -m bot.action_server")
    parser.add_argument("--host", help="address to listen on (PRIVACY_BOT_BIND_HOST)")
    parser.add_argument("--port", type=int, help="port (default: ACTION_PORT, 5055)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        secret = ensure_action_secret(settings)
    except SettingsError as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    utils.configure_colored_logging(logging.INFO)
    utils.update_sanic_log_level()
    host = args.host or settings.bind_host
    port = args.port or settings.action_port
    app = build_app(secret)
    app.register_listener(_freeze_startup_objects, "after_server_start")
    logger.info("Action server on http://%s:%d (calls need the shared secret)", host, port)
    app.run(host, port, workers=1, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
