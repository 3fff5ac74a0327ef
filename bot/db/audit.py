"""Appending to the audit log: the one place an ``AuditLog`` row is made.

Verification steps, case and escalation changes, staff logins: all of them go through
:func:`audit`, so every row has the same shape (actor, action, member, conversation).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from bot.db.models import AuditLog


class Source(Protocol):
    """Where an action came from: a conversation's sender id and channel."""

    @property
    def sender_id(self) -> str:
        """The conversation's sender id."""

    @property
    def channel(self) -> str:
        """The channel the conversation came through."""


def audit(
    session: Session,
    now: datetime,
    action: str,
    actor: str,
    *,
    member_id: int | None = None,
    conversation: Source | None = None,
    **detail: Any,
) -> None:
    """Append one audit row; ``detail`` must hold no personal values."""
    session.add(
        AuditLog(
            at=now,
            actor=actor,
            action=action,
            member_id=member_id,
            sender_id=conversation.sender_id if conversation else None,
            channel=conversation.channel if conversation else None,
            detail=detail,
        )
    )
