"""What the assistant says when a member wants a person, and when it decides to hand over.

The first request for a person in a conversation is answered with what the assistant
can do and a quick reply to insist; asking again, or a hand-off quick reply the
assistant offered in this session (the complaint, the offer after repeated fallbacks,
the insisting one), hands the conversation over. A hand-off reason is taken from a
quick reply's payload only when the assistant's own buttons offered that reason in the
session (:func:`offered_reasons`): a payload typed or replayed from elsewhere counts as
a plain request for a person, which is offered alternatives first. The member is told
that a person takes over and when, from the profile's published hours
(:mod:`bot.handoff.hours`): parsed hours give "within the hours" or "from the next opening on";
unparseable hours are quoted as published; absent hours are said to be unpublished.
When the hand-off limits (:func:`bot.handoff.escalations.hand_off`) refuse a new hand-off, the
member is given the contact window instead (:func:`limit_reached`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.sessions import carried_handoff_reasons
from bot.handoff.hours import opening_label, parse_hours
from bot.policy.answers import (
    INTENT_LABELS,
    MENU_INTENTS,
    Button,
    Reply,
    contact_line,
    handoff_button,
)
from bot.policy.profiles.schema import Profile

# Reasons a quick-reply payload may carry; anything else counts as the member's request.
PAYLOAD_REASONS = ("member_request", "complaint", "repeated_fallback")
HANDOFF_INTENT = "request_human"
# A new Rasa session (or a restart) forgets what was offered before it.
_SESSION_EVENTS = ("session_started", "restart")


@dataclass(frozen=True)
class Decision:
    """Offer alternatives first, or hand over now (and why)."""

    escalate: bool
    reason: str = "member_request"


def payload_reason_of(payload: object) -> str | None:
    """The hand-off reason in a quick reply's payload (``/request_human{...}``), if any."""
    if not isinstance(payload, str):
        return None
    prefix = f"/{HANDOFF_INTENT}"
    text = payload.strip()
    if not text.startswith(prefix):
        return None
    try:
        entities = json.loads(text[len(prefix) :] or "{}")
    except ValueError:
        return None
    reason = entities.get("handoff_reason") if isinstance(entities, dict) else None
    return reason if reason in PAYLOAD_REASONS else None


def offered_reasons(events: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The hand-off reasons the assistant's own quick replies offered in this session.

    Read from the tracker's ``bot`` events (their buttons), which only the assistant
    writes, and from the ``session_started`` event of a session that continues a long
    conversation (:func:`bot.core.sessions.carried_handoff_reasons`, written by
    ``action_session_start``); a member's message cannot add to them.

    Args:
        events: the conversation's tracker events, oldest first.
    """
    offered: set[str] = set()
    for event in events:
        kind = event.get("event")
        if kind in _SESSION_EVENTS:
            # A session continuing a long conversation carries them over (core.sessions).
            offered = set(carried_handoff_reasons(event))
        elif kind == "bot":
            data = event.get("data")
            buttons = data.get("buttons") if isinstance(data, Mapping) else None
            for button in buttons or ():
                if isinstance(button, Mapping):
                    reason = payload_reason_of(button.get("payload"))
                    if reason is not None:
                        offered.add(reason)
    return frozenset(offered)


def decide(already_offered: bool, payload_reason: str | None, offered: Collection[str]) -> Decision:
    """Whether a request for a person hands over now, and why.

    Args:
        already_offered: the assistant offered its alternatives earlier (the slot).
        payload_reason: the ``handoff_reason`` the message carried, if any.
        offered: the reasons the assistant's quick replies offered in this session
            (:func:`offered_reasons`).

    Returns:
        Hand over with the payload's reason only if it was offered; otherwise the
        message is a plain request for a person: hand over (``member_request``) when
        the assistant has already offered its alternatives or a person, else offer.
    """
    if payload_reason in PAYLOAD_REASONS and payload_reason in offered:
        return Decision(True, payload_reason)
    return Decision(already_offered or bool(offered))


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


def limit_reached(profile: Profile, refused: str) -> list[Reply]:
    """The hand-off limits refused a new one: the contact window instead.

    Args:
        profile: the organization's profile.
        refused: ``conversation`` (this conversation's daily share is used) or
            ``overall`` (many requests at once).
    """
    if refused == "conversation":
        lead = (
            "申し訳ありません。このチャットから担当者へおつなぎできる回数の上限に"
            "達したため、本日はこれ以上おつなぎできません。"
        )
    else:
        lead = (
            "申し訳ありません。ただいま担当者へのおつなぎのご依頼が集中しているため、"
            "チャットからはおつなぎできませんでした。"
        )
    return [
        Reply(
            f"{lead}お手数ですが、{contact_line(profile)} へ直接お問い合わせください。"
            "個人情報の取扱いについてのご質問には、このチャットで引き続きお答えします。"
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
