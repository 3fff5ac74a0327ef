"""Sending what the bot says on LINE: one reply call, push for the rest.

:class:`LineDelivery` sends one turn's messages; :class:`LineCollector` collects them
during the member's turn; :class:`LineOutput` pushes at once, for messages outside a
turn (Rasa's ``trigger_intent`` with ``output_channel=line``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel

from bot.channels.guard import Guard, hashed_sender
from bot.channels.line.api import InvalidReplyTokenError, LineApi, LineApiError
from bot.channels.line.messages import in_batches, split_text, text_message, to_line_messages
from bot.core.conversation import native_id

logger = logging.getLogger(__name__)

# Older versions of the console's "Verify" button sent events with these reply tokens;
# they cannot be replied to. (Today it sends an empty ``events`` list.)
DUMMY_REPLY_TOKENS = frozenset({"0" * 32, "f" * 32})


class LineDelivery:
    """Sends one turn's messages: one reply call, push for what does not fit or fails."""

    def __init__(self, api: LineApi, guard: Guard) -> None:
        """Create the delivery.

        Args:
            api: the API client.
            guard: the guard told which payloads the bot offered.
        """
        self.api = api
        self.guard = guard

    async def deliver(
        self,
        user_id: str | None,
        reply_token: str | None,
        collected: Iterable[Mapping[str, Any]],
        before: Iterable[str] = (),
    ) -> None:
        """Send what the bot said in one turn.

        The first 5 messages go in a reply call; the rest, or everything when the
        reply token is used or expired, go by push in batches of 5. Errors are logged,
        not raised: the member's other events still get processed.

        Args:
            user_id: the LINE user id to push to (None: never push, e.g. a group).
            reply_token: the event's reply token (None: push only).
            collected: the bot's messages as Rasa sent them.
            before: texts to send ahead of them (the guard's notices, a welcome).
        """
        outgoing = to_line_messages(collected)
        messages = [text_message(piece) for text in before for piece in split_text(text)]
        messages += outgoing.messages
        if not messages:
            return
        if user_id and outgoing.offered:
            await self.guard.offered_async(user_id, outgoing.offered)
        who = hashed_sender(user_id) if user_id else "(group)"
        batches = in_batches(messages)
        if reply_token and reply_token not in DUMMY_REPLY_TOKENS:
            try:
                await self.api.reply(reply_token, batches[0])
                batches = batches[1:]
            except InvalidReplyTokenError:
                logger.info("Reply token used or expired for sender %s: pushing", who)
            except LineApiError:
                return
        if batches and not user_id:
            logger.warning("%d message batches not delivered: nobody to push to", len(batches))
            return
        for batch in batches:
            assert user_id is not None  # checked above; for mypy
            try:
                await self.api.push(user_id, batch)
            except LineApiError:
                return  # the rest would arrive out of order
        logger.info("Sent %d messages to sender %s", len(messages), who)


class LineCollector(CollectingOutputChannel):
    """Collects what the bot says during one turn, to send it in one reply call."""

    def __init__(self) -> None:
        """Start with nothing collected."""
        super().__init__()
        self.messages: list[dict[str, Any]] = []

    @classmethod
    def name(cls) -> str:
        """The channel's name, as Rasa records it."""
        return "line"

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        """Keep a text whole (Rasa's collector splits at blank lines).

        LINE allows 5 messages per call, and an answer with its source reads best as
        one speech bubble.
        """
        await self._persist_message(self._message(recipient_id, text=text))


class LineOutput(LineCollector):
    """Sends by push at once: for messages outside a member's turn (reminders, the API)."""

    def __init__(self, delivery: LineDelivery) -> None:
        """Create the output channel.

        Args:
            delivery: how messages are sent.
        """
        super().__init__()
        self._delivery = delivery

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """Convert one bot message and push it to the LINE user of ``recipient_id``.

        Only a LINE conversation (``line:U…``) is pushed to: a message for another
        channel's conversation sent through this output is dropped, never delivered
        to a LINE user whose id happens to match.
        """
        await super().send_response(recipient_id, message)
        collected, self.messages = self.messages, []
        user_id = native_id(recipient_id, LineCollector.name())
        if user_id is None:
            logger.warning(
                "Message for %s is not for a LINE conversation: not sent",
                hashed_sender(recipient_id),
            )
            return
        await self._delivery.deliver(user_id, None, collected)
