"""A stand-in for the LINE Messaging API that runs in the benchmark's own event loop.

An aiohttp server on loopback. It answers ``POST /v2/bot/message/reply`` and ``/push``
as LINE documents them (200 with ``sentMessages``; 400 ``Invalid reply token`` for a
token used before; 409 for a push whose retry key was accepted before; 401 without the
access token) and records every call with the moment it arrived on the benchmark's
clock (:func:`time.perf_counter`), so that reply latency is measured from the moment a
webhook was sent to the moment the reply call for its token arrived.

``tests/line_stand_in.py`` is the tests' threaded equivalent; this one lets the
benchmark wait for a reply token without polling.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bench.settings import LOOPBACK

REPLY_PATH = "/v2/bot/message/reply"
PUSH_PATH = "/v2/bot/message/push"


@dataclass(frozen=True)
class ApiCall:
    """One call as the stand-in received it.

    Attributes:
        path: the request path.
        body: the JSON body (empty when it was not JSON).
        status: the status the stand-in answered.
        at: when it arrived, in :func:`time.perf_counter` seconds.
    """

    path: str
    body: dict[str, Any]
    status: int
    at: float

    @property
    def reply_token(self) -> str | None:
        """The reply token of a reply call; None for any other call."""
        token = self.body.get("replyToken") if self.path == REPLY_PATH else None
        return token if isinstance(token, str) else None

    @property
    def texts(self) -> list[str]:
        """The texts of the call's text messages, in order."""
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            return []
        return [
            str(message.get("text", ""))
            for message in messages
            if isinstance(message, dict) and message.get("type") == "text"
        ]


class LineStandIn:
    """The stand-in server: start it, point ``LINE_API_BASE_URL`` at it, read the calls."""

    def __init__(self, access_token: str) -> None:
        """Create a stand-in that accepts calls carrying ``access_token``.

        Args:
            access_token: the channel access token the servers were given.
        """
        self.access_token = access_token
        self.calls: list[ApiCall] = []
        self.url = ""
        self._used_tokens: set[str] = set()
        self._retry_keys: set[str] = set()
        self._waiters: dict[str, asyncio.Future[ApiCall]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self, port: int) -> str:
        """Listen on ``port`` of the loopback address; return the base URL."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, port).start()
        self.url = f"http://{LOOPBACK}:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def replies_to(self, token: str) -> list[ApiCall]:
        """Every reply call made with ``token``, in order of arrival."""
        return [call for call in self.calls if call.reply_token == token]

    async def wait_reply(self, token: str, timeout_s: float) -> ApiCall | None:
        """The first reply call with ``token``, waiting up to ``timeout_s``; None if none."""
        earlier = self.replies_to(token)
        if earlier:
            return earlier[0]
        waiter = self._waiters.setdefault(token, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
        except asyncio.TimeoutError:
            return None

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        status, payload = self._decide(request.path, request.headers, body)
        call = ApiCall(request.path, body, status, arrived)
        self.calls.append(call)
        token = call.reply_token
        waiter = self._waiters.get(token) if token else None
        if waiter is not None and not waiter.done():
            waiter.set_result(call)
        return web.json_response(payload, status=status)

    def _decide(self, path: str, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if headers.get("Authorization") != f"Bearer {self.access_token}":
            return 401, {"message": "Authentication failed"}
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return 400, {"message": "The request body has 1 error(s)"}
        sent = {"sentMessages": [{"id": str(i), "quoteToken": "q"} for i in range(len(messages))]}
        if path == REPLY_PATH:
            token = str(body.get("replyToken"))
            if token in self._used_tokens:
                return 400, {"message": "Invalid reply token"}
            self._used_tokens.add(token)
            return 200, sent
        if path == PUSH_PATH:
            key = headers.get("X-Line-Retry-Key")
            if key and key in self._retry_keys:
                return 409, {"message": "The retry key is already accepted"}
            if key:
                self._retry_keys.add(key)
            return 200, sent
        return 404, {"message": "Not found"}
