"""Delivering the outbox: after the commit, once per row, retried with backoff.

A row of ``outbound_messages`` written by :func:`bot.outbound.sender.enqueue` is sent by
a :class:`Deliverer`: right after the transaction that wrote it commits, by the process
that wrote it (:func:`install` hooks SQLAlchemy's ``after_commit``), and by the worker
(``python -m bot.worker``) for anything left, e.g. after a carrier failure or a crash.

Once per row. A deliverer first *claims* the row with a conditional UPDATE (``pending``
→ ``sending``, with its name and the time), committed before the carrier is called; of
two deliverers only the one whose UPDATE changed the row sends it (on PostgreSQL the
candidates are also read ``FOR UPDATE SKIP LOCKED``, so deliverers do not queue on each
other). Then it sends, then marks the row ``sent`` (the payload, clear text and address,
is dropped) or, on a failure, ``pending`` again with an exponential backoff, or
``failed`` after the last try, when the message has expired or was refused for good.

A deliverer can die between its claim and its mark: the row stays ``sending``. After the
lease (``OUTBOX_LEASE_SECONDS``) :meth:`Deliverer.recover` decides:

- an SMS becomes ``unknown`` and is never sent again automatically: it may or may not
  have reached the carrier, and a member must not get a code twice (at most once); an
  ``outbound.unknown`` audit row tells staff;
- a LINE push becomes ``pending`` again and is re-pushed with the same
  ``X-Line-Retry-Key`` (the row's uuid): LINE carries out a key once and answers 409 to
  a repeat, which counts as sent, so the member sees it exactly once. LINE keeps a key
  for a limited time, so a LINE row is not pushed later than 24 hours after its first
  try.

A final failure is acted on by purpose: a case notification on LINE falls back to an
SMS to the phone on record, one by SMS goes to staff as an escalation. Nothing here
logs a phone number, a LINE user id or a message text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.db.audit import audit
from bot.db.models import Member, OutboundMessage, OutboundStatus
from bot.outbound import sender as outbox_writer
from bot.outbound.sender import AFTER_COMMIT_KEY, LINE, SMS, carrier_error
from bot.outbound.sms import SmsSender

logger = logging.getLogger(__name__)

CASE_NOTIFICATION = "case_notification"
VERIFICATION_CODE = "verification_code"
LINE_KEY_LIFETIME = timedelta(hours=24)
S = OutboundStatus


class LinePusher(Protocol):
    """Pushes one text to a LINE user with a given retry key."""

    def push(self, to: str, text: str, retry_key: str) -> None:
        """Push ``text`` to ``to``; raise :class:`PermanentFailureError` if refused for good."""


class PermanentFailureError(Exception):
    """The carrier refused the message for good: retrying cannot help."""


class TransientFailureError(Exception):
    """The carrier failed in a way a later try may not; the message holds no personal data."""


class ApiPusher:
    """LINE pushes through the channel's client, one try per delivery attempt."""

    def __init__(self, access_token: str, base_url: str) -> None:
        """Push with ``access_token`` to the Messaging API at ``base_url``."""
        from bot.channels.line.api import LineApi

        # One try: the outbox owns the retries (with the same key), not the client.
        self._api = LineApi(access_token, base_url, attempts=1, timeout_s=10.0)

    def push(self, to: str, text: str, retry_key: str) -> None:
        """Push ``text``; 4xx answers other than 409 and 429 are permanent failures."""
        from bot.channels.line.api import LineApiError
        from bot.channels.line.messages import MAX_TEXT_CHARS, text_message

        messages = [text_message(text[:MAX_TEXT_CHARS])]
        try:
            if _loop_running():
                # Called after a commit on an event loop's thread (an async server):
                # the blocking push needs a thread without one.
                with ThreadPoolExecutor(max_workers=1) as pool:
                    pool.submit(self._api.push_blocking, to, messages, retry_key).result()
            else:
                self._api.push_blocking(to, messages, retry_key)
        except LineApiError as error:
            reason = f"HTTP {error.status}" if error.status else error.reason
            if 400 <= error.status < 500 and error.status != 429:
                raise PermanentFailureError(reason) from error
            raise TransientFailureError(reason) from error


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@dataclass
class Carriers:
    """How messages leave: an SMS sender and a LINE pusher (None: not configured)."""

    sms: SmsSender | None = None
    line: LinePusher | None = None


