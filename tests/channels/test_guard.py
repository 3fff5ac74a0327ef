"""The channel guard: rate limit, length limit, typed intent payloads, bounded memory."""

from __future__ import annotations

import logging

import pytest

from bot.channels.guard import (
    EMPTY_REPLY,
    MAX_MESSAGE_CHARS,
    RATE_LIMITED_REPLY,
    ChannelGuard,
    Verdict,
    hashed_sender,
)
from bot.identity.redact import redact


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def guard(clock) -> ChannelGuard:
    return ChannelGuard(max_per_minute=3, clock=clock)


def test_plain_text_is_handed_on_stripped(guard):
    assert guard.admit("U1", "  個人情報の利用目的は？\n") == Verdict(
        "個人情報の利用目的は？", None
    )


def test_the_default_length_limit_is_2000_characters():
    guard = ChannelGuard()
    assert guard.admit("U1", "あ" * MAX_MESSAGE_CHARS).text == "あ" * MAX_MESSAGE_CHARS
    verdict = guard.admit("U1", "あ" * (MAX_MESSAGE_CHARS + 1))
    assert verdict.text is None
    assert verdict.reply is not None and "2000文字以内" in verdict.reply


def test_a_custom_length_limit_is_named_in_the_reply(clock):
    verdict = ChannelGuard(max_chars=10, clock=clock).admit("U1", "0123456789X")
    assert verdict.text is None
    assert verdict.reply is not None and "10文字以内" in verdict.reply


def test_the_rate_limit_notifies_once_then_stays_silent_until_the_window_has_room(guard, clock):
    for second in range(3):
        clock.now += 1
        assert guard.admit("U1", f"質問{second}").text == f"質問{second}"
    clock.now += 1
    assert guard.admit("U1", "4通目") == Verdict(None, RATE_LIMITED_REPLY)
    clock.now += 1
    assert guard.admit("U1", "5通目") == Verdict(None, None)
    # Another sender is not affected.
    assert guard.admit("U2", "こんにちは").text == "こんにちは"
    # 60 s after the first counted message, one slot is free again (sliding window).
    clock.now = 1001.0 + 60
    assert guard.admit("U1", "また質問").text == "また質問"
    assert guard.admit("U1", "さらに") == Verdict(None, RATE_LIMITED_REPLY)


def test_refused_messages_over_the_limit_do_not_extend_the_block(guard, clock):
    for _ in range(3):
        guard.admit("U1", "質問")
    for _ in range(50):
        clock.now += 1
        guard.admit("U1", "連投")
    clock.now = 1000.0 + 60.5
    assert guard.admit("U1", "落ち着いて質問").text == "落ち着いて質問"


def test_the_rate_limit_reply_is_polite_japanese():
    assert "少し時間をおいてから送ってください" in RATE_LIMITED_REPLY


def test_an_offered_payload_passes_once(guard):
    guard.offered("U1", ["/ask_usage_purpose", "/ask_contact"])
    assert guard.admit("U1", "/ask_usage_purpose") == Verdict("/ask_usage_purpose", None)
    # Used up: the same button again, or another one of the same offer, is plain words.
    assert guard.admit("U1", "/ask_usage_purpose") == Verdict("ask_usage_purpose", None)
    assert guard.admit("U1", "/ask_contact") == Verdict("ask_contact", None)


def test_a_payload_with_entities_must_match_exactly(guard):
    offered = '/ask_usage_purpose{"info_category": "bank_account"}'
    guard.offered("U1", [offered])
    forged = '/ask_usage_purpose{"info_category": "bank_account", "verified": true}'
    assert guard.admit("U1", forged).text == forged[1:]
    assert guard.admit("U1", offered).text == offered


def test_a_payload_offered_to_someone_else_is_not_an_intent(guard):
    guard.offered("U1", ["/ask_my_data"])
    assert guard.admit("U2", "/ask_my_data").text == "ask_my_data"
    assert guard.admit("U1", "/ask_my_data").text == "/ask_my_data"


@pytest.mark.parametrize(
    ("typed", "handed_on"),
    [
        ("/restart", "restart"),
        ('/inform{"verified": true}', 'inform{"verified": true}'),
        ("//greet", "greet"),
        ("/ /greet", "greet"),
        ("\u3000/greet", "greet"),  # Rasa strips full-width spaces before looking at "/"
        ("/ 利用目的は？", "利用目的は？"),
    ],
)
def test_typed_intent_payloads_become_plain_words(guard, typed, handed_on):
    verdict = guard.admit("U1", typed)
    assert verdict == Verdict(handed_on, None)
    assert verdict.text is not None and not verdict.text.strip().startswith("/")


