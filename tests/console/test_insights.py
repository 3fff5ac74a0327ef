"""The privacy officer's overview: figures on a conversation set whose counts are known,
the list of messages the assistant did not understand (masked, grouped, exported),
roles, audit rows and the command line, over real HTTP against the real databases.

The conversations are stored by Rasa's own SQLTrackerStore, values in clear (as rows
written before the masking store, or by Rasa's store, are): the list must mask them.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, Event, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.core.conversation import Conversation
from bot.db.audit import audit
from bot.db.models import Case, Member, OutboundMessage, Verification
from bot.handoff import escalations
from bot.insights import events as insight_events
from bot.insights.__main__ import main as insights_cli
from bot.insights.figures import compute
from bot.insights.period import Period
from bot.launcher import tracker_store_config
from bot.settings import load_settings
from tests.console_fixtures import NOW, RunningConsole, text_of

JST_NOON = 3 * 3600  # 12:00 JST is 03:00 UTC
PHONE = "090-1234-5678"
BIRTH = "1985年4月1日"
NAME = "山田太郎"
CLEAR_VALUES = (PHONE, BIRTH, NAME, "1234-5678")


def at(day: str, hour_utc: float = 3.0) -> float:
    """A Unix time on a UTC date (03:00 UTC is noon in Japan)."""
    moment = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return (moment + timedelta(hours=hour_utc)).timestamp()


def user(
    text: str, intent: str, when: float, entities: Sequence[dict[str, object]] = ()
) -> UserUttered:
    parse = {
        "intent": {"name": intent, "confidence": 0.9},
        "entities": list(entities),
        "text": text,
    }
    return UserUttered(
        text, intent=parse["intent"], entities=list(entities), parse_data=parse, timestamp=when
    )


def not_stated(when: float) -> BotUttered:
    """An answer that the policy does not say it, as the actions mark it."""
    return BotUttered(
        "申し訳ありません。記載が見当たらないため、こちらではお答えできません。",
        metadata={"answer_kind": "not_stated"},
        timestamp=when,
    )


def said(text: str, when: float) -> BotUttered:
    return BotUttered(text, timestamp=when)


# The period of 7 days up to NOW (2026-03-02 09:00 JST): 2026-02-24 .. 2026-03-02 JST,
# in the weeks of Monday 2026-02-23 and Monday 2026-03-02.
CONVERSATIONS: dict[str, list[Event]] = {
    # Web chat, 2026-02-25: three messages, one the NLU did not understand.
    "web:0001": [
        SessionStarted(timestamp=at("2026-02-25", 2.9)),
        user("こんにちは", "greet", at("2026-02-25")),
        said("こんにちは。", at("2026-02-25") + 1),
        user("開示の手数料はいくらですか", "ask_fee", at("2026-02-25") + 10),
        said("手数料は無料です。", at("2026-02-25") + 11),
        user(f"よくわからないのですが生年月日は{BIRTH}です", "nlu_fallback", at("2026-02-25") + 20),
        said("すみません、もう一度お願いします。", at("2026-02-25") + 21),
    ],
    # LINE, 2026-02-27: a question the policy does not answer, then a name.
    "line:U0002": [
        user(
            f"通話は録音されていますか 電話は{PHONE}です", "ask_security_measures", at("2026-02-27")
        ),
        not_stated(at("2026-02-27") + 1),
        user(
            f"{NAME}と申しますがよくわかりません",
            "nlu_fallback",
            at("2026-02-27") + 10,
            [{"entity": "person_name", "start": 0, "end": 4, "value": NAME}],
        ),
        said("すみません、もう一度お願いします。", at("2026-02-27") + 11),
    ],
    # REST, 2026-03-02 08:30 JST (2026-03-01 23:30 UTC).
    "rest:0003": [
        user("カメラの映像は保存されますか", "ask_usage_purpose", at("2026-03-01", 23.5)),
        not_stated(at("2026-03-01", 23.5) + 1),
        user("通話は録音されてますか", "nlu_fallback", at("2026-03-01", 23.5) + 10),
        said("すみません、もう一度お願いします。", at("2026-03-01", 23.5) + 11),
    ],
    # Before the period (2026-02-20): counted in no 7-day figure.
    "web:0004": [
        user("むかしのよくわからない質問", "nlu_fallback", at("2026-02-20")),
        not_stated(at("2026-02-20") + 1),
    ],
}


@pytest.fixture
def store(migrated_url: str) -> Iterator[SQLTrackerStore]:
    """Rasa's own SQL tracker store on the test database, writing values in clear."""
    config = {**tracker_store_config(migrated_url), "type": "SQL"}
    made = TrackerStore.create(EndpointConfig(**config), Domain.empty())
    assert isinstance(made, SQLTrackerStore)
    yield made
    made.engine.dispose()


