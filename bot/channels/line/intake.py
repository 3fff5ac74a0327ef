"""``python -m bot.channels.line.intake``: LINE's deliveries acknowledged for every replica.

LINE wants each webhook answered within seconds, and a burst (a notice pushed to many
members, who all write back) arrives at once. A rasa server answers a delivery only
between the steps of the turns it is working on, so under a burst its
acknowledgements wait behind other members' turns. The intake does nothing else: for
``POST /webhooks/line/webhook`` it checks the request as the channel would
(:func:`bot.channels.line.webhook.check`: size, ``X-Line-Signature``, JSON), appends the
body with its signature to the inbox in Redis (:mod:`bot.channels.line.inbox`) and
answers 200; the rasa servers take the bodies from there when they have room.
``GET /webhooks/line/`` is its health route.

nginx sends LINE's webhook here and, when the intake answers 502 or 503 (it is down, or
Redis did not take the body), to a rasa server directly (``deploy/nginx/``), so a
delivery is not refused for the intake. A refused signature is 401 here as there.

It listens on ``PRIVACY_BOT_BIND_HOST`` (loopback by default) at ``LINE_INTAKE_PORT``,
reads the channel's settings as the rasa server does (``credentials.yml`` and
``LINE_CHANNEL_SECRET``) and needs ``REDIS_URL``. It logs a refused request (why, and a
body's size) and a Redis outage, never what a body contains.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bot.channels.line.config import LineConfig
from bot.channels.line.inbox import LineInbox
from bot.channels.line.webhook import MAX_BODY_BYTES, check
from bot.channels.shared_state import (
    REDIS_ERRORS,
    Outage,
    connect,
    require_reachable,
)
from bot.core.heap import freeze_startup_objects
from bot.settings import PROJECT_ROOT, SettingsError, load_settings

logger = logging.getLogger(__name__)

CHANNEL_KEY = "bot.channels.line.LineInput"
WEBHOOK_PATH = "/webhooks/line/webhook"
HEALTH_PATH = "/webhooks/line/"
INBOX_KEY = web.AppKey("inbox", LineInbox)
BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
# nginx keeps its idle connections here for an hour (deploy/nginx/): the intake keeps
# them a little longer, so that nginx, not the intake, closes one it no longer needs and
# never sends a delivery on a connection the intake has just closed.
KEEPALIVE_S = 3660.0


def create_app(config: LineConfig, inbox: LineInbox) -> web.Application:
    """The intake's two routes, on ``inbox``.

    Args:
        config: the LINE channel's settings (its secret).
        inbox: where accepted bodies go.
    """
    outage = Outage("LINE intake")
    # Only the secret: the intake verifies, it never calls LINE's API.
    secret = config.channel_secret

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if secret else "off"})

    def answer(status: int) -> web.Response:
        return web.Response(body=b"{}", status=status, content_type="application/json")

    async def webhook(request: web.Request) -> web.Response:
        if not secret:
            return answer(503)
        if (request.content_length or 0) > MAX_BODY_BYTES:
            logger.warning("LINE webhook refused: body of %d bytes", request.content_length)
            return answer(413)
        body = await request.read()
        signature = request.headers.get("X-Line-Signature")
        status, events = check(secret, body, signature)
        if status != 200 or not events or signature is None:
            # LINE's console "Verify" sends no events: acknowledged, nothing to queue.
            return answer(status)
        try:
            await inbox.put(body, signature)
        except REDIS_ERRORS as error:
            # Not taken: nginx passes the delivery to a rasa server (deploy/nginx/).
            outage.failed(error)
            return answer(503)
        outage.answered()
        return answer(200)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[INBOX_KEY] = inbox
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_post(WEBHOOK_PATH, webhook)

    async def inbox_open(app: web.Application) -> Any:
        yield
        await app[INBOX_KEY].close()

    app.cleanup_ctx.append(inbox_open)
    return app


def channel_config(credentials: Path) -> LineConfig:
    """The LINE channel's settings, read as the rasa server reads them.

    Args:
        credentials: the ``credentials.yml`` the rasa servers are started with.

    Raises:
        SettingsError: If the file cannot be read or the entry is invalid.
    """
    try:
        entries: Any = yaml.safe_load(credentials.read_text("utf-8")) or {}
        return LineConfig.from_credentials(entries.get(CHANNEL_KEY))
    except (OSError, yaml.YAMLError, AttributeError, ValueError) as error:
        raise SettingsError(f"{credentials}: LINE の設定を読めません（{error}）") from None


def main(argv: list[str] | None = None) -> int:
    """Serve the intake until stopped; 2 when the settings are unusable."""
    parser = argparse.ArgumentParser(prog="python -m bot.channels.line.intake")
    parser.add_argument("--host", help="address to listen on (PRIVACY_BOT_BIND_HOST)")
    parser.add_argument(
        "--credentials", type=Path, default=PROJECT_ROOT / "credentials.yml",
        help="the rasa servers' credentials.yml (default: the project's)",
    )  # fmt: skip
    parser.add_argument(
        "--reuse-port", action="store_true",
        help="share the port with other intake processes (SO_REUSEPORT)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
        if not settings.redis_url:
            raise SettingsError(
                "LINE の受付（intake）には REDIS_URL が必要です。"
                "1台で動かすときは受付を使わず、rasa サーバーが直接受けます"
            )
        require_reachable(settings.redis_url)
        config = channel_config(args.credentials)
    except SettingsError as error:
        print(f"設定エラー: {error}", file=sys.stderr)
        return 2
    if not config.channel_secret:
        logger.info("LINE intake off: LINE_CHANNEL_SECRET not set")
    try:
        import uvloop  # Sanic's own loop, installed with Rasa: a burst is answered faster

        uvloop.install()
    except ImportError:
        pass
    app = create_app(config, LineInbox(connect(settings.redis_url)))

    # Before the first delivery: a full collection would stop a burst (bot.core.heap).
    freeze_startup_objects()
    web.run_app(
        app,
        host=args.host or settings.bind_host,
        port=settings.line_intake_port,
        # A burst is hundreds of connections at once: with the default backlog (128)
        # the kernel drops the overflow and the client's retry comes a second later.
        backlog=BACKLOG,
        keepalive_timeout=KEEPALIVE_S,
        access_log=None,
        reuse_port=args.reuse_port or None,
        print=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
