"""The LINE channel's settings: its ``credentials.yml`` entry and the environment.

``LINE_CHANNEL_SECRET`` verifies webhooks, ``LINE_CHANNEL_ACCESS_TOKEN`` authorizes API
calls and ``LINE_API_BASE_URL`` (default ``https://api.line.me``; tests point it at a
local stand-in) says where the API is; ``LINE_MAX_CONCURRENT_EVENTS`` (or the entry's
``max_concurrent_events``, default 4) bounds the webhook bodies processed at once.
While the secret or the token is unset the channel is off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.channels.guard import MAX_MESSAGE_CHARS
from bot.channels.line.api import DEFAULT_API_BASE_URL

# Measured with a burst of 200 deliveries (docs/benchmarks.md, "LINE burst
# acknowledgement"): enough turns at once to overlap their waits on the action server
# and the API, few enough that the event loop still reads new webhooks at once.
DEFAULT_MAX_CONCURRENT_EVENTS = 4

_ENV_REFERENCE = re.compile(r"\$\{(\w+)\}")


def resolve_env(value: object, env: Mapping[str, str] | None = None) -> str:
    """A credentials value with each ``${NAME}`` replaced by that variable.

    Rasa expands ``${NAME}`` in ``credentials.yml`` itself, but refuses to start when
    the variable is unset. The LINE entry therefore quotes its values (Rasa leaves a
    quoted value as written) and they are expanded here, an unset variable becoming
    empty, so that a server without the variables starts with the channel off.

    Args:
        value: the value from ``credentials.yml`` (None when the key is empty).
        env: the environment (``os.environ`` by default).

    Returns:
        The expanded value, stripped of surrounding whitespace.
    """
    source = os.environ if env is None else env
    text = "" if value is None else str(value)
    return _ENV_REFERENCE.sub(lambda match: source.get(match.group(1), ""), text).strip()


@dataclass(frozen=True)
class LineConfig:
    """The channel's settings.

    Attributes:
        channel_secret: the channel secret (verifies webhook signatures).
        access_token: the channel access token (authorizes API calls).
        api_base_url: where the Messaging API is, without a trailing slash.
        max_per_minute: messages a member may send per minute (the guard's limit).
        max_chars: the longest message handed to Rasa, in characters.
        max_concurrent_events: how many accepted webhook bodies (per member) this
            process works on at once; the others wait their turn in memory
            (:mod:`bot.channels.line.lanes`).
    """

    channel_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    api_base_url: str = DEFAULT_API_BASE_URL
    max_per_minute: int = 20
    max_chars: int = MAX_MESSAGE_CHARS
    max_concurrent_events: int = DEFAULT_MAX_CONCURRENT_EVENTS

    @property
    def missing(self) -> list[str]:
        """The environment variables the channel still needs, by name."""
        needed = {
            "LINE_CHANNEL_SECRET": self.channel_secret,
            "LINE_CHANNEL_ACCESS_TOKEN": self.access_token,
        }
        return [name for name, value in needed.items() if not value]

    @property
    def enabled(self) -> bool:
        """Whether the channel can verify webhooks and answer them."""
        return not self.missing

    @classmethod
    def from_credentials(
        cls, credentials: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> LineConfig:
        """Read the settings from the ``credentials.yml`` entry and the environment.

        Keys missing from the entry fall back to the environment variables, so even an
        empty entry works.

        Args:
            credentials: the entry's mapping (None for an empty entry).
            env: the environment (``os.environ`` by default).

        Returns:
            The settings.

        Raises:
            ValueError: If the API base URL is not an http(s) URL or a limit is not a
                positive integer.
        """
        given = dict(credentials or {})
        secret = resolve_env(given.get("channel_secret", "${LINE_CHANNEL_SECRET}"), env)
        token = resolve_env(given.get("channel_access_token", "${LINE_CHANNEL_ACCESS_TOKEN}"), env)
        base_url = resolve_env(given.get("api_base_url", "${LINE_API_BASE_URL}"), env)
        base_url = (base_url or DEFAULT_API_BASE_URL).rstrip("/")
        concurrent = resolve_env(
            given.get("max_concurrent_events", "${LINE_MAX_CONCURRENT_EVENTS}"), env
        )
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("LINE_API_BASE_URL must be an http(s) URL")
        return cls(
            channel_secret=secret,
            access_token=token,
            api_base_url=base_url,
            max_per_minute=_positive(given.get("max_messages_per_minute", 20)),
            max_chars=_positive(given.get("max_message_chars", MAX_MESSAGE_CHARS)),
            max_concurrent_events=_positive(concurrent or DEFAULT_MAX_CONCURRENT_EVENTS),
        )


def _positive(value: object) -> int:
    number = int(str(value))
    if number < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number
