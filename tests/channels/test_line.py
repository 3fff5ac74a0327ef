"""The LINE channel without a rasa server: signature, events, conversion, delivery, retries.

API calls go to a real HTTP server on loopback standing in for LINE
(``tests/line_stand_in.py``); Rasa is replaced by a function that answers the way the
assistant's actions do (text, and buttons as quick replies).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from bot.channels.guard import RATE_LIMITED_REPLY, ChannelGuard, hashed_sender
from bot.channels.line import (
    CHOOSE_PROMPT,
    DEFAULT_API_BASE_URL,
    GROUP_REPLY,
    TEXT_ONLY_REPLY,
    UNAVAILABLE_REPLY,
    WELCOME_TEXT,
    InvalidReplyTokenError,
    LineApi,
    LineApiError,
    LineConfig,
    LineDelivery,
    LineInput,
    in_batches,
    quick_reply_label,
    resolve_env,
    sign,
    signature_valid,
    split_text,
    to_line_messages,
)
from tests.conftest import ROOT
from tests.line_stand_in import (
    ACCESS_TOKEN,
    CHANNEL_SECRET,
    Failure,
    StandIn,
    line_stand_in,
)

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


# --- helpers -------------------------------------------------------------------------


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


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    with line_stand_in() as running:
        yield running


def make_channel(stand_in: StandIn, **guard: Any) -> LineInput:
    config = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url)
    api = LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep)
    return LineInput(config, api=api, guard=ChannelGuard(**guard) if guard else None)


def run(channel: LineInput, rasa: FakeRasa, *events: dict[str, Any]) -> None:
    """Process a signed webhook body the way the route does, and close the client."""

    async def go() -> None:
        raw = body(*events)
        status, accepted = channel.accept(raw, sign(CHANNEL_SECRET, raw))
        assert status == 200
        channel.start(channel.process(accepted, rasa))
        await channel.drain()
        await channel.api.close()

    asyncio.run(go())


# --- signature and webhook acceptance -------------------------------------------------


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body():
    # Computed independently: printf '{"events":[]}' | openssl dgst -sha256 -hmac secret
    # -binary | base64
    assert sign("secret", b'{"events":[]}') == "pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ="


@pytest.mark.parametrize(
    ("signature", "valid"),
    [
        ("pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=", True),
        (" pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=\n", True),
        ("pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ", False),
        ("PKK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ=", False),
        (sign("other secret", b'{"events":[]}'), False),
        ("", False),
        (None, False),
        ("署名", False),  # not ASCII: refused, not an exception
    ],
)
def test_signature_check(signature, valid):
    assert signature_valid("secret", b'{"events":[]}', signature) is valid


def test_a_changed_body_breaks_the_signature():
    signature = sign("secret", b'{"events":[]}')
    assert not signature_valid("secret", b'{"events": []}', signature)
    assert not signature_valid("", b'{"events":[]}', sign("", b'{"events":[]}'))


def test_unsigned_or_wrongly_signed_requests_get_401_before_any_parsing(stand_in):
    channel = make_channel(stand_in)
    assert channel.accept(b"not json at all", None) == (401, [])
    assert channel.accept(b"not json at all", "c2lnbmF0dXJl") == (401, [])
    raw = body(text_event("個人情報の利用目的を教えてください"))
    assert channel.accept(raw, sign("wrong secret", raw)) == (401, [])
    assert channel.accept(raw, None) == (401, [])


def test_a_signed_body_is_accepted_with_its_events(stand_in):
    channel = make_channel(stand_in)
    raw = body(text_event("a"), text_event("b", n=1))
    status, events = channel.accept(raw, sign(CHANNEL_SECRET, raw))
    assert status == 200
    assert [e["message"]["text"] for e in events] == ["a", "b"]


def test_the_console_verification_request_is_accepted(stand_in):
    channel = make_channel(stand_in)
    raw = b'{"destination":"xxxxxxxxxx","events":[]}'
    assert channel.accept(raw, sign(CHANNEL_SECRET, raw)) == (200, [])


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"events": {}}', b"\xff\xfe"])
def test_signed_but_malformed_bodies_get_400(stand_in, raw):
    assert make_channel(stand_in).accept(raw, sign(CHANNEL_SECRET, raw))[0] == 400


def test_an_oversized_body_is_refused_without_hashing(stand_in):
    raw = b" " * 2_000_000
    assert make_channel(stand_in).accept(raw, sign(CHANNEL_SECRET, raw)) == (413, [])


def test_the_channel_is_off_without_the_secret_or_the_token():
    for secret, token in [("", "t"), ("s", ""), ("", "")]:
        channel = LineInput(LineConfig(secret, token))
        raw = body(text_event("a"))
        assert channel.accept(raw, sign(secret, raw)) == (503, [])


# --- configuration -----------------------------------------------------------------


def test_env_references_are_resolved_and_unset_ones_are_empty():
    env = {"LINE_CHANNEL_SECRET": "s3cret", "HOST": "example.org"}
    assert resolve_env("${LINE_CHANNEL_SECRET}", env) == "s3cret"
    assert resolve_env("${LINE_CHANNEL_ACCESS_TOKEN}", env) == ""
    assert resolve_env("https://${HOST}/line", env) == "https://example.org/line"
    assert resolve_env("literal", env) == "literal"
    assert resolve_env(None, env) == ""


def test_config_from_the_environment():
    on = LineConfig.from_credentials(
        None,
        {
            "LINE_CHANNEL_SECRET": "s",
            "LINE_CHANNEL_ACCESS_TOKEN": "t",
            "LINE_API_BASE_URL": "http://127.0.0.1:9/",
        },
    )
    assert on.enabled and on.api_base_url == "http://127.0.0.1:9"
    assert "s" not in repr(on).replace("LineConfig", "").split("api_base_url")[0].strip("(")
    off = LineConfig.from_credentials({"channel_secret": "${LINE_CHANNEL_SECRET}"}, {})
    assert not off.enabled
    assert off.missing == ["LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN"]
    assert off.api_base_url == DEFAULT_API_BASE_URL
    limits = LineConfig.from_credentials(
        {"max_messages_per_minute": 5, "max_message_chars": "300"}, {}
    )
    assert (limits.max_per_minute, limits.max_chars) == (5, 300)


def test_secrets_stay_out_of_repr():
    config = LineConfig("the-secret", "the-token", "https://api.line.me")
    assert "the-secret" not in repr(config) and "the-token" not in repr(config)


@pytest.mark.parametrize(
    "credentials",
    [{"api_base_url": "ftp://x"}, {"max_messages_per_minute": 0}, {"max_message_chars": "x"}],
)
def test_bad_settings_are_refused(credentials):
    with pytest.raises(ValueError):
        LineConfig.from_credentials(credentials, {})


def test_rasa_reads_credentials_yml_without_the_variables_and_the_channel_is_off(
    monkeypatch, caplog
):
    import rasa.core.run
    import rasa.shared.utils.io

    for name in LINE_ENV:
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="bot.channels.line")
    credentials = rasa.shared.utils.io.read_config_file(str(ROOT / "credentials.yml"))
    entry = credentials["bot.channels.line.LineInput"]
    channel = rasa.core.run._create_single_channel("bot.channels.line.LineInput", entry)
    assert isinstance(channel, LineInput)
    assert not channel.config.enabled
    assert channel.name() == "line" and channel.url_prefix() == "line"
    off = [r.getMessage() for r in caplog.records if "LINE channel off" in r.getMessage()]
    assert off == [
        "LINE channel off: LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN not set"
        " (see docs/channels.md)"
    ]


def test_credentials_yml_picks_up_the_variables(monkeypatch, caplog):
    import rasa.shared.utils.io

    monkeypatch.setenv("LINE_CHANNEL_SECRET", "s")
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "t")
    monkeypatch.setenv("LINE_API_BASE_URL", "http://127.0.0.1:9")
    caplog.set_level(logging.INFO, logger="bot.channels.line")
    credentials = rasa.shared.utils.io.read_config_file(str(ROOT / "credentials.yml"))
    channel = LineInput.from_credentials(credentials["bot.channels.line.LineInput"])
    assert channel.config.enabled
    assert channel.config.api_base_url == "http://127.0.0.1:9"
    assert any("LINE channel on" in r.getMessage() for r in caplog.records)


# --- message conversion ------------------------------------------------------------


def test_a_turn_becomes_text_messages_with_the_buttons_on_the_last_one():
    outgoing = to_line_messages(
        [
            {"recipient_id": USER, "text": "一つ目", "buttons": MENU},
            {"recipient_id": USER, "text": "二つ目"},
        ]
    )
    assert [m["text"] for m in outgoing.messages] == ["一つ目", "二つ目"]
    assert "quickReply" not in outgoing.messages[0]
    items = outgoing.messages[-1]["quickReply"]["items"]
    assert items[0] == {
        "type": "action",
        "action": {
            "type": "postback",
            "label": "個人情報の利用目的",
            "data": "/ask_usage_purpose",
            "displayText": "個人情報の利用目的",
        },
    }
    long_one = items[1]["action"]
    assert len(long_one["label"]) == 20 and long_one["label"].endswith("…")
    assert long_one["displayText"] == MENU[1]["title"]
    assert outgoing.offered == ["/ask_usage_purpose", "/ask_sensitive_data"]


def test_labels_are_cut_to_twenty_characters():
    assert quick_reply_label("短い") == "短い"
    assert quick_reply_label("あ" * 20) == "あ" * 20
    assert quick_reply_label("あ" * 21) == "あ" * 19 + "…"
    assert quick_reply_label(" 改行\nのある  題 ") == "改行 のある 題"


def test_buttons_without_text_get_a_prompt_and_at_most_13_items():
    buttons = [{"title": f"話題{n}", "payload": f"/topic_{n}"} for n in range(20)]
    outgoing = to_line_messages([{"text": None, "buttons": buttons}])
    assert outgoing.messages[0]["text"] == CHOOSE_PROMPT
    assert len(outgoing.messages[0]["quickReply"]["items"]) == 13
    assert outgoing.offered == [f"/topic_{n}" for n in range(13)]


def test_odd_buttons_images_and_custom_messages():
    outgoing = to_line_messages(
        [
            {
                "text": "選択肢",
                "buttons": [
                    {"title": "長い", "payload": "/x" + "y" * 400},
                    {"title": "サイト", "url": "https://example.org", "type": "web_url"},
                    {"title": "", "payload": ""},
                    {"title": "重複", "payload": "/dup"},
                    {"title": "重複", "payload": "/dup"},
                ],
            },
            {"image": "https://example.org/a.png"},
            {"custom": {"type": "sticker", "packageId": "446", "stickerId": "1988"}},
            {"custom": {"something": "else"}},
        ]
    )
    kinds = [m["type"] for m in outgoing.messages]
    assert kinds == ["text", "image", "sticker"]
    actions = [item["action"] for item in outgoing.messages[-1]["quickReply"]["items"]]
    assert actions == [
        {"type": "message", "label": "長い", "text": "長い"},
        {"type": "uri", "label": "サイト", "uri": "https://example.org"},
        {"type": "postback", "label": "重複", "data": "/dup", "displayText": "重複"},
    ]
    assert outgoing.offered == ["/dup"]


def test_long_texts_are_split_within_line_limits():
    paragraph = "あ" * 3000
    pieces = split_text(f"{paragraph}\n{paragraph}\n{paragraph}")
    assert pieces == [paragraph, paragraph, paragraph]
    assert all(len(p) <= 5000 for p in split_text("い" * 12001))
    assert "".join(split_text("い" * 12001)) == "い" * 12001
    assert split_text("  \n ") == []


def test_messages_are_batched_five_per_call():
    messages = [{"type": "text", "text": str(n)} for n in range(12)]
    assert [len(b) for b in in_batches(messages)] == [5, 5, 2]
    assert [m for b in in_batches(messages) for m in b] == messages
    assert in_batches([]) == []


# --- the API client: retries and errors ----------------------------------------------


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


# --- delivery ----------------------------------------------------------------------


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


# --- events --------------------------------------------------------------------------


def test_a_text_message_goes_to_rasa_and_the_answer_comes_back_in_one_reply(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(channel, rasa, text_event("個人情報の利用目的を教えてください"))
    (message,) = rasa.received
    assert message.text == "個人情報の利用目的を教えてください"
    assert message.sender_id == f"line:{USER}"  # the channel names it, nobody else
    assert message.input_channel == "line"
    assert message.message_id == "444573844083572737"
    (call,) = stand_in.calls
    assert call.body["replyToken"] == "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA"
    assert call.texts == ["回答です。\n\n（出典：公表事項 1.）"]  # one bubble, not split


def test_several_events_in_one_body_are_processed_in_order(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(
        channel,
        rasa,
        text_event("一つ目", n=1, token="t1"),
        text_event("二つ目", n=2, token="t2"),
        text_event("三つ目", n=3, token="t3"),
    )
    assert rasa.texts == ["一つ目", "二つ目", "三つ目"]
    assert [c.body["replyToken"] for c in stand_in.calls] == ["t1", "t2", "t3"]


def test_a_redelivered_event_is_processed_once(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    original = text_event("一度だけ", n=7)
    redelivered = copy.deepcopy(original)
    redelivered["deliveryContext"]["isRedelivery"] = True
    run(channel, rasa, original)
    run(channel, rasa, redelivered)
    assert rasa.texts == ["一度だけ"]
    # A redelivery of an event this server never saw (say, before a restart) is new.
    unseen = text_event("再送だが初見", n=8)
    unseen["deliveryContext"]["isRedelivery"] = True
    run(channel, rasa, unseen)
    assert rasa.texts == ["一度だけ", "再送だが初見"]


def test_a_follow_gets_the_welcome_and_the_topics(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(channel, rasa, event("follow", follow={"isUnblocked": False}))
    assert rasa.texts == ["/greet"]
    (call,) = stand_in.calls
    assert call.texts == [WELCOME_TEXT, GREETING]
    assert [i["action"]["data"] for i in call.quick_replies] == [b["payload"] for b in MENU]


def test_a_postback_of_an_offered_button_reaches_rasa_as_an_intent(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(channel, rasa, event("follow", follow={"isUnblocked": False}))
    run(channel, rasa, event("postback", n=2, postback={"data": "/ask_usage_purpose"}))
    assert rasa.texts == ["/greet", "/ask_usage_purpose"]


def test_a_payload_not_offered_reaches_rasa_as_plain_words(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(
        channel,
        rasa,
        event("postback", n=1, postback={"data": '/ask_my_data{"verified": true}'}),
        text_event("/restart", n=2),
    )
    assert rasa.texts == ['ask_my_data{"verified": true}', "restart"]


def test_stickers_and_other_media_get_the_text_only_answer_once_per_body(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    sticker = {"id": "1", "type": "sticker", "packageId": "1", "stickerId": "1"}
    image = {"id": "2", "type": "image", "contentProvider": {"type": "line"}}
    run(channel, rasa, event(message=sticker, n=1), event(message=image, n=2, token="t2"))
    assert rasa.received == []
    (call,) = stand_in.calls
    assert call.texts == [TEXT_ONLY_REPLY]


def test_messages_over_the_rate_limit_get_one_notice(stand_in):
    channel, rasa = make_channel(stand_in, max_per_minute=2), FakeRasa()
    run(channel, rasa, *[text_event(f"質問{n}", n=n, token=f"t{n}") for n in range(4)])
    assert rasa.texts == ["質問0", "質問1"]
    assert [c.texts for c in stand_in.calls][-1] == [RATE_LIMITED_REPLY]
    assert len(stand_in.calls) == 3


def test_a_too_long_message_is_not_handed_on(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(channel, rasa, text_event("あ" * 2001))
    assert rasa.received == []
    assert "2000文字以内" in stand_in.calls[0].texts[0]


def test_groups_get_a_notice_on_join_and_their_messages_are_not_read(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    group = {"type": "group", "groupId": "Ca56f94637cc4347f90a25382909b24b9", "userId": USER}
    run(
        channel,
        rasa,
        event("join", n=1, token="j", source={"type": "group", "groupId": group["groupId"]}),
        text_event("グループでの質問", n=2, token="g", source=group),
    )
    assert rasa.received == []
    (call,) = stand_in.calls
    assert call.body["replyToken"] == "j" and call.texts == [GROUP_REPLY]


def test_standby_and_verification_events_are_not_answered(stand_in):
    channel, rasa = make_channel(stand_in), FakeRasa()
    standby = text_event("待機中", n=1)
    standby["mode"] = "standby"
    del standby["replyToken"]
    run(
        channel,
        rasa,
        standby,
        text_event("Hello, world", n=2, token="0" * 32),
        text_event("Hello, world", n=3, token="f" * 32),
    )
    assert rasa.received == [] and stand_in.calls == []


def test_a_failing_turn_gets_an_apology_and_the_next_events_go_on(stand_in, caplog):
    channel, rasa = make_channel(stand_in), FakeRasa(fail=True)
    caplog.set_level(logging.INFO, logger="bot.channels")
    run(channel, rasa, text_event("壊れる質問", n=1, token="a"), text_event("次", n=2, token="b"))
    assert rasa.texts == ["壊れる質問", "次"]
    assert [c.texts for c in stand_in.calls] == [[UNAVAILABLE_REPLY], [UNAVAILABLE_REPLY]]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged and "壊れる" not in logged


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


def test_the_all_events_fixture_is_taken_whole(stand_in, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.channels")
    channel, rasa = make_channel(stand_in), FakeRasa()
    raw = ALL_EVENTS.read_bytes()
    status, events = channel.accept(raw, sign(CHANNEL_SECRET, raw))
    assert status == 200 and len(events) == len(json.loads(raw)["events"])
    run(channel, rasa, *events)
    # One-to-one text and the postbacks (their data is not an intent: plain words) reach
    # Rasa; group and room messages, the redelivered copy and the rest do not.
    assert rasa.texts == ["Hello, world", "/greet"] + ["action=buyItem&itemId=123123&color=red"] * 4
    sent = [text for call in stand_in.successful() for text in call.texts]
    assert sent.count(TEXT_ONLY_REPLY) == 1  # one per body, however many media events
    assert WELCOME_TEXT in sent
    # Every event of the fixture shares one reply token: after its first use the member
    # gets the rest by push; the group's notice cannot be pushed (nobody to push to).
    assert all(call.status == 200 or call.path.endswith("/reply") for call in stand_in.calls)
    pushed = [call for call in stand_in.calls if call.path.endswith("/push")]
    assert pushed and all(call.body["to"] == USER for call in pushed)
    tried = [text for call in stand_in.calls for text in call.texts]
    assert GROUP_REPLY in tried and GROUP_REPLY not in sent
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Hello, world" not in logged and USER not in logged
    assert hashed_sender(USER) in logged


def test_event_logs_carry_only_the_hashed_sender(stand_in, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.channels")
    channel, rasa = make_channel(stand_in), FakeRasa()
    run(channel, rasa, text_event("記号1001 番号23の秘密", n=1))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert USER not in logged and "秘密" not in logged and "1001" not in logged
    assert hashed_sender(USER) in logged
