"""The messages sent to each assistant: a fixed, seeded sample."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.settings import Settings
from bench.stats import chunk, seeded_sample

RASA_INIT_MESSAGES: tuple[str, ...] = (
    "hello",
    "hi there",
    "good morning",
    "hey",
    "I am sad",
    "I feel very unhappy today",
    "not good",
    "great",
    "I am feeling very good",
    "amazing",
    "goodbye",
    "bye bye",
    "see you later",
    "are you a bot?",
    "am I talking to a human?",
    "yes",
    "of course",
    "no",
    "not really",
    "that sounds good",
)
"""English messages that match the intents of the `rasa init` assistant."""


@dataclass(frozen=True)
class MessagePlan:
    """Every message one assistant receives, in sending order.

    Attributes:
        source: Where the messages come from, for the report.
        warmup: Sent before measuring, in a conversation of their own.
        sequential: The one sequential conversation.
        concurrent: The concurrent conversations.
    """

    source: str
    warmup: list[str]
    sequential: list[str]
    concurrent: list[list[str]]

    @property
    def longest_conversation(self) -> int:
        """The most messages any one conversation of the plan sends (at least 1)."""
        return max(1, *(len(m) for m in (self.warmup, self.sequential, *self.concurrent)))


def plan_messages(pool: Sequence[str], source: str, settings: Settings) -> MessagePlan:
    """Draws the warm-up, sequential and concurrent messages from ``pool``.

    Args:
        pool: The candidate messages (order does not matter beyond determinism).
        source: Where the pool comes from, for the report.
        settings: Message counts and seed.

    Returns:
        The plan; the same pool and settings always give the same plan.
    """
    ordered = sorted(set(pool))
    concurrent = seeded_sample(ordered, settings.concurrent_messages, settings.seed + 1)
    return MessagePlan(
        source=source,
        warmup=seeded_sample(ordered, settings.warmup_messages, settings.seed + 2),
        sequential=seeded_sample(ordered, settings.sequential_messages, settings.seed),
        concurrent=chunk(concurrent, settings.messages_per_conversation),
    )
