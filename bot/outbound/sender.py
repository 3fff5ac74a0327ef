"""Sending a message to a member and recording it: the one writer of ``OutboundMessage``.

Every message the product sends on its own (verification codes, case notifications by
SMS or on LINE) becomes one ``outbound_messages`` row, sent or failed, so staff see
every attempt. :func:`send_sms` sends through an :class:`~bot.outbound.sms.SmsSender`
and records the outcome; :func:`record` records a message that was sent some other way
(a LINE push) or could not be sent at all (no phone on record).

The text recorded may differ from the text sent: a verification code is stored masked.
Nothing here logs a phone number or a message text, and a carrier's failure is recorded
as its exception's class name and error code only, since carrier messages quote numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.db.models import OutboundMessage
from bot.outbound.sms import SmsSender

SMS = "sms"
LINE = "line"


@dataclass(frozen=True)
class Delivery:
    """What became of one message.

    Attributes:
        message_id: its ``outbound_messages`` row.
        sent: whether it was handed to the carrier or channel.
        error: why not (no personal values), None when sent.
    """

    message_id: int
    sent: bool
    error: str | None = None


def record(
    session: Session,
    channel: str,
    to: str,
    text: str,
    now: datetime,
    error: str | None = None,
) -> Delivery:
    """Record one outbound message as sent at ``now``, or as failed with ``error``.

    Args:
        session: the unit of work (the row is flushed, so it has its id).
        channel: ``sms`` or ``line``.
        to: where it went (a phone number, a hashed LINE user id, or "" for nowhere).
        text: the text as it may be stored (codes masked).
        now: the current time (aware).
        error: why it was not sent; None when it was.

    Returns:
        The delivery, with the row's id.
    """
    failed = error is not None
    message = OutboundMessage(
        channel=channel,
        to=to,
        text=text,
        created_at=now,
        status="failed" if failed else "sent",
        sent_at=None if failed else now,
        error=error,
    )
    session.add(message)
    session.flush()
    return Delivery(message.id, not failed, error)


def carrier_error(error: Exception) -> str:
    """What of a carrier's exception may be stored: its class name and error code."""
    return f"{type(error).__name__} {getattr(error, 'code', '') or ''}".strip()


def send_sms(
    session: Session,
    sender: SmsSender,
    to: str,
    text: str,
    now: datetime,
    *,
    recorded_text: str | None = None,
) -> Delivery:
    """Send ``text`` by SMS to ``to`` and record it; a carrier failure is recorded, not raised.

    Args:
        session: the unit of work.
        sender: the configured SMS sender.
        to: the E.164 phone number.
        text: the text to send.
        now: the current time (aware).
        recorded_text: the text to store instead of ``text`` (e.g. with the code masked).

    Returns:
        The delivery: sent, or failed with the carrier's error.
    """
    stored = text if recorded_text is None else recorded_text
    try:
        sender.send(to, text)
    except Exception as error:  # any carrier failure: record it, never leak it
        return record(session, SMS, to, stored, now, error=carrier_error(error))
    return record(session, SMS, to, stored, now)
