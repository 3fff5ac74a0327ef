"""The LINE input channel: the webhook routes and what each event gets.

The rasa server loads :class:`LineInput` from ``credentials.yml`` (by its package path,
``bot.channels.line.LineInput``). It opens ``GET /webhooks/line/`` (health) and
``POST /webhooks/line/webhook`` (LINE's webhook); while the channel is off (see
:mod:`bot.channels.line.config`) the health route answers ``{"status": "off"}`` and the
webhook answers 503 without reading the body.

A webhook request is checked before anything is parsed (:mod:`~bot.channels.line.signature`,
otherwise 401). A valid request is answered 200 at once and its events are processed in
the background, a bounded number of bodies at a time and in order per member
(:mod:`~bot.channels.line.lanes`), so that a burst of deliveries does not keep the
event loop from acknowledging the next ones:

- text messages and postbacks (quick replies) go through the
  :class:`~bot.channels.guard.ChannelGuard`, then to Rasa; everything the bot says in
  that turn goes out in one reply call (:mod:`~bot.channels.line.delivery`);
- follow: a welcome and the greeting (what the assistant can do);
- stickers, images, video, audio, files, locations: a polite "text only" answer;
- join (a group or room): a notice that the assistant answers in one-to-one chats only;
  messages in groups and rooms are not read, since the answers concern personal
  information;
- a redelivered event (``deliveryContext.isRedelivery``) whose ``webhookEventId`` was
  already seen is skipped (seen by any replica, with ``REDIS_URL``:
  :mod:`~bot.channels.line.seen`); everything else is logged by type and ignored.

With ``REDIS_URL`` the channel also works on the bodies that the intake
(:mod:`~bot.channels.line.intake`) acknowledged for every replica: it takes one from the
inbox (:mod:`~bot.channels.line.inbox`) whenever it has room, checks its signature again
and processes it like a body LINE sent here.

The Rasa sender id of a member is ``line:`` and the LINE user id
(:mod:`bot.core.conversation`): only a request that passed the signature check can name
such a conversation. Logs carry only :func:`~bot.channels.guard.hashed_sender` of a user
id and never a message text.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import ChannelGuard, Guard, hashed_sender
from bot.channels.line.api import LineApi
from bot.channels.line.budget import SharedRateBudget, channel_key
from bot.channels.line.config import LineConfig
from bot.channels.line.delivery import DUMMY_REPLY_TOKENS, LineCollector, LineDelivery, LineOutput
from bot.channels.line.inbox import LineInbox, connect_blocking
from bot.channels.line.lanes import Lanes
from bot.channels.line.seen import Seen, SeenEvents, SharedSeenEvents
from bot.channels.line.webhook import INTAKE_FALLBACK_HEADER, check
from bot.channels.shared_guard import SharedChannelGuard
from bot.channels.shared_state import REDIS_ERRORS, Outage, connect_checked
from bot.core.conversation import conversation_id
from bot.settings import load_settings

logger = logging.getLogger(__name__)

# How long a stopping server waits for events in progress to be answered.
STOP_GRACE_S = 10.0
# How long the inbox's consumer waits before trying a Redis that failed again.
INBOX_RETRY_S = 1.0

# Greeting intent sent to Rasa when a member adds the account as a friend: the
# assistant's own greeting says what it can do and offers the main topics.
WELCOME_INTENT = "/greet"
WELCOME_TEXT = "友だち追加ありがとうございます。"
TEXT_ONLY_REPLY = (
    "申し訳ありません。スタンプや画像、動画、音声、ファイル、位置情報にはお答えできません。"
    "ご質問は文章（テキスト）でお送りください。"
)
GROUP_REPLY = (
    "個人情報に関するご相談をお受けするため、グループやトークルームではお答えしていません。"
    "お手数ですが、このアカウントとの1対1のトークでご質問ください。"
)
UNAVAILABLE_REPLY = (
    "申し訳ありません。ただいまお答えできませんでした。少し時間をおいて、もう一度お送りください。"
)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class LineInput(InputChannel):
    """The LINE Messaging API input channel (webhook), with its output.

    Listed in ``credentials.yml`` as ``bot.channels.line.LineInput``.
    """

    @classmethod
    def name(cls) -> str:
        """The channel's name: its routes are under ``/webhooks/line/``."""
        return "line"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> LineInput:
        """Build the channel from its ``credentials.yml`` entry and the environment.

        Args:
            credentials: the entry (None when empty).

        With ``REDIS_URL`` set, the guard, the event ids and the API budget are shared
        with the other replicas in Redis (:mod:`bot.channels.shared_state`), and the
        channel takes bodies from the intake's inbox (:mod:`bot.channels.line.inbox`).

        Returns:
            The channel, off (with one log line) while the secret or token is unset.

        Raises:
            SettingsError: If ``REDIS_URL`` is set and Redis does not answer.
        """
        config = LineConfig.from_credentials(credentials)
        if config.enabled:
            logger.info(
                "LINE channel on: webhook /webhooks/line/webhook, API %s", config.api_base_url
            )
        else:
            logger.info(
                "LINE channel off: %s not set (see docs/channels.md)",
                " and ".join(config.missing),
            )
        redis_url = load_settings().redis_url
        if redis_url is None:
            return cls(config)
        client = connect_checked(redis_url)
        budget = SharedRateBudget(client, channel_key(config.access_token))
        return cls(
            config,
            api=LineApi(config.access_token, config.api_base_url, budget=budget),
            guard=SharedChannelGuard(client, cls.name(), config.max_per_minute, config.max_chars),
            seen=SharedSeenEvents(client),
            inbox=LineInbox(connect_blocking(redis_url)),
        )

    def __init__(
        self,
        config: LineConfig,
        *,
        api: LineApi | None = None,
        guard: Guard | None = None,
        seen: Seen | None = None,
        inbox: LineInbox | None = None,
    ) -> None:
        """Create the channel.

        Args:
            config: the settings.
            api: the API client (built from ``config`` by default).
            guard: the message guard (built from ``config`` by default).
            seen: where webhook event ids are recorded (this process by default).
            inbox: where the intake leaves acknowledged bodies (none by default: only
                what LINE sends to this server is processed).
        """
        self.config = config
        self.guard: Guard = guard or ChannelGuard(config.max_per_minute, config.max_chars)
        self.api = api or LineApi(config.access_token, config.api_base_url)
        self.delivery = LineDelivery(self.api, self.guard)
        self.seen: Seen = seen or SeenEvents()
        self.lanes = Lanes(config.max_concurrent_events)
        self.inbox = inbox
        self._consuming = False
        self._inbox_outage = Outage("LINE inbox")

    def get_output_channel(self) -> OutputChannel:
        """The output channel for messages Rasa sends outside a member's turn."""
        return LineOutput(self.delivery)

    # The webhook, without Sanic: unit tests call these directly.

    def accept(self, body: bytes, signature: str | None) -> tuple[int, list[dict[str, Any]]]:
        """Check a webhook request and return its status and the events to process.

        Nothing is parsed before the signature is verified
        (:func:`~bot.channels.line.webhook.check`).

        Args:
            body: the raw body.
            signature: the ``X-Line-Signature`` header (None when missing).

        Returns:
            The HTTP status (200, 400, 401, 413 or 503) and the events (empty unless
            200).
        """
        if not self.config.enabled:
            return 503, []
        return check(self.config.channel_secret, body, signature)

    def receive(
        self,
        body: bytes,
        signature: str | None,
        on_new_message: OnNewMessage,
        skip_known: bool = False,
    ) -> int:
        """Accept a delivery and queue its events; LINE is answered before any turn.

        Args:
            body: the raw body.
            signature: the ``X-Line-Signature`` header (None when missing).
            on_new_message: Rasa's handler for a member's message.
            skip_known: skip an event whose id is known even when LINE did not mark it
                as a redelivery (see :meth:`handle_event`): for a body taken from the
                inbox, and for the edge's copy of a delivery that the intake failed to
                acknowledge (``INTAKE_FALLBACK_HEADER``). Forging that header gains
                nothing: it only skips known event ids of a body that LINE signed.

        Returns:
            The HTTP status for LINE.
        """
        status, events = self.accept(body, signature)
        if status == 200 and events:
            self.submit(events, on_new_message, skip_known=skip_known)
        return status

    def submit(
        self,
        events: list[dict[str, Any]],
        on_new_message: OnNewMessage,
        skip_known: bool = False,
    ) -> None:
        """Queue an accepted body's events for processing in the background.

        The events are split by source (member, group or room): each source's events
        are processed in order, after that source's earlier bodies, and at most
        ``config.max_concurrent_events`` bodies are processed at once.

        Args:
            events: the accepted webhook event objects.
            on_new_message: Rasa's handler for a member's message.
            skip_known: skip events whose id is known (see :meth:`handle_event`).
        """
        by_source: dict[Hashable, list[dict[str, Any]]] = {}
        for event in events:
            by_source.setdefault(_source_key(event), []).append(event)
        for key, batch in by_source.items():
            self.lanes.submit(
                key, functools.partial(self.process, batch, on_new_message, skip_known)
            )

    async def drain(self) -> None:
        """Wait until every accepted event is processed (tests; before the server stops)."""
        await self.lanes.drain()

    async def consume(self, on_new_message: OnNewMessage) -> None:
        """Take bodies from the inbox and process them, until :meth:`stop_consuming`.

        A body is taken only when one more could start at once (:meth:`Lanes.room`), so
        the ones this server has no room for wait in Redis for any replica. A body whose
        signature does not verify here is dropped with a warning: only what LINE signed
        is worked on, whoever wrote it into Redis.

        Args:
            on_new_message: Rasa's handler for a member's message.
        """
        if self.inbox is None or not self.config.enabled:
            return
        self._consuming = True
        while self._consuming:
            await self.lanes.room()
            if not self._consuming:
                break
            try:
                taken = await self.inbox.take()
            except REDIS_ERRORS as error:
                self._inbox_outage.failed(error)
                await asyncio.sleep(INBOX_RETRY_S)
                continue
            self._inbox_outage.answered()
            if taken is None:
                continue
            body, signature = taken
            status = self.receive(body, signature, on_new_message, skip_known=True)
            if status != 200:
                logger.warning("LINE inbox body dropped: %d", status)

    def stop_consuming(self) -> None:
        """Let :meth:`consume` return after the take in progress (at most a second).

        Not a cancellation: a ``BLPOP`` cancelled after Redis removed the body would
        lose it.
        """
        self._consuming = False

    async def process(
        self,
        events: list[dict[str, Any]],
        on_new_message: OnNewMessage,
        skip_known: bool = False,
    ) -> None:
        """Process one webhook body's events in order; one failing event stops none.

        Args:
            events: the webhook event objects.
            on_new_message: Rasa's handler for a member's message.
            skip_known: skip events whose id is known (see :meth:`handle_event`).
        """
        text_only_sent: set[str] = set()
        for event in events:
            try:
                await self.handle_event(event, on_new_message, text_only_sent, skip_known)
            except Exception as error:  # one broken event must not stop the others
                logger.error(
                    "LINE %s event failed: %s at %s",
                    str(event.get("type"))[:40], type(error).__name__, _where(error),
                )  # fmt: skip

    async def handle_event(
        self,
        event: dict[str, Any],
        on_new_message: OnNewMessage,
        text_only_sent: set[str] | None = None,
        skip_known: bool = False,
    ) -> None:
        """Process one webhook event.

        Args:
            event: the webhook event object.
            on_new_message: Rasa's handler for a member's message.
            text_only_sent: users who already got the "text only" answer for this
                webhook body (an album of images is one answer, not one per image).
            skip_known: the body was taken from the intake's inbox, or is nginx's
                fallback copy of a body the intake failed to acknowledge
                (``INTAKE_FALLBACK_HEADER``): an event whose id is known is skipped
                even when not marked as a redelivery. The intake may have queued a
                body and still failed to say so (Redis slow to confirm, the intake
                killed before its answer); then both copies exist, and whichever is
                processed second is skipped.
        """
        kind = str(event.get("type") or "")[:40]
        event_id = event.get("webhookEventId")
        delivery_context = event.get("deliveryContext")
        redelivered = isinstance(delivery_context, dict) and bool(
            delivery_context.get("isRedelivery")
        )
        # Every id is remembered, but only a redelivery is skipped for a known id: LINE
        # gives each event its own id, and a body reusing one (as LINE's own examples
        # do) is still processed whole.
        seen_before = (
            isinstance(event_id, str) and bool(event_id) and not await self.seen.add(event_id)
        )
        if seen_before and (redelivered or skip_known):
            logger.info(
                "LINE %s %s event already processed: skipped",
                "redelivered" if redelivered else "queued",
                kind,
            )
            return
        if event.get("mode") == "standby":
            # Another channel (e.g. a module) owns the chat now; the bot must not answer.
            logger.debug("LINE %s event in standby mode ignored", kind)
            return
        source = _mapping(event.get("source"))
        source_type = source.get("type")
        user_id = source.get("userId") if source_type == "user" else None
        user_id = user_id if isinstance(user_id, str) and user_id else None
        token = event.get("replyToken")
        reply_token = token if isinstance(token, str) and token else None
        if reply_token in DUMMY_REPLY_TOKENS:
            logger.info("LINE console verification event: acknowledged")
            return
        who = hashed_sender(user_id) if user_id else f"({str(source_type)[:10]})"
        logger.info("LINE %s event from %s", kind, who)

        if kind == "join":
            await self.delivery.deliver(None, reply_token, [], before=[GROUP_REPLY])
            return
        if user_id is None:
            return  # groups and rooms: not read (see the module docstring)
        if kind == "message":
            message = _mapping(event.get("message"))
            if message.get("type") == "text":
                text = message.get("text")
                message_id = message.get("id")
                await self._member_says(
                    user_id,
                    reply_token,
                    text if isinstance(text, str) else "",
                    on_new_message,
                    str(message_id) if message_id else None,
                )
            elif text_only_sent is None or user_id not in text_only_sent:
                if text_only_sent is not None:
                    text_only_sent.add(user_id)
                await self.delivery.deliver(user_id, reply_token, [], before=[TEXT_ONLY_REPLY])
        elif kind == "postback":
            data = _mapping(event.get("postback")).get("data")
            await self._member_says(
                user_id, reply_token, data if isinstance(data, str) else "", on_new_message
            )
        elif kind == "follow":
            await self._welcome(user_id, reply_token, on_new_message)
        elif kind == "unfollow":
            pass  # logged above; nothing can be sent to a member who blocked the account

    async def _member_says(
        self,
        user_id: str,
        reply_token: str | None,
        text: str,
        on_new_message: OnNewMessage,
        message_id: str | None = None,
    ) -> None:
        verdict = await self.guard.admit_async(user_id, text)
        before = [verdict.reply] if verdict.reply else []
        collector = LineCollector()
        if verdict.text is not None:
            try:
                await on_new_message(
                    UserMessage(
                        verdict.text,
                        collector,
                        conversation_id(self.name(), user_id),
                        input_channel=self.name(),
                        message_id=message_id,
                    )
                )
            except Exception as error:
                logger.error(
                    "Rasa failed on a LINE message from %s: %s at %s",
                    hashed_sender(user_id), type(error).__name__, _where(error),
                )  # fmt: skip
                before.append(UNAVAILABLE_REPLY)
        await self.delivery.deliver(user_id, reply_token, collector.messages, before=before)

    async def _welcome(
        self, user_id: str, reply_token: str | None, on_new_message: OnNewMessage
    ) -> None:
        # The greeting is asked for by the channel, not typed by the member, so it does
        # not pass the guard's payload policy.
        collector = LineCollector()
        try:
            await on_new_message(
                UserMessage(
                    WELCOME_INTENT,
                    collector,
                    conversation_id(self.name(), user_id),
                    input_channel=self.name(),
                )
            )
        except Exception as error:
            logger.error("Rasa failed on a LINE follow: %s", type(error).__name__)
        await self.delivery.deliver(user_id, reply_token, collector.messages, before=[WELCOME_TEXT])

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """The Sanic routes: ``GET /`` (health) and ``POST /webhook``.

        Args:
            on_new_message: Rasa's handler for a member's message.

        Returns:
            The blueprint Rasa mounts under ``/webhooks/line``.
        """
        line_webhook = Blueprint("line_webhook", __name__)

        @line_webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok" if self.config.enabled else "off"})

        @line_webhook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            status = self.receive(
                request.body,
                request.headers.get("X-Line-Signature"),
                on_new_message,
                skip_known=request.headers.get(INTAKE_FALLBACK_HEADER) == "1",
            )
            return response.json({}, status=status)

        consumer: list[asyncio.Task[None]] = []

        @line_webhook.listener("after_server_start")
        async def start_consuming(*_: Any) -> None:
            if self.inbox is not None:
                consumer.append(asyncio.create_task(self.consume(on_new_message)))

        @line_webhook.listener("before_server_stop")
        async def finish(*_: Any) -> None:
            self.stop_consuming()
            # Take nothing more, then let the turns in progress send their answers while
            # Rasa is still up.
            try:
                await asyncio.wait_for(asyncio.gather(*consumer), timeout=STOP_GRACE_S)
                await asyncio.wait_for(self.drain(), timeout=STOP_GRACE_S)
            except asyncio.TimeoutError:
                logger.warning(
                    "LINE events still in progress at shutdown were dropped: %d bodies",
                    self.lanes.running + self.lanes.pending,
                )
            await self.api.close()
            if self.inbox is not None:
                await self.inbox.close()

        return line_webhook


def _mapping(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (webhook fields may be absent)."""
    return value if isinstance(value, dict) else {}


def _source_key(event: dict[str, Any]) -> Hashable:
    """Whose events must keep their order: the member's, group's or room's (else None)."""
    source = _mapping(event.get("source"))
    kind = source.get("type")
    field = {"user": "userId", "group": "groupId", "room": "roomId"}.get(str(kind))
    ident = source.get(field) if field else None
    return (kind, ident) if isinstance(ident, str) and ident else None


def _where(error: BaseException) -> str:
    """Where an exception was raised (file and line), for logs without its message.

    Exception messages can quote what the member typed; the place cannot.
    """
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None:
        return "?"
    return f"{os.path.basename(trace.tb_frame.f_code.co_filename)}:{trace.tb_lineno}"
