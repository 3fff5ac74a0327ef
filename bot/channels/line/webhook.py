"""What a LINE webhook request must be to be accepted: size, signature, then JSON.

The same check runs where a delivery is acknowledged (the rasa server's channel, or the
intake in front of the rasa servers: :mod:`bot.channels.line.intake`) and again where a
body taken from the inbox is processed, so that a body is only ever worked on with the
proof LINE sent it with.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.channels.line.signature import signature_valid

logger = logging.getLogger(__name__)

# LINE's webhook bodies are a few kilobytes; anything far larger is not from LINE and is
# refused before the HMAC is even computed over it.
MAX_BODY_BYTES = 1_000_000

# Set by the edge (deploy/nginx) on the copy of a delivery it gives a rasa server after
# the intake failed to acknowledge it: the intake may have queued the body all the same.
INTAKE_FALLBACK_HEADER = "X-Privacy-Bot-Intake-Fallback"


def check(
    channel_secret: str, body: bytes, signature: str | None
) -> tuple[int, list[dict[str, Any]]]:
    """Check a webhook request and return its status and the events to process.

    Nothing is parsed before the signature is verified.

    Args:
        channel_secret: the channel secret (none: the channel is off, 503).
        body: the raw body.
        signature: the ``X-Line-Signature`` header (None when missing).

    Returns:
        The HTTP status (200, 400, 401, 413 or 503) and the events (empty unless 200).
    """
    if not channel_secret:
        return 503, []
    if len(body) > MAX_BODY_BYTES:
        logger.warning("LINE webhook refused: body of %d bytes", len(body))
        return 413, []
    if not signature_valid(channel_secret, body, signature):
        logger.warning("LINE webhook refused: %s signature", "wrong" if signature else "missing")
        return 401, []
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        logger.warning("LINE webhook refused: the body is not JSON")
        return 400, []
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        logger.warning("LINE webhook refused: no events list")
        return 400, []
    return 200, [event for event in events if isinstance(event, dict)]
