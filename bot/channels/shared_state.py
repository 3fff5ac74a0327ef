"""Redis for what several rasa servers share, and what each does when Redis fails.

With ``REDIS_URL`` set, the rasa server keeps in Redis what must hold across replicas:
the channel guard's rate windows and offered buttons
(:mod:`bot.channels.shared_guard`), LINE's webhook event ids
(:mod:`bot.channels.line.seen`) and API budget (:mod:`bot.channels.line.budget`), and the
website chat's socket.io messages (``AsyncRedisManager``, :mod:`bot.channels.webchat`).
Unset, each process keeps them in memory, as ``make run`` does.

Two failures are treated differently on purpose:

- **at start-up**, an unreachable Redis stops the process with a clear message
  (:func:`require_reachable`): replicas that silently kept their state per process
  would let a member past the rate limit and answer a redelivered event twice, with
  nothing in the logs to say why;
- **at run time**, a member's message is never lost for Redis: each shared object falls
  back to its per-process twin for as long as Redis fails (one warning when it starts,
  one line when it ends, neither with personal data), and commands wait at most
  :data:`COMMAND_TIMEOUT_S`.

Keys start with :data:`KEY_PREFIX`; ids of members (LINE user ids, conversation ids) are
never in a key in clear, only :func:`key_part` of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from urllib.parse import urlsplit

import redis
from redis import asyncio as redis_asyncio

from bot.settings import SettingsError

logger = logging.getLogger(__name__)

KEY_PREFIX = "privacy-bot:"
# Connecting may take a TLS handshake to a managed Redis; a command should not take long.
CONNECT_TIMEOUT_S = 2.0
# The longest a member's message waits on Redis before the per-process fallback decides.
COMMAND_TIMEOUT_S = 1.0
# What a failing Redis raises through redis-py: its own errors, the socket's, a timeout.
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, asyncio.TimeoutError)


def where(url: str) -> str:
    """``host:port/db`` of a Redis URL, for messages: never its user name or password."""
    parts = urlsplit(url)
    database = parts.path.strip("/") or "0"
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{database}"


def key_part(value: str) -> str:
    """What stands for an id in a Redis key: the first 32 hex digits of its SHA-256.

    Keys show in ``SCAN``, ``MONITOR`` and slow logs; a member's id does not belong there.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def require_reachable(url: str) -> None:
    """Check at start-up that Redis answers; stop the process otherwise.

    Args:
        url: the ``REDIS_URL``.

    Raises:
        SettingsError: If Redis does not answer ``PING`` (message without credentials).
    """
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
    except REDIS_ERRORS as error:
        raise SettingsError(
            f"REDIS_URL: Redis at {where(url)} does not answer ({type(error).__name__}); "
            "start it, correct REDIS_URL, or unset it to keep shared state per process"
        ) from None
    finally:
        client.close()


def connect(url: str) -> redis_asyncio.Redis:
    """An asyncio client for ``url``; it connects on its first command.

    Built before the server's event loop runs and used only inside it: redis-py opens
    its connections lazily, in the loop that issues the command.
    """
    return redis_asyncio.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=COMMAND_TIMEOUT_S,
        health_check_interval=30,
    )


def connect_checked(url: str) -> redis_asyncio.Redis:
    """:func:`require_reachable`, then :func:`connect`: for building a channel.

    Raises:
        SettingsError: If Redis does not answer.
    """
    require_reachable(url)
    return connect(url)


class Outage:
    """Logs a Redis outage once when it starts and once when it ends.

    Every member message would otherwise log the same failure; the error's class is
    logged, never its message (which may quote a key or a value).
    """

    def __init__(self, what: str) -> None:
        """Create the log for one shared object.

        Args:
            what: what falls back, e.g. ``"LINE channel guard"``.
        """
        self.what = what
        self.down = False

    def failed(self, error: BaseException) -> None:
        """Note a failed command; warn if Redis was fine until now."""
        if not self.down:
            self.down = True
            logger.warning(
                "%s: Redis unavailable (%s); per-process state until it answers again",
                self.what,
                type(error).__name__,
            )

    def answered(self) -> None:
        """Note a command that worked; say so if Redis had failed."""
        if self.down:
            self.down = False
            logger.warning("%s: Redis answers again; shared state resumed", self.what)
