"""The LINE channel: LINE Messaging API webhooks in, reply and push messages out.

By concern:

- :mod:`~bot.channels.line.config`: the channel's settings (``credentials.yml`` and
  ``LINE_CHANNEL_SECRET``, ``LINE_CHANNEL_ACCESS_TOKEN``, ``LINE_API_BASE_URL``,
  ``LINE_MAX_CONCURRENT_EVENTS``);
- :mod:`~bot.channels.line.signature`: ``X-Line-Signature``, signed and verified;
- :mod:`~bot.channels.line.messages`: Rasa's messages as LINE message objects (texts
  split, buttons as quick replies, batches of 5);
- :mod:`~bot.channels.line.api`: the Messaging API client (reply, push, retries with
  backoff, ``X-Line-Retry-Key``), also used by case notifications;
- :mod:`~bot.channels.line.delivery`: one turn's messages by reply, the rest by push;
  the output channels;
- :mod:`~bot.channels.line.lanes`: accepted bodies processed a bounded number at a
  time, in order per member;
- :mod:`~bot.channels.line.channel`: :class:`LineInput`, the webhook and its events.

``credentials.yml`` names the input channel ``bot.channels.line.LineInput``. Only the
names other code reaches by this package path are exported here, and the channel's
lazily: importing Rasa takes seconds, and processes that never load Rasa (the staff
console, the case CLI) import this package for the API client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bot.channels.line.config import LineConfig
from bot.channels.line.signature import sign

if TYPE_CHECKING:
    from bot.channels.line.channel import TEXT_ONLY_REPLY, WELCOME_TEXT, LineInput

__all__ = ["TEXT_ONLY_REPLY", "WELCOME_TEXT", "LineConfig", "LineInput", "sign"]

# Names of bot.channels.line.channel (which imports Rasa), imported on first use.
_FROM_CHANNEL = frozenset({"LineInput", "TEXT_ONLY_REPLY", "WELCOME_TEXT"})


def __getattr__(name: str) -> Any:
    """The channel's names, imported on first use (PEP 562)."""
    if name in _FROM_CHANNEL:
        return getattr(importlib.import_module("bot.channels.line.channel"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
