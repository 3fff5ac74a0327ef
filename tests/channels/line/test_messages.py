"""Rasa's messages as LINE message objects: texts, quick replies, batches."""

from __future__ import annotations

from bot.channels.line.messages import (
    CHOOSE_PROMPT,
    in_batches,
    quick_reply_label,
    split_text,
    to_line_messages,
)
from tests.channels.line.support import MENU, USER


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
