"""The channel guard with its state in Redis, so that its limits hold across replicas.

:class:`SharedChannelGuard` decides exactly as :class:`~bot.channels.guard.ChannelGuard`
does (same rate window, notice once then silence, length limit, payloads only where
offered, one press per offer), but keeps each sender's state in Redis, where every rasa
server sees it:

- the **rate window** and the "notice sent" flag: otherwise a member whose messages
  nginx spreads over two replicas could send twice the limit;
- the **offered buttons**: an answer sent on replica A (or a staff reply emitted there)
  offers buttons that the member presses on replica B, always on LINE (LINE's webhooks
  are not sticky), and on the website chat whenever the offer left through another
  replica's HTTP API. A per-process offer would turn a legitimate press into plain words.

Why two Lua scripts rather than the ``limits`` library: one member message must count in
the window, check the notice flag, close the bot's open offer and use up a matching
offer in one atomic step (two replicas must not both accept the same press, nor both
miss the limit), in one round trip on the member's path. ``limits`` keeps the count
only; the rest would need a second, non-atomic exchange. A sorted set per sender holds
the window (scores are the times), another the offer (payload hashes in the order
offered), with TTLs so that idle senders leave Redis as they leave the in-memory guard.

Keys carry :func:`~bot.channels.shared_state.key_part` of the sender id and payloads
only as hashes: neither a member's id nor a button's payload is in Redis in clear. Keys
of one sender share a hash tag, so the scripts also run on Redis Cluster.

If Redis fails at run time, the guard decides with its per-process twin
(:attr:`SharedChannelGuard.fallback`) until Redis answers again: the message is handled,
the limit holds per replica meanwhile, and a button offered through Redis before the
outage is taken as plain words, never as an intent it might not be.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from bot.channels.guard import (
    INTENT_PREFIX,
    MAX_MESSAGE_CHARS,
    RATE_LIMITED_REPLY,
    RATE_WINDOW_S,
    ChannelGuard,
    Verdict,
    hashed_sender,
    judge,
    offer_candidate,
)
from bot.channels.shared_state import KEY_PREFIX, REDIS_ERRORS, Outage, key_part

logger = logging.getLogger(__name__)

# What the admit script answers.
SILENT = 0  # over the limit, the notice already sent
LIMITED = 1  # over the limit: send the notice
COUNTED = 2  # within the limit, no offer used
TAKEN = 3  # within the limit, and the payload was offered: the offer is used up

# KEYS: window, notified, offer, offer-open. ARGV: now, cutoff, limit, window entry,
# payload hash ('' for none), window in ms. Numbers come formatted from Python: Lua
# would print a time with microseconds to only 14 significant digits.
_ADMIT = """
redis.call('DEL', KEYS[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[6]) then
    return 1
  end
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if ARGV[5] ~= '' and redis.call('ZSCORE', KEYS[3], ARGV[5]) then
  redis.call('DEL', KEYS[3])
  return 3
end
return 2
"""

# KEYS: offer, offer-open. ARGV: idle ms, most payloads kept, payload hashes...
# The first call after a member message replaces the offer; later ones add to it, in
# order (a payload offered again keeps its place), the oldest dropped beyond the cap.
_OFFER = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local score = 0
if last[2] then
  score = tonumber(last[2]) + 1
end
for i = 3, #ARGV do
  score = score + redis.call('ZADD', KEYS[1], 'NX', score, ARGV[i])
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""


def payload_hash(payload: str) -> str:
    """How an offered payload is kept in Redis: its SHA-256, hex."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class SharedChannelGuard:
    """The channel guard with its per-sender state in Redis (see the module doc).

    Attributes:
        max_per_minute: messages a sender may send in any 60 seconds.
        max_chars: the longest message handed on, in characters.
        fallback: the per-process guard that decides while Redis fails.
    """

    def __init__(
        self,
        client: Any,
        channel: str,
        max_per_minute: int = 20,
        max_chars: int = MAX_MESSAGE_CHARS,
        *,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a guard.

        Args:
            client: a ``redis.asyncio.Redis`` (:func:`bot.channels.shared_state.connect`).
            channel: the channel's name, which separates its senders' keys.
            max_per_minute: messages a sender may send in any 60 seconds.
            max_chars: the longest message handed on, in characters.
            prefix: the start of every key (tests give their own).
            clock: seconds since the epoch. Wall-clock time, since replicas compare
                times: their clocks must agree to within seconds (NTP), which for a
                60-second window is plenty.

        Raises:
            ValueError: If a limit is not positive.
        """
        self.fallback = ChannelGuard(max_per_minute, max_chars)
        self.max_per_minute = max_per_minute
        self.max_chars = max_chars
        self._clock = clock
        self._prefix = f"{prefix}guard:{channel}:"
        self._admit = client.register_script(_ADMIT)
        self._offer = client.register_script(_OFFER)
        self._outage = Outage(f"{channel} channel guard")

    def _keys(self, sender_id: str) -> list[str]:
        # One hash tag per sender: a script's keys must be in one Redis Cluster slot.
        base = f"{self._prefix}{{{key_part(sender_id)}}}"
        return [f"{base}:window", f"{base}:notified", f"{base}:offer", f"{base}:open"]

    async def admit_async(self, sender_id: str, text: str) -> Verdict:
        """Decide what of a member's message goes to Rasa, and what to say back.

        As :meth:`ChannelGuard.admit`, across replicas.

        Args:
            sender_id: who sent it.
            text: the message as the member sent it.

        Returns:
            The verdict.
        """
        now = self._clock()
        candidate = offer_candidate(text, self.max_chars)
        try:
            answer = await self._admit(
                keys=self._keys(sender_id),
                args=[
                    f"{now:.6f}",
                    f"{now - RATE_WINDOW_S:.6f}",
                    self.max_per_minute,
                    f"{now:.6f}:{uuid.uuid4().hex}",
                    payload_hash(candidate) if candidate else "",
                    int(RATE_WINDOW_S * 1000),
                ],
            )
        except REDIS_ERRORS as error:
            self._outage.failed(error)
            return self.fallback.admit(sender_id, text)
        self._outage.answered()
        if int(answer) == SILENT:
            return Verdict(None, None)
        if int(answer) == LIMITED:
            logger.info("Rate limit reached for sender %s", hashed_sender(sender_id))
            return Verdict(None, RATE_LIMITED_REPLY)
        taken = int(answer) == TAKEN
        return judge(sender_id, text, self.max_chars, lambda _: taken)

    async def offered_async(self, sender_id: str, payloads: Iterable[str]) -> None:
        """Remember the payloads of the buttons the bot just sent this sender.

        As :meth:`ChannelGuard.offered`, across replicas.

        Args:
            sender_id: the sender the buttons went to.
            payloads: the buttons' payloads, as sent.
        """
        intents = [p.strip() for p in payloads if p.strip().startswith(INTENT_PREFIX)]
        if not intents:
            return
        keys = self._keys(sender_id)
        try:
            await self._offer(
                keys=[keys[2], keys[3]],
                args=[
                    int(ChannelGuard.idle_seconds * 1000),
                    ChannelGuard.max_offered,
                    *(payload_hash(payload) for payload in intents),
                ],
            )
        except REDIS_ERRORS as error:
            self._outage.failed(error)
            self.fallback.offered(sender_id, intents)
            return
        self._outage.answered()
