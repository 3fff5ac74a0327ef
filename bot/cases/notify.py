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

The message is sent inside the caller's transaction, like verification codes: if the
transaction then fails, the member may have been told of a change that was not
stored. Staff see every attempt in ``outbound_messages``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from bot.cases.records import utc
from bot.channels.guard import hashed_sender
from bot.channels.line.api import DEFAULT_API_BASE_URL, LineApi, LineApiError
from bot.channels.line.messages import MAX_TEXT_CHARS, text_message
from bot.core.conversation import native_id
from bot.db.audit import audit
from bot.db.models import Member
from bot.handoff.escalations import escalate_member
from bot.outbound import sender as outbound
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
        """Send ``text`` and record it; a failure becomes a failed row and an escalation."""
        now = utc(now)
        member = session.get(Member, member_id)
        phone = member.phone if member is not None else None
        if phone:
            delivery = outbound.send_sms(session, self.sender, phone, text, now)
        else:
            delivery = outbound.record(session, outbound.SMS, "", text, now, error=NO_PHONE)
        _audit_delivery(session, delivery, member_id, now)
        if not delivery.sent:
            # Staff must reach the member another way: the law wants them told.
            escalate_member(
                session,
                "case_notification_failed",
                now,
                f"outbound message #{delivery.message_id}: {delivery.error}",
                member_id=member_id,
            )
            logger.warning("case notification to member %s failed (%s)", member_id, delivery.error)
        else:
            logger.info("case notification sent to member %s", member_id)


def _audit_delivery(
    session: Session, delivery: outbound.Delivery, member_id: int, now: datetime
) -> None:
    """Audit whether a recorded case message went out."""
    audit(
        session,
        now,
        "case.notification_sent" if delivery.sent else "case.notification_failed",
        "system",
        member_id=member_id,
        outbound_message_id=delivery.message_id,
    )


class ChannelNotifier:
    """Case messages on the member's own channel: a LINE push, else the SMS.

    A case opened through LINE carries the member's LINE user id; with a channel access
    token configured the message is pushed there by the LINE channel's own client
    (:class:`~bot.channels.line.api.LineApi`: the same retries, and an
    ``X-Line-Retry-Key`` so that a retry never delivers twice). Without a token, for
    other channels, or when LINE keeps failing, the :class:`SmsNotifier` sends it
    instead.

    The push waits for LINE in an event loop of its own: notifications are sent from
    code that runs none (the case CLI, and the console's staff actions, which run in
    worker threads).
    """

    def __init__(
        self,
        fallback: Notifier | None = None,
        access_token: str | None = None,
        api_base_url: str | None = None,
        attempts: int = 3,
    ) -> None:
        """Create the notifier.

        Args:
            fallback: how to send when LINE cannot (default: :class:`SmsNotifier`).
            access_token: the LINE channel access token (default: the settings',
                ``LINE_CHANNEL_ACCESS_TOKEN``; empty: never push).
            api_base_url: where the Messaging API is (default: the settings',
                ``LINE_API_BASE_URL``, else LINE's own).
            attempts: tries per push, the first included.
        """
        self.fallback = fallback or SmsNotifier()
        if access_token is None or not api_base_url:
            settings = load_settings()
            if access_token is None:
                access_token = settings.line_channel_access_token or ""
            api_base_url = api_base_url or settings.line_api_base_url
        self.access_token = access_token
        self.api_base_url = (api_base_url or DEFAULT_API_BASE_URL).rstrip("/")
        self.attempts = attempts
        # A staff member waits for the push (the console's page, the CLI): short waits
        # between tries, as before the notifier used the channel's client.
        self._api = LineApi(
            self.access_token, self.api_base_url, attempts=attempts, max_delay_s=2.0
        )

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
            error = self._push(line_user, text)
            delivery = outbound.record(
                session, outbound.LINE, hashed_sender(line_user), text, now, error=error
            )
            _audit_delivery(session, delivery, member_id, now)
            if not error:
                logger.info("case notification pushed on LINE to member %s", member_id)
                return
            logger.warning("LINE push to member %s failed (%s): sending SMS", member_id, error)
        self.fallback.notify(session, member_id, text, now, channel=channel, sender_id=sender_id)

    def _push(self, to: str, text: str) -> str | None:
        """None when LINE took the message, else why not (no message text in it)."""
        try:
            self._api.push_blocking(to, [text_message(text[:MAX_TEXT_CHARS])])
        except LineApiError as error:
            # The status, or without an answer the kind of failure (e.g. a timeout):
            # LINE's error message is left out, staff read it in the log.
            return f"HTTP {error.status}" if error.status else error.reason
        return None