def configured_carriers() -> Carriers:
    """The carriers the settings give (the demo outbox file by default)."""
    from bot.outbound.sms import sender_from_settings
    from bot.settings import load_settings

    settings = load_settings()
    line = None
    if settings.line_channel_access_token:
        from bot.channels.line.api import DEFAULT_API_BASE_URL

        line = ApiPusher(
            settings.line_channel_access_token,
            settings.line_api_base_url or DEFAULT_API_BASE_URL,
        )
    return Carriers(sms=sender_from_settings(settings), line=line)


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per message, the waits between them, and the lease of a claim."""

    max_attempts: int = 5
    base_delay_s: float = 5.0
    max_delay_s: float = 600.0
    lease_s: float = 120.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed try: doubling, capped."""
        seconds = min(self.max_delay_s, self.base_delay_s * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Claimed:
    """A row this deliverer holds in ``sending``, with what it needs to send it."""

    id: int
    channel: str
    to: str
    text: str
    retry_key: str
    attempts: int
    purpose: str | None
    member_id: int | None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def default_owner() -> str:
    """A deliverer's name in ``claimed_by``: host, process and a random part."""
    return f"{socket.gethostname()[:48]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Deliverer:
    """Claims, sends and marks outbox rows (see the module docstring)."""

    sessions: sessionmaker
    carriers: Carriers = field(default_factory=Carriers)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    owner: str = field(default_factory=default_owner)
    clock: Callable[[], datetime] = _utc_now

    # --- claiming ---------------------------------------------------------------

    def claim(
        self, ids: Sequence[int] | None = None, limit: int = 50, *, fresh: bool = False
    ) -> list[Claimed]:
        """Claim due pending rows (only ``ids`` if given) in one committed transaction.

        Rows past their ``expires_at`` are marked ``failed`` instead, unless ``fresh``:
        rows whose transaction has just committed are not late, whatever clock wrote them.
        """
        now = self.clock()
        claimed: list[Claimed] = []
        with self.sessions.begin() as session:
            query = (
                sa.select(OutboundMessage.id)
                .where(
                    OutboundMessage.status == S.PENDING.value,
                    sa.or_(
                        OutboundMessage.next_attempt_at.is_(None),
                        OutboundMessage.next_attempt_at <= now,
                    ),
                )
                .order_by(OutboundMessage.next_attempt_at, OutboundMessage.id)
                .limit(limit)
            )
            if ids is not None:
                query = query.where(OutboundMessage.id.in_(list(ids)))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for row_id in session.execute(query).scalars().all():
                taken = session.execute(
                    sa.update(OutboundMessage)
                    .where(OutboundMessage.id == row_id, OutboundMessage.status == S.PENDING.value)
                    .values(
                        status=S.SENDING.value,
                        claimed_at=now,
                        claimed_by=self.owner,
                        attempts=OutboundMessage.attempts + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount != 1:
                    continue  # another deliverer was first
                row = session.execute(
                    sa.select(OutboundMessage)
                    .where(OutboundMessage.id == row_id)
                    .execution_options(populate_existing=True)
                ).scalar_one()
                if row.channel == LINE and row.expires_at is None:
                    # LINE remembers a retry key for a limited time from its first use.
                    row.expires_at = now + LINE_KEY_LIFETIME
                late = not fresh and row.expires_at is not None and now >= row.expires_at
                if late or row.payload is None or row.retry_key is None:
                    self._finish_failed(session, row, "expired" if late else "no payload", now)
                    continue
                payload = json.loads(row.payload)
                claimed.append(
                    Claimed(
                        id=row.id,
                        channel=row.channel,
                        to=str(payload["to"]),
                        text=str(payload["text"]),
                        retry_key=row.retry_key,
                        attempts=row.attempts,
                        purpose=row.purpose,
                        member_id=row.member_id,
                    )
                )
        return claimed

    # --- sending ----------------------------------------------------------------

    def deliver(
        self, ids: Sequence[int] | None = None, limit: int = 50, *, fresh: bool = False
    ) -> int:
        """Claim and send due rows (only ``ids`` if given); returns how many were sent."""
        sent = 0
        for message in self.claim(ids, limit, fresh=fresh):
            sent += self._send(message)
        return sent

    def _send(self, message: Claimed) -> int:
        error: str | None = None
        permanent = False
        try:
            if message.channel == SMS:
                if self.carriers.sms is None:
                    raise PermanentFailureError("SMS not configured")
                self.carriers.sms.send(message.to, message.text)
            elif message.channel == LINE:
                if self.carriers.line is None:
                    raise PermanentFailureError("LINE not configured")
                self.carriers.line.push(message.to, message.text, message.retry_key)
            else:
                raise PermanentFailureError(f"unknown channel {message.channel}")
        except PermanentFailureError as refused:
            error, permanent = str(refused), True
        except TransientFailureError as failure:
            error = str(failure)
        except Exception as failure:  # any carrier failure: record its kind, never its text
            error = carrier_error(failure)
        self._mark(message, error, permanent)
        return 1 if error is None else 0

    def _mark(self, message: Claimed, error: str | None, permanent: bool) -> None:
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.execute(
                sa.select(OutboundMessage)
                .where(
                    OutboundMessage.id == message.id,
                    OutboundMessage.status == S.SENDING.value,
                    OutboundMessage.claimed_by == self.owner,
                )
                .with_for_update()
                .execution_options(populate_existing=True)
            ).scalar_one_or_none()
            if row is None:
                # The lease ran out and the row was recovered meanwhile.
                logger.warning("outbound message %s: no longer ours to mark", message.id)
                return
            if error is None:
                row.status = S.SENT.value
                row.sent_at = now
                row.payload = None
                row.error = None
                row.claimed_by = None
                if row.purpose == CASE_NOTIFICATION:
                    _audit_notification(session, row, now, sent=True)
                logger.info("outbound message %s sent (%s)", row.id, row.channel)
                return
            row.error = error
            row.claimed_by = None
            if permanent or row.attempts >= self.policy.max_attempts:
                self._finish_failed(session, row, error, now)
                return
            row.status = S.PENDING.value
            row.next_attempt_at = now + self.policy.delay(row.attempts)
            logger.warning(
                "outbound message %s: try %d failed (%s), next in %ds",
                row.id, row.attempts, error, self.policy.delay(row.attempts).total_seconds(),
            )  # fmt: skip

    def _finish_failed(
        self, session: Session, row: OutboundMessage, error: str, now: datetime
    ) -> None:
        row.status = S.FAILED.value
        row.error = error
        row.payload = None
        row.claimed_by = None
        logger.warning("outbound message %s failed (%s)", row.id, error)
        _after_final_failure(session, row, now, self.carriers)

    # --- crashed deliverers -----------------------------------------------------

    def recover(self) -> tuple[int, int]:
        """Settle rows left in ``sending`` past the lease by a deliverer that died.

        Returns:
            (SMS rows now ``unknown``, LINE rows pending again for a re-push).
        """
        now = self.clock()
        stale = now - timedelta(seconds=self.policy.lease_s)
        with self.sessions.begin() as session:
            rows = (
                session.execute(
                    sa.select(OutboundMessage)
                    .where(
                        OutboundMessage.status == S.SENDING.value,
                        OutboundMessage.claimed_at < stale,
                    )
                    .order_by(OutboundMessage.id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
                .scalars()
                .all()
            )
            unknown = again = 0
            for row in rows:
                row.claimed_by = None
                if row.channel == LINE:
                    # The same retry key: LINE shows it once whatever happened before.
                    row.status = S.PENDING.value
                    row.next_attempt_at = now
                    again += 1
                    continue
                row.status = S.UNKNOWN.value
                row.payload = None
                row.error = "delivery unknown: the deliverer stopped while sending"
                audit(
                    session,
                    now,
                    "outbound.unknown",
                    "system",
                    member_id=row.member_id,
                    outbound_message_id=row.id,
                    purpose=row.purpose,
                )
                unknown += 1
        if unknown or again:
            logger.warning("outbox: %d SMS now unknown, %d LINE pushes to retry", unknown, again)
        return unknown, again

    def run_once(self, limit: int = 50) -> int:
        """One round of the worker: recover stale claims, then send what is due."""
        self.recover()
        return self.deliver(limit=limit)


# --- after a failure ----------------------------------------------------------------


def _audit_notification(session: Session, row: OutboundMessage, now: datetime, sent: bool) -> None:
    audit(
        session,
        now,
        "case.notification_sent" if sent else "case.notification_failed",
        "system",
        member_id=row.member_id,
        outbound_message_id=row.id,
    )


def _after_final_failure(
    session: Session, row: OutboundMessage, now: datetime, carriers: Carriers
) -> None:
    """A case notification must reach the member: SMS after LINE, else staff."""
    if row.purpose != CASE_NOTIFICATION:
        return  # a code nobody got: the member asks for another one
    _audit_notification(session, row, now, sent=False)
    member = session.get(Member, row.member_id) if row.member_id is not None else None
    if row.channel == LINE and member is not None and member.phone:
        fallback = outbox_writer.enqueue(
            session,
            SMS,
            member.phone,
            row.text,
            now,
            purpose=CASE_NOTIFICATION,
            member_id=row.member_id,
            carriers=carriers,
        )
        logger.warning("outbound message %s: LINE failed, SMS %s", row.id, fallback.message_id)
        return
    from bot.handoff.escalations import escalate_member

    escalate_member(
        session,
        "case_notification_failed",
        now,
        f"outbound message #{row.id}: {row.error}",
        member_id=row.member_id,
    )


# --- right after the commit -----------------------------------------------------------

_factories: weakref.WeakKeyDictionary[Engine, sessionmaker] = weakref.WeakKeyDictionary()
_factories_lock = threading.Lock()
_default_carriers: Carriers | None = None


def _sessions_for(bind: Engine | Connection) -> sessionmaker:
    engine = bind.engine if isinstance(bind, Connection) else bind
    with _factories_lock:
        factory = _factories.get(engine)
        if factory is None:
            factory = _factories[engine] = sessionmaker(
                bind=engine, future=True, expire_on_commit=False
            )
        return factory


def _carriers_for(override: Any) -> Carriers:
    global _default_carriers
    if isinstance(override, Carriers):
        return override
    if _default_carriers is None:
        _default_carriers = configured_carriers()
    return _default_carriers


def deliver_now(sessions: sessionmaker, queued: Iterable[tuple[int, Any]]) -> int:
    """Try to send rows just committed; what fails is left to the worker.

    Args:
        sessions: the session factory of the database the rows are in.
        queued: (row id, carriers or None for the configured ones).

    Returns:
        How many were sent.
    """
    sent = 0
    for row_id, override in queued:
        try:
            sent += Deliverer(sessions, _carriers_for(override)).deliver([row_id], fresh=True)
        except Exception:  # the commit stands; the worker takes the row from here
            logger.exception("outbound message %s: delivery after commit failed", row_id)
    return sent


def _after_commit(session: Session) -> None:
    queued = session.info.pop(AFTER_COMMIT_KEY, None)
    if queued:
        deliver_now(_sessions_for(session.get_bind()), queued)


def _after_rollback(session: Session) -> None:
    # Rolled back: the rows are gone, nothing must be sent.
    session.info.pop(AFTER_COMMIT_KEY, None)


def install() -> None:
    """Hook delivery after commit into every SQLAlchemy session (idempotent)."""
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)


install()
