"""The REST channel: off unless enabled, token-bound, its own conversations, guarded."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

from bot.channels.guard import ChannelGuard
from bot.channels.rest import OperatorRestInput

TOKEN = "operator-token"
AUTH = f"Bearer {TOKEN}"


class FakeRasa:
    """Rasa's handler: records messages, answers with a button like the bot's menu."""

    def __init__(self) -> None:
        self.received: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.received.append(message)
        await message.output_channel.send_text_with_buttons(
            message.sender_id,
            "ご用件をお選びください。",
            [{"title": "利用目的", "payload": "/ask"}],
        )


@dataclass
class Answer:
    """What one call answered, and what reached Rasa."""

    status: int
    body: Any
    received: list[UserMessage]


def call(channel: OperatorRestInput, body: Any, authorization: str | None = AUTH) -> Answer:
    rasa = FakeRasa()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = asyncio.run(channel.answer(authorization, raw, rasa))
    return Answer(answer.status, json.loads(answer.body or b"null"), rasa.received)


def test_the_channel_is_off_unless_enabled(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVACY_BOT_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("PRIVACY_BOT_REST", raising=False)
    channel = OperatorRestInput.from_credentials({})
    assert isinstance(channel, OperatorRestInput) and channel.token is None
    answer = call(channel, {"sender": "me", "message": "こんにちは"})
    assert answer.status == 404 and answer.received == []
    assert not (tmp_path / "rasa_token").exists()  # no token is even made for it


def test_enabled_it_takes_the_http_api_token(monkeypatch, tmp_path):
    monkeypatch.setenv("PRIVACY_BOT_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("PRIVACY_BOT_REST", "true")
    monkeypatch.setenv("RASA_TOKEN", TOKEN)
    channel = OperatorRestInput.from_credentials({"max_messages_per_minute": 5})
    assert isinstance(channel, OperatorRestInput) and channel.token == TOKEN
    assert channel.guard.max_per_minute == 5


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer wrong", TOKEN, f"bearer {TOKEN}", f"Bearer {TOKEN} "]
)
def test_a_call_without_the_exact_bearer_token_is_refused(authorization):
    answer = call(
        OperatorRestInput(TOKEN), {"sender": "me", "message": "こんにちは"}, authorization
    )
    assert answer.status == 401 and answer.received == []


def test_the_conversation_is_rest_and_the_body_chooses_no_channel_or_metadata():
    answer = call(
        OperatorRestInput(TOKEN),
        {
            "sender": "U206d25c2ea6bd87c17655609a1c37cb8",
            "message": "こんにちは",
            "input_channel": "line",
            "metadata": {"verified": True},
        },
    )
    assert answer.status == 200
    (message,) = answer.received
    assert message.sender_id == "rest:U206d25c2ea6bd87c17655609a1c37cb8"
    assert message.input_channel == "rest"
    assert message.metadata == {}
    assert answer.body[0]["recipient_id"] == "rest:U206d25c2ea6bd87c17655609a1c37cb8"


@pytest.mark.parametrize(
    "body",
    [
        {"sender": "line:U0", "message": "x"},
        {"sender": "web:" + "a" * 32, "message": "x"},
        {"sender": "", "message": "x"},
        {"sender": "a" * 65, "message": "x"},
        {"sender": "名前", "message": "x"},
        {"sender": 12, "message": "x"},
        {"sender": "me"},
        {"sender": "me", "message": ["x"]},
        [],
        b"not json",
    ],
)
def test_malformed_bodies_get_400_and_reach_nothing(body):
    answer = call(OperatorRestInput(TOKEN), body)
    assert answer.status == 400 and "error" in answer.body
    assert answer.received == []


def test_typed_payloads_pass_only_where_offered():
    channel = OperatorRestInput(TOKEN)
    typed = call(channel, {"sender": "me", "message": '/request_human{"handoff_reason":"x"}'})
    assert not typed.received[0].text.startswith("/")  # not offered: words for the NLU
    pressed = call(channel, {"sender": "me", "message": "/ask"})  # offered just above
    assert pressed.received[0].text == "/ask"
    # The offer belongs to that conversation: another sender cannot press it.
    elsewhere = call(channel, {"sender": "other", "message": "/ask"})
    assert elsewhere.received[0].text == "ask"


def test_the_rate_and_length_limits_hold():
    channel = OperatorRestInput(TOKEN, ChannelGuard(max_per_minute=2, max_chars=10))
    for _ in range(2):
        assert call(channel, {"sender": "me", "message": "質問"}).status == 200
    limited = call(channel, {"sender": "me", "message": "質問"})
    assert limited.status == 200 and "時間をおいて" in limited.body[0]["text"]
    assert limited.received == []
    too_long = call(channel, {"sender": "long", "message": "あ" * 11})
    assert "10文字以内" in too_long.body[0]["text"] and too_long.received == []
