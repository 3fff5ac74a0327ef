"""The LINE input channel without a rasa server: webhook acceptance and every event.

API calls go to a real HTTP server on loopback standing in for LINE
(``tests/line_stand_in.py``); Rasa is replaced by a function that answers the way the
assistant's actions do (text, and buttons as quick replies).
"""

from __future__ import annotations

import copy
import json
import logging

import pytest

from bot.channels.guard import RATE_LIMITED_REPLY, hashed_sender
from bot.channels.line.channel import (
    GROUP_REPLY,
    TEXT_ONLY_REPLY,
    UNAVAILABLE_REPLY,
    WELCOME_TEXT,
    LineInput,
)
from bot.channels.line.config import LineConfig
from bot.channels.line.signature import sign
from tests.channels.line.support import (
    ALL_EVENTS,
    GREETING,
    MENU,
    USER,
    FakeRasa,
    body,
    event,
    make_channel,
    run,
    text_event,
)
from tests.line_stand_in import CHANNEL_SECRET


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


def test_the_all_events_fixture_is_taken_whole(stand_in, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.channels")
    # Every event of the fixture shares one reply token, which only its first reply can
    # use. Each source's events are processed in order but sources run side by side;
    # one at a time, they take turns in the order they first appear (the member first).
    channel, rasa = make_channel(stand_in, max_concurrent_events=1), FakeRasa()
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
