"""Delivery: one reply call, push for the rest or when the token expired; the output."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.channels.guard import ChannelGuard
from bot.channels.line.api import LineApi
from bot.channels.line.delivery import LineDelivery
from tests.channels.line.support import (
    MENU,
    USER,
    make_channel,
    no_sleep,
)
from tests.line_stand_in import ACCESS_TOKEN, Failure, StandIn


def deliver(stand_in: StandIn, token: str | None, count: int, guard: ChannelGuard) -> None:
    collected: list[dict[str, Any]] = [{"text": f"メッセージ{n}"} for n in range(count)]
    collected[-1]["buttons"] = MENU

    async def go() -> None:
        api = LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep)
        await LineDelivery(api, guard).deliver(USER, token, collected)
        await api.close()

    asyncio.run(go())


def test_one_reply_call_for_five_messages(stand_in):
    deliver(stand_in, "tok", 5, ChannelGuard())
    (call,) = stand_in.calls
    assert call.path.endswith("/reply") and len(call.body["messages"]) == 5


def test_more_than_five_messages_go_on_by_push_in_order(stand_in):
    guard = ChannelGuard()
    deliver(stand_in, "tok", 12, guard)
    assert [(c.path.rsplit("/", 1)[1], len(c.body["messages"])) for c in stand_in.calls] == [
        ("reply", 5),
        ("push", 5),
        ("push", 2),
    ]
    assert stand_in.calls[1].body["to"] == USER
    texts = [t for call in stand_in.calls for t in call.texts]
    assert texts == [f"メッセージ{n}" for n in range(12)]
    # The quick replies ride on the very last message; their payloads are offered.
    assert stand_in.calls[-1].quick_replies and not stand_in.calls[0].quick_replies
    assert guard.admit(USER, "/ask_usage_purpose").text == "/ask_usage_purpose"


def test_an_expired_reply_token_falls_back_to_push(stand_in):
    stand_in.expired_tokens.add("expired")
    deliver(stand_in, "expired", 7, ChannelGuard())
    assert [(c.path.rsplit("/", 1)[1], c.status) for c in stand_in.calls] == [
        ("reply", 400),
        ("push", 200),
        ("push", 200),
    ]
    assert [t for c in stand_in.calls[1:] for t in c.texts] == [f"メッセージ{n}" for n in range(7)]


def test_other_reply_errors_do_not_push_the_same_messages_again(stand_in):
    stand_in.fail_next = [Failure(400, "The request body has 1 error(s)")]
    deliver(stand_in, "tok", 2, ChannelGuard())
    assert len(stand_in.calls) == 1


def test_the_output_channel_pushes_messages_outside_a_turn(stand_in):
    channel = make_channel(stand_in)

    async def go() -> None:
        out = channel.get_output_channel()
        assert out.name() == "line"
        await out.send_response(f"line:{USER}", {"text": "お知らせです。", "buttons": MENU})
        await channel.api.close()

    asyncio.run(go())
    (call,) = stand_in.calls
    assert call.path.endswith("/push") and call.body["to"] == USER
    assert call.texts == ["お知らせです。"] and len(call.quick_replies) == 2


@pytest.mark.parametrize("recipient", [USER, f"web:{USER}", f"rest:{USER}", "line:"])
def test_the_output_pushes_only_to_a_line_conversation(stand_in, recipient):
    # A staff reply or notice addressed to another channel's conversation (or to a
    # bare id a client chose) must never reach a LINE user whose id it happens to hold.
    channel = make_channel(stand_in)

    async def go() -> None:
        await channel.get_output_channel().send_response(recipient, {"text": "お知らせです。"})
        await channel.api.close()

    asyncio.run(go())
    assert stand_in.calls == []
