"""The tables, their constraints, the append-only audit log and the demo data."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.db.demo import load_demo
from bot.db.models import AuditLog, Member, Verification
from bot.db.session import engine_for, session_factory

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


def all_members(sessions) -> list[Member]:
    with sessions.begin() as session:
        return list(session.execute(sa.select(Member).order_by(Member.id)).scalars())


def test_the_demo_data_is_exactly_the_five_fictional_members(demo):
    taro, hanako, jiro, ichiro, sakura = all_members(demo)
    # The two 共済 whose members hold a certificate: one number, no 記号.
    assert (ichiro.symbol, ichiro.number, ichiro.name) == ("", "2023001234", "鈴木 一郎")
    assert (sakura.symbol, sakura.number, sakura.name) == ("", "880012345678", "高橋 桜")
    assert (taro.symbol, taro.number, taro.name, taro.name_kana) == (
        "1001",
        "23",
        "山田 太郎",
        "ヤマダ タロウ",
    )
    assert (taro.birth_date, taro.phone, taro.acquired_on, taro.lost_on) == (
        date(1985, 4, 1), "+819012345678", date(2010, 4, 1), None,
    )  # fmt: skip
    assert (taro.relationship, taro.insured_id) == ("insured", None)
    assert (hanako.symbol, hanako.number, hanako.name, hanako.name_kana) == (
        "1001",
        "23",
        "山田 花子",
        "ヤマダ ハナコ",
    )
    assert hanako.birth_date == date(2012, 6, 15)
    assert (hanako.relationship, hanako.insured_id) == ("dependant", taro.id)
    assert (jiro.symbol, jiro.number, jiro.name, jiro.name_kana) == (
        "1001",
        "57",
        "佐藤 次郎",
        "サトウ ジロウ",
    )
    assert (jiro.birth_date, jiro.phone, jiro.acquired_on, jiro.lost_on) == (
        date(1979, 11, 30), "+818022223333", date(2003, 10, 1), date(2024, 3, 31),
    )  # fmt: skip
    assert (jiro.relationship, jiro.insured_id) == ("insured", None)


def test_loading_the_demo_twice_adds_nothing(demo):
    with demo.begin() as session:
        assert load_demo(session) == 0
    assert len(all_members(demo)) == 5


def member(**overrides) -> Member:
    values = {
        "symbol": "2002",
        "number": "7",
        "name": "試験 一郎",
        "name_kana": "シケン イチロウ",
        "birth_date": date(1990, 1, 1),
        "phone": "+819000000000",
        "acquired_on": date(2015, 4, 1),
        "relationship": "insured",
    }
    return Member(**{**values, **overrides})


def test_symbol_number_and_birth_date_identify_one_member(sessions):
    with sessions.begin() as session:
        session.add(member())
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        session.add(member(name="別人"))
    # The same 記号・番号 with another birth date is another person (a dependant).
    with sessions.begin() as session:
        insured = session.execute(sa.select(Member)).scalar_one()
        session.add(
            member(birth_date=date(2020, 2, 2), relationship="dependant", insured_id=insured.id)
        )


@pytest.mark.parametrize(
    "bad",
    [
        {"relationship": "spouse"},
        {"relationship": "dependant"},  # a dependant needs their insured person
        {"relationship": "insured", "insured_id": 1},
    ],
)
def test_relationship_and_insured_id_are_checked(sessions, bad):
    with sessions.begin() as session:
        session.add(member(birth_date=date(1960, 1, 1)))
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        session.add(member(**bad))


def test_foreign_keys_are_enforced(sessions):
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        session.add(member(relationship="dependant", insured_id=999))


def pending(member_id: int, sender: str) -> Verification:
    return Verification(
        sender_id=sender,
        session_key="s",
        channel="rest",
        member_id=member_id,
        status="pending_code",
        code_wrong_attempts=0,
        codes_sent=1,
        created_at=NOW,
        last_seen_at=NOW,
    )


def test_a_member_has_at_most_one_live_code_in_the_database_itself(demo):
    taro_id = all_members(demo)[0].id
    with demo.begin() as session:
        session.add(pending(taro_id, "a"))
    with pytest.raises(sa.exc.IntegrityError), demo.begin() as session:
        session.add(pending(taro_id, "b"))
    with demo.begin() as session:
        first = session.execute(sa.select(Verification)).scalar_one()
        first.status = "cancelled"
        session.add(pending(taro_id, "b"))


def audit_row(sessions, at: datetime | None = None) -> int:
    # A row of today: the database lets the retention purge delete only year-old rows.
    at = at or datetime.now(timezone.utc)
    with sessions.begin() as session:
        row = AuditLog(at=at, actor="system", action="test.event", detail={"n": 1})
        session.add(row)
        session.flush()
        return int(row.id)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'rewritten'",
        "UPDATE audit_log SET detail = '{}' WHERE id = :id",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE id = :id",
    ],
)
def test_the_audit_log_rejects_update_and_delete(sessions, statement):
    row_id = audit_row(sessions)
    engine = sessions.kw["bind"]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text(statement), {"id": row_id} if ":id" in statement else {})
    with sessions.begin() as session:
        rows = session.execute(sa.select(AuditLog)).scalars().all()
    assert [(r.id, r.action, r.detail) for r in rows] == [(row_id, "test.event", {"n": 1})]


def test_only_audit_rows_older_than_a_year_may_be_deleted_and_none_updated(sessions):
    now = datetime.now(timezone.utc)
    young = audit_row(sessions, now - timedelta(days=364))
    old = audit_row(sessions, now - timedelta(days=366))
    engine = sessions.kw["bind"]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text("UPDATE audit_log SET action = 'x' WHERE id = :id"), {"id": old})
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_log WHERE id = :id"), {"id": young})
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM audit_log WHERE id = :id"), {"id": old})
    with sessions.begin() as session:
        assert session.execute(sa.select(AuditLog.id)).scalars().all() == [young]


def test_the_audit_log_takes_new_rows(sessions):
    audit_row(sessions)
    audit_row(sessions)
    with sessions.begin() as session:
        assert session.execute(sa.select(sa.func.count()).select_from(AuditLog)).scalar_one() == 2


def test_timestamps_come_back_as_aware_utc_and_naive_ones_are_refused(sessions):
    tokyo = timezone(timedelta(hours=9))
    with sessions.begin() as session:
        session.add(AuditLog(at=NOW.astimezone(tokyo), actor="system", action="tz", detail={}))
    with sessions.begin() as session:
        stored = session.execute(sa.select(AuditLog.at)).scalar_one()
    assert stored == NOW and stored.tzinfo == timezone.utc
    with pytest.raises(sa.exc.StatementError, match="naive"), sessions.begin() as session:
        session.add(AuditLog(at=datetime(2025, 1, 1), actor="system", action="tz", detail={}))


def test_one_engine_and_session_factory_per_url(migrated_url):
    assert session_factory(migrated_url) is session_factory(migrated_url)
    assert engine_for(migrated_url) is session_factory(migrated_url).kw["bind"]


def test_sql_parameters_stay_out_of_error_messages(demo):
    with pytest.raises(sa.exc.IntegrityError) as raised, demo.begin() as session:
        session.add(member(symbol="1001", number="23", birth_date=date(1985, 4, 1)))
    message = str(raised.value)
    assert "SQL parameters hidden" in message
    assert "+819000000000" not in message and "試験" not in message
    # PostgreSQL's own DETAIL still names the conflicting key (記号, 番号, 生年月日):
    # that is why no code path may log such an error's text.
