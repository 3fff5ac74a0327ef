"""Who is talking, and conversation ids: which channel identity a conversation belongs to.

:class:`Conversation` is what every feature is told about who sent a turn; it lives
here, not in one feature, so that features can pass it to each other without importing
each other's services.

Every member channel names its conversations ``<prefix>:<native id>``: ``line:U…`` for a
LINE user, ``web:…`` for a website-chat session the server issued, ``rest:…`` for the
operators' REST channel. The prefix is set by the channel from its own proof (LINE's
signature, the chat's resume secret, the HTTP API token), never from anything a client
sends, so no client of one channel can name a conversation of another: a verification
made in ``line:U1`` is invisible to ``rest:U1`` and to ``web:U1``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Rasa's name of each input channel -> the prefix of its conversation ids.
PREFIXES: dict[str, str] = {"line": "line", "socketio": "web", "rest": "rest"}
_CHANNELS = {prefix: channel for channel, prefix in PREFIXES.items()}
SEPARATOR = ":"


@dataclass(frozen=True)
class Conversation:
    """Who is talking: a verification belongs to exactly this sender and session.

    Attributes:
        sender_id: the conversation (sender) id, ``line:U…``, ``web:…``, ``rest:…``.
        session_key: changes with a new Rasa session or a /restart.
        channel: Rasa's name of the input channel.
    """

    sender_id: str
    session_key: str
    channel: str


class ConversationIdError(ValueError):
    """A conversation id or channel name this product does not issue."""


def conversation_id(channel: str, native_id: str) -> str:
    """The conversation id of ``native_id`` on ``channel``.

    Args:
        channel: Rasa's name of the input channel (``line``, ``socketio``, ``rest``).
        native_id: the channel's own id of the member or session (not empty).

    Returns:
        ``<prefix>:<native_id>``.

    Raises:
        ConversationIdError: For an unknown channel or an empty id.
    """
    prefix = PREFIXES.get(channel)
    if prefix is None:
        raise ConversationIdError(f"unknown channel {channel!r}")
    if not native_id:
        raise ConversationIdError("empty native id")
    return f"{prefix}{SEPARATOR}{native_id}"


def channel_of(conversation: str) -> str | None:
    """Rasa's name of the channel a conversation id belongs to; None if it has no prefix.

    Args:
        conversation: a conversation (sender) id.
    """
    prefix, separator, rest = conversation.partition(SEPARATOR)
    if not separator or not rest:
        return None
    return _CHANNELS.get(prefix)


def native_id(conversation: str, channel: str) -> str | None:
    """The channel's own id inside ``conversation``, if it belongs to ``channel``.

    Args:
        conversation: a conversation (sender) id.
        channel: Rasa's name of the channel expected.

    Returns:
        The native id (a LINE user id, a chat session id), or None when the
        conversation belongs to another channel or to none.
    """
    if channel_of(conversation) != channel:
        return None
    return conversation.partition(SEPARATOR)[2]
