"""Rasa's HTTP API as staff use it: pause, resume, and relay staff replies.

The rasa server runs with ``--enable-api --auth-token``; every call passes the token
as the ``token`` query parameter. Calls are synchronous (``requests``): the console
and the CLI make one at a time, inside a unit of work they roll back on failure.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from bot.core.conversation import native_id

TIMEOUT_SECONDS = 10
# The relay action calls the action server, which reads the database and answers; the
# rasa server then sends on the member's channel (a LINE push may take seconds).
RELAY_TIMEOUT_SECONDS = 30
RELAY_ACTION = "action_relay_staff_message"


def is_line_conversation(sender_id: str) -> bool:
    """Whether ``sender_id`` is a LINE conversation (``line:U…``)."""
    return native_id(sender_id, "line") is not None


class RasaApiError(Exception):
    """The rasa server refused or could not be reached."""


class RasaApi:
    """The rasa server's HTTP API at ``url``, authenticated with ``token``."""

    def __init__(self, url: str, token: str) -> None:
        """Create the client.

        Args:
            url: the server's base URL, e.g. ``settings.rasa_url``.
            token: the ``--auth-token`` the server was started with.
        """
        self.url = url.rstrip("/")
        self.token = token

    def _conversation(self, sender_id: str, tail: str) -> str:
        # The channel prefix's colon stays as it is: Sanic does not decode %3A in a path
        # parameter, so a quoted one would name another conversation (rest%3A…).
        return f"{self.url}/conversations/{quote(sender_id, safe=':@')}/{tail}"

    def _post(
        self,
        url: str,
        params: dict[str, str],
        body: dict[str, Any] | list[dict[str, Any]],
        timeout: float,
    ) -> requests.Response:
        try:
            response = requests.post(
                url, params={"token": self.token, **params}, json=body, timeout=timeout
            )
        except requests.RequestException as error:
            # The class name only: the message would quote the URL, token included.
            raise RasaApiError(f"rasa server unreachable: {type(error).__name__}") from error
        if response.status_code >= 400:
            raise RasaApiError(f"rasa server answered {response.status_code}")
        return response

    def _append(self, sender_id: str, event: str) -> None:
        self._post(
            self._conversation(sender_id, "tracker/events"),
            {"include_events": "NONE"},
            {"event": event},
            TIMEOUT_SECONDS,
        )

    def resume(self, sender_id: str, notice: str | None = None) -> None:
        """Resume the conversation: the assistant answers its messages again.

        Args:
            sender_id: the conversation.
            notice: a message for the member, appended with the resume as the
                assistant's line in one call (``tracker/events``, both events at
                once). Rasa sends it on the channel of the member's last message
                (``execute_side_effects=true&output_channel=latest``), except in a
                LINE conversation, where it is only recorded: the outbox pushes it
                (:mod:`bot.handoff.handback`).

        Raises:
            RasaApiError: the server answered with an error or could not be reached.
        """
        if notice is None:
            self._append(sender_id, "resume")
            return
        params = {"include_events": "NONE"}
        if not is_line_conversation(sender_id):
            params.update(execute_side_effects="true", output_channel="latest")
        self._post(
            self._conversation(sender_id, "tracker/events"),
            params,
            [{"event": "resume"}, {"event": "bot", "text": notice}],
            TIMEOUT_SECONDS,
        )

    def pause(self, sender_id: str) -> None:
        """Pause the conversation: Rasa keeps the member's messages but answers none.

        Raises:
            RasaApiError: the server answered with an error or could not be reached.
        """
        self._append(sender_id, "pause")

    def relay(self, sender_id: str) -> list[dict[str, Any]]:
        """Run ``action_relay_staff_message`` in the conversation, paused or not.

        ``POST /conversations/{id}/execute?output_channel=latest``: the rasa server runs
        the action (it works while the conversation is paused: ``execute`` predicts
        nothing, it runs the one action) and sends what it utters on the channel the
        member last wrote on (the website chat's socket room). For the REST channel,
        which cannot send on its own, the messages come back here, and so they do for a
        LINE conversation (``line:…``), whose replies the outbox pushes after the
        commit that stored them (:func:`bot.handoff.relay.send_staff_message`): the
        relay only records them in the conversation, so a retry never pushes twice.

        Returns:
            The messages the server collected instead of sending (REST only).

        Raises:
            RasaApiError: the server answered with an error (404: no such conversation)
                or could not be reached.
        """
        # A LINE conversation's replies are pushed by the outbox (bot.handoff.relay),
        # once, with a retry key: Rasa only records them, its collector sends nothing.
        params = {"include_events": "NONE"}
        if not is_line_conversation(sender_id):
            params["output_channel"] = "latest"
        response = self._post(
            self._conversation(sender_id, "execute"),
            params,
            {"name": RELAY_ACTION},
            RELAY_TIMEOUT_SECONDS,
        )
        try:
            messages = response.json().get("messages") or []
        except ValueError:
            return []
        return [message for message in messages if isinstance(message, dict)]


def resume(rasa_url: str, token: str, sender_id: str) -> None:
    """Resume the conversation ``sender_id`` (see :meth:`RasaApi.resume`).

    Raises:
        RasaApiError: the server answered with an error or could not be reached.
    """
    RasaApi(rasa_url, token).resume(sender_id)
