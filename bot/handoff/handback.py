"""Handing a conversation back to the assistant, and telling the member so.

While staff hold a conversation the assistant is silent; when staff hand it back the
member would otherwise not know that their next message is answered by the assistant
again. :func:`hand_back` resumes the conversation and, in the same call to the rasa
server, tells the member in the organization's words (:func:`handed_back_text`):

- website chat (and REST): the resume and the notice go to Rasa's ``tracker/events``
  with ``execute_side_effects=true&output_channel=latest``, so Rasa records the notice
  as the assistant's line and sends it on the channel of the member's last message
  (the chat page's socket room), as it sends a relayed staff reply;
- LINE: Rasa only records the notice; it is pushed through the outbox
  (``bot.outbound``), written in the transaction that closes the escalation and sent
  once after it commits, with a retry key, as staff replies on LINE are.

Only a hand-off that paused the conversation is announced: after a lockout or a case
escalation the assistant never stopped answering. If the rasa server cannot be
reached, nothing changes (the escalation stays open, nothing is pushed).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from bot.channels.guard import hashed_sender
from bot.core.conversation import native_id
from bot.handoff import escalations
from bot.handoff.escalations import EscalationView
from bot.handoff.rasa_api import RasaApi
from bot.outbound import sender as outbound
from bot.policy.profiles.loader import ProfileError, load_profile

HANDED_BACK = "handed_back"  # the outbox's purpose of the notice pushed on LINE


def handed_back_text(organization: str | None) -> str:
    """What the member is told when staff hand the conversation back (polite Japanese).

    Args:
        organization: the organization's name as its profile gives it
            (``国際興業健康保険組合``); None when the profile cannot be read.
    """
    about = f"{organization}の個人情報の取扱いについて" if organization else ""
    return (
        "担当者の対応が終わりました。ここからは、ふたたび自動応答のアシスタントが"
        f"{about}お答えします。ご質問があれば、いつでもお送りください。"
    )


def handed_back_text_for(org_id: str, profiles_dir: Path) -> str:
    """:func:`handed_back_text` with the name from the organization's profile.

    Args:
        org_id: the organization (``settings.org_id``).
        profiles_dir: where the profiles are (``settings.profiles_dir``).
    """
    try:
        name: str | None = load_profile(org_id, profiles_dir).name
    except ProfileError:
        name = None
    return handed_back_text(name)


def hand_back(
    session: Session,
    escalation_id: int,
    staff: str,
    now: datetime,
    rasa: RasaApi,
    notice: str,
    note: str | None = None,
) -> EscalationView:
    """Resume the conversation, tell the member, close the escalation.

    Args:
        session: the unit of work (the LINE push is written in it and sent after
            it commits).
        escalation_id: the escalation.
        staff: who hands it back.
        now: the current time (aware).
        rasa: the rasa server's API.
        notice: what the member is told (:func:`handed_back_text`).
        note: an internal note.

    Returns:
        The closed escalation.

    Raises:
        EscalationError: unknown or already closed.
        RasaApiError: the rasa server could not resume the conversation (nothing
            changed, nothing is pushed).
    """

    def resume_and_tell(sender_id: str) -> None:
        rasa.resume(sender_id, notice=notice)

    view = escalations.hand_back(
        session, escalation_id, staff, now, resume=resume_and_tell, note=note
    )
    line_user = native_id(view.sender_id or "", "line")
    if view.paused and line_user:
        outbound.enqueue(
            session,
            outbound.LINE,
            hashed_sender(line_user),
            notice,
            now,
            address=line_user,
            purpose=HANDED_BACK,
            member_id=view.member_id,
        )
    return view