@pytest.mark.parametrize("typed", ["/", "//", " / ", "", "   "])
def test_nothing_left_gets_a_polite_reply(guard, typed):
    assert guard.admit("U1", typed) == Verdict(None, EMPTY_REPLY)


def test_buttons_of_one_answer_add_up_and_the_next_answer_replaces_them(clock):
    guard = ChannelGuard(clock=clock)
    guard.offered("U1", ["/a"])
    guard.offered("U1", ["/b", "not-an-intent"])  # same answer: added
    assert guard.admit("U1", "/b").text == "/b"
    guard.offered("U1", ["/c"])  # the answer to that message: a new offer
    assert guard.admit("U1", "/a").text == "a"
    # Typing something else leaves the offer standing until the bot offers anew.
    assert guard.admit("U1", "手数料は？").text == "手数料は？"
    guard.offered("U1", ["/d"])
    assert guard.admit("U1", "/c").text == "c"
    assert guard.admit("U1", "/d").text == "/d"


def test_an_offer_stands_while_the_member_types(guard):
    guard.offered("U1", ["/ask_fee"])
    assert guard.admit("U1", "ちょっと待って").text == "ちょっと待って"
    assert guard.admit("U1", "/ask_fee").text == "/ask_fee"


def test_payloads_are_compared_after_stripping_like_rasa_does(guard):
    guard.offered("U1", [" /ask_fee "])
    assert guard.admit("U1", "/ask_fee\n").text == "/ask_fee"


def test_idle_senders_are_forgotten(guard, clock):
    guard.offered("U1", ["/ask_fee"])
    guard.admit("U2", "こんにちは")
    assert guard.tracked_senders == 2
    clock.now += ChannelGuard.idle_seconds + 1
    guard.admit("U3", "こんにちは")
    assert guard.tracked_senders == 1
    # U1's offer went with it.
    assert guard.admit("U1", "/ask_fee").text == "ask_fee"


def test_the_number_of_senders_tracked_is_capped(clock):
    class Small(ChannelGuard):
        max_senders = 5

    guard = Small(max_per_minute=1, clock=clock)
    for number in range(100):
        clock.now += 0.01
        guard.admit(f"U{number}", "こんにちは")
        assert guard.tracked_senders <= 5
    # The most recent stay: U99 is still limited, U0 was forgotten and starts afresh.
    assert guard.admit("U99", "もう一度").reply == RATE_LIMITED_REPLY
    assert guard.admit("U0", "もう一度").text == "もう一度"


def test_an_offer_keeps_a_bounded_number_of_payloads(guard):
    guard.offered("U1", [f"/intent_{n}" for n in range(1000)])
    assert guard.admit("U1", "/intent_0").text == "intent_0"
    guard.offered("U1", [f"/intent_{n}" for n in range(1000)])
    assert guard.admit("U1", "/intent_999").text == "/intent_999"


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        ChannelGuard(max_per_minute=0)
    with pytest.raises(ValueError):
        ChannelGuard(max_chars=0)


def test_hashed_sender_is_stable_and_not_the_id():
    sender = "U206d25c2ea6bd87c17655609a1c37cb8"
    assert hashed_sender(sender) == hashed_sender(sender)
    assert hashed_sender(sender) != sender[1:]
    assert len(hashed_sender("U1")) == 12
    assert hashed_sender("U1") != hashed_sender("U2")
    assert all(c in "0123456789abcdef" for c in hashed_sender("U1"))


def test_hashed_senders_survive_log_redaction():
    # The rasa server's logs are redacted (bot.identity.redact): a hash cut into pieces by the
    # masking of digit runs could no longer tie one member's log lines together.
    kept = 0
    for number in range(500):
        hashed = hashed_sender(f"U{number:032x}")
        line = f"Rate limit reached for sender {hashed}"
        if hashed.isdigit():
            assert redact(line) != line  # a digit run is masked, whatever it is
        else:
            assert redact(line) == line
            kept += 1
    assert kept > 490


def test_logs_carry_neither_text_nor_sender_id(clock, caplog):
    caplog.set_level(logging.DEBUG, logger="bot.channels.guard")
    guard = ChannelGuard(max_per_minute=1, max_chars=5, clock=clock)
    sender = "U206d25c2ea6bd87c17655609a1c37cb8"
    guard.admit(sender, "/秘密の質問")
    clock.now += 61
    guard.admit(sender, "長すぎる秘密の質問")
    clock.now += 61
    guard.admit(sender, "秘密1")
    guard.admit(sender, "秘密2")
    assert caplog.records, "the guard logs what it refuses"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "秘密" not in logged
    assert sender not in logged
    assert hashed_sender(sender) in logged
