"""A conversation longer than the session turn limit, on the real servers and SQL store.

The servers run with ``SESSION_TURN_LIMIT=3`` (bot/core/sessions.py): every few
messages the conversation continues in a new Rasa session at a quiet turn. The member
must notice nothing: questions are answered, a request begun before the limit is
finished after it, and the verification holds across the boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from bot.core.sessions import CONTINUES
from bot.launcher import RunningAssistant, running, train_if_needed
from bot.settings import load_settings
from tests.e2e.conftest import free_port
from tests.e2e.records import database, latest_code
from tests.e2e.rest import joined, rest_post

pytestmark = pytest.mark.e2e

LIMIT = 3
CASE_NUMBER = re.compile(r"PR-\d{4}-\d{6}")
QUESTIONS = (
    "口座情報は何に使われますか",
    "個人情報はどうやって守られていますか",
    "開示請求の手数料はいくらですか",
    "個人情報の保存期間を教えてください",
)


@pytest.fixture(scope="module")
def assistant(tmp_path_factory) -> Iterator[RunningAssistant]:
    var_dir = tmp_path_factory.mktemp("var")
    settings = replace(
        load_settings(),
        org_id="kokusai-kogyo-kenpo",
        var_dir=var_dir,
        database_url=f"sqlite:///{var_dir / 'app.db'}",  # Rasa's events in tracker.db
        rasa_port=free_port(),
        action_port=free_port(),
        rasa_token="e2e-long-token",
        rest_enabled=True,
        session_turn_limit=LIMIT,
    )
    with running(settings, train_if_needed(), log_dir=var_dir / "logs") as started:
        yield started


@pytest.fixture
def say(assistant, request) -> Callable[[str], list[dict]]:
    conversation = f"rest:e2e-long-{request.node.name[-20:].strip('_')}"

    def send(text: str) -> list[dict]:
        return rest_post(assistant, conversation, text)

    send.sender = conversation  # type: ignore[attr-defined]
    return send


def session_starts(assistant: RunningAssistant, sender: str) -> list[dict]:
    """The conversation's ``session_started`` events in the tracker store, oldest first."""
    engine = sa.create_engine(assistant.settings.tracker_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT data FROM events WHERE sender_id = :sender "
                    "AND type_name = 'session_started' ORDER BY id"
                ),
                {"sender": sender},
            ).scalars()
            return [json.loads(row) for row in rows]
    finally:
        engine.dispose()


def test_every_question_of_a_long_conversation_is_answered(say, assistant):
    answers = [joined(say(QUESTIONS[turn % len(QUESTIONS)])) for turn in range(4 * LIMIT)]
    # The same question gets the same answer in every session.
    assert answers[: len(QUESTIONS)] == answers[len(QUESTIONS) : 2 * len(QUESTIONS)]
    assert all(answer.strip() for answer in answers)
    starts = session_starts(assistant, say.sender)
    # 12 messages, a new session at the first quiet turn after every 3.
    assert len(starts) == 4
    first_key = f"session_started@{starts[0]['timestamp']}"
    assert [start["metadata"][CONTINUES] for start in starts[1:]] == [first_key] * 3


def test_a_request_begun_before_the_limit_ends_after_it_still_verified(say, assistant):
    assert joined(say(QUESTIONS[0])).strip()
    # Verification and the request form: eight messages in one session, far past the
    # limit, for no new session starts while a form runs.
    assert "本人確認" in joined(say("保有個人データの開示を請求したいです"))
    say("記号1001 番号23")
    assert "090-****-5678" in joined(say("昭和60年4月1日"))
    body = joined(say(latest_code(assistant)))
    assert "確認できました" in body and "どなたの情報" in body
    assert "対象となる情報" in joined(say("1"))
    paper = next(
        button
        for message in say("すべて")
        for button in message.get("buttons") or []
        if "書面" in button["title"]
    )
    assert "個人情報保護法第33条第2項" in joined(say(paper["payload"]))
    number = CASE_NUMBER.search(joined(say("はい、請求します")))
    assert number
    assert len(session_starts(assistant, say.sender)) == 1

    # The next (quiet) turn starts a new session; the member is still verified in it.
    assert joined(say(QUESTIONS[1])).strip()
    starts = session_starts(assistant, say.sender)
    assert len(starts) == 2 and starts[1]["metadata"][CONTINUES]
    status = joined(say("請求の状況を教えてください"))
    assert number.group() in status and "本人確認" not in status
    with database(assistant).connect() as connection:
        statuses = connection.execute(
            sa.text("SELECT status FROM verifications WHERE sender_id = :sender"),
            {"sender": say.sender},
        ).scalars()
        assert list(statuses) == ["verified"]
