"""What the assistant says when a member wants a person, and when it decides to hand over.

The first request for a person in a conversation is answered with what the assistant
can do and a quick reply to insist; asking again, or any hand-off quick reply (the
complaint, the offer after repeated fallbacks), hands the conversation over. The member
is told that a person takes over and when, from the profile's published hours
(:mod:`bot.hours`): parsed hours give "within the hours" or "from the next opening on";
unparseable hours are quoted as published; absent hours are said to be unpublished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.answers import INTENT_LABELS, MENU_INTENTS, Button, Reply, contact_line, handoff_button
from bot.hours import opening_label, parse_hours
from bot.profiles.schema import Profile

# Reasons a quick-reply payload may carry; anything else counts as the member's request.
PAYLOAD_REASONS = ("member_request", "complaint", "repeated_fallback")


@dataclass(frozen=True)
class Decision:
    """Offer alternatives first, or hand over now (and why)."""

    escalate: bool
    reason: str = "member_request"


def decide(already_offered: bool, payload_reason: str | None) -> Decision:
    """Whether a request for a person hands over now.

    Args:
        already_offered: the alternatives were offered earlier in this conversation.
        payload_reason: the ``handoff_reason`` a quick reply carried, if any.
    """
    if payload_reason:
        reason = payload_reason if payload_reason in PAYLOAD_REASONS else "member_request"
        return Decision(True, reason)
    return Decision(already_offered)


def offer(profile: Profile) -> list[Reply]:
    """The first answer to a request for a person: what the assistant can do, or insist."""
    topics = tuple(Button(INTENT_LABELS[intent], f"/{intent}") for intent in MENU_INTENTS[:3])
    return [
        Reply(
            "担当者へのご相談をご希望ですね。このチャットでも、個人情報の利用目的、安全管理、"
            "開示等の請求の手続などにお答えできます。それでも担当者と話したい場合は"
            "「担当者と話したい」を押してください。"
            f"お電話などでのご相談は {contact_line(profile)} で承ります。",
            (*topics, handoff_button("担当者と話したい", "member_request")),
        )
    ]


def fallback_offer(profile: Profile) -> list[Reply]:
    """After two misunderstandings in a row: offer a person (and rephrasing)."""
    topics = tuple(Button(INTENT_LABELS[intent], f"/{intent}") for intent in MENU_INTENTS[:2])
    return [
        Reply(
            "申し訳ありません、うまくお答えできていないようです。"
            "担当者におつなぎすることもできます。言い換えてお尋ねいただいても結構です。",
            (handoff_button("担当者と話したい", "repeated_fallback"), *topics),
        )
    ]


def when_answered(profile: Profile, now: datetime) -> str:
    """When a person will answer, from the published hours; never guessed."""
    hours = profile.contact.hours
    if not hours:
        return "担当者から順にお返事します。なお、窓口の受付時間は公表されていません。"
    schedule = parse_hours(hours)
    if schedule is None:
        return f"担当者から順にお返事します（受付時間：{hours}）。"
    if schedule.is_open(now):
        return f"受付時間（{hours}）内に担当者からお返事します。"
    return (
        f"ただいま受付時間（{hours}）外のため、"
        f"次の受付時間（{opening_label(schedule.next_opening(now))}）以降に担当者からお返事します。"
    )


def handed_over(profile: Profile, now: datetime, *, already_waiting: bool = False) -> list[Reply]:
    """What the member is told when the conversation goes to a person."""
    lead = "すでに担当者へおつなぎしています。" if already_waiting else "担当者におつなぎします。"
    return [
        Reply(
            f"{lead}{when_answered(profile, now)}"
            "このあとのメッセージは担当者が確認します。担当者からのご連絡までお待ちください。"
        )
    ]
