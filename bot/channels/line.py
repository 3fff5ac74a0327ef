"""The LINE channel: LINE Messaging API webhooks in, reply and push messages out.

The rasa server loads :class:`LineInput` from ``credentials.yml``. It opens
``GET /webhooks/line/`` (health) and ``POST /webhooks/line/webhook`` (LINE's webhook).

Configuration comes from the environment: ``LINE_CHANNEL_SECRET`` (verifies
webhooks), ``LINE_CHANNEL_ACCESS_TOKEN`` (calls the API) and ``LINE_API_BASE_URL``
(default ``https://api.line.me``; tests point it at a local stand-in). While the secret
or the token is unset the channel is off: one log line says so at start-up, the health
route answers ``{"status": "off"}`` and the webhook answers 503 without reading the
body.

A webhook request is checked before anything is parsed: the ``X-Line-Signature``
header must be the base64 HMAC-SHA256 of the raw body keyed with the channel secret
(compared in constant time), otherwise 401. A valid request is answered 200 at once and
its events are processed in a background task, in order:

- text messages and postbacks (quick replies) go through the
  :class:`~bot.channels.guard.ChannelGuard`, then to Rasa; everything the bot says in
  that turn goes out in one reply call (at most 5 messages a call; more go by push),
  with Rasa's buttons as LINE quick replies;
- follow: a welcome and the greeting (what the assistant can do);
- stickers, images, video, audio, files, locations: a polite "text only" answer;
- join (a group or room): a notice that the assistant answers in one-to-one chats only;
  messages in groups and rooms are not read, since the answers concern personal
  information;
- a redelivered event (``deliveryContext.isRedelivery``) whose ``webhookEventId`` was
  already seen is skipped; everything else is logged by type and ignored.

When the reply token is used up or expired (a slow turn), the messages go by push.
API errors, timeouts and rate limits (429) are retried with exponential backoff; push
calls carry an ``X-Line-Retry-Key`` so a retry never delivers twice. The Rasa sender id
of a member is ``line:`` and the LINE user id (:mod:`bot.core.conversation`): only a
request that passed the signature check can name such a conversation. Logs carry only
:func:`~bot.channels.guard.hashed_sender` of a user id and never a message text.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.channels.guard import MAX_MESSAGE_CHARS, ChannelGuard, hashed_sender
from bot.core.conversation import conversation_id, native_id

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.line.me"
REPLY_PATH = "/v2/bot/message/reply"
PUSH_PATH = "/v2/bot/message/push"

# Limits of the Messaging API (reference: message objects, quick reply, actions).
MAX_MESSAGES_PER_CALL = 5
MAX_TEXT_CHARS = 5000
MAX_QUICK_REPLY_ITEMS = 13
MAX_LABEL_CHARS = 20
MAX_POSTBACK_DATA_CHARS = 300
MAX_DISPLAY_TEXT_CHARS = 300
# LINE's webhook bodies are a few kilobytes; anything far larger is not from LINE and is
# refused before the HMAC is even computed over it.
MAX_BODY_BYTES = 1_000_000
# How long a stopping server waits for events in progress to be answered.
STOP_GRACE_S = 10.0
# Older versions of the console's "Verify" button sent events with these reply tokens;
# they cannot be replied to. (Today it sends an empty ``events`` list.)
DUMMY_REPLY_TOKENS = frozenset({"0" * 32, "f" * 32})
# Message object types passed through as they are when an action sends custom JSON.
LINE_MESSAGE_TYPES = frozenset(
    {"text", "sticker", "image", "video", "audio", "location", "imagemap", "template", "flex"}
)

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
CHOOSE_PROMPT = "次の中からお選びください。"
UNAVAILABLE_REPLY = (
    "申し訳ありません。ただいまお答えできませんでした。少し時間をおいて、もう一度お送りください。"
)

_ENV_REFERENCE = re.compile(r"\$\{(\w+)\}")

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


# --- configuration -----------------------------------------------------------------


def resolve_env(value: object, env: Mapping[str, str] | None = None) -> str:
    """A credentials value with each ``${NAME}`` replaced by that variable.

    Rasa expands ``${NAME}`` in ``credentials.yml`` itself, but refuses to start when
    the variable is unset. The LINE entry therefore quotes its values (Rasa leaves a
    quoted value as written) and they are expanded here, an unset variable becoming
    empty, so that a server without the variables starts with the channel off.

    Args:
        value: the value from ``credentials.yml`` (None when the key is empty).
        env: the environment (``os.environ`` by default).

    Returns:
        The expanded value, stripped of surrounding whitespace.
    """
    source = os.environ if env is None else env
    text = "" if value is None else str(value)
    return _ENV_REFERENCE.sub(lambda match: source.get(match.group(1), ""), text).strip()


@dataclass(frozen=True)
class LineConfig:
    """The channel's settings.

    Attributes:
        channel_secret: the channel secret (verifies webhook signatures).
        access_token: the channel access token (authorizes API calls).
        api_base_url: where the Messaging API is, without a trailing slash.
        max_per_minute: messages a member may send per minute (the guard's limit).
        max_chars: the longest message handed to Rasa, in characters.
    """

    channel_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    api_base_url: str = DEFAULT_API_BASE_URL
    max_per_minute: int = 20
    max_chars: int = MAX_MESSAGE_CHARS

    @property
    def missing(self) -> list[str]:
        """The environment variables the channel still needs, by name."""
        needed = {
            "LINE_CHANNEL_SECRET": self.channel_secret,
            "LINE_CHANNEL_ACCESS_TOKEN": self.access_token,
        }
        return [name for name, value in needed.items() if not value]

    @property
    def enabled(self) -> bool:
        """Whether the channel can verify webhooks and answer them."""
        return not self.missing

    @classmethod
    def from_credentials(
        cls, credentials: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
    ) -> LineConfig:
        """Read the settings from the ``credentials.yml`` entry and the environment.

        Keys missing from the entry fall back to the environment variables, so even an
        empty entry works.

        Args:
            credentials: the entry's mapping (None for an empty entry).
            env: the environment (``os.environ`` by default).

        Returns:
            The settings.

        Raises:
            ValueError: If the API base URL is not an http(s) URL or a limit is not a
                positive integer.
        """
        given = dict(credentials or {})
        secret = resolve_env(given.get("channel_secret", "${LINE_CHANNEL_SECRET}"), env)
        token = resolve_env(given.get("channel_access_token", "${LINE_CHANNEL_ACCESS_TOKEN}"), env)
        base_url = resolve_env(given.get("api_base_url", "${LINE_API_BASE_URL}"), env)
        base_url = (base_url or DEFAULT_API_BASE_URL).rstrip("/")
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("LINE_API_BASE_URL must be an http(s) URL")
        return cls(
            channel_secret=secret,
            access_token=token,
            api_base_url=base_url,
            max_per_minute=_positive(given.get("max_messages_per_minute", 20)),
            max_chars=_positive(given.get("max_message_chars", MAX_MESSAGE_CHARS)),
        )


def _positive(value: object) -> int:
    number = int(str(value))
    if number < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


# --- signature -----------------------------------------------------------------------


def sign(channel_secret: str, body: bytes) -> str:
    """The ``X-Line-Signature`` LINE sends with ``body``.

    Args:
        channel_secret: the channel secret.
        body: the raw request body.

    Returns:
        The base64 HMAC-SHA256 of the body keyed with the secret.
    """
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_valid(channel_secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is LINE's signature of ``body``, compared in constant time.

    Args:
        channel_secret: the channel secret.
        body: the raw request body, exactly as received.
        signature: the ``X-Line-Signature`` header, None when missing.

    Returns:
        True only for the right signature.
    """
    if not channel_secret or not signature:
        return False
    expected = sign(channel_secret, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8"))


# --- messages ----------------------------------------------------------------------


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
        collected: the messages as a :class:`CollectingOutputChannel` keeps them.

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


# --- the API client ----------------------------------------------------------------


class LineApiError(Exception):
    """The Messaging API refused a call, or could not be reached after retries.

    Attributes:
        status: the HTTP status (0 when there was no response).
        reason: LINE's error message (it never holds the messages sent).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"LINE API error {status}: {reason}")
        self.status = status
        self.reason = reason


class InvalidReplyTokenError(LineApiError):
    """The reply token was already used or has expired: send by push instead."""


Sleep = Callable[[float], Awaitable[None]]


class LineApi:
    """A small client for the reply and push calls of the Messaging API.

    Transient failures (429, 5xx, timeouts, connection errors) are retried with
    exponential backoff, honouring ``Retry-After``. Logs name the call, the status and
    LINE's error message, never the messages.
    """

    def __init__(
        self,
        access_token: str,
        base_url: str = DEFAULT_API_BASE_URL,
        *,
        attempts: int = 4,
        base_delay_s: float = 0.5,
        max_delay_s: float = 8.0,
        timeout_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Create a client; the HTTP session opens on the first call.

        Args:
            access_token: the channel access token.
            base_url: the API's base URL, without a trailing slash.
            attempts: tries per call, the first included.
            base_delay_s: the wait before the first retry; it doubles each time.
            max_delay_s: the longest wait between tries.
            timeout_s: the limit for one try.
            sleep: how to wait (a recording fake in tests).
        """
        self._token = access_token
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    async def reply(self, reply_token: str, messages: list[dict[str, Any]]) -> None:
        """Send up to 5 messages with a reply token.

        Args:
            reply_token: the token of the webhook event being answered.
            messages: LINE message objects.

        Raises:
            InvalidReplyTokenError: If the token was used or has expired.
            LineApiError: If the call failed otherwise.
        """
        await self._post(REPLY_PATH, {"replyToken": reply_token, "messages": messages}, None)

    async def push(self, to: str, messages: list[dict[str, Any]]) -> None:
        """Send up to 5 messages to a user at any time.

        A retry key makes retries safe: LINE executes the call once and answers 409 to
        a retry of a call it already accepted, which counts as success.

        Args:
            to: the LINE user id.
            messages: LINE message objects.

        Raises:
            LineApiError: If the call failed.
        """
        await self._post(PUSH_PATH, {"to": to, "messages": messages}, str(uuid.uuid4()))

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Opened lazily: a session belongs to the event loop that is running when it is
        # created, and the channel is built before the server's loop runs.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _post(self, path: str, body: dict[str, Any], retry_key: str | None) -> None:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
        }
        if retry_key:
            headers["X-Line-Retry-Key"] = retry_key
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        status, reason = 0, "no response"
        for attempt in range(1, self.attempts + 1):
            delay = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
            try:
                async with self._client().post(
                    self.base_url + path, data=data, headers=headers
                ) as answer:
                    status = answer.status
                    if 200 <= status < 300 or (status == 409 and retry_key):
                        logger.debug("LINE %s: %d after %d tries", path, status, attempt)
                        return
                    reason = await _error_reason(answer)
                    if path == REPLY_PATH and status == 400 and "reply token" in reason.lower():
                        raise InvalidReplyTokenError(status, reason)
                    if status != 429 and status < 500:
                        logger.error("LINE %s refused: %d %s", path, status, reason)
                        raise LineApiError(status, reason)
                    delay = min(self.max_delay_s * 4, _retry_after(answer) or delay)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                status, reason = 0, type(error).__name__
            if attempt < self.attempts:
                logger.warning(
                    "LINE %s failed (%s %s), try %d of %d; retrying in %.1fs",
                    path, status, reason, attempt, self.attempts, delay,
                )  # fmt: skip
                await self._sleep(delay)
        logger.error("LINE %s failed after %d tries: %s %s", path, self.attempts, status, reason)
        raise LineApiError(status, reason)


async def _error_reason(answer: aiohttp.ClientResponse) -> str:
    """LINE's error message from a failed call (``message``), at most 200 characters.

    Only the top-level message is kept: it names the problem ("Invalid reply token",
    "The request body has 1 error(s)") without echoing what was sent.
    """
    try:
        body = await answer.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return answer.reason or ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or answer.reason or "")[:200]


