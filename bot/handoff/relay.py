"""Staff replies to a member in an escalated conversation.

Two halves, in two processes:

- :func:`send_staff_message` (the staff console, the CLI): stores the reply as a
  :class:`~bot.db.models.StaffMessage` and commits it (audited as
  ``escalation.staff_message``, without its text), then asks the rasa server to run
  ``action_relay_staff_message`` in the member's conversation.
- :func:`take_undelivered` (that action, on the action server): takes every
  undelivered reply of the conversation, oldest first, marks it delivered and returns
  it for the action to utter, prefixed so that the member sees it comes from staff.

A reply is stored before the rasa server is asked: if the server is down, it waits
(``delivered_at`` empty) and goes with the next reply that gets through.
``delivered_at`` is when the reply was handed to the rasa server for sending.

On LINE the reply is also written to the outbox (``bot.outbound``) in the transaction
that stores it, and pushed after that commits with the outbox row's uuid as
``X-Line-Retry-Key``: once, whatever retries a crash or a slow LINE cause. The relay
then only records it in the conversation (the rasa server sends nothing for a LINE
conversation, :meth:`bot.handoff.rasa_api.RasaApi.relay`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.guard import hashed_sender
from bot.core.conversation import native_id
from bot.db.audit import audit
from bot.db.models import Escalation, EscalationStatus, StaffMessage
from bot.handoff.rasa_api import RasaApi, RasaApiError
from bot.outbound import sender as outbound

MAX_TEXT_LENGTH = 2000
# What the member sees before each reply: it is a person, not the assistant, writing.
STAFF_PREFIX = "担当者より："
STAFF_REPLY = "staff_reply"  # the outbox's purpose of a reply pushed on LINE


@dataclass(frozen=True)
class StaffMessageView:
    """A staff reply as the console shows it."""

    id: int
    staff: str
    text: str
    created_at: datetime
    delivered_at: datetime | None
    escalation_id: int = 0
    sender_id: str = ""


class RelayError(Exception):
    """A reply that cannot be sent, or not now; the message is for staff, in Japanese.

    ``stored`` is the reply when it was stored but could not be delivered yet (it goes
    with the next reply that gets through), None when nothing was stored.
    """

    def __init__(self, message: str, stored: StaffMessageView | None = None) -> None:
        """Create the error.

        Args:
            message: why, in Japanese, for staff.
            stored: the stored but undelivered reply, if any.
        """
        super().__init__(message)
        self.stored = stored


@dataclass(frozen=True)
class Relayed:
    """A reply as the relay action utters it."""

    id: int
    staff: str
    text: str  # prefixed with STAFF_PREFIX


def _view(row: StaffMessage) -> StaffMessageView:
    return StaffMessageView(
        id=row.id,
        staff=row.staff,
        text=row.text,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        escalation_id=row.escalation_id,
        sender_id=row.sender_id,
    )


def _checked_text(text: str) -> str:
    # Windows line ends from a browser's textarea are one line break for the member.
    cleaned = text.replace("\r\n", "\n").strip()
    if not cleaned:
        raise RelayError("メッセージが空です。お送りする内容を入力してください。")
    if len(cleaned) > MAX_TEXT_LENGTH:
        raise RelayError(
            f"メッセージは{MAX_TEXT_LENGTH:,}文字以内で入力してください"
            f"（いまは{len(cleaned):,}文字です）。"
        )
    return cleaned


def send_staff_message(
    sessions: sessionmaker,
    escalation_id: int,
    staff: str,
    text: str,
    now: datetime,
    rasa: RasaApi,
) -> StaffMessageView:
    """Store a reply to the member of an escalation in progress and have it delivered.

    Args:
        sessions: the app database's session factory (this function commits).
        escalation_id: the escalation; it must be in progress.
        staff: who writes (audited, and shown in the transcript).
        text: the reply, 1 to 2,000 characters after trimming.
        now: the current time (aware).
        rasa: the rasa server's API.

    Returns:
        The reply, delivered (``delivered_at`` set).

    Raises:
        RelayError: empty or too long, unknown escalation or not in progress (nothing
            stored); or stored but not delivered because the rasa server could not be
            reached or did not run the action (``stored`` is set). Not for a LINE
            conversation: the outbox pushes the reply whatever the rasa server does,
            and only its line in the conversation waits (``delivered_at`` empty).
    """
    cleaned = _checked_text(text)
    with sessions.begin() as session:
        escalation = session.execute(
            select(Escalation).where(Escalation.id == escalation_id).with_for_update()
        ).scalar_one_or_none()
        if escalation is None:
            raise RelayError(f"対応 #{escalation_id} は見つかりません。")
        if escalation.status != EscalationStatus.IN_PROGRESS.value:
            raise RelayError(
                f"対応 #{escalation_id} は担当中ではないため、メッセージを送れません"
                "（担当を引き受けてからお送りください）。"
                if escalation.status == EscalationStatus.WAITING.value
                else f"対応 #{escalation_id} は終了しているため、メッセージを送れません。"
            )
        if escalation.assigned_staff != staff:
            # Only the person who took the conversation speaks to the member in it.
            raise RelayError(
                f"対応 #{escalation_id} の担当者（{escalation.assigned_staff}）だけが返信できます。"
            )
        if not escalation.sender_id:
            raise RelayError(f"対応 #{escalation_id} には返信できる会話がありません。")
        row = StaffMessage(
            escalation_id=escalation.id,
            sender_id=escalation.sender_id,
            staff=staff,
            text=cleaned,
            created_at=now,
        )
        session.add(row)
        session.flush()
        # The length, not the text: a reply can quote the member's personal values.
        audit(
            session,
            now,
            "escalation.staff_message",
            f"staff:{staff}",
            member_id=escalation.member_id,
            escalation_id=escalation.id,
            message_id=row.id,
            length=len(cleaned),
        )
        line_user = native_id(escalation.sender_id, "line")
        if line_user:
            outbound.enqueue(
                session,
                outbound.LINE,
                hashed_sender(line_user),
                f"{STAFF_PREFIX}{cleaned}",
                now,
                address=line_user,
                purpose=STAFF_REPLY,
                member_id=escalation.member_id,
            )
        message_id, sender_id = row.id, escalation.sender_id
    try:
        rasa.relay(sender_id)
    except RasaApiError as error:
        if line_user:
            # Pushed by the outbox already; only its line in the transcript waits.
            return _stored(sessions, message_id)
        raise RelayError(
            "アシスタントのサーバーに接続できないため、メッセージはまだ届いていません。"
            "メッセージは保存しました。次にお送りするメッセージと一緒に届きます。",
            stored=_stored(sessions, message_id),
        ) from error
    view = _stored(sessions, message_id)
    if view.delivered_at is None and not line_user:
        # The rasa server answered but the action did not run (action server down:
        # Rasa logs it and carries on).
        raise RelayError(
            "アクションサーバーが応答しないため、メッセージはまだ届いていません。"
            "メッセージは保存しました。次にお送りするメッセージと一緒に届きます。",
            stored=view,
        )
    return view


def _stored(sessions: sessionmaker, message_id: int) -> StaffMessageView:
    with sessions.begin() as session:
        return _view(
            session.execute(select(StaffMessage).where(StaffMessage.id == message_id)).scalar_one()
        )


def take_undelivered(session: Session, sender_id: str, now: datetime) -> list[Relayed]:
    """The conversation's undelivered replies, oldest first, now marked delivered.

    The rows are locked (PostgreSQL), so that two relays of one conversation cannot
    send a reply twice; the rasa server also runs one action per conversation at a time.

    Args:
        session: the unit of work (its commit records the delivery).
        sender_id: the conversation.
        now: the current time (aware).

    Returns:
        What the relay action utters, in order.
    """
    rows = (
        session.execute(
            select(StaffMessage)
            .where(StaffMessage.sender_id == sender_id, StaffMessage.delivered_at.is_(None))
            .order_by(StaffMessage.id)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    for row in rows:
        row.delivered_at = now
    return [Relayed(id=row.id, staff=row.staff, text=f"{STAFF_PREFIX}{row.text}") for row in rows]


def messages_of(session: Session, escalation_id: int) -> list[StaffMessageView]:
    """The replies written in an escalation, oldest first (for the console).

    Args:
        session: the unit of work.
        escalation_id: the escalation.
    """
    rows = session.execute(
        select(StaffMessage)
        .where(StaffMessage.escalation_id == escalation_id)
        .order_by(StaffMessage.id)
    ).scalars()
    return [_view(row) for row in rows]
