"""The Messaging API client against the stand-in: call shapes, retries, errors."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest

from bot.channels.line.api import (
    InvalidReplyTokenError,
    LineApi,
    LineApiError,
)
from tests.channels.line.support import USER
from tests.line_stand_in import ACCESS_TOKEN, Failure, StandIn


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def api_for(stand_in: StandIn, sleeps: Sleeps, **options: Any) -> LineApi:
    return LineApi(ACCESS_TOKEN, stand_in.url, sleep=sleeps, **options)


async def _call(api: LineApi, method: str, *args: Any) -> None:
    try:
        await getattr(api, method)(*args)
    finally:
        await api.close()


def test_a_reply_call_is_shaped_like_the_reference(stand_in):
    asyncio.run(
        _call(api_for(stand_in, Sleeps()), "reply", "tok", [{"type": "text", "text": "は"}])
    )
    (call,) = stand_in.calls
    assert call.path == "/v2/bot/message/reply"
    assert call.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert "x-line-retry-key" not in call.headers  # LINE refuses it on reply calls
    assert call.body == {"replyToken": "tok", "messages": [{"type": "text", "text": "は"}]}


def test_rate_limits_and_server_errors_are_retried_with_backoff(stand_in):
    sleeps = Sleeps()
    stand_in.fail_next = [Failure(429, "Too many requests"), Failure(500), Failure(503)]
    asyncio.run(_call(api_for(stand_in, sleeps), "reply", "tok", [{"type": "text", "text": "x"}]))
    assert [c.status for c in stand_in.calls] == [429, 500, 503, 200]
    assert sleeps.delays == [0.5, 1.0, 2.0]


def test_retry_after_is_honoured(stand_in):
    sleeps = Sleeps()
    stand_in.fail_next = [Failure(429, "Too many requests", {"Retry-After": "3"})]
    asyncio.run(_call(api_for(stand_in, sleeps), "push", USER, [{"type": "text", "text": "x"}]))
    assert sleeps.delays == [3.0]


def test_backoff_is_capped_and_the_client_gives_up(stand_in):
    sleeps = Sleeps()
    stand_in.fail_next = [Failure(500)] * 10
    api = api_for(stand_in, sleeps, attempts=6, max_delay_s=2.0)
    with pytest.raises(LineApiError) as raised:
        asyncio.run(_call(api, "push", USER, [{"type": "text", "text": "x"}]))
    assert raised.value.status == 500
    assert len(stand_in.calls) == 6
    assert sleeps.delays == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_client_errors_are_not_retried(stand_in):
    sleeps = Sleeps()
    stand_in.fail_next = [Failure(400, "The request body has 1 error(s)")]
    with pytest.raises(LineApiError) as raised:
        asyncio.run(_call(api_for(stand_in, sleeps), "push", USER, [{"type": "text", "text": "x"}]))
    assert (raised.value.status, raised.value.reason) == (400, "The request body has 1 error(s)")
    assert len(stand_in.calls) == 1 and sleeps.delays == []


def test_an_expired_reply_token_is_reported_at_once(stand_in):
    stand_in.expired_tokens.add("old")
    sleeps = Sleeps()
    with pytest.raises(InvalidReplyTokenError):
        asyncio.run(
            _call(api_for(stand_in, sleeps), "reply", "old", [{"type": "text", "text": "x"}])
        )
    assert len(stand_in.calls) == 1 and sleeps.delays == []


def test_a_push_retried_after_a_lost_answer_is_delivered_once(stand_in):
    stand_in.lose_answers = 1  # LINE carried out the push but the 200 never arrived
    asyncio.run(_call(api_for(stand_in, Sleeps()), "push", USER, [{"type": "text", "text": "x"}]))
    first, retry = stand_in.calls
    assert first.headers["x-line-retry-key"] == retry.headers["x-line-retry-key"]
    assert (first.status, retry.status) == (500, 409)  # 409: already done, not an error


def test_an_unreachable_api_is_retried_then_reported(stand_in):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    sleeps = Sleeps()
    api = LineApi(ACCESS_TOKEN, f"http://127.0.0.1:{closed_port}", sleep=sleeps, attempts=3)
    with pytest.raises(LineApiError) as raised:
        asyncio.run(_call(api, "push", USER, [{"type": "text", "text": "x"}]))
    assert raised.value.status == 0
    assert sleeps.delays == [0.5, 1.0]


def test_api_logs_carry_no_message_text(stand_in, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.channels.line")
    stand_in.fail_next = [Failure(500), Failure(400, "The request body has 1 error(s)")]
    with pytest.raises(LineApiError):
        asyncio.run(
            _call(
                api_for(stand_in, Sleeps()), "push", USER, [{"type": "text", "text": "秘密の内容"}]
            )
        )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "500" in logged and "400" in logged
    assert "秘密" not in logged and USER not in logged


def test_a_blocking_push_retries_like_the_async_one(stand_in):
    # Case notifications push from code that runs no event loop (the case CLI).
    sleeps = Sleeps()
    stand_in.lose_answers = 1
    stand_in.fail_next = [Failure(429, "Too many requests")]
    api_for(stand_in, sleeps).push_blocking(USER, [{"type": "text", "text": "x"}])
    assert [c.status for c in stand_in.calls] == [429, 500, 409]
    assert len({c.headers["x-line-retry-key"] for c in stand_in.calls}) == 1
    assert sleeps.delays == [0.5, 1.0]


def test_blocking_pushes_from_threads_share_one_client(stand_in):
    # The console runs each staff action in a worker thread, while its own event loop
    # runs in the main thread: every push has an event loop and a session of its own.
    api = api_for(stand_in, Sleeps())

    async def console() -> None:
        await asyncio.gather(
            *(
                asyncio.to_thread(api.push_blocking, USER, [{"type": "text", "text": str(n)}])
                for n in range(4)
            )
        )

    asyncio.run(console())
    assert sorted(t for c in stand_in.successful() for t in c.texts) == ["0", "1", "2", "3"]
    assert len({c.headers["x-line-retry-key"] for c in stand_in.calls}) == 4


def test_a_blocking_push_is_refused_inside_an_event_loop(stand_in):
    api = api_for(stand_in, Sleeps())

    async def inside() -> None:
        api.push_blocking(USER, [{"type": "text", "text": "x"}])

    with pytest.raises(RuntimeError):
        asyncio.run(inside())
    assert stand_in.calls == []


def test_a_blocking_push_that_fails_raises_the_api_error(stand_in):
    stand_in.fail_next = [Failure(400, "The request body has 1 error(s)")]
    with pytest.raises(LineApiError) as raised:
        api_for(stand_in, Sleeps()).push_blocking(USER, [{"type": "text", "text": "x"}])
    assert raised.value.status == 400 and len(stand_in.calls) == 1