def save(store: SQLTrackerStore, sender: str, events: Sequence[Event]) -> None:
    tracker = DialogueStateTracker(sender, [])
    for event in events:
        tracker.update(event)
    asyncio.run(store.save(tracker))


def _member(session) -> int:
    return session.execute(sa.select(Member.id).where(Member.name == "山田 太郎")).scalar_one()


def _case(number: str, case_type: str, status: str, due: datetime | None, member: int) -> Case:
    return Case(
        case_number=number,
        case_type=case_type,
        target="retained_data" if case_type == "disclosure" else None,
        requester_member_id=member,
        subject_member_id=member,
        role="self",
        scope=[],
        channel="line",
        status=status,
        received_at=NOW - timedelta(days=5),
        max_extension_days=30,
        due_at=due,
        fee_kind="free",
        updated_at=NOW,
    )


def _sms(status: str, channel: str, sent: datetime | None) -> OutboundMessage:
    return OutboundMessage(
        channel=channel, to="+8190", text="認証コード［伏せ字］", status=status,
        created_at=sent or NOW, sent_at=sent, purpose="verification_code",
    )  # fmt: skip


@pytest.fixture
def known(console: RunningConsole, store: SQLTrackerStore, migrated_url: str) -> RunningConsole:
    """The fixture set: conversations, a hand-off, verification steps, SMS and cases."""
    for sender, conversation in CONVERSATIONS.items():
        save(store, sender, conversation)
    insight_events.ensure_indexes(store.engine)
    with console.sessions.begin() as session:
        member = _member(session)
        escalations.escalate(
            session,
            Conversation("line:U0002", "s", "line"),
            "repeated_fallback",
            datetime.fromtimestamp(at("2026-02-27") + 20, timezone.utc),
            member_id=member,
            pause=True,
        )
        day = datetime(2026, 2, 26, 3, tzinfo=timezone.utc)
        session.add(
            Verification(
                sender_id="line:U0002", session_key="s", channel="line", status="verified",
                created_at=day, last_seen_at=day,
            )
        )  # fmt: skip
        for action, count in (
            ("verification.succeeded", 1),
            ("verification.failed", 2),
            ("verification.locked", 1),
        ):
            for _ in range(count):
                audit(session, day, action, "system")
        audit(session, day - timedelta(days=10), "verification.failed", "system")  # before
        session.add_all(
            [
                _sms("sent", "sms", day),
                _sms("sent", "sms", day + timedelta(hours=1)),
                _sms("failed", "sms", None),
                _sms("sent", "line", day),
                _sms("sent", "sms", day - timedelta(days=10)),  # before the period
            ]
        )
        session.add_all(
            [
                _case("PR-2026-000001", "disclosure", "received", NOW + timedelta(days=3), member),
                _case("PR-2026-000002", "correction", "under_review", NOW - timedelta(1), member),
                _case("PR-2026-000003", "disclosure", "extended", NOW + timedelta(days=20), member),
                _case("PR-2026-000004", "suspension", "awaiting_documents", NOW, member),
                _case("PR-2026-000005", "disclosure", "closed", NOW - timedelta(days=9), member),
            ]
        )  # fmt: skip
    return console


def test_figures_of_the_fixture_set(known: RunningConsole, migrated_url: str) -> None:
    engine = sa.create_engine(migrated_url, future=True)
    with known.sessions.begin() as session, engine.connect() as connection:
        figures = compute(session, connection, NOW, Period.ending(NOW, 7))
    engine.dispose()
    days = [day.isoformat() for day in figures.period.days]
    assert days[0] == "2026-02-24" and days[-1] == "2026-03-02"
    assert [week.isoformat() for week in figures.period.weeks] == ["2026-02-23", "2026-03-02"]

    def on(series: list[int], day: str) -> int:
        return series[days.index(day)]

    assert on(figures.messages["socketio"], "2026-02-25") == 3
    assert on(figures.messages["line"], "2026-02-27") == 2
    assert on(figures.messages["rest"], "2026-03-02") == 2  # 08:30 JST, 23:30 UTC the day before
    assert sum(sum(values) for values in figures.messages.values()) == 7
    assert sum(sum(values) for values in figures.conversations.values()) == 3
    assert figures.weekly_messages == [5, 2]
    assert figures.fallbacks == [2, 1]
    assert figures.not_stated == [1, 1]
    assert figures.handoffs == [1, 0]
    assert figures.share(figures.fallbacks) == [2 / 5, 1 / 2]
    assert figures.intents["nlu_fallback"] == [2, 1]
    assert figures.intents["ask_fee"] == [1, 0]
    assert figures.verification == {"started": 1, "completed": 1, "failed": 2, "locked": 1}
    assert sum(figures.sms) == 2 and on(figures.sms, "2026-02-26") == 2
    assert figures.open_cases == {
        ("disclosure", "received"): 1,
        ("correction", "under_review"): 1,
        ("disclosure", "extended"): 1,
        ("suspension", "awaiting_documents"): 1,
    }
    assert figures.deadlines == {"overdue": 1, "soon": 1, "later": 1, "paused": 1, "none": 0}


