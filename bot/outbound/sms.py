"""Sending SMS: a demo outbox file or Twilio, behind one small interface.

The verification service only sees :class:`SmsSender`. The outbox is what the demo,
the tests and the benchmarks read codes from, as a member reads their phone. Nothing
here logs a phone number or a message text: both carry personal data or a live code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from bot.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

# Seconds to connect to Twilio, and to wait for each read of its answer.
TWILIO_TIMEOUT_S = 10.0


class SmsSender(Protocol):
    """Sends one SMS; raises if it could not be handed to the carrier."""

    def send(self, to: str, text: str) -> None:
        """Send ``text`` to the E.164 number ``to``."""


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class OutboxSender:
    """Appends each SMS as one JSON line to a file instead of sending it.

    Every line is written with a single ``write`` on a file opened with ``O_APPEND``,
    so concurrent senders (threads, or the action server and a test) never interleave
    their lines. The file is created with mode 0600: its lines hold live codes.
    """

    def __init__(self, path: Path | str, clock: Callable[[], datetime] = _utc_now) -> None:
        """Write to ``path``; ``clock`` stamps ``sent_at`` (UTC)."""
        self.path = Path(path)
        self._clock = clock

    def send(self, to: str, text: str) -> None:
        """Append ``{"to", "text", "sent_at"}`` as one line."""
        record = {"to": to, "text": text, "sent_at": self._clock().isoformat()}
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = os.write(descriptor, data)
        finally:
            os.close(descriptor)
        if written != len(data):
            raise OSError(f"short write to the outbox ({written} of {len(data)} bytes)")
        logger.debug("SMS written to the outbox")


class TwilioSender:
    """Sends SMS through Twilio's REST API."""

    def __init__(
        self, account_sid: str, auth_token: str, from_number: str, client: Any | None = None
    ) -> None:
        """Use ``client`` if given (tests), else a ``twilio.rest.Client``.

        Args:
            account_sid: The Twilio account SID.
            auth_token: Its auth token.
            from_number: The sending number (E.164) or messaging service.
            client: An object with Twilio's ``messages.create`` interface.
        """
        if client is None:
            # Imported here: the demo outbox needs no Twilio at all.
            from twilio.http.http_client import TwilioHttpClient
            from twilio.rest import Client

            # requests applies the timeout to the connection and to each read: a slow
            # carrier holds up one delivery, never a worker for good.
            client = Client(
                account_sid, auth_token, http_client=TwilioHttpClient(timeout=TWILIO_TIMEOUT_S)
            )
        self._client = client
        self._from = from_number

    def send(self, to: str, text: str) -> None:
        """Hand the message to Twilio; Twilio's exceptions propagate."""
        message = self._client.messages.create(to=to, from_=self._from, body=text)
        logger.info("SMS accepted by Twilio: %s", getattr(message, "sid", "?"))


def sender_from_settings(settings: Settings) -> SmsSender:
    """The sender that ``settings.sms_backend`` selects.

    Raises:
        SettingsError: If the backend is unknown or Twilio lacks credentials.
    """
    if settings.sms_backend == "outbox":
        return OutboxSender(settings.outbox_path)
    if settings.sms_backend == "twilio":
        if not (
            settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
        ):
            raise SettingsError(
                "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM"
            )
        return TwilioSender(
            settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from
        )
    raise SettingsError(f"unknown SMS_BACKEND {settings.sms_backend!r}")
