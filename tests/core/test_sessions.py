"""When a long conversation continues in a new Rasa session, and what carries over."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core.sessions import (
    CONTINUES,
    HANDOFF_REASONS,
    at_quiet_point,
    carried_handoff_reasons,
    carried_slots,
    continuation_metadata,
    continues,
    rollover_due,
    session_key,
    user_turns,
)

NOW = 1_800_000_000.0


def started(at: float, **metadata: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event": "session_started", "timestamp": at}
    if metadata:
        event["metadata"] = metadata
    return event


def turn(at: float, action: str = "action_answer_policy") -> list[dict[str, Any]]:
    """One FAQ turn: the member's message, the answer, the listen."""
    return [
        {"event": "user", "text": "質問", "timestamp": at},
        {"event": "action", "name": action, "timestamp": at + 0.1},
        {"event": "bot", "text": "回答", "timestamp": at + 0.2},
        {"event": "action", "name": "action_listen", "timestamp": at + 0.3},
    ]


def session(start: float, turns: int, **metadata: Any) -> list[dict[str, Any]]:
    events = [
        {"event": "action", "name": "action_session_start", "timestamp": start - 0.1},
        started(start, **metadata),
        {"event": "action", "name": "action_listen", "timestamp": start + 0.1},
    ]
    for index in range(turns):
        events += turn(start + 1 + index)
    return events


def test_only_the_latest_sessions_messages_count():
    events = session(NOW - 100, 7) + session(NOW - 50, 3)
    assert user_turns(events) == 3
    assert user_turns(session(NOW - 50, 0)) == 0
    # After a restart the count starts again.
    restarted = [*session(NOW - 100, 7), {"event": "restart", "timestamp": NOW - 60}]
    assert user_turns(restarted) == 0


def test_a_session_at_the_limit_and_quiet_is_due():
    assert not rollover_due(session(NOW - 60, 19), 20)
    assert rollover_due(session(NOW - 60, 20), 20)
    assert rollover_due(session(NOW - 60, 35), 20)


@pytest.mark.parametrize(
    ("tail", "quiet"),
    [
        # A form runs: the verification asks for the birth date.
        ([{"event": "active_loop", "name": "verification_form", "timestamp": NOW}], False),
        # ... and has ended.
        (
            [
                {"event": "active_loop", "name": "verification_form", "timestamp": NOW},
                {"event": "active_loop", "name": None, "timestamp": NOW + 1},
            ],
            True,
        ),
        # Staff hold the conversation, then hand it back.
        ([{"event": "pause", "timestamp": NOW}], False),
        ([{"event": "pause", "timestamp": NOW}, {"event": "resume", "timestamp": NOW + 1}], True),
        # Right after a misunderstanding: a second one in a row offers a person.
        (turn(NOW, action="action_clarify"), False),
        (turn(NOW, action="action_clarify") + turn(NOW + 5), True),
    ],
)
def test_a_quiet_point_has_no_form_no_pause_and_no_pending_clarification(tail, quiet):
    events = session(NOW - 60, 20) + tail
    assert at_quiet_point(events) is quiet
    assert rollover_due(events, 20) is quiet


def test_a_form_of_an_earlier_session_does_not_matter():
    form = {"event": "active_loop", "name": "case_form", "timestamp": NOW - 150}
    earlier = [*session(NOW - 200, 2), form]
    assert at_quiet_point(earlier + session(NOW - 60, 20))


def test_a_session_continues_only_when_due_and_not_idle():
    due = session(NOW - 60, 20)  # the last message 60 - 20 = 40 s ago
    assert continues(due, 20, idle_minutes=15, now=NOW)
    # 15 idle minutes start a session afresh, however long the last one was.
    assert not continues(due, 20, idle_minutes=15, now=NOW + 15 * 60)
    assert not continues(session(NOW - 60, 5), 20, idle_minutes=15, now=NOW)
    # A new conversation, and one just restarted, start afresh.
    assert not continues([], 20, idle_minutes=15, now=NOW)
    restarted = [*due, {"event": "restart", "timestamp": NOW - 1}]
    assert not continues(restarted, 20, idle_minutes=15, now=NOW)
    # Sessions that never expire by idleness (0) still continue when due.
    assert continues(due, 20, idle_minutes=0, now=NOW + 3600)


def test_a_continuing_session_keeps_the_key_of_the_first():
    first = session(NOW - 300, 20)
    key = session_key(first)
    assert key == f"session_started@{NOW - 300}"
    second = session(NOW - 200, 20, **continuation_metadata(first, []))
    assert session_key(first + second) == key
    # The store hands Rasa the latest session only: its key is still the first one's.
    third = session(NOW - 100, 3, **continuation_metadata(second, []))
    assert session_key(third) == key
    # A session that starts afresh, or a restart, gets a key of its own.
    fresh = session(NOW - 50, 1)
    assert session_key(first + second + fresh) == f"session_started@{NOW - 50}"
    assert session_key([*third, {"event": "restart", "timestamp": NOW}]) == f"restart@{NOW}"


def test_offered_hand_off_reasons_ride_on_the_continuing_session_start():
    first = session(NOW - 300, 20)
    metadata = continuation_metadata(first, {"repeated_fallback", "complaint"})
    assert metadata == {
        CONTINUES: session_key(first),
        HANDOFF_REASONS: ["complaint", "repeated_fallback"],
    }
    assert carried_handoff_reasons(started(NOW, **metadata)) == {"complaint", "repeated_fallback"}
    # Only a continuing session start carries any; junk is ignored.
    assert carried_handoff_reasons(started(NOW, **{HANDOFF_REASONS: ["complaint"]})) == set()
    junk = started(NOW, **{CONTINUES: "k", HANDOFF_REASONS: "complaint"})
    assert carried_handoff_reasons(junk) == set()
    assert carried_handoff_reasons({"event": "restart", "metadata": metadata}) == set()


def test_every_slot_off_its_initial_value_carries_over():
    values = {
        "handoff_offered": True,
        "pending_request": None,
        "id_input_failures": 0,
        "case_input_failures": None,
        "verification_outcome": "verified",
    }
    initial = {"id_input_failures": 0, "case_input_failures": 0}
    assert carried_slots(values, initial) == {
        "handoff_offered": True,
        "case_input_failures": None,
        "verification_outcome": "verified",
    }
