"""Messages through the running servers' REST channel, as operators' tools send them."""

from __future__ import annotations

import requests

from bot.launcher import RunningAssistant


def rest_post(assistant: RunningAssistant, conversation: str, text: str) -> list[dict]:
    """One message through the REST channel into ``conversation`` (``rest:<name>``).

    The channel names the conversation ``rest:`` and the sender given, and answers
    only calls that carry the HTTP API token.
    """
    response = requests.post(
        assistant.rest_url,
        json={"sender": conversation.removeprefix("rest:"), "message": text},
        headers=assistant.rest_headers,
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


def joined(messages: list[dict]) -> str:
    """The texts of the assistant's answers, one per line."""
    return "\n".join(m.get("text", "") for m in messages)
