"""The Messaging API client: reply and push calls, retried safely.

Transient failures (429, 5xx, timeouts, connection errors) are retried with
exponential backoff, honouring ``Retry-After``. A push carries an ``X-Line-Retry-Key``
so that a retry never delivers twice: LINE carries out a call once and answers 409 to a
retry of one it already accepted, which counts as success. Other 4xx answers are not
retried. Logs name the call, the status and LINE's error message, never the messages.

One client for every LINE call: the channel awaits it on the rasa server's event loop;
case notifications (:mod:`bot.cases.notify`) call :meth:`LineApi.push_blocking` from
code that runs no event loop (the case CLI, the console's worker threads).

Every try of :meth:`LineApi.reply` and :meth:`LineApi.push` first spends from the
channel's rate budget (:mod:`bot.channels.line.budget`: per process, or shared by the
replicas in Redis). :meth:`LineApi.push_blocking` does not: it runs in an event loop of
its own, which a Redis client bound to the server's loop cannot serve, and case
notifications are few.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.channels.line.budget import LocalRateBudget, RateBudget

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.line.me"
REPLY_PATH = "/v2/bot/message/reply"
PUSH_PATH = "/v2/bot/message/push"


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
        budget: RateBudget | None = None,
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
            budget: the channel's rate budget (one of this client's own by default).
        """
        self._token = access_token
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.budget: RateBudget = budget or LocalRateBudget()

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

    def push_blocking(
        self, to: str, messages: list[dict[str, Any]], retry_key: str | None = None
    ) -> None:
        """:meth:`push` for code that runs no event loop, waiting until it is done.

        The call runs in an event loop of its own with an HTTP session of its own,
        opened and closed for it: the client's shared session belongs to another loop,
        and threads may push through one client at the same time (the console runs
        each staff action in a worker thread).

        Args:
            to: the LINE user id.
            messages: LINE message objects.
            retry_key: the ``X-Line-Retry-Key`` (default: a new uuid). The outbox passes
                its row's, so that a push re-sent after a crash is not shown twice.

        Raises:
            LineApiError: If the call failed.
            RuntimeError: If called while an event loop runs in this thread (await
                :meth:`push` there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop here: the one case this method is for
        else:
            raise RuntimeError("push_blocking() inside a running event loop: await push()")

        async def push_once() -> None:
            async with aiohttp.ClientSession(timeout=self._timeout) as session:
                body = {"to": to, "messages": messages}
                await self._post(
                    PUSH_PATH, body, retry_key or str(uuid.uuid4()), session, metered=False
                )

        asyncio.run(push_once())

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

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        retry_key: str | None,
        session: aiohttp.ClientSession | None = None,
        *,
        metered: bool = True,
    ) -> None:
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
            if metered:
                await self.budget.take()
            try:
                async with (session or self._client()).post(
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
