"""One listed message in its conversation, for the privacy officer (masked, no reveal)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from bot.db.models import Escalation
from bot.handoff.transcripts import Transcript, read_transcript
from bot.insights import events

CONTEXT_LINES = 40  # lines shown before and after the message


def conversation_member(session: Session, sender_id: str) -> int | None:
    """The verified member of the conversation's latest hand-off, if it had one.

    Their names (and their family's) are then masked too, as on the escalation page.
    """
    return session.execute(
        sa.select(Escalation.member_id)
        .where(Escalation.sender_id == sender_id, Escalation.member_id.is_not(None))
        .order_by(Escalation.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def message_sender(connection: Connection, event_id: int) -> str | None:
    """The conversation of a member's message (a ``user`` event), else None."""
    found = events.event_sender(connection, event_id)
    return found[0] if found is not None and found[1] == "user" else None


def around(
    connection: Connection,
    sender_id: str,
    event_id: int,
    known_names: Sequence[str],
    public_numbers: Sequence[str],
) -> Transcript:
    """The conversation's lines up to and including ``event_id``, and after it, masked."""
    before = read_transcript(
        connection,
        sender_id,
        before_event_id=event_id + 1,
        limit=CONTEXT_LINES,
        known_names=known_names,
        public_numbers=public_numbers,
    )
    after = read_transcript(
        connection,
        sender_id,
        after_event_id=event_id,
        limit=CONTEXT_LINES,
        known_names=known_names,
        public_numbers=public_numbers,
    )
    return Transcript(sender_id, before.lines + after.lines, before.earlier_before)
