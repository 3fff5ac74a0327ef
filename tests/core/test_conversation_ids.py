"""Who is talking; conversation ids name the channel they belong to, and nothing else can."""

import dataclasses

import pytest

from bot.core.conversation import (
    Conversation,
    ConversationIdError,
    channel_of,
    conversation_id,
    native_id,
)


def test_a_conversation_is_a_value_that_cannot_be_changed():
    talk = Conversation(sender_id="line:U0abc", session_key="s1", channel="line")
    assert talk == Conversation("line:U0abc", "s1", "line")
    assert talk != Conversation("line:U0abc", "s2", "line")  # a new Rasa session
    assert len({talk, Conversation("line:U0abc", "s1", "line")}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        talk.session_key = "s2"  # type: ignore[misc]


def test_each_channel_names_its_conversations_with_its_own_prefix():
    assert conversation_id("line", "U0abc") == "line:U0abc"
    assert conversation_id("socketio", "f" * 32) == "web:" + "f" * 32
    assert conversation_id("rest", "tester") == "rest:tester"


@pytest.mark.parametrize("channel, native", [("telegram", "1"), ("line", ""), ("", "x")])
def test_unknown_channels_and_empty_ids_are_refused(channel, native):
    with pytest.raises(ConversationIdError):
        conversation_id(channel, native)


@pytest.mark.parametrize(
    "conversation, channel",
    [
        ("line:U0abc", "line"),
        ("web:abc", "socketio"),
        ("rest:me", "rest"),
        ("U0abc", None),  # a bare id, as conversations were named before: no channel
        ("line:", None),
        ("mail:x", None),
        ("", None),
    ],
)
def test_the_channel_is_read_from_the_prefix(conversation, channel):
    assert channel_of(conversation) == channel


def test_a_native_id_is_given_only_to_its_own_channel():
    assert native_id("line:U0abc", "line") == "U0abc"
    # A REST conversation that carries a LINE user id's text is not a LINE user.
    assert native_id("rest:U0abc", "line") is None
    assert native_id("U0abc", "line") is None
    assert native_id("web:line:U0abc", "line") is None
    # Only the first separator counts: the rest belongs to the native id.
    assert native_id("rest:a:b", "rest") == "a:b"
