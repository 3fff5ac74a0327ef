"""Rasa's HTTP API as staff use it: resume a paused conversation."""

from __future__ import annotations

from urllib.parse import quote

import requests

TIMEOUT_SECONDS = 10


class RasaApiError(Exception):
    """The rasa server refused or could not be reached."""


def resume(rasa_url: str, token: str, sender_id: str) -> None:
    """Resume the conversation ``sender_id``: the assistant answers its messages again.

    Posts the ``resume`` event to ``/conversations/{sender_id}/tracker/events``.

    Raises:
        RasaApiError: the server answered with an error or could not be reached.
    """
    url = f"{rasa_url.rstrip('/')}/conversations/{quote(sender_id, safe='')}/tracker/events"
    try:
        response = requests.post(
            url,
            params={"token": token, "include_events": "NONE"},
            json={"event": "resume"},
            timeout=TIMEOUT_SECONDS,
        )
    except requests.RequestException as error:
        raise RasaApiError(f"rasa server unreachable: {type(error).__name__}") from error
    if response.status_code >= 400:
        raise RasaApiError(f"rasa server answered {response.status_code}")
