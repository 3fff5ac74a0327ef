"""Telling a member what happened to their case: the outbound-message interface.

Staff actions that the member must be told about (an extension with its new period, a
decision) go through a :class:`Notifier`. :class:`SmsNotifier` sends an SMS to the
phone on record through :mod:`bot.sms` (the demo outbox by default) and records every
message as an ``OutboundMessage``; a LINE push notifier will implement the same
protocol. Texts carry the case number and what happened, nothing else: the reasons
and explanations are read in the chat after identity verification, since an SMS can
be seen by whoever holds the phone.

The message is sent inside the caller's transaction, like verification codes: if the
transaction then fails, the member may have been told of a change that was not
stored. Staff see every attempt in ``outbound_messages``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from bot.cases.records import audit, utc
from bot.db.models import Escalation, Member, OutboundMessage
from bot.settings import load_settings
from bot.sms import SmsSender, sender_from_settings

logger = logging.getLogger(__name__)

NO_PHONE = "no phone on record"


class Notifier(Protocol):
    """Sends one case message to a member."""

    def notify(self, session: Session, member_id: int, text: str, now: datetime) -> None:
        """Deliver ``text`` to member ``member_id``; failures are recorded, not raised."""


class SmsNotifier:
    """Case messages by SMS to the member's phone on record."""

    def __init__(self, sender: SmsSender | None = None) -> None:
        """Send through ``sender``; by default the one the settings select (the outbox)."""
        self._sender = sender

    @property
    def sender(self) -> SmsSender:
        """The SMS sender, made from the settings on first use."""
        if self._sender is None:
            self._sender = sender_from_settings(load_settings())
        return self._sender

    def notify(self, session: Session, member_id: int, text: str, now: datetime) -> None:
        """Send ``text`` and record it; a failure becomes a failed row and an escalation."""
        now = utc(now)
        member = session.get(Member, member_id)
        phone = member.phone if member is not None else None
        message = OutboundMessage(channel="sms", to=phone or "", text=text, created_at=now)
        if not phone:
            message.status = "failed"
            message.error = NO_PHONE
        else:
            try:
                self.sender.send(phone, text)
            except Exception as error:  # any carrier failure: record it, never leak it
                message.status = "failed"
                # The class name and carrier code only: carrier messages quote numbers.
                message.error = f"{type(error).__name__} {getattr(error, 'code', '') or ''}"
                message.error = message.error.strip()
            else:
                message.status = "sent"
                message.sent_at = now
        session.add(message)
        session.flush()
        if message.status == "failed":
            # Staff must reach the member another way: the law wants them told.
            session.add(
                Escalation(
                    created_at=now,
                    reason="case_notification_failed",
                    member_id=member_id,
                    status="open",
                    note=f"outbound message #{message.id}: {message.error}",
                )
            )
            logger.warning("case notification to member %s failed (%s)", member_id, message.error)
        else:
            logger.info("case notification sent to member %s", member_id)
        audit(
            session,
            now,
            "case.notification_sent" if message.status == "sent" else "case.notification_failed",
            "system",
            member_id=member_id,
            outbound_message_id=message.id,
        )
