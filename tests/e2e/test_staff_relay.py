"""Staff replies and paused hand-offs on the running servers, with Rasa's SQL tracker store.

The REST channel cannot send by itself: a staff reply relayed with
``output_channel=latest`` comes back in the ``execute`` response, not to the REST
client. So what the member would see is checked where it is recorded: in the tracker
(the rasa server's API) and in the transcript read from the ``events`` table.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest
import requests
import sqlalchemy as sa

from bot.core.conversation import Conversation
from bot.db.models import Escalation, StaffMessage
from bot.db.session import session_factory
from bot.handoff import escalations, handback
from bot.handoff.handback import handed_back_text_for
from bot.handoff.rasa_api import RasaApi
from bot.handoff.relay import RelayError, send_staff_message
from bot.handoff.transcripts import read_transcript, tracker_engine
from tests.e2e.rest import rest_post

pytestmark = pytest.mark.e2e


def now() -> datetime:
    return datetime.now(timezone.utc)


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def tracker(assistant, sender: str) -> dict:
    response = requests.get(
        f"{assistant.rasa_url}/conversations/{sender}/tracker",
        params={"token": assistant.token},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def transcript_lines(assistant, sender: str) -> list[tuple[str, str | None, str]]:
    with tracker_engine(assistant.settings.tracker_url).connect() as connection:
        transcript = read_transcript(connection, sender)
    return [(line.speaker, line.staff, line.masked_text) for line in transcript.lines]


def test_staff_reply_is_relayed_while_paused_and_hand_back_resumes_and_tells(assistant, say):
    sessions = session_factory(assistant.settings.database_url)
    rasa = RasaApi(assistant.rasa_url, assistant.token)
    say("担当者と話したいです")
    assert "担当者におつなぎします" in texts(say("担当者と話したいです"))

    # Rasa's SQL tracker store holds the conversation, in the configured database.
    with tracker_engine(assistant.settings.tracker_url).connect() as connection:
        stored = connection.execute(
            sa.text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": say.sender}
        ).scalar_one()
    assert stored > 10

    with sessions.begin() as session:
        row = session.execute(
            sa.select(Escalation).where(Escalation.sender_id == say.sender)
        ).scalar_one()
        assert (row.status, row.paused) == ("waiting", True)
        escalations.claim(session, row.id, "tanaka", now())
        escalation_id = row.id

    sent = send_staff_message(
        sessions, escalation_id, "tanaka", "担当の田中です。ご用件を伺います。", now(), rasa
    )
    assert sent.delivered_at is not None

    state = tracker(assistant, say.sender)
    assert state["paused"] is True  # still paused: the relay predicted nothing after it
    relayed = [
        e for e in state["events"] if e["event"] == "bot" and e.get("metadata", {}).get("staff")
    ]
    assert [(e["text"], e["metadata"]["staff"]) for e in relayed] == [
        ("担当者より：担当の田中です。ご用件を伺います。", "tanaka")
    ]

    # The member answers: the assistant stays silent, staff see it (masked).
    assert say("電話番号は090-1234-5678です") == []
    lines = transcript_lines(assistant, say.sender)
    assert lines[-3:] == [
        ("system", None, "会話を一時停止しました（担当者対応）"),
        ("staff", "tanaka", "担当者より：担当の田中です。ご用件を伺います。"),
        ("member", None, "電話番号は［電話番号］です"),
    ]
    assert ("member", None, "担当者と話したいです") in lines

    # Handed back: resumed, and the member told so in the organization's words.
    notice = handed_back_text_for(assistant.settings.org_id, assistant.settings.profiles_dir)
    assert "国際興業健康保険組合" in notice
    with sessions.begin() as session:
        handback.hand_back(session, escalation_id, "tanaka", now(), rasa, notice)
    state = tracker(assistant, say.sender)
    assert state["paused"] is False
    assert [e["event"] for e in state["events"][-2:]] == ["resume", "bot"]
    assert state["events"][-1]["text"] == notice
    assert transcript_lines(assistant, say.sender)[-2:] == [
        ("system", None, "会話を再開しました（アシスタントが応答します）"),
        ("assistant", None, notice),
    ]
    assert "出典：" in texts(say("個人情報の利用目的を教えてください"))


def start_an_hour_ago(assistant, sender: str) -> None:
    """A conversation whose last message is an hour old, paused by a hand-off then."""
    then = time.time() - 3600
    events = [
        {"event": "action", "name": "action_session_start", "timestamp": then},
        {"event": "session_started", "timestamp": then},
        {"event": "action", "name": "action_listen", "timestamp": then},
        {
            "event": "user",
            "text": "担当者と話したいです",
            "timestamp": then + 1,
            "input_channel": "rest",
            "parse_data": {"intent": {"name": "request_human", "confidence": 1.0}, "entities": []},
        },
        {"event": "action", "name": "action_request_human", "timestamp": then + 2},
        {"event": "pause", "timestamp": then + 2},
        {"event": "action", "name": "action_listen", "timestamp": then + 2},
    ]
    response = requests.post(
        f"{assistant.rasa_url}/conversations/{sender}/tracker/events",
        params={"token": assistant.token},
        json=events,
        timeout=30,
    )
    response.raise_for_status()


def post(assistant, sender: str, text: str) -> list[dict]:
    return rest_post(assistant, sender, text)


@pytest.mark.parametrize("held", [True, False], ids=["held-by-staff", "closed"])
def test_a_new_session_of_a_held_conversation_is_paused_again(assistant, held):
    sender = f"rest:e2e-expired-{uuid.uuid4().hex[:8]}"
    sessions = session_factory(assistant.settings.database_url)
    rasa = RasaApi(assistant.rasa_url, assistant.token)
    start_an_hour_ago(assistant, sender)
    with sessions.begin() as session:
        opened = escalations.escalate(
            session, Conversation(sender, "start", "rest"), "member_request", now(), pause=True
        )
        if not held:
            escalations.close(session, opened.id, "tanaka", None, now())

    # Fifteen idle minutes are long past: this message starts a new session, which
    # Rasa starts unpaused; the custom action_session_start pauses it again.
    answer = post(assistant, sender, "個人情報の利用目的を教えてください")
    state = tracker(assistant, sender)
    kinds = [e["event"] for e in state["events"]]
    assert kinds.count("session_started") == 2  # the hour-old session and the new one
    new_session = len(kinds) - 1 - kinds[::-1].index("session_started")
    if not held:
        assert "出典：" in texts(answer) and state["paused"] is False
        assert kinds[new_session + 1] == "action"  # no pause
        return
    assert answer == [] and state["paused"] is True
    assert kinds[new_session - 1 : new_session + 3] == [
        "action",  # action_session_start
        "session_started",
        "pause",
        "action",  # action_listen
    ]
    lines = transcript_lines(assistant, sender)
    assert lines[-3:] == [
        ("system", None, "新しいセッションが始まりました"),
        ("system", None, "会話を一時停止しました（担当者対応）"),
        ("member", None, "個人情報の利用目的を教えてください"),
    ]

    # Closing the hand-off gives the member the assistant back.
    with sessions.begin() as session:
        escalations.close(
            session, opened.id, "tanaka", "折り返し電話済み", now(), resume=rasa.resume
        )
    assert "出典：" in texts(post(assistant, sender, "個人情報の利用目的を教えてください"))


def test_replies_written_while_rasa_was_down_go_with_the_next(assistant, say):
    sessions = session_factory(assistant.settings.database_url)
    say("担当者と話したいです")
    say("担当者と話したいです")
    with sessions.begin() as session:
        view = escalations.open_escalation_for(session, say.sender)
        assert view is not None
        escalation_id = view.id
        escalations.claim(session, escalation_id, "suzuki", now())
    unreachable = RasaApi("http://127.0.0.1:9", assistant.token)
    with pytest.raises(RelayError, match="まだ届いていません"):
        send_staff_message(sessions, escalation_id, "suzuki", "一通目です", now(), unreachable)

    rasa = RasaApi(assistant.rasa_url, assistant.token)
    send_staff_message(sessions, escalation_id, "suzuki", "二通目です", now(), rasa)
    with sessions.begin() as session:
        delivered = session.execute(
            sa.select(StaffMessage.text, StaffMessage.delivered_at)
            .where(StaffMessage.escalation_id == escalation_id)
            .order_by(StaffMessage.id)
        ).all()
    assert [(text, at is not None) for text, at in delivered] == [
        ("一通目です", True),
        ("二通目です", True),
    ]
    staff_lines = [line for line in transcript_lines(assistant, say.sender) if line[0] == "staff"]
    assert staff_lines == [
        ("staff", "suzuki", "担当者より：一通目です"),
        ("staff", "suzuki", "担当者より：二通目です"),
    ]
