"""The image's health check: ``python /app/deploy/docker/healthcheck.py URL`` or ``deps``.

``URL``: exit 0 when a GET answers 200 within 3 s (the processes' own health routes:
the rasa server's ``/``, the action server's, the console's and the chat page's
``/health``, LINE's intake's ``/webhooks/line/``). The image has no curl; the standard
library does the request.

``deps``: exit 0 when the app database and Redis answer (``DATABASE_URL``,
``REDIS_URL``); the worker has no HTTP port, and what makes it unable to work is
losing either of them.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Sequence


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within 3 seconds."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def dependencies_ok() -> bool:
    """Whether the app database and Redis answer within a few seconds."""
    import redis
    import sqlalchemy as sa

    from bot.settings import load_settings

    settings = load_settings()
    try:
        engine = sa.create_engine(settings.database_url, pool_pre_ping=False)
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        redis_url = os.environ.get("REDIS_URL", "").strip()
        if redis_url:
            client = redis.Redis.from_url(redis_url, socket_timeout=3, socket_connect_timeout=3)
            client.ping()
            client.close()
    except (sa.exc.SQLAlchemyError, redis.RedisError, OSError):
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """0 when healthy, 1 when not."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: healthcheck.py URL|deps", file=sys.stderr)
        return 2
    healthy = dependencies_ok() if args[0] == "deps" else http_ok(args[0])
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
