"""What a member channel lets through to Rasa: rate, length and typed intent payloads.

Both member channels (LINE and the website chat) pass every message a member sends
through one :class:`ChannelGuard` before Rasa sees it:

- **Rate**: at most ``max_per_minute`` messages per sender in any 60 seconds (a sliding
  window). The first message over the limit gets a polite notice; the ones after it
  get nothing until the window has room again, so a flood does not make the bot flood
  back.
- **Length**: a message longer than ``max_chars`` characters is not handed on; the
  member is told the limit.
- **Intent payloads**: Rasa reads a message starting with ``/`` as an intent with
  entities (``/ask_my_data{"verified": true}``), skipping the NLU. A member may send
  one only where the bot itself offered it as a button: the channel reports the
  payloads it sent with :meth:`ChannelGuard.offered`, and :meth:`ChannelGuard.admit`
  passes a payload through only if it is one of them (then the offer is used up).
  Anything else has its leading ``/`` removed and is handed on as plain words.

Pure Python (no Rasa import), safe to call from threads or an event loop. Memory is
bounded: senders idle for :attr:`ChannelGuard.idle_seconds` are forgotten, and at most
:attr:`ChannelGuard.max_senders` are tracked (the least recently active go first).
Logs carry neither message text nor the raw sender id, only :func:`hashed_sender`.

This guard keeps its state in its process. With ``REDIS_URL`` the channels use
:class:`~bot.channels.shared_guard.SharedChannelGuard` instead, which keeps the same
state in Redis for every replica; both answer the :class:`Guard` protocol, which the
channels call (its methods are coroutines, since the shared one waits on Redis).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
# Rasa's INTENT_MESSAGE_PREFIX; repeated here so that the guard needs no Rasa import.
INTENT_PREFIX = "/"
RATE_WINDOW_S = 60.0

RATE_LIMITED_REPLY = (
    "短い時間に多くのメッセージが届いたため、少し時間をおいてから送ってください。"
    "1分ほどお待ちいただくと、またお答えできます。"
)
EMPTY_REPLY = "ご質問やご用件を文章でお送りください。"


def too_long_reply(max_chars: int) -> str:
    """The notice for a message over the length limit, naming the limit.

    Args:
        max_chars: the limit in characters.

    Returns:
        A polite Japanese message.
    """
    return (
        f"メッセージが長すぎるため、お受けできませんでした。"
        f"お手数ですが、{max_chars}文字以内にまとめて、もう一度お送りください。"
    )


def hashed_sender(sender_id: str) -> str:
    """A short, stable pseudonym of a sender id, for logs.

    The servers' log redaction (``bot.identity.redact``) leaves such a 12-digit hex identifier
    readable when it has a letter in it; the rare all-digit one (about 1 in 280) is
    masked like any run of digits, which loses the correlation but never a value.

    Args:
        sender_id: the channel's id of the member (a LINE user id, a chat session id).

    Returns:
        The first 12 hex digits of the SHA-256 of the id.
    """
    return hashlib.sha256(sender_id.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Verdict:
    """What to do with one message from a member.

    Attributes:
        text: what to hand to Rasa; None to hand nothing.
        reply: a polite Japanese message to send back to the member (instead of, or
            as well as, Rasa's answer); None for no message.
    """

    text: str | None
    reply: str | None


class Guard(Protocol):
    """What a channel asks of its guard: :class:`ChannelGuard` or the shared one."""

    max_per_minute: int
    max_chars: int

    async def admit_async(self, sender_id: str, text: str) -> Verdict:
        """Decide what of a member's message goes to Rasa (see :meth:`ChannelGuard.admit`)."""
        ...

    async def offered_async(self, sender_id: str, payloads: Iterable[str]) -> None:
        """Remember the buttons sent to a sender (see :meth:`ChannelGuard.offered`)."""
        ...


@dataclass
class _Sender:
    """What the guard remembers about one sender."""

    last_seen: float
    # Times of the messages counted in the rate window, oldest first.
    counted: deque[float] = field(default_factory=deque)
    # The intent payloads of the buttons the bot offered last (a dict keeps order).
    offer: dict[str, None] = field(default_factory=dict)
    # True while the bot is still answering the member's last message: buttons it
    # sends now belong to the same offer. A new member message starts a new offer.
    offer_open: bool = False
    # The rate-limit notice went out and the window is still full: stay silent.
    limit_notified: bool = False


class ChannelGuard:
    """Per-sender rate limit, length limit and intent-payload policy of a channel.

    Attributes:
        max_senders: how many senders are tracked at most.
        idle_seconds: after how long without a message or an offer a sender is
            forgotten (their rate window and offered buttons with them).
        max_offered: how many payloads one offer keeps at most.
    """

    max_senders: ClassVar[int] = 10_000
    # Long enough that a member who leaves a chat open over lunch can still press the
    # buttons they were offered; short enough that the table does not grow all day.
    idle_seconds: ClassVar[float] = 6 * 3600.0
    max_offered: ClassVar[int] = 50

    def __init__(
        self,
        max_per_minute: int = 20,
        max_chars: int = MAX_MESSAGE_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a guard.

        Args:
            max_per_minute: messages a sender may send in any 60 seconds.
            max_chars: the longest message handed on, in characters.
            clock: seconds from a monotonic clock (a fake one in tests).

        Raises:
            ValueError: If a limit is not positive.
        """
        if max_per_minute < 1 or max_chars < 1:
            raise ValueError("max_per_minute and max_chars must be positive")
        self.max_per_minute = max_per_minute
        self.max_chars = max_chars
        self._clock = clock
        # Least recently active first, so forgetting idle senders pops from the front.
        self._senders: OrderedDict[str, _Sender] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def tracked_senders(self) -> int:
        """How many senders the guard remembers right now."""
        with self._lock:
            return len(self._senders)

    def offered(self, sender_id: str, payloads: Iterable[str]) -> None:
        """Remember the payloads of the buttons the bot just sent this sender.

        Calls made while the bot answers one member message add to one offer; the
        first call after the member's next message replaces it. Payloads that do not
        start with ``/`` are ignored: they reach Rasa as plain text anyway.

        Args:
            sender_id: the sender the buttons went to.
            payloads: the buttons' payloads, as sent.
        """
        intents = [p.strip() for p in payloads if p.strip().startswith(INTENT_PREFIX)]
        if not intents:
            return
        with self._lock:
            state = self._touch(sender_id, self._clock())
            if not state.offer_open:
                state.offer = {}
                state.offer_open = True
            for payload in intents:
                state.offer[payload] = None
            while len(state.offer) > self.max_offered:
                del state.offer[next(iter(state.offer))]

    async def offered_async(self, sender_id: str, payloads: Iterable[str]) -> None:
        """:meth:`offered`, as the :class:`Guard` protocol has it."""
        self.offered(sender_id, payloads)

    async def admit_async(self, sender_id: str, text: str) -> Verdict:
        """:meth:`admit`, as the :class:`Guard` protocol has it."""
        return self.admit(sender_id, text)

    def admit(self, sender_id: str, text: str) -> Verdict:
        """Decide what of a member's message goes to Rasa, and what to say back.

        Args:
            sender_id: who sent it.
            text: the message as the member sent it (typed, or a button's payload).

        Returns:
            The verdict: the text for Rasa (stripped of surrounding whitespace, as
            Rasa would) or None, and a notice for the member or None.
        """
        with self._lock:
            now = self._clock()
            state = self._touch(sender_id, now)
            state.offer_open = False
            while state.counted and state.counted[0] <= now - RATE_WINDOW_S:
                state.counted.popleft()
            if len(state.counted) >= self.max_per_minute:
                if state.limit_notified:
                    return Verdict(None, None)
                state.limit_notified = True
                logger.info("Rate limit reached for sender %s", hashed_sender(sender_id))
                return Verdict(None, RATE_LIMITED_REPLY)
            state.limit_notified = False
            state.counted.append(now)
            return judge(sender_id, text, self.max_chars, lambda payload: _take(state, payload))

    def _touch(self, sender_id: str, now: float) -> _Sender:
        """The sender's state, marked active now; forgets idle and surplus senders."""
        state = self._senders.get(sender_id)
        if state is None:
            state = self._senders[sender_id] = _Sender(last_seen=now)
        state.last_seen = now
        self._senders.move_to_end(sender_id)
        horizon = now - self.idle_seconds
        while self._senders:
            oldest = next(iter(self._senders.values()))
            if len(self._senders) <= self.max_senders and oldest.last_seen > horizon:
                break
            self._senders.popitem(last=False)
        return state


def _take(state: _Sender, payload: str) -> bool:
    """Use up the sender's offer if ``payload`` is in it; whether it was."""
    if payload not in state.offer:
        return False
    # One press per offer: a second button of the same set, or the same button twice,
    # is not an answer to the question the buttons asked.
    state.offer = {}
    return True


def offer_candidate(text: str, max_chars: int) -> str | None:
    """The payload an offer would have to match for ``text``, if any.

    Only a message within the length limit that starts with ``/`` is compared with the
    offer (and uses it up): a longer one is refused before that.

    Args:
        text: the message as the member sent it.
        max_chars: the length limit.

    Returns:
        The stripped text, or None.
    """
    stripped = text.strip()
    if len(stripped) > max_chars or not stripped.startswith(INTENT_PREFIX):
        return None
    return stripped


def judge(sender_id: str, text: str, max_chars: int, take_offer: Callable[[str], bool]) -> Verdict:
    """The verdict on a message the rate limit let through: length, then payload policy.

    Args:
        sender_id: who sent it (for logs, hashed).
        text: the message as the member sent it.
        max_chars: the length limit.
        take_offer: uses up the sender's offer if the payload is in it; whether it was.

    Returns:
        The verdict.
    """
    stripped = text.strip()
    if len(stripped) > max_chars:
        logger.info(
            "Message of %d characters refused for sender %s",
            len(stripped),
            hashed_sender(sender_id),
        )
        return Verdict(None, too_long_reply(max_chars))
    if not stripped.startswith(INTENT_PREFIX):
        return Verdict(stripped, None) if stripped else Verdict(None, EMPTY_REPLY)
    if take_offer(stripped):
        return Verdict(stripped, None)
    logger.info(
        "Intent payload not offered to sender %s: handed on as plain words",
        hashed_sender(sender_id),
    )
    words = _without_prefix(stripped)
    return Verdict(words, None) if words else Verdict(None, EMPTY_REPLY)


def _without_prefix(text: str) -> str:
    """``text`` with every leading ``/`` (and the whitespace after it) removed.

    Rasa strips a message before looking for the prefix, so ``"/ /greet"`` must lose
    both slashes for the rest never to be read as an intent.
    """
    while text.startswith(INTENT_PREFIX):
        text = text[len(INTENT_PREFIX) :].strip()
    return text
