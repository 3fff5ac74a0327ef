"""Transcripts read from Rasa's own tracker store (SQLite and PostgreSQL).

The ``events`` table is made by Rasa's SQLTrackerStore from the endpoint config the
launcher writes, and filled with real Rasa events: saved by the store itself, or, for
long conversations, inserted the way the store serializes them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot.core.sessions import CONTINUES, HANDOFF_REASONS
from bot.handoff.transcripts import (
    EVENTS,
    Transcript,
    TranscriptError,
    dispose_tracker_engines,
    read_transcript,
    reveal_field,
    tracker_engine,
)
from bot.launcher import tracker_store_config
from tests.db_fixtures import backend_of

T0 = 1_795_000_000.0
NAMES = ("山田 太郎", "山田 花子")
HANDOFF = '/request_human{"handoff_reason": "member_request"}'


@pytest.fixture
def store(db_url: str) -> Iterator[SQLTrackerStore]:
    """Rasa's own SQL tracker store on the test database, writing values in clear.

    The rasa server's store masks them on save (tests/test_redacting_tracker_store.py);
    rows written before it, or by Rasa's store, are masked by the transcript instead.
    """
    config = {**tracker_store_config(db_url), "type": "SQL"}
    made = TrackerStore.create(EndpointConfig(**config), Domain.empty())
    assert isinstance(made, SQLTrackerStore)
    yield made
    made.engine.dispose()
    dispose_tracker_engines(db_url)


def save(store: SQLTrackerStore, sender: str, events: Sequence[Event]) -> None:
    tracker = DialogueStateTracker(sender, [])
    for event in events:
        tracker.update(event)
    asyncio.run(store.save(tracker))


def user(text: str, at: float, entities: list[dict] | None = None) -> UserUttered:
    return UserUttered(
        text,
        intent={"name": "inform", "confidence": 0.9},
        entities=entities or [],
        timestamp=at,
        input_channel="socketio",
    )


def conversation() -> list[Event]:
    name = "山田太郎"
    said = f"{name}です。連絡先は090-1234-5678、taro@example.jp です"
    return [
        ActionExecuted("action_session_start", timestamp=T0),
        SessionStarted(timestamp=T0),
        ActionExecuted("action_listen", timestamp=T0),
        user("登録内容を確認したい", T0 + 1),
        ActionExecuted("action_my_data", timestamp=T0 + 2),
        BotUttered("記号・番号を教えてください。", timestamp=T0 + 2),
        SlotSet("requested_slot", "id_member_number", timestamp=T0 + 2),
        user("記号1001 番号23です", T0 + 3),
        user("昭和60年4月1日", T0 + 4),
        user("１２３４５６", T0 + 5),
        BotUttered("ご登録内容は次のとおりです。\n・被扶養者：山田 花子 様", timestamp=T0 + 6),
        user(said, T0 + 7, [{"entity": "person_name", "start": 0, "end": 4, "value": name}]),
        BotUttered(
            "担当者におつなぎできます。",
            data={"buttons": [{"title": "担当者と話す", "payload": HANDOFF}]},
            timestamp=T0 + 8,
        ),
        user(HANDOFF, T0 + 9),
        ActionExecuted("action_request_human", timestamp=T0 + 10),
        ConversationPaused(timestamp=T0 + 10),
        ActionExecuted("action_listen", timestamp=T0 + 10),
        user("まだですか", T0 + 11),
        ActionExecuted("action_relay_staff_message", timestamp=T0 + 12),
        BotUttered("担当者より：お待たせしました", metadata={"staff": "tanaka"}, timestamp=T0 + 12),
        ConversationResumed(timestamp=T0 + 13),
        Restarted(timestamp=T0 + 14),
    ]


def read(url: str, sender: str, **kwargs) -> Transcript:
    with tracker_engine(url).connect() as connection:
        return read_transcript(connection, sender, **kwargs)


def test_a_conversation_reads_as_lines_with_personal_values_masked(store, db_url):
    save(store, "other", [SessionStarted(timestamp=T0), user("他人の話 1985年4月1日", T0)])
    save(store, "m1", conversation())

    transcript = read(db_url, "m1", known_names=NAMES)

    assert transcript.sender_id == "m1" and transcript.earlier_before is None
    shown = [(line.speaker, line.staff, line.masked_text) for line in transcript.lines]
    assert shown == [
        ("system", None, "新しいセッションが始まりました"),
        ("member", None, "登録内容を確認したい"),
        ("assistant", None, "記号・番号を教えてください。"),
        ("member", None, "記号［記号・番号］ 番号［記号・番号］です"),
        ("member", None, "［生年月日］"),
        ("member", None, "［認証コード］"),
        ("assistant", None, "ご登録内容は次のとおりです。\n・被扶養者：［氏名］ 様"),
        ("member", None, "［氏名］です。連絡先は［電話番号］、［メールアドレス］ です"),
        ("assistant", None, "担当者におつなぎできます。"),
        ("member", None, "担当者と話す（ボタンを選択）"),
        ("system", None, "会話を一時停止しました（担当者対応）"),
        ("member", None, "まだですか"),
        ("staff", "tanaka", "担当者より：お待たせしました"),
        ("system", None, "会話を再開しました（アシスタントが応答します）"),
        ("system", None, "会話が最初からやり直されました"),
    ]
    assert transcript.lines[0].at == datetime.fromtimestamp(T0, timezone.utc)
    assert transcript.lines[8].buttons == ("担当者と話す",)
    # The clear values are nowhere in what a transcript holds.
    everything = repr(transcript)
    for clear in ("1001", "昭和60", "123456", "１２３４５６", "090-1234", "taro@", "太郎", "花子"):
        assert clear not in everything
    kinds = [s.field.kind for line in transcript.lines for s in line.segments if s.field]
    assert kinds == [
        "member_number",
        "member_number",
        "birth_date",
        "code",
        "name",
        "name",
        "phone",
        "email",
    ]


def test_reveal_returns_one_clear_value_of_this_conversation_only(store, db_url):
    save(store, "m1", conversation())
    save(store, "other", [SessionStarted(timestamp=T0), user("090-9999-0000", T0)])
    lines = read(db_url, "m1", known_names=NAMES).lines
    numbers, contact, dependants = lines[3], lines[7], lines[6]

    with tracker_engine(db_url).connect() as connection:
        field, value = reveal_field(connection, "m1", numbers.event_id, 1, NAMES)
        assert (field.index, field.kind, field.label, field.masked, value) == (
            1,
            "member_number",
            "記号・番号",
            "［記号・番号］",
            "23",
        )
        assert [
            reveal_field(connection, "m1", contact.event_id, index, NAMES)[1] for index in range(3)
        ] == ["山田太郎", "090-1234-5678", "taro@example.jp"]
        assert reveal_field(connection, "m1", dependants.event_id, 0, NAMES)[1] == "山田 花子"
        assert reveal_field(connection, "m1", lines[4].event_id, 0)[1] == "昭和60年4月1日"

        with pytest.raises(TranscriptError):
            reveal_field(connection, "m1", contact.event_id, 3, NAMES)  # no such field
        with pytest.raises(TranscriptError):
            reveal_field(connection, "other", numbers.event_id, 0)  # not that sender's
        with pytest.raises(TranscriptError):
            reveal_field(connection, "m1", lines[0].event_id, 0)  # a system line
        with pytest.raises(TranscriptError):
            reveal_field(connection, "m1", 10**9, 0)


def insert_events(url: str, rows: list[tuple[str, Event]]) -> None:
    """Insert events exactly as SQLTrackerStore.save serializes them, in one go."""
    values = []
    for sender, event in rows:
        data = event.as_dict()
        values.append(
            {
                "sender_id": sender,
                "type_name": event.type_name,
                "timestamp": data.get("timestamp"),
                "intent_name": data.get("parse_data", {}).get("intent", {}).get("name"),
                "action_name": data.get("name"),
                "data": json.dumps(data),
            }
        )
    with tracker_engine(url).begin() as connection:
        connection.execute(EVENTS.insert(), values)


def long_conversation(turns: int) -> list[tuple[str, Event]]:
    rows: list[tuple[str, Event]] = []
    for turn in range(turns):
        at = T0 + turn
        rows.append(("long", user(f"質問{turn:03x}", at)))
        rows.append(("busy", user(f"別の会話{turn}", at)))
        rows.append(("long", ActionExecuted("action_answer_policy", timestamp=at)))
        rows.append(("long", BotUttered(f"回答{turn:03x}", timestamp=at)))
        rows.append(("long", ActionExecuted("action_listen", timestamp=at)))
    return rows


def test_a_long_conversation_pages_back_and_polls_forward_one_query_each(store, db_url):
    insert_events(db_url, long_conversation(1500))  # 6,000 events, 3,000 lines of "long"
    statements: list[str] = []
    engine = tracker_engine(db_url)

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        pages = [read(db_url, "long", limit=200)]
        while pages[-1].earlier_before is not None:
            pages.append(read(db_url, "long", limit=200, before_event_id=pages[-1].earlier_before))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert len(pages) == 15 and len(statements) == 15  # one query per page
    texts = [line.masked_text for page in reversed(pages) for line in page.lines]
    assert texts == [
        text for turn in range(1500) for text in (f"質問{turn:03x}", f"回答{turn:03x}")
    ]
    assert pages[0].lines[-1].masked_text == f"回答{1499:03x}"  # the first page is the newest

    newest = pages[0].lines[-1].event_id
    assert read(db_url, "long", after_event_id=newest).lines == []
    insert_events(db_url, [("long", user("追加の質問", T0 + 9999))])
    polled = read(db_url, "long", after_event_id=newest)
    assert [line.masked_text for line in polled.lines] == ["追加の質問"]
    assert polled.earlier_before is None


def test_the_page_query_is_served_by_rasas_sender_index(store, db_url):
    insert_events(db_url, long_conversation(50))
    statements: list[tuple[str, object]] = []
    engine = tracker_engine(db_url)

    def capture(conn, cursor, statement, parameters, *args) -> None:
        statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        read(db_url, "long", limit=20, before_event_id=100)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    (statement, parameters), *_ = statements
    with engine.connect() as connection:
        if backend_of(db_url) == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "USING INDEX ix_events_sender_id" in plan, plan
        else:
            # A small table would be scanned whatever the indexes; forbid that to see
            # which index the planner takes. Not the primary key backwards, which
            # would read every newer event of every conversation.
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(
                str(row[0])
                for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
            assert "ix_events_sender_id" in plan and "events_pkey" not in plan, plan


def test_the_organizations_published_numbers_stay_readable(store, db_url):
    save(
        store,
        "m2",
        [
            BotUttered("お電話は 03-3273-6974 で承ります。", timestamp=T0),
            user("03-3273-6974 に電話しましたが、私は090-1234-5678です", T0 + 1),
        ],
    )

    public = read(db_url, "m2", public_numbers=("03-3273-6974", "０３－３２７３－６９７５"))
    unknown = read(db_url, "m2")

    assert [line.masked_text for line in public.lines] == [
        "お電話は 03-3273-6974 で承ります。",
        "03-3273-6974 に電話しましたが、私は［電話番号］です",
    ]
    assert [line.masked_text for line in unknown.lines] == [
        "お電話は ［電話番号］ で承ります。",
        "［電話番号］ に電話しましたが、私は［電話番号］です",
    ]
    with tracker_engine(db_url).connect() as connection:
        event_id = public.lines[1].event_id
        field, value = reveal_field(connection, "m2", event_id, 0, public_numbers=("03-3273-6974",))
    assert (field.kind, value) == ("phone", "090-1234-5678")


def test_a_long_conversation_going_on_in_a_new_session_shows_no_new_session(store, db_url):
    carried = {CONTINUES: f"session_started@{T0}", HANDOFF_REASONS: []}
    save(
        store,
        "long",
        [
            SessionStarted(timestamp=T0),
            user("口座情報は何に使われますか", T0 + 1),
            SessionStarted(timestamp=T0 + 2, metadata=carried),
            user("保存期間は", T0 + 3),
            SessionStarted(timestamp=T0 + 4),
        ],
    )
    shown = [line.masked_text for line in read(db_url, "long").lines]
    # The continuing session starts no line; a fresh one (after idle minutes) does.
    assert shown == [
        "新しいセッションが始まりました",
        "口座情報は何に使われますか",
        "保存期間は",
        "新しいセッションが始まりました",
    ]
