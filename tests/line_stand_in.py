"""A local stand-in for the LINE Messaging API: a real HTTP server that records calls.

Used by the unit tests of ``bot.channels.line`` and of case notifications
(``bot.cases.notify``), and by the end-to-end LINE tests. It
answers ``POST /v2/bot/message/reply`` and ``/push`` the way LINE documents them: 200
with ``sentMessages``, 400 ``Invalid reply token`` for a token listed in
``expired_tokens`` or already used, 409 for a push whose retry key was accepted
before, and whatever statuses a test queues in ``fail_next``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCESS_TOKEN = "stand-in-access-token"
CHANNEL_SECRET = "stand-in-channel-secret"


@dataclass
class Call:
    """One API call as the stand-in received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int

    @property
    def texts(self) -> list[str]:
        """The texts of the call's text messages."""
        return [m.get("text", "") for m in self.body.get("messages", []) if m["type"] == "text"]

    @property
    def quick_replies(self) -> list[dict[str, Any]]:
        """The quick reply items of the call's messages."""
        return [
            item
            for message in self.body.get("messages", [])
            for item in message.get("quickReply", {}).get("items", [])
        ]


@dataclass
class Failure:
    """An error answer the stand-in gives once."""

    status: int
    message: str = "An error occurred in the server"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StandIn:
    """The stand-in's state: what it was asked and how it should answer."""

    url: str = ""
    calls: list[Call] = field(default_factory=list)
    expired_tokens: set[str] = field(default_factory=set)
    # Failures to answer the next calls with, before answering normally again.
    fail_next: list[Failure] = field(default_factory=list)
    # Seconds to wait before answering each call (a slow LINE).
    delay_s: float = 0.0
    # Calls to carry out but answer 500, as when LINE's answer is lost on the way.
    lose_answers: int = 0
    used_tokens: set[str] = field(default_factory=set)
    accepted_retry_keys: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def successful(self) -> list[Call]:
        """The calls answered with 200, in order."""
        with self.lock:
            return [call for call in self.calls if call.status == 200]

    def wait_for(self, check: Callable[[list[Call]], bool], timeout_s: float = 60) -> list[Call]:
        """Poll until ``check`` holds for the calls so far; return them.

        Raises:
            AssertionError: If it does not hold within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self.lock:
                calls = list(self.calls)
            if check(calls):
                return calls
            if time.monotonic() > deadline:
                raise AssertionError(f"the stand-in did not see the expected calls: {calls}")
            time.sleep(0.05)

    def answer(
        self, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict, dict[str, str]]:
        """Decide the status, body and headers of the answer to one call; record it."""
        with self.lock:
            extra: dict[str, str] = {}
            if self.fail_next:
                failure = self.fail_next.pop(0)
                status, payload = failure.status, {"message": failure.message}
                extra = failure.headers
            else:
                status, payload = self._decide(path, headers, body)
            if status == 200 and self.lose_answers:
                self.lose_answers -= 1
                status, payload = 500, {"message": "An error occurred in the server"}
            self.calls.append(Call(path, headers, body, status))
            return status, payload, extra

    def _decide(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict]:
        if headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            return 401, {"message": "Authentication failed. Confirm that the access token..."}
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return 400, {"message": "The request body has 1 error(s)"}
        for message in messages:
            if message.get("type") == "text" and not 0 < len(message["text"]) <= 5000:
                return 400, {"message": "The request body has 1 error(s)"}
            for item in message.get("quickReply", {}).get("items", []):
                if len(item["action"]["label"]) > 20:
                    return 400, {"message": "The request body has 1 error(s)"}
        sent = {"sentMessages": [{"id": str(i), "quoteToken": "q"} for i in range(len(messages))]}
        if path == "/v2/bot/message/reply":
            token = str(body.get("replyToken"))
            if token in self.expired_tokens or token in self.used_tokens:
                return 400, {"message": "Invalid reply token"}
            self.used_tokens.add(token)
            return 200, sent
        if path == "/v2/bot/message/push":
            key = headers.get("x-line-retry-key")
            if key and key in self.accepted_retry_keys:
                return 409, {"message": "The retry key is already accepted"}
            if key:
                self.accepted_retry_keys.add(key)
            return 200, sent
        return 404, {"message": "Not found"}


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            headers = {key.lower(): value for key, value in self.headers.items()}
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            time.sleep(state.delay_s)
            status, payload, extra = state.answer(self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet test output

    return Handler


@contextmanager
def line_stand_in() -> Iterator[StandIn]:
    """Run a stand-in on a free loopback port for the duration of the block."""
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
