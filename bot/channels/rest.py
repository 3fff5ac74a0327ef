"""The REST channel, for tests and operators only: off unless enabled, then token-bound.

Rasa's own REST channel lets any caller pick the conversation (``sender``) and the
channel it claims to come from (``input_channel``), skips the channel guard and needs
no credential: anyone who learns a member's LINE user id or chat session id could read
their verified data through it. This channel replaces it under the same name and path
(``POST /webhooks/rest/webhook``):

- it is off unless ``PRIVACY_BOT_REST=true``: the webhook answers 404 and the health
  route says ``off``;
- every call needs the rasa HTTP API token as ``Authorization: Bearer …`` (compared in
  constant time), otherwise 401;
- the conversation id is ``rest:`` and the given sender (:mod:`bot.core.conversation`),
  so no REST call can reach a LINE or website-chat conversation; ``input_channel`` and
  ``metadata`` in the body are ignored;
- every message goes through the same :class:`~bot.channels.guard.ChannelGuard` as the
  member channels: rate and length limits, ``/intent`` payloads only where offered;
  with ``REDIS_URL`` the shared one (:mod:`bot.channels.shared_guard`), so that a
  button offered by one rasa server can be pressed through another.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import ChannelGuard, Guard, hashed_sender
from bot.channels.shared_guard import SharedChannelGuard
from bot.channels.shared_state import connect_checked
from bot.core.conversation import conversation_id
from bot.settings import ensure_rasa_token, load_settings

logger = logging.getLogger(__name__)

DEFAULT_MAX_PER_MINUTE = 60
# A sender an operator or test chooses: short, printable, no separators to confuse logs.
SENDER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class GuardedCollector(CollectingOutputChannel):
    """Collects the bot's answers and tells the guard which buttons it offered."""

    def __init__(self, guard: Guard) -> None:
        """Create the collector.

        Args:
            guard: the guard to report offered buttons to.
        """
        super().__init__()
        self.guard = guard

    @classmethod
    def name(cls) -> str:
        """The channel's name, as Rasa records it."""
        return "rest"

    async def _persist_message(self, message: dict[str, Any]) -> None:
        buttons = message.get("buttons") or []
        await self.guard.offered_async(
            str(message.get("recipient_id", "")),
            [str(button.get("payload", "")) for button in buttons],
        )
        await super()._persist_message(message)


class OperatorRestInput(InputChannel):
    """Rasa's ``rest`` channel, off by default, token-bound and guarded.

    Listed in ``credentials.yml`` as ``bot.channels.rest.OperatorRestInput``.
    """

    @classmethod
    def name(cls) -> str:
        """The channel's name: its routes are under ``/webhooks/rest/``."""
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> InputChannel:
        """Build the channel from its ``credentials.yml`` entry and the settings.

        ``max_messages_per_minute`` sets the guard's rate limit per conversation
        (default 60: operators' tools send faster than people type). Whether the
        channel is on and its token come from the settings (``PRIVACY_BOT_REST``,
        ``RASA_TOKEN`` or ``var/rasa_token``); with ``REDIS_URL`` the guard is shared.

        Raises:
            SettingsError: If ``REDIS_URL`` is set and Redis does not answer.
        """
        options = dict(credentials or {})
        per_minute = int(options.get("max_messages_per_minute", DEFAULT_MAX_PER_MINUTE))
        settings = load_settings()
        token = ensure_rasa_token(settings) if settings.rest_enabled else None
        if token:
            logger.info("REST channel on: /webhooks/rest/webhook with the HTTP API token")
        else:
            logger.info("REST channel off (PRIVACY_BOT_REST is not true)")
        guard: Guard = (
            SharedChannelGuard(connect_checked(settings.redis_url), cls.name(), per_minute)
            if settings.redis_url
            else ChannelGuard(max_per_minute=per_minute)
        )
        return cls(token, guard)

    def __init__(self, token: str | None, guard: Guard | None = None) -> None:
        """Create the channel.

        Args:
            token: the bearer token calls must carry; None switches the channel off.
            guard: the message guard (a default one when None).
        """
        self.token = token
        self.guard: Guard = guard or ChannelGuard(max_per_minute=DEFAULT_MAX_PER_MINUTE)

    def authorized(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this channel's token."""
        if not self.token or not header:
            return False
        return hmac.compare_digest(header.encode("utf-8"), f"Bearer {self.token}".encode())

    async def handle(self, body: Any, on_new_message: OnNewMessage) -> HTTPResponse:
        """Run one authorized call's message through the guard and the bot.

        Args:
            body: the parsed JSON body (``{"sender": ..., "message": ...}``).
            on_new_message: Rasa's handler.

        Returns:
            The bot's messages as a JSON list, or 400 for a malformed body.
        """
        sender = body.get("sender") if isinstance(body, dict) else None
        text = body.get("message") if isinstance(body, dict) else None
        if not isinstance(sender, str) or not SENDER.fullmatch(sender):
            return response.json({"error": "sender: 1-64 of A-Z a-z 0-9 _ . @ -"}, status=400)
        if not isinstance(text, str):
            return response.json({"error": "message: a string"}, status=400)
        conversation = conversation_id(self.name(), sender)
        collector = GuardedCollector(self.guard)
        verdict = await self.guard.admit_async(conversation, text)
        if verdict.reply:
            await collector.send_text_message(conversation, verdict.reply)
        if verdict.text is not None:
            try:
                await on_new_message(
                    UserMessage(
                        verdict.text,
                        collector,
                        conversation,
                        input_channel=self.name(),
                        metadata={},
                    )
                )
            except Exception as error:  # the caller gets what was said so far
                logger.error(
                    "Rasa failed on a REST message from %s: %s",
                    hashed_sender(conversation), type(error).__name__,
                )  # fmt: skip
        return response.json(collector.messages)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The Sanic routes: ``GET /`` (health) and ``POST /webhook``.

        Args:
            on_new_message: Rasa's handler for a message.

        Returns:
            The blueprint Rasa mounts under ``/webhooks/rest``.
        """
        rest_webhook = Blueprint("operator_rest_webhook", __name__)

        @rest_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.token else "off"})

        @rest_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            return await self.answer(
                request.headers.get("Authorization"), request.body, on_new_message
            )

        return rest_webhook

    async def answer(
        self, authorization: str | None, raw: bytes, on_new_message: OnNewMessage
    ) -> HTTPResponse:
        """Answer one webhook call: 404 while off, 401 without the token, else the bot.

        Args:
            authorization: the ``Authorization`` header, if any.
            raw: the request body.
            on_new_message: Rasa's handler.
        """
        if not self.token:
            return response.json({"error": "not found"}, status=404)
        if not self.authorized(authorization):
            return response.json({"error": "unauthorized"}, status=401)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        return await self.handle(body, on_new_message)