def test_overview_page_draws_the_charts_for_officers_only(known: RunningConsole) -> None:
    officer = known.sign_in("suzuki")
    page = officer.get("/insights?days=7")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 8
    assert "<script" not in page.text.split("<main>")[1]  # the charts need no script
    assert "2026年2月24日" in page.text  # the period, in Japanese
    body = text_of(page.text)
    for value in CLEAR_VALUES:
        assert value not in body
    assert "nav" in page.text and 'href="/insights"' in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    # An unknown period is the default one, not an error.
    assert officer.get("/insights?days=1000").status_code == 200
    for name in ("tanaka", "kanri"):  # an agent, an administrator
        other = known.sign_in(name)
        assert 'href="/insights"' not in other.get("/password").text
        for path in (
            "/insights",
            "/insights/unanswered",
            "/insights/unanswered.csv",
            "/insights/messages/1",
        ):
            assert other.get(path).status_code == 403, (name, path)


def test_unanswered_messages_are_masked_grouped_and_audited(known: RunningConsole) -> None:
    officer = known.sign_in("suzuki")
    page = officer.get("/insights/unanswered?days=7")
    assert page.status_code == 200
    body = text_of(page.text)
    for value in CLEAR_VALUES:
        assert value not in page.text
    # Every listed message of the period, each masked as a transcript masks it.
    assert "よくわからないのですが生年月日は［生年月日］です" in body
    assert "通話は録音されていますか 電話は［電話番号］です" in body
    assert "［氏名］と申しますがよくわかりません" in body
    assert "カメラの映像は保存されますか" in body
    assert "通話は録音されてますか" in body
    assert "むかしのよくわからない質問" not in body  # before the period
    assert body.count("会話を見る") == 5
    # The two questions about recordings are one group, listed first (the largest).
    first = page.text.split('id="group-2"')[0]
    assert "通話は録音されていますか" in first and "通話は録音されてますか" in first
    viewed = known.audit("console.viewed")
    assert viewed[-1].actor == "staff:suzuki"
    assert viewed[-1].detail == {"page": "insights_unanswered", "days": 7, "messages": 5}

    exported = officer.get("/insights/unanswered.csv?days=7")
    assert exported.status_code == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in exported.headers["Content-Disposition"]
    text = exported.content.decode("utf-8-sig")
    for value in CLEAR_VALUES:
        assert value not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5
    assert {row["kind"] for row in rows} == {"fallback", "not_stated"}
    assert "通話は録音されていますか 電話は［電話番号］です" in {r["message_masked"] for r in rows}
    assert known.audit("console.exported")[-1].detail["messages"] == 5

    # Each message links to its conversation, masked; the look is audited with the member.
    link = next(row["conversation"] for row in rows if "［氏名］" in row["message_masked"])
    conversation = officer.get(link)
    assert conversation.status_code == 200
    for value in CLEAR_VALUES:
        assert value not in conversation.text
    assert "［電話番号］" in conversation.text and 'aria-current="true"' in conversation.text
    row = known.audit("console.viewed")[-1]
    assert row.detail["page"] == "insights_conversation"
    assert row.sender_id == "line:U0002" and row.member_id is not None
    assert officer.get("/insights/messages/999999").status_code == 404


def test_the_command_line_prints_the_same_figures(
    known: RunningConsole, migrated_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    monkeypatch.delenv("TRACKER_STORE_URL", raising=False)
    tracker_url = load_settings().tracker_url
    if tracker_url != migrated_url:
        # SQLite: the product keeps the events in tracker.db beside the app database.
        engine = sa.create_engine(migrated_url, future=True)
        with engine.begin() as connection:
            path = sa.engine.make_url(tracker_url).database
            connection.exec_driver_sql(f"ATTACH DATABASE '{path}' AS tracker")
            connection.exec_driver_sql("CREATE TABLE tracker.events AS SELECT * FROM events")
        engine.dispose()
    assert insights_cli(["--days", "7", "--csv"], now=NOW) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    cell = {(r["figure"], r["row"], r["column"]): r["value"] for r in rows}
    assert cell[("messages", "2026-02-25", "Webチャット")] == "3"
    assert cell[("failures", "2026-02-23", "聞き返し")] == "2（40.0%）"
    assert cell[("verification", "ロック", "件数")] == "1"
    assert cell[("deadlines", "期限超過", "件数")] == "1"
    assert insights_cli(["--days", "7"], now=NOW) == 0
    table = capsys.readouterr().out
    assert "# 利用状況 2026-02-24 〜 2026-03-02" in table
    assert "## 本人確認（期間合計）" in table
