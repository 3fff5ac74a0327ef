"""What the LINE channel's tests share: webhook bodies, a stand-in for Rasa, a channel.

Webhook events are shaped like LINE's documented examples; API calls go to a real HTTP
server on loopback standing in for LINE (``tests/line_stand_in.py``); Rasa is replaced
by a function that answers the way the assistant's actions do (text, and buttons as
quick replies).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.channels.guard import ChannelGuard
from bot.channels.line.api import LineApi
from bot.channels.line.channel import LineInput
from bot.channels.line.config import DEFAULT_MAX_CONCURRENT_EVENTS, LineConfig
from bot.channels.line.signature import sign
from tests.conftest import ROOT
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET, StandIn

# A copy of ../shared/fixtures/line-webhook-all-events.json: tests read nothing outside
# the repository.
ALL_EVENTS = ROOT / "tests" / "fixtures" / "line-webhook-all-events.json"
USER = "U206d25c2ea6bd87c17655609a1c37cb8"
LINE_ENV = ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_BASE_URL")
GREETING = "こんにちは。国際興業健康保険組合の個人情報の取扱いについてお答えするアシスタントです。"
MENU = [
    {"title": "個人情報の利用目的", "payload": "/ask_usage_purpose"},
    {"title": "健康・病歴などの要配慮個人情報について詳しく", "payload": "/ask_sensitive_data"},
]


def event(kind: str = "message", **fields: Any) -> dict[str, Any]:
    """A webhook event shaped like LINE's documented examples."""
    base: dict[str, Any] = {
        "type": kind,
        "mode": "active",
        "timestamp": 1462629479859,
        "source": {"type": "user", "userId": USER},
        "webhookEventId": f"01FZ74A0TDDPYRVKNK77XKC3Z{fields.pop('n', 0)}",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": fields.pop("token", "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"),
    }
    base.update(fields)
    return base


def text_event(text: str, **fields: Any) -> dict[str, Any]:
    message = {"id": "444573844083572737", "type": "text", "text": text, "quoteToken": "q"}
    return event("message", message=message, **fields)


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"destination": "U123", "events": list(events)}).encode()


class FakeRasa:
    """Answers like the assistant: a greeting with topic buttons, or an answer."""

    def __init__(self, fail: bool = False) -> None:
        self.received: list[Any] = []
        self.fail = fail

    async def __call__(self, message: Any) -> None:
        self.received.append(message)
        if self.fail:
            raise RuntimeError(f"broken on {message.text}")  # the text must not be logged
        out = message.output_channel
        if message.text == "/greet":
            await out.send_response(message.sender_id, {"text": GREETING, "buttons": MENU})
        else:
            await out.send_response(
                message.sender_id, {"text": "回答です。\n\n（出典：公表事項 1.）"}
            )

    @property
    def texts(self) -> list[str]:
        return [message.text for message in self.received]


async def no_sleep(_: float) -> None:
    return None


def make_channel(
    stand_in: StandIn, max_concurrent_events: int = DEFAULT_MAX_CONCURRENT_EVENTS, **guard: Any
) -> LineInput:
    config = LineConfig(
        CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url, max_concurrent_events=max_concurrent_events
    )
    api = LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep)
    return LineInput(config, api=api, guard=ChannelGuard(**guard) if guard else None)


def run(channel: LineInput, rasa: FakeRasa, *events: dict[str, Any]) -> None:
    """Process a signed webhook body the way the route does, and close the client."""

    async def go() -> None:
        raw = body(*events)
        status, accepted = channel.accept(raw, sign(CHANNEL_SECRET, raw))
        assert status == 200
        channel.submit(accepted, rasa)
        await channel.drain()
        await channel.api.close()

    asyncio.run(go())
