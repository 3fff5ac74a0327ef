"""Handing back tells the member, in the organization's words, on their own channel.

The rasa server is the recording stand-in of tests/handoff/test_relay.py (a real HTTP
server); LINE is the stand-in LINE API of tests/line_stand_in.py; the database is the
migrated SQLite file or PostgreSQL schema. The whole chain on the real servers is in
tests/e2e/test_staff_relay.py (REST) and tests/e2e/test_console_browser.py (the
website chat in a browser).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.core.conversation import Conversation
from bot.db.models import AuditLog, Escalation, OutboundMessage
from bot.handoff import escalations
from bot.handoff.escalations import EscalationError
from bot.handoff.handback import HANDED_BACK, hand_back, handed_back_text, handed_back_text_for
from bot.handoff.rasa_api import RasaApi, RasaApiError
from bot.policy.profiles.loader import DEFAULT_DIR, load_all
from bot.staff.cli import main
from tests.handoff.test_relay import NOW, TOKEN, database, free_port, in_progress, rasa

__all__ = ["database", "rasa"]  # the fixtures, shared with the relay's tests

NOTICE = handed_back_text("国際興業健康保険組合")


@pytest.mark.parametrize("org_id", sorted(load_all()))
def test_the_notice_names_the_organization_politely(org_id):
    text = handed_back_text_for(org_id, DEFAULT_DIR)
    name = load_all()[org_id].name
    assert name in text
    assert text.startswith("担当者の対応が終わりました。")
    assert "アシスタントが" in text and text.endswith("お送りください。")
    assert len(text) < 120  # a short message on a phone


def test_without_a_readable_profile_the_notice_still_reads_well(tmp_path):
    text = handed_back_text_for("kokusai-kogyo-kenpo", tmp_path)
    assert text == (
        "担当者の対応が終わりました。ここからは、ふたたび自動応答のアシスタントが"
        "お答えします。ご質問があれば、いつでもお送りください。"
    )


def closed(database, escalation_id: int) -> Escalation:
    with database.begin() as session:
        return session.get(Escalation, escalation_id)


def test_a_website_chat_is_resumed_and_told_in_one_call_on_its_latest_channel(database, rasa):
    sender = "web:0123456789abcdef0123456789abcdef"
    rasa.known.add(sender)
    escalation_id = in_progress(database, sender)
    with database.begin() as session:
        hand_back(session, escalation_id, "tanaka", NOW, RasaApi(rasa.url, TOKEN), NOTICE)
    ((path, query, body),) = rasa.calls
    assert path == f"/conversations/{sender}/tracker/events"
    assert query["execute_side_effects"] == ["true"] and query["output_channel"] == ["latest"]
    assert body == [{"event": "resume"}, {"event": "bot", "text": NOTICE}]
    assert closed(database, escalation_id).status == "closed"
    with database.begin() as session:
        assert session.execute(sa.select(OutboundMessage)).first() is None  # no push


def test_a_line_conversation_is_told_once_by_the_outbox_and_rasa_only_records(
    database, rasa, monkeypatch
):
    import bot.outbound.outbox as outbox
    from tests.line_stand_in import ACCESS_TOKEN, line_stand_in

    sender = "line:U4af4980629a0b8e5c1f3a7d9e2b6c001"
    rasa.known.add(sender)
    escalation_id = in_progress(database, sender)
    with line_stand_in() as line:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", ACCESS_TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", line.url)
        monkeypatch.setattr(outbox, "_default_carriers", None)  # read these settings
        with database.begin() as session:
            hand_back(session, escalation_id, "tanaka", NOW, RasaApi(rasa.url, TOKEN), NOTICE)
        pushes = line.successful()
    assert [call.texts for call in pushes] == [[NOTICE]]
    assert pushes[0].body["to"] == sender.removeprefix("line:")
    ((_, query, body),) = rasa.calls
    # Rasa records the notice in the conversation but sends nothing itself.
    assert "output_channel" not in query and "execute_side_effects" not in query
    assert body == [{"event": "resume"}, {"event": "bot", "text": NOTICE}]
    with database.begin() as session:
        rows = session.execute(sa.select(OutboundMessage)).scalars().all()
        assert [(row.channel, row.status, row.purpose) for row in rows] == [
            ("line", "sent", HANDED_BACK)
        ]


def test_with_the_rasa_server_away_nothing_changes_and_nothing_is_pushed(database):
    sender = "line:U4af4980629a0b8e5c1f3a7d9e2b6c002"
    escalation_id = in_progress(database, sender)
    away = RasaApi(f"http://127.0.0.1:{free_port()}", TOKEN)
    with pytest.raises(RasaApiError), database.begin() as session:
        hand_back(session, escalation_id, "tanaka", NOW, away, NOTICE)
    assert closed(database, escalation_id).status == "in_progress"
    with database.begin() as session:
        assert session.execute(sa.select(OutboundMessage)).first() is None
        assert (
            session.execute(
                sa.select(AuditLog).where(AuditLog.action == "escalation.handed_back")
            ).first()
            is None
        )


def test_a_conversation_that_was_never_paused_is_not_told(database, rasa):
    # A lockout's escalation: the assistant never stopped answering.
    sender = "line:U4af4980629a0b8e5c1f3a7d9e2b6c003"
    with database.begin() as session:
        opened = escalations.escalate(
            session, Conversation(sender, "s", "line"), "verification_locked", NOW
        )
    with database.begin() as session:
        hand_back(session, opened.id, "tanaka", NOW, RasaApi(rasa.url, TOKEN), NOTICE)
    assert rasa.calls == []
    assert closed(database, opened.id).status == "closed"
    with database.begin() as session:
        assert session.execute(sa.select(OutboundMessage)).first() is None
        with pytest.raises(EscalationError):
            hand_back(session, opened.id, "tanaka", NOW, RasaApi(rasa.url, TOKEN), NOTICE)


def test_the_cli_hands_back_with_the_organizations_notice(
    database, rasa, migrated_url, monkeypatch, capsys
):
    monkeypatch.setenv("RASA_TOKEN", TOKEN)
    monkeypatch.setenv("PRIVACY_BOT_ORG", "benesse-kenpo")
    sender = "web:feedfacefeedfacefeedfacefeedface"
    rasa.known.add(sender)
    escalation_id = in_progress(database, sender)
    args = ["--url", migrated_url, "hand-back", str(escalation_id), "--staff", "tanaka"]
    assert main([*args, "--rasa-url", rasa.url]) == 0
    ((_, _, body),) = rasa.calls
    assert body[1]["text"] == handed_back_text_for("benesse-kenpo", DEFAULT_DIR)
    assert "ベネッセ" in body[1]["text"]
    assert closed(database, escalation_id).status == "closed"
