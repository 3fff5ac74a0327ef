"""Hand-off on the running servers: escalate, the bot falls silent, staff resume it."""

from __future__ import annotations

import pytest
import requests
import sqlalchemy as sa

from bot.db.session import engine_for
from bot.handoff.rasa_api import resume

pytestmark = pytest.mark.e2e


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def tracker_texts(assistant, sender: str) -> list[str]:
    tracker = requests.get(
        f"{assistant.rasa_url}/conversations/{sender}/tracker",
        params={"token": assistant.token},
        timeout=30,
    ).json()
    return [e.get("text") for e in tracker["events"] if e.get("event") == "user"]


def test_asking_twice_hands_over_pauses_and_staff_resume(assistant, say):
    first = texts(say("担当者と話したいです"))
    assert "担当者と話したい" in first and "担当者におつなぎします" not in first

    second = texts(say("担当者と話したいです"))
    assert "担当者におつなぎします" in second
    assert "受付時間は公表されていません" in second  # kokusai-kogyo-kenpo publishes none

    assert say("まだですか") == []  # paused: the bot stays silent ...
    assert "まだですか" in tracker_texts(assistant, say.sender)  # ... the message is kept

    with engine_for(assistant.settings.database_url).connect() as connection:
        rows = connection.execute(
            sa.text("SELECT reason, status FROM escalations WHERE sender_id = :s"),
            {"s": say.sender},
        ).all()
    assert [tuple(row) for row in rows] == [("member_request", "waiting")]

    resume(assistant.rasa_url, assistant.token, say.sender)
    assert "出典：" in texts(say("個人情報の利用目的を教えてください"))
