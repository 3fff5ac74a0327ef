"""Writing a message for a member to the outbox: the one writer of ``OutboundMessage``.

Every message the product sends on its own (verification codes, case notifications by
SMS or on LINE) becomes one ``outbound_messages`` row, so staff see every attempt.
:func:`enqueue` writes it ``pending`` in the caller's transaction, the transaction of
the change it announces: nothing is sent there. Once that transaction commits, the
process that wrote it tries to deliver it at once (:mod:`bot.outbound.outbox`, so a
verification code arrives within seconds), and the worker (``python -m bot.worker``)
delivers whatever is left; a transaction that rolls back takes its messages with it.
:func:`record` records a message that could not be sent at all (no phone on record).

The text recorded may differ from the text sent: a verification code is stored masked,
and the clear text waits in ``payload`` only until the row is finished. Nothing here
logs a phone number or a message text.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from bot.db.models import OutboundMessage, OutboundStatus

SMS = "sms"
LINE = "line"
# Where the ids written in a unit of work wait for its commit (``Session.info``).
AFTER_COMMIT_KEY = "bot.outbound.after_commit"


@dataclass(frozen=True)
class Delivery:
    """What became of one message when it was written.

    Attributes:
        message_id: its ``outbound_messages`` row.
        queued: whether it waits to be sent (False: recorded as failed at once).
        error: why it cannot be sent (no personal values), None when queued.
    """

    message_id: int
    queued: bool
    error: str | None = None


def record(
    session: Session,
    channel: str,
    to: str,
    text: str,
    now: datetime,
    error: str,
    *,
    purpose: str | None = None,
    member_id: int | None = None,
) -> Delivery:
    """Record one outbound message that cannot be sent, as failed with ``error``.

    Args:
        session: the unit of work (the row is flushed, so it has its id).
        channel: ``sms`` or ``line``.
        to: where it would have gone ("" for nowhere).
        text: the text as it may be stored.
        now: the current time (aware).
        error: why it was not sent.
        purpose: what it was for (``case_notification``, ...).
        member_id: the member it was for.

    Returns:
        The delivery, with the row's id.
    """
    message = OutboundMessage(
        channel=channel,
        to=to,
        text=text,
        created_at=now,
        status=OutboundStatus.FAILED.value,
        error=error,
        purpose=purpose,
        member_id=member_id,
        attempts=0,
    )
    session.add(message)
    session.flush()
    return Delivery(message.id, False, error)


def enqueue(
    session: Session,
    channel: str,
    to: str,
    text: str,
    now: datetime,
    *,
    address: str | None = None,
    send_text: str | None = None,
    purpose: str | None = None,
    member_id: int | None = None,
    expires_at: datetime | None = None,
    carriers: object | None = None,
) -> Delivery:
    """Write one message as pending, to be sent after the caller's transaction commits.

    Args:
        session: the unit of work of the change the message announces.
        channel: ``sms`` or ``line``.
        to: where it goes as it may be stored (a phone number, a hashed LINE user id).
        text: the text as it may be stored (codes masked).
        now: the current time (aware).
        address: where the carrier sends it, if not ``to`` (the LINE user id).
        send_text: the text to send, if not ``text`` (the code in clear).
        purpose: what it is for; the deliverer acts on a final failure by it.
        member_id: the member it is for.
        expires_at: no try after this (a code's end: a late code is useless).
        carriers: how this process sends it right after the commit
            (:class:`bot.outbound.outbox.Carriers`), when not the configured ones.

    Returns:
        The delivery, with the row's id.
    """
    message = OutboundMessage(
        channel=channel,
        to=to,
        text=text,
        created_at=now,
        status=OutboundStatus.PENDING.value,
        retry_key=str(uuid.uuid4()),
        purpose=purpose,
        member_id=member_id,
        payload=json.dumps(
            {"to": address or to, "text": text if send_text is None else send_text},
            ensure_ascii=False,
        ),
        attempts=0,
        next_attempt_at=now,
        expires_at=expires_at,
    )
    session.add(message)
    session.flush()
    session.info.setdefault(AFTER_COMMIT_KEY, []).append((message.id, carriers))
    return Delivery(message.id, True)


def carrier_error(error: Exception) -> str:
    """What of a carrier's exception may be stored: its class name and error code."""
    return f"{type(error).__name__} {getattr(error, 'code', '') or ''}".strip()
