"""Telling a member what happened to their case: the outbound-message interface.

Staff actions that the member must be told about (an extension with its new period, a
decision) go through a :class:`Notifier`. :class:`SmsNotifier` sends an SMS to the
phone on record through :mod:`bot.outbound.sender` (the configured sender, the demo
outbox by default), which records every message as an ``OutboundMessage``; a message
that could not be sent goes to staff through the hand-off service.
:class:`ChannelNotifier` pushes the message on LINE to a member whose case came through
LINE (the LINE user id the case was opened from), and falls back to the SMS when LINE
is not configured or the push fails.
Texts carry the case number and what happened, nothing else: the reasons
and explanations are read in the chat after identity verification, since an SMS can
be seen by whoever holds the phone.

The message is written to the outbox in the caller's transaction, the one that makes the
change it announces, and sent after that commits (:mod:`bot.outbound.outbox`): a change
that rolls back is never announced, and no carrier is waited for while the case is
locked. A message that finally fails is acted on there: a LINE push falls back to the
SMS, an SMS that fails goes to staff as an escalation. Staff see every attempt in
``outbound_messages``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from bot.cases.records import utc
from bot.channels.guard import hashed_sender
from bot.channels.line.api import DEFAULT_API_BASE_URL
from bot.core.conversation import native_id
from bot.db.audit import audit
from bot.db.models import Member
from bot.handoff.escalations import escalate_member
from bot.outbound import sender as outbound
from bot.outbound.outbox import CASE_NOTIFICATION, ApiPusher, Carriers
from bot.outbound.sms import SmsSender, sender_from_settings
from bot.settings import load_settings

logger = logging.getLogger(__name__)

NO_PHONE = "no phone on record"


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
        """Queue ``text`` for the phone on record; without one, a failed row and an escalation."""
        now = utc(now)
        member = session.get(Member, member_id)
        phone = member.phone if member is not None else None
        if phone:
            delivery = outbound.enqueue(
                session,
                outbound.SMS,
                phone,
                text,
                now,
                purpose=CASE_NOTIFICATION,
                member_id=member_id,
                carriers=Carriers(sms=self.sender),
            )
            logger.info("case notification to member %s queued", member_id)
            return
        delivery = outbound.record(
            session,
            outbound.SMS,
            "",
            text,
            now,
            error=NO_PHONE,
            purpose=CASE_NOTIFICATION,
            member_id=member_id,
        )
        _audit_failed(session, delivery, member_id, now)
        # Staff must reach the member another way: the law wants them told.
        escalate_member(
            session,
            "case_notification_failed",
            now,
            f"outbound message #{delivery.message_id}: {delivery.error}",
            member_id=member_id,
        )
        logger.warning("case notification to member %s failed (%s)", member_id, delivery.error)


def _audit_failed(
    session: Session, delivery: outbound.Delivery, member_id: int, now: datetime
) -> None:
    """Audit a case message that could not even be queued (the deliverer audits the rest)."""
    audit(
        session,
        now,
        "case.notification_failed",
        "system",
        member_id=member_id,
        outbound_message_id=delivery.message_id,
    )


class ChannelNotifier:
    """Case messages on the member's own channel: a LINE push, else the SMS.

    A case opened through LINE carries the member's LINE user id; with a channel access
    token configured the message is queued as a LINE push (sent after the commit with
    the row's uuid as ``X-Line-Retry-Key``, so a retry is never shown twice). Without a
    token, or for other channels, the :class:`SmsNotifier` queues the SMS instead; a
    push that finally fails is sent by SMS by the deliverer.
    """

    def __init__(
        self,
        fallback: SmsNotifier | None = None,
        access_token: str | None = None,
        api_base_url: str | None = None,
    ) -> None:
        """Create the notifier.

        Args:
            fallback: how to send when LINE cannot (default: :class:`SmsNotifier`).
            access_token: the LINE channel access token (default: the settings',
                ``LINE_CHANNEL_ACCESS_TOKEN``; empty: never push).
            api_base_url: where the Messaging API is (default: the settings',
                ``LINE_API_BASE_URL``, else LINE's own).
        """
        self.fallback = fallback or SmsNotifier()
        if access_token is None or not api_base_url:
            settings = load_settings()
            if access_token is None:
                access_token = settings.line_channel_access_token or ""
            api_base_url = api_base_url or settings.line_api_base_url
        self.access_token = access_token
        self.api_base_url = (api_base_url or DEFAULT_API_BASE_URL).rstrip("/")
        self._pusher = ApiPusher(self.access_token, self.api_base_url)

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
        """Queue a LINE push where the case came from LINE; otherwise the SMS."""
        now = utc(now)
        # Only a LINE conversation (line:U…) names a LINE user to push to.
        line_user = native_id(sender_id, "line") if sender_id else None
        if channel == "line" and line_user and self.access_token:
            outbound.enqueue(
                session,
                outbound.LINE,
                hashed_sender(line_user),
                text,
                now,
                address=line_user,
                purpose=CASE_NOTIFICATION,
                member_id=member_id,
                carriers=Carriers(sms=self.fallback.sender, line=self._pusher),
            )
            logger.info("case notification to member %s queued for LINE", member_id)
            return
        self.fallback.notify(session, member_id, text, now, channel=channel, sender_id=sender_id)
