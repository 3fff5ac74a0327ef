"""A burst of LINE deliveries: how many are processed at once, and that none is lost.

The channel is the real one, its API calls go to the LINE stand-in on loopback
(``tests/line_stand_in.py``); Rasa is a function that answers like the assistant and
records which turns were in progress together, which is what the channel's scheduling
decides. How fast the webhook answers under a burst is measured by
``python -m bench.channels --concurrency 200`` (docs/benchmarks.md), not asserted here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.channels.line.api import LineApi
from bot.channels.line.channel import LineInput
from bot.channels.line.config import DEFAULT_MAX_CONCURRENT_EVENTS, LineConfig
from bot.channels.line.signature import sign
from tests.channels.line.support import FakeRasa, body, no_sleep, text_event
from tests.line_stand_in import ACCESS_TOKEN, CHANNEL_SECRET, StandIn

LIMIT = 3
MEMBERS = [f"U{index:032x}" for index in range(8)]
MESSAGES_EACH = 3


class CountingRasa(FakeRasa):
    """Answers like the assistant, taking a while, and records the turns in progress."""

    def __init__(self) -> None:
        super().__init__()
        self.in_progress: set[Any] = set()
        self.most_at_once = 0
        self.overlapping_members: list[str] = []

    async def __call__(self, message: Any) -> None:
        if any(other.sender_id == message.sender_id for other in self.in_progress):
            self.overlapping_members.append(message.sender_id)
        self.in_progress.add(message)
        self.most_at_once = max(self.most_at_once, len(self.in_progress))
        try:
            # A member's first message takes longest: were turns not kept in order per
            # member, the later ones would overtake it.
            first = message.text.endswith(" 0")
            await asyncio.sleep(0.05 if first else 0.005)
            await super().__call__(message)
        finally:
            self.in_progress.discard(message)


def burst_event(member: str, turn: int) -> dict[str, Any]:
    return text_event(
        f"{member} {turn}",
        source={"type": "user", "userId": member},
        token=f"token-{member}-{turn}",
        n=f"{member}{turn}",
    )


def channel_with_limit(stand_in: StandIn, limit: int) -> LineInput:
    config = LineConfig(CHANNEL_SECRET, ACCESS_TOKEN, stand_in.url, max_concurrent_events=limit)
    return LineInput(config, api=LineApi(ACCESS_TOKEN, stand_in.url, sleep=no_sleep))


def test_a_burst_is_processed_a_few_at_a_time_and_every_delivery_is_answered(stand_in):
    channel, rasa = channel_with_limit(stand_in, LIMIT), CountingRasa()
    # Each member's messages, one webhook body each, interleaved with the others'.
    events = [burst_event(member, turn) for turn in range(MESSAGES_EACH) for member in MEMBERS]

    async def go() -> None:
        for event in events:
            raw = body(event)
            status, accepted = channel.accept(raw, sign(CHANNEL_SECRET, raw))
            assert status == 200
            channel.submit(accepted, rasa)
        await channel.drain()
        await channel.api.close()

    asyncio.run(go())

    assert rasa.most_at_once == LIMIT
    assert rasa.overlapping_members == []
    for member in MEMBERS:
        mine = [message.text for message in rasa.received if member in message.sender_id]
        assert mine == [f"{member} {turn}" for turn in range(MESSAGES_EACH)]
    replies = [call.body["replyToken"] for call in stand_in.successful()]
    assert sorted(replies) == sorted(event["replyToken"] for event in events)
    for member in MEMBERS:
        assert [token for token in replies if member in token] == [
            f"token-{member}-{turn}" for turn in range(MESSAGES_EACH)
        ]
    assert channel.lanes.running == channel.lanes.pending == 0


def test_one_body_with_several_members_keeps_each_members_order(stand_in):
    channel, rasa = channel_with_limit(stand_in, LIMIT), CountingRasa()
    events = [burst_event(member, turn) for member in MEMBERS[:2] for turn in range(2)]

    async def go() -> None:
        raw = body(*events)
        status, accepted = channel.accept(raw, sign(CHANNEL_SECRET, raw))
        assert status == 200
        channel.submit(accepted, rasa)
        await channel.drain()
        await channel.api.close()

    asyncio.run(go())

    assert rasa.most_at_once == 2  # the two members at once, each in order
    assert rasa.overlapping_members == []
    for member in MEMBERS[:2]:
        mine = [message.text for message in rasa.received if member in message.sender_id]
        assert mine == [f"{member} 0", f"{member} 1"]
    assert len(stand_in.successful()) == len(events)


@pytest.mark.parametrize(
    ("entry", "env", "expected"),
    [
        ({}, {}, DEFAULT_MAX_CONCURRENT_EVENTS),
        ({}, {"LINE_MAX_CONCURRENT_EVENTS": "2"}, 2),
        ({"max_concurrent_events": 6}, {"LINE_MAX_CONCURRENT_EVENTS": "2"}, 6),
    ],
)
def test_the_limit_is_read_from_the_entry_or_the_environment(entry, env, expected):
    assert LineConfig.from_credentials(entry, env).max_concurrent_events == expected


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_limit_that_is_not_a_positive_number_is_refused(value):
    with pytest.raises(ValueError):
        LineConfig.from_credentials({}, {"LINE_MAX_CONCURRENT_EVENTS": value})
