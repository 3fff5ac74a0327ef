"""``python -m bot.console``: serve the staff console on ``CONSOLE_PORT``.

Reads the settings (``DATABASE_URL``, ``TRACKER_STORE_URL``, ``RASA_PORT``,
``RASA_TOKEN``, ``CONSOLE_IDLE_MINUTES``, ``CONSOLE_SECURE_COOKIE``...) and listens on
``PRIVACY_BOT_BIND_HOST`` (``127.0.0.1``) unless ``--host`` says otherwise: in
production the console sits behind nginx's TLS server block (then set
``CONSOLE_SECURE_COOKIE=true``). ``GET /health`` answers ``ok``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

from bot.console.app import create_app
from bot.db.session import session_factory
from bot.handoff.rasa_api import RasaApi
from bot.handoff.transcripts import tracker_engine
from bot.settings import SettingsError, ensure_rasa_token, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted; 2 when the settings are unusable."""
    parser = argparse.ArgumentParser(
        prog="python -m bot.console", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", help="address to listen on (PRIVACY_BOT_BIND_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: CONSOLE_PORT, 5002)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(
        settings,
        session_factory(settings.database_url),
        tracker_engine(settings.tracker_url),
        RasaApi(settings.rasa_url, ensure_rasa_token(settings)),
    )
    port = args.port or settings.console_port
    host = args.host or settings.bind_host
    print(f"staff console: http://{host}:{port}/", flush=True)
    web.run_app(app, host=host, port=port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
