"""The escalation page: the masked transcript, reveals, polling, paging back, replies,
hand-back and close, over real HTTP against the real databases.

The conversation is stored by Rasa's own SQLTrackerStore (the ``events`` table in the
test database, as the rasa server writes it). The rasa server itself is not running:
its address answers nothing, which is how these tests see the console behave when Rasa
is down (the successful round trips are covered by the end-to-end tests).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    Event,
    SessionStarted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.core.conversation import Conversation
from bot.db.models import Escalation, Member, StaffMessage
from bot.handoff import escalations
from bot.handoff.handback import handed_back_text
from bot.launcher import tracker_store_config
from bot.policy.profiles.loader import load_profile
from tests.console_fixtures import RunningConsole, Staff, start_console, text_of
from tests.handoff.test_relay import database, rasa

__all__ = ["database", "rasa"]  # the recording rasa stand-in's fixtures

SENDER = "member-line-1"
PHONE = "090-1234-5678"
BIRTH = "1985年4月1日"
T0 = 1_772_409_600.0  # 2026-03-02 00:00 UTC


@pytest.fixture
def store(migrated_url: str) -> Iterator[SQLTrackerStore]:
    """Rasa's own SQL tracker store on the test database, writing values in clear.

    The rasa server's store masks them on save (tests/test_redacting_tracker_store.py);
    rows written before it, or by Rasa's store, are masked by the transcript instead.
    """
    config = {**tracker_store_config(migrated_url), "type": "SQL"}
    made = TrackerStore.create(EndpointConfig(**config), Domain.empty())
    assert isinstance(made, SQLTrackerStore)
    yield made
    made.engine.dispose()


def save(store: SQLTrackerStore, sender: str, events: Sequence[Event]) -> None:
    """Append events to a conversation, as the rasa server does after a turn."""
    tracker = asyncio.run(store.retrieve(sender)) or DialogueStateTracker(sender, [])
    for event in events:
        tracker.update(event)
    asyncio.run(store.save(tracker))


def user(text: str, at: float) -> UserUttered:
    return UserUttered(
        text, intent={"name": "inform", "confidence": 0.9}, timestamp=at, input_channel="line"
    )


def conversation() -> list[Event]:
    return [
        SessionStarted(timestamp=T0),
        ActionExecuted("action_listen", timestamp=T0),
        user("登録内容を確認したい", T0 + 1),
        BotUttered("ご登録内容は次のとおりです。\n・被扶養者：山田 花子 様", timestamp=T0 + 2),
        user(f"山田太郎です。生年月日は{BIRTH}、電話は{PHONE}です", T0 + 3),
        BotUttered("担当者におつなぎします。", timestamp=T0 + 4),
        ConversationPaused(timestamp=T0 + 5),
    ]


def taro(console: RunningConsole) -> int:
    with console.sessions.begin() as session:
        return session.execute(sa.select(Member.id).where(Member.name == "山田 太郎")).scalar_one()


def open_escalation(console: RunningConsole, *, paused: bool = True, member: bool = True) -> int:
    with console.sessions.begin() as session:
        view = escalations.escalate(
            session,
            Conversation(SENDER, "s", "line"),
            "member_request",
            console.clock(),
            member_id=taro(console) if member else None,
            pause=paused,
        )
    return view.id


def reveal_buttons(page: str) -> list[tuple[int, int, str]]:
    """(event id, field, label) of every masked value on the page."""
    return [
        (int(event), int(field), label)
        for event, field, label in re.findall(
            r'class="masked" data-reveal-url="[^"]+" data-event-id="(\d+)" '
            r'data-field="(\d+)" title="([^"]+)を表示',
            page,
        )
    ]


def escalation_row(console: RunningConsole, escalation_id: int) -> Escalation:
    with console.sessions.begin() as session:
        return session.get(Escalation, escalation_id)


@pytest.fixture
def talk(console, store) -> int:
    save(store, SENDER, conversation())
    return open_escalation(console)


# --- the transcript ----------------------------------------------------------------------


def test_the_page_shows_the_conversation_with_personal_values_masked(console, talk):
    staff = console.sign_in("tanaka")
    page = staff.get(f"/escalations/{talk}")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.text
    for clear in (PHONE, BIRTH, "山田太郎", "山田 花子", "太郎", "花子"):
        assert clear not in html, clear
    assert "登録内容を確認したい" in html and "担当者におつなぎします。" in html
    assert "［電話番号］" in html and "［生年月日］" in html and "［氏名］" in html
    assert "担当者希望" in html and "LINE" in html
    assert "確認済み：山＊ ＊＊" in html  # the verified member, masked
    assert "一時停止中" in html
    assert "会話を一時停止しました" in html  # the system line
    [viewed] = console.audit("console.viewed")
    assert viewed.actor == "staff:tanaka" and viewed.member_id == taro(console)
    assert viewed.detail == {"page": "escalation", "escalation_id": talk}


def test_a_reveal_returns_the_value_and_audits_the_look_without_it(console, talk):
    staff = console.sign_in("tanaka")
    buttons = reveal_buttons(staff.get(f"/escalations/{talk}").text)
    phone = next(button for button in buttons if button[2] == "電話番号")
    refused = staff.fetch_post(
        f"/escalations/{talk}/reveal", {"event_id": phone[0], "field": phone[1]}, token=""
    )
    assert refused.status_code == 403 and console.audit("console.revealed") == []
    answer = staff.fetch_post(
        f"/escalations/{talk}/reveal", {"event_id": phone[0], "field": phone[1]}
    )
    assert answer.status_code == 200 and answer.json() == {"value": PHONE}
    assert answer.headers["Cache-Control"] == "no-store"
    [looked] = console.audit("console.revealed")
    assert looked.actor == "staff:tanaka" and looked.member_id == taro(console)
    assert looked.detail == {
        "escalation_id": talk,
        "event_id": phone[0],
        "field": phone[1],
        "kind": "phone",
    }
    assert PHONE not in str([row.detail for row in console.audit()])
    birth = next(button for button in buttons if button[2] == "生年月日")
    assert staff.fetch_post(
        f"/escalations/{talk}/reveal", {"event_id": birth[0], "field": birth[1]}
    ).json() == {"value": BIRTH}
    assert len(console.audit("console.revealed")) == 2


def test_a_reveal_only_reads_this_conversation(console, talk, store):
    save(store, "someone-else", [user(f"電話は{PHONE}", T0)])
    staff = console.sign_in("tanaka")
    with console.sessions.begin() as session:
        other_event = session.execute(
            sa.text("SELECT max(id) FROM events WHERE sender_id = 'someone-else'")
        ).scalar_one()
    answer = staff.fetch_post(f"/escalations/{talk}/reveal", {"event_id": other_event, "field": 0})
    assert answer.status_code == 404 and "value" not in answer.json()
    assert (
        staff.fetch_post(f"/escalations/{talk}/reveal", {"event_id": "x", "field": 0}).status_code
        == 400
    )
    assert console.audit("console.revealed") == []


def test_new_member_messages_arrive_by_polling(console, talk, store):
    staff = console.sign_in("tanaka")
    page = staff.get(f"/escalations/{talk}").text
    found = re.search(r'data-after="(\d+)"', page)
    assert found
    after = int(found.group(1))
    assert 'data-poll="3000"' in page
    quiet = staff.http.get(
        staff.url(f"/escalations/{talk}/lines?after={after}"), headers={"X-Requested-With": "fetch"}
    )
    assert quiet.status_code == 200 and quiet.content == b""
    assert quiet.headers["X-Last-Event-Id"] == str(after)
    save(store, SENDER, [user(f"まだですか。折り返しは{PHONE}へ", T0 + 60)])
    fresh = staff.http.get(
        staff.url(f"/escalations/{talk}/lines?after={after}"), headers={"X-Requested-With": "fetch"}
    )
    assert "まだですか。折り返しは" in fresh.text and PHONE not in fresh.text
    assert "［電話番号］" in fresh.text and 'data-reveal-url="/escalations/' in fresh.text
    assert int(fresh.headers["X-Last-Event-Id"]) > after
    assert fresh.headers["X-Escalation-Status"] == "waiting"
    assert len(console.audit("console.viewed")) == 1  # polling is not a page view


def test_a_long_conversation_pages_back(console, store):
    save(store, SENDER, [user(f"質問{n:03d}", T0 + n) for n in range(150)])
    talk = open_escalation(console)
    staff = console.sign_in("tanaka")
    latest = staff.get(f"/escalations/{talk}").text
    assert "質問149" in latest and "質問050" in latest and "質問049" not in latest
    link = re.search(r'href="(/escalations/\d+\?before=\d+)">それより前の会話を表示', latest)
    assert link
    earlier = staff.get(link.group(1)).text
    assert "質問000" in earlier and "質問049" in earlier and "質問050" not in earlier
    assert "それより前の会話を表示" not in earlier and "最新の会話に戻る" in earlier
    assert "data-poll" not in earlier


def test_an_escalation_without_a_conversation_or_member(console):
    with console.sessions.begin() as session:
        session.add(
            Escalation(
                created_at=console.clock(),
                reason="case_notification_failed",
                status="waiting",
                note="outbound message #3: no phone on record",
            )
        )
    staff = console.sign_in("tanaka")
    page = staff.get("/queue").text
    assert "請求の通知に失敗" in page
    detail = staff.get("/escalations/1").text
    assert "この案件には会話がありません" in detail and "no phone on record" in detail
    assert staff.get("/escalations/999").status_code == 404


# --- replying, handing back, closing (the rasa server is away) -----------------------------


def claimed(console: RunningConsole, talk: int, name: str = "tanaka") -> Staff:
    staff = console.sign_in(name)
    assert staff.post(f"/escalations/{talk}/claim").status_code == 303
    staff.get(f"/escalations/{talk}")
    return staff


def test_a_reply_while_rasa_is_down_is_kept_and_listed_as_waiting(console, talk):
    staff = claimed(console, talk)
    answer = staff.post(
        f"/escalations/{talk}/reply", {"text": "お待たせしました。担当の田中です。"}
    )
    assert answer.status_code == 502
    assert "メッセージは保存しました" in answer.text
    assert (
        "まだ届いていない返信" in answer.text
        and "お待たせしました。担当の田中です。" in answer.text
    )
    assert "もう一度届ける" in answer.text
    # Stored, so the form is empty: sending it again would send it twice.
    assert re.search(r'data-draft-key="reply-\d+" required></textarea>', answer.text)
    with console.sessions.begin() as session:
        [message] = session.execute(sa.select(StaffMessage)).scalars().all()
        assert (message.staff, message.delivered_at) == ("tanaka", None)
    [sent] = console.audit("escalation.staff_message")
    assert "お待たせ" not in str(sent.detail)
    retry = staff.post(f"/escalations/{talk}/retry")
    assert retry.status_code == 502 and "返信は保存されています" in retry.text


def test_only_the_assignee_replies_and_a_refused_reply_keeps_its_text(console, talk):
    waiting = console.sign_in("sato")
    waiting.get(f"/escalations/{talk}")
    early = waiting.post(f"/escalations/{talk}/reply", {"text": "先に書いた返信"})
    assert early.status_code == 409 and "先にこの案件の担当になってください" in early.text
    assert "先に書いた返信</textarea>" not in early.text  # no reply form before claiming
    claimed(console, talk, "tanaka")
    other = waiting.post(f"/escalations/{talk}/reply", {"text": "別の人の返信"})
    assert other.status_code == 409 and "すでにtanakaさんが担当しています" in other.text
    owner = console.sign_in("tanaka")
    owner.get(f"/escalations/{talk}")
    empty = owner.post(f"/escalations/{talk}/reply", {"text": "   "})
    assert empty.status_code == 400 and "メッセージが空です" in empty.text
    long = "あ" * 2001
    refused = owner.post(f"/escalations/{talk}/reply", {"text": long})
    assert refused.status_code == 400 and "2,000文字以内" in refused.text
    assert f">{long}</textarea>" in refused.text  # kept for editing
    with console.sessions.begin() as session:
        assert session.execute(sa.select(StaffMessage)).first() is None


def test_hand_back_while_rasa_is_down_changes_nothing_and_keeps_the_note(console, talk):
    staff = claimed(console, talk)
    answer = staff.post(f"/escalations/{talk}/hand-back", {"note": "住所変更の案内済み"})
    assert answer.status_code == 502
    assert "アシスタントのサーバーに接続できなかった" in answer.text
    assert ">住所変更の案内済み</textarea>" in answer.text
    row = escalation_row(console, talk)
    assert (row.status, row.note) == ("in_progress", None)
    assert console.audit("escalation.handed_back") == []
    closing = staff.post(f"/escalations/{talk}/close", {"note": "電話で対応済み"})
    assert closing.status_code == 502  # paused: closing resumes it, which needs Rasa
    assert escalation_row(console, talk).status == "in_progress"


def test_hand_back_tells_the_member_in_the_organizations_words(console, store, rasa):
    save(store, SENDER, conversation())
    talk = open_escalation(console)
    rasa.known.add(SENDER)
    # The same console, with a rasa server that answers (the recording stand-in).
    answering = start_console(
        console.sessions, console.url, settings=console.settings, rasa_url=rasa.url
    )
    try:
        staff = claimed(answering, talk)
        answer = staff.post(f"/escalations/{talk}/hand-back", {"note": "案内済み"})
        assert answer.status_code == 303 and "notice=handed_back" in answer.headers["Location"]
    finally:
        answering.server.stop()
    ((path, query, body),) = rasa.calls
    assert path == f"/conversations/{SENDER}/tracker/events"
    assert query["output_channel"] == ["latest"] and query["execute_side_effects"] == ["true"]
    profile = load_profile(console.settings.org_id, console.settings.profiles_dir)
    assert body == [
        {"event": "resume"},
        {"event": "bot", "text": handed_back_text(profile.name)},
    ]
    assert profile.name in body[1]["text"]
    row = escalation_row(console, talk)
    assert (row.status, row.note) == ("closed", "案内済み")


def test_closing_a_conversation_that_was_never_paused(console, store):
    save(store, SENDER, conversation()[:4])
    talk = open_escalation(console, paused=False, member=False)
    other = console.sign_in("sato")
    staff = claimed(console, talk)
    refused = other.post(f"/escalations/{talk}/close", {"note": "横から"})
    assert refused.status_code == 409 and "tanakaさんが担当しています" in refused.text
    answer = staff.post(f"/escalations/{talk}/close", {"note": "電話で対応済み"})
    assert answer.status_code == 303
    page = staff.get(answer.headers["Location"]).text
    assert "案件を完了にしました。" in page and "電話で対応済み" in text_of(page)
    row = escalation_row(console, talk)
    assert (row.status, row.note, row.assigned_staff) == ("closed", "電話で対応済み", "tanaka")
    assert [e.actor for e in console.audit("escalation.closed")] == ["staff:tanaka"]
    again = staff.post(f"/escalations/{talk}/close", {"note": "二度目"})
    assert again.status_code == 409 and "すでに完了しています" in again.text
    assert 'data-poll="3000"' not in page  # a closed escalation is not polled
