"""Telling a member what happened to their case: the outbound-message interface.

Staff actions that the member must be told about (an extension with its new period, a
decision) go through a :class:`Notifier`. :class:`SmsNotifier` sends an SMS to the
phone on record through :mod:`bot.outbound.sms` (the demo outbox by default) and records every
message as an ``OutboundMessage``. :class:`ChannelNotifier` pushes the message on
LINE to a member whose case came through LINE (the LINE user id the case was opened
from), and falls back to the SMS when LINE is not configured or the push fails.
Texts carry the case number and what happened, nothing else: the reasons
and explanations are read in the chat after identity verification, since an SMS can
be seen by whoever holds the phone.

The message is sent inside the caller's transaction, like verification codes: if the
transaction then fails, the member may have been told of a change that was not
stored. Staff see every attempt in ``outbound_messages``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import datetime
from typing import Protocol

import requests
from sqlalchemy.orm import Session

from bot.cases.records import utc
from bot.channels.guard import hashed_sender
from bot.core.conversation import native_id
from bot.db.audit import audit
from bot.db.models import Escalation, Member, OutboundMessage
from bot.outbound.sms import SmsSender, sender_from_settings
from bot.settings import load_settings

logger = logging.getLogger(__name__)

NO_PHONE = "no phone on record"
LINE_API_BASE_URL = "https://api.line.me"


class Notifier(Protocol):
    """Sends one case message to a member."""

    def notify(
        self,
        session: Session,
        member_id: int,
        text: str,
        now: datetime,
        *,
        channel: str | None = None,
        sender_id: str | None = None,
    ) -> None:
        """Deliver ``text`` to member ``member_id``; failures are recorded, not raised.

        ``channel`` and ``sender_id`` say where the case was opened (e.g. ``line`` and
        the LINE user id), for a notifier that answers on the member's own channel.
        """


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

    def notify(
        self,
        session: Session,
        member_id: int,
        text: str,
        now: datetime,
        *,
        channel: str | None = None,
        sender_id: str | None = None,
    ) -> None:
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
        _record(session, message, member_id, now)
        if message.status == "failed":
            # Staff must reach the member another way: the law wants them told.
            session.add(
                Escalation(
                    created_at=now,
                    reason="case_notification_failed",
                    member_id=member_id,
                    status="waiting",
                    note=f"outbound message #{message.id}: {message.error}",
                )
            )
            logger.warning("case notification to member %s failed (%s)", member_id, message.error)
        else:
            logger.info("case notification sent to member %s", member_id)


def _record(session: Session, message: OutboundMessage, member_id: int, now: datetime) -> None:
    """Store an outbound message and audit whether it went out."""
    session.add(message)
    session.flush()
    audit(
        session,
        now,
        "case.notification_sent" if message.status == "sent" else "case.notification_failed",
        "system",
        member_id=member_id,
        outbound_message_id=message.id,
    )


class ChannelNotifier:
    """Case messages on the member's own channel: a LINE push, else the SMS.

    A case opened through LINE carries the member's LINE user id; with a channel access
    token configured the message is pushed there (``POST /v2/bot/message/push`` with an
    ``X-Line-Retry-Key``, so a retry never delivers twice). Without a token, for other
    channels, or when LINE keeps failing, the :class:`SmsNotifier` sends it instead.
    """

    def __init__(
        self,
        fallback: Notifier | None = None,
        access_token: str | None = None,
        api_base_url: str | None = None,
        attempts: int = 3,
    ) -> None:
        """LINE settings default to ``LINE_CHANNEL_ACCESS_TOKEN`` and ``LINE_API_BASE_URL``."""
        self.fallback = fallback or SmsNotifier()
        self.access_token = (
            access_token
            if access_token is not None
            else os.environ.get("LINE_CHANNEL_ACCESS_TOKEN", "")
        )
        base = api_base_url or os.environ.get("LINE_API_BASE_URL") or LINE_API_BASE_URL
        self.api_base_url = base.rstrip("/")
        self.attempts = attempts

    def notify(
        self,
        session: Session,
        member_id: int,
        text: str,
        now: datetime,
        *,
        channel: str | None = None,
        sender_id: str | None = None,
    ) -> None:
        """Push on LINE where the case came from LINE; otherwise (or on failure) SMS."""
        now = utc(now)
        # Only a LINE conversation (line:U…) names a LINE user to push to.
        line_user = native_id(sender_id, "line") if sender_id else None
        if channel == "line" and line_user and self.access_token:
            message = OutboundMessage(
                channel="line", to=hashed_sender(line_user), text=text, created_at=now
            )
            error = self._push(line_user, text)
            message.status = "failed" if error else "sent"
            message.error = error
            message.sent_at = None if error else now
            _record(session, message, member_id, now)
            if not error:
                logger.info("case notification pushed on LINE to member %s", member_id)
                return
            logger.warning("LINE push to member %s failed (%s): sending SMS", member_id, error)
        self.fallback.notify(session, member_id, text, now, channel=channel, sender_id=sender_id)

    def _push(self, to: str, text: str) -> str | None:
        """None when LINE took the message, else why not (no message text in it)."""
        retry_key = str(uuid.uuid4())
        body = {"to": to, "messages": [{"type": "text", "text": text[:5000]}]}
        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "X-Line-Retry-Key": retry_key,
        }
        error = "not sent"
        for attempt in range(self.attempts):
            try:
                answer = requests.post(
                    f"{self.api_base_url}/v2/bot/message/push",
                    json=body,
                    headers=headers,
                    timeout=10,
                )
            except requests.RequestException as problem:
                error = type(problem).__name__
            else:
                # 409: an earlier attempt with this retry key was accepted already.
                if 200 <= answer.status_code < 300 or answer.status_code == 409:
                    return None
                error = f"HTTP {answer.status_code}"
                if answer.status_code != 429 and answer.status_code < 500:
                    return error  # a request LINE refuses will not succeed on retry
            time.sleep(min(2.0, 0.2 * 2**attempt))
        return error