def _retry_after(answer: aiohttp.ClientResponse) -> float | None:
    raw = answer.headers.get("Retry-After", "").strip()
    return float(raw) if raw.isdigit() else None


# --- delivery and output channels ----------------------------------------------------


class LineDelivery:
    """Sends one turn's messages: one reply call, push for what does not fit or fails."""

    def __init__(self, api: LineApi, guard: ChannelGuard) -> None:
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
            self.guard.offered(user_id, outgoing.offered)
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


# --- the input channel -------------------------------------------------------------


class _SeenEvents:
    """Webhook event ids seen lately, bounded in number and age."""

    def __init__(self, limit: int = 20_000, ttl_s: float = 24 * 3600.0) -> None:
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._ttl_s = ttl_s

    def add(self, event_id: str) -> bool:
        """Remember ``event_id``; True if it was new."""
        now = time.monotonic()
        while self._ids and (
            len(self._ids) >= self._limit or next(iter(self._ids.values())) < now - self._ttl_s
        ):
            self._ids.popitem(last=False)
        if event_id in self._ids:
            return False
        self._ids[event_id] = now
        return True


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

        Returns:
            The channel, off (with one log line) while the secret or token is unset.
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
        return cls(config)

    def __init__(
        self,
        config: LineConfig,
        *,
        api: LineApi | None = None,
        guard: ChannelGuard | None = None,
    ) -> None:
        """Create the channel.

        Args:
            config: the settings.
            api: the API client (built from ``config`` by default).
            guard: the message guard (built from ``config`` by default).
        """
        self.config = config
        self.guard = guard or ChannelGuard(config.max_per_minute, config.max_chars)
        self.api = api or LineApi(config.access_token, config.api_base_url)
        self.delivery = LineDelivery(self.api, self.guard)
        self._seen = _SeenEvents()
        # Strong references: the event loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[None]] = set()

    def get_output_channel(self) -> OutputChannel:
        """The output channel for messages Rasa sends outside a member's turn."""
        return LineOutput(self.delivery)

    # The webhook, without Sanic: unit tests call these directly.

    def accept(self, body: bytes, signature: str | None) -> tuple[int, list[dict[str, Any]]]:
        """Check a webhook request and return its status and the events to process.

        Nothing is parsed before the signature is verified.

        Args:
            body: the raw body.
            signature: the ``X-Line-Signature`` header (None when missing).

        Returns:
            The HTTP status (200, 400, 401, 413 or 503) and the events (empty unless
            200).
        """
        if not self.config.enabled:
            return 503, []
        if len(body) > MAX_BODY_BYTES:
            logger.warning("LINE webhook refused: body of %d bytes", len(body))
            return 413, []
        if not signature_valid(self.config.channel_secret, body, signature):
            logger.warning(
                "LINE webhook refused: %s signature", "wrong" if signature else "missing"
            )
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

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the events being processed (tests; before the server stops)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def process(self, events: list[dict[str, Any]], on_new_message: OnNewMessage) -> None:
        """Process one webhook body's events in order; one failing event stops none.

        Args:
            events: the webhook event objects.
            on_new_message: Rasa's handler for a member's message.
        """
        text_only_sent: set[str] = set()
        for event in events:
            try:
                await self.handle_event(event, on_new_message, text_only_sent)
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
    ) -> None:
        """Process one webhook event.

        Args:
            event: the webhook event object.
            on_new_message: Rasa's handler for a member's message.
            text_only_sent: users who already got the "text only" answer for this
                webhook body (an album of images is one answer, not one per image).
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
        seen_before = isinstance(event_id, str) and bool(event_id) and not self._seen.add(event_id)
        if redelivered and seen_before:
            logger.info("LINE redelivered %s event already processed: skipped", kind)
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
        verdict = self.guard.admit(user_id, text)
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
            status, events = self.accept(request.body, request.headers.get("X-Line-Signature"))
            if status == 200 and events:
                # LINE wants its answer within seconds; the turn may take longer.
                self.start(self.process(events, on_new_message))
            return response.json({}, status=status)

        @line_webhook.listener("before_server_stop")
        async def finish(*_: Any) -> None:
            # Let the turns in progress send their answers while Rasa is still up.
            try:
                await asyncio.wait_for(self.drain(), timeout=STOP_GRACE_S)
            except asyncio.TimeoutError:
                logger.warning("LINE events still in progress at shutdown were dropped")
            await self.api.close()

        return line_webhook


def _mapping(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (webhook fields may be absent)."""
    return value if isinstance(value, dict) else {}


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
