"""Rasa's messages as LINE message objects: texts, quick replies, batches of calls.

What the bot says in one turn (as Rasa's collecting output channel keeps it) becomes
LINE message objects within the Messaging API's limits: long texts split at line ends,
every button of the turn a quick reply on the last message, at most 5 messages per API
call. Plain Python: the channel and the case notifier both use it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Limits of the Messaging API (reference: message objects, quick reply, actions).
MAX_MESSAGES_PER_CALL = 5
MAX_TEXT_CHARS = 5000
MAX_QUICK_REPLY_ITEMS = 13
MAX_LABEL_CHARS = 20
MAX_POSTBACK_DATA_CHARS = 300
MAX_DISPLAY_TEXT_CHARS = 300
# Message object types passed through as they are when an action sends custom JSON.
LINE_MESSAGE_TYPES = frozenset(
    {"text", "sticker", "image", "video", "audio", "location", "imagemap", "template", "flex"}
)
# The text carrying a turn's quick replies when the bot said nothing but buttons.
CHOOSE_PROMPT = "次の中からお選びください。"


def split_text(text: str, limit: int = MAX_TEXT_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line ends if possible.

    Args:
        text: the text of one bot message.
        limit: the longest piece.

    Returns:
        The non-empty pieces, in order.
    """
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = rest.rfind("\n", limit // 2, limit)
        cut = cut if cut > 0 else limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n")
    if rest:
        pieces.append(rest)
    return [piece for piece in pieces if piece]


def quick_reply_label(title: str) -> str:
    """A button title shortened to LINE's label limit, with an ellipsis when cut.

    Args:
        title: the button's title.

    Returns:
        At most :data:`MAX_LABEL_CHARS` characters.
    """
    title = " ".join(title.split())
    if len(title) <= MAX_LABEL_CHARS:
        return title
    return title[: MAX_LABEL_CHARS - 1] + "…"


def quick_reply_item(button: Mapping[str, Any]) -> dict[str, Any] | None:
    """A LINE quick reply item for a Rasa button.

    A button with a payload becomes a postback action: the payload comes back as the
    postback's data, and the full title shows in the chat as what the member chose. A
    payload too long for a postback becomes a message action sending the title; a
    button with a ``url`` opens it.

    Args:
        button: a Rasa button (``title``, ``payload``, or ``url``).

    Returns:
        The item, or None for a button with neither payload nor URL.
    """
    title = str(button.get("title") or "").strip()
    payload = str(button.get("payload") or "").strip()
    url = str(button.get("url") or "").strip()
    label = quick_reply_label(title or payload or url)
    if not label:
        return None
    if url:
        return {"type": "action", "action": {"type": "uri", "label": label, "uri": url}}
    if not payload:
        return None
    if len(payload) <= MAX_POSTBACK_DATA_CHARS:
        action = {
            "type": "postback",
            "label": label,
            "data": payload,
            "displayText": (title or label)[:MAX_DISPLAY_TEXT_CHARS],
        }
    else:
        logger.warning("A button payload is too long for a LINE postback; sending its title")
        action = {"type": "message", "label": label, "text": (title or label)[:300]}
    return {"type": "action", "action": action}


@dataclass(frozen=True)
class Outgoing:
    """One turn's LINE message objects and the intent payloads offered with them.

    Attributes:
        messages: LINE message objects, in order; the last carries the quick replies.
        offered: the postback data of the quick replies (for the guard).
    """

    messages: list[dict[str, Any]]
    offered: list[str]


def to_line_messages(collected: Iterable[Mapping[str, Any]]) -> Outgoing:
    """Convert the messages Rasa sent in one turn into LINE message objects.

    Texts longer than LINE's limit are split. Every button of the turn becomes a quick
    reply on the *last* message, since LINE shows quick replies only there; at most 13
    are kept. Custom JSON that is a LINE message object is passed on as it is.

    Args:
        collected: the messages as Rasa's ``CollectingOutputChannel`` keeps them.

    Returns:
        The LINE messages and the payloads offered.
    """
    messages: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for message in collected:
        for piece in split_text(str(message.get("text") or "")):
            messages.append({"type": "text", "text": piece})
        custom = message.get("custom")
        if isinstance(custom, Mapping) and custom.get("type") in LINE_MESSAGE_TYPES:
            messages.append(dict(custom))
        elif custom:
            logger.warning("Custom message without a LINE message type dropped")
        if message.get("image"):
            url = str(message["image"])
            messages.append({"type": "image", "originalContentUrl": url, "previewImageUrl": url})
        for piece in split_text(str(message.get("attachment") or "")):
            messages.append({"type": "text", "text": piece})
        for button in message.get("buttons") or []:
            item = quick_reply_item(button) if isinstance(button, Mapping) else None
            key = json.dumps(item, sort_keys=True) if item else ""
            if item and key not in seen:
                seen.add(key)
                items.append(item)
    if len(items) > MAX_QUICK_REPLY_ITEMS:
        logger.warning("%d buttons in one turn; LINE shows %d", len(items), MAX_QUICK_REPLY_ITEMS)
        items = items[:MAX_QUICK_REPLY_ITEMS]
    if items:
        if not messages:
            messages.append({"type": "text", "text": CHOOSE_PROMPT})
        messages[-1] = {**messages[-1], "quickReply": {"items": items}}
    offered = [item["action"]["data"] for item in items if item["action"]["type"] == "postback"]
    return Outgoing(messages, offered)


def in_batches(
    messages: list[dict[str, Any]], size: int = MAX_MESSAGES_PER_CALL
) -> list[list[dict[str, Any]]]:
    """``messages`` in consecutive batches of at most ``size`` (one API call each).

    Args:
        messages: LINE message objects.
        size: the most messages one call may carry.

    Returns:
        The batches, in order.
    """
    return [messages[start : start + size] for start in range(0, len(messages), size)]


def text_message(text: str) -> dict[str, Any]:
    """A LINE text message object.

    Args:
        text: at most :data:`MAX_TEXT_CHARS` characters.

    Returns:
        The message object.
    """
    return {"type": "text", "text": text}
