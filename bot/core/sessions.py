"""Rasa sessions of a long conversation: when a new one starts, and what carries over.

Every turn costs Rasa work in proportion to the events of the current session: the SQL
tracker store reads them all, the rule policy replays them into states, the action
server is sent all of them and the redacting store plans over them. A member who keeps
writing never reaches the 15 idle minutes that end a session, so that work grew without
bound (docs/benchmarks.md, "Long conversations").

So a session also ends after ``SESSION_TURN_LIMIT`` messages of the member, at the
start of the next turn that begins at a quiet point (:func:`at_quiet_point`: no form
running, not held by staff, not right after a misunderstanding). The new session
*continues* the old one: its ``session_started`` event carries, in its metadata, the
old session's key and the hand-off reasons the assistant's buttons offered (the action
``action_session_start`` adds them, with every slot's value), so the verification, the
request drafts and the offered buttons, all keyed to the session, carry on. The member
sees nothing of it. Only 15 idle minutes (or a restart) start a session afresh.

The events here are Rasa's events as dicts (``Event.as_dict()``, rasa-sdk's
``tracker.events``), oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Metadata keys of a continuing session's ``session_started`` event.
CONTINUES = "continues_session"  # the key of the session it continues
HANDOFF_REASONS = "offered_handoff_reasons"  # hand-off reasons offered before it
SESSION_EVENTS = ("session_started", "restart")
# Actions after which the next turn depends on this session's events, not only on its
# slots: the rule "offer a person after two fallbacks in a row" looks back at the
# clarification.
NEEDS_PREVIOUS_TURN = frozenset({"action_clarify"})
LISTEN = "action_listen"

Event = Mapping[str, Any]


def current_session(events: Sequence[Event]) -> Sequence[Event]:
    """The events of the latest session, from its ``session_started`` or ``restart`` on."""
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") in SESSION_EVENTS:
            return events[index:]
    return events


def user_turns(events: Sequence[Event]) -> int:
    """How many messages the member sent in the latest session."""
    return sum(1 for event in current_session(events) if event.get("event") == "user")


def at_quiet_point(events: Sequence[Event]) -> bool:
    """Whether the next turn may start a new session without the member noticing.

    Quiet: no form (loop) is running, staff do not hold the conversation (paused), and
    the last action is not one the next turn's rules look back at.
    """
    active_loop: str | None = None
    paused = False
    last_action: str | None = None
    for event in current_session(events):
        kind = event.get("event")
        if kind == "active_loop":
            active_loop = event.get("name")
        elif kind == "pause":
            paused = True
        elif kind == "resume":
            paused = False
        elif kind == "action" and event.get("name") != LISTEN:
            last_action = event.get("name")
    return active_loop is None and not paused and last_action not in NEEDS_PREVIOUS_TURN


def rollover_due(events: Sequence[Event], limit: int) -> bool:
    """Whether the session is long enough, and at a quiet point, to continue in a new one.

    Args:
        events: the conversation's events (at least those of its latest session).
        limit: the member's messages a session holds before it continues in a new one.
    """
    return user_turns(events) >= limit and at_quiet_point(events)


def continues(events: Sequence[Event], limit: int, idle_minutes: float, now: float) -> bool:
    """Whether a session starting now continues the latest one (rather than replacing it).

    What ``action_session_start`` asks: Rasa starts a session for a new conversation,
    after a restart, after ``idle_minutes`` without a message, and (``bot.rasa_sessions``)
    when :func:`rollover_due`. Only the last continues.

    Args:
        events: the conversation's events before the new session.
        limit: the turn limit the rasa server applies.
        idle_minutes: the domain's ``session_expiration_time`` (0: sessions never
            expire by idleness).
        now: the time (epoch seconds).
    """
    last_message = next(
        (e for e in reversed(current_session(events)) if e.get("event") == "user"), None
    )
    if last_message is None:
        return False
    idle = (
        idle_minutes > 0 and now - float(last_message.get("timestamp") or 0.0) > idle_minutes * 60
    )
    return not idle and rollover_due(events, limit)


def session_key(events: Iterable[Event]) -> str:
    """Identifies the current session: it changes with a new session or a /restart.

    A session that continues another (:data:`CONTINUES`) keeps that one's key: what is
    tied to the key (a verification, a request draft) carries on.
    """
    key = "start"
    for event in events:
        kind = event.get("event")
        if kind in SESSION_EVENTS:
            key = f"{kind}@{event.get('timestamp')}"
            carried = continued_from(event)
            if carried is not None:
                key = carried
    return key


def continued_from(event: Event) -> str | None:
    """The key of the session a ``session_started`` event continues, or None."""
    metadata = event.get("metadata")
    if event.get("event") != "session_started" or not isinstance(metadata, Mapping):
        return None
    key = metadata.get(CONTINUES)
    return key if isinstance(key, str) and key else None


def carried_handoff_reasons(event: Event) -> frozenset[str]:
    """The hand-off reasons a continuing ``session_started`` event carries over."""
    if continued_from(event) is None:
        return frozenset()
    reasons = event.get("metadata", {}).get(HANDOFF_REASONS)
    if not isinstance(reasons, list):
        return frozenset()
    return frozenset(reason for reason in reasons if isinstance(reason, str))


def continuation_metadata(events: Sequence[Event], offered: Iterable[str]) -> dict[str, Any]:
    """The metadata of the ``session_started`` event of a session continuing ``events``.

    Args:
        events: the conversation's events before the new session.
        offered: the hand-off reasons offered so far in the session that ends.
    """
    return {CONTINUES: session_key(events), HANDOFF_REASONS: sorted(offered)}


def carried_slots(values: Mapping[str, Any], initial: Mapping[str, Any]) -> dict[str, Any]:
    """The slots a continuing session sets: every one whose value is not its initial one.

    Args:
        values: each slot's value at the end of the session.
        initial: each slot's initial value (the domain's ``initial_value``, else None).
    """
    return {name: value for name, value in values.items() if value != initial.get(name)}
