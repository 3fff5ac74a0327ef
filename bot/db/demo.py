"""Demo members, and generated ones for load tests; both loaded idempotently.

The demo members are fictional and are what the README, the end-to-end tests and the
benchmarks verify with. Generated member ``i`` is a pure function of ``i``, so
``--generate N`` always yields the same N members, and a larger N only adds new ones.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.models import Member, Relationship


@dataclass(frozen=True)
class DemoMember:
    """One fictional member."""

    symbol: str
    number: str
    name: str
    name_kana: str
    birth_date: date
    phone: str | None
    acquired_on: date
    lost_on: date | None = None
    dependants: tuple[DemoMember, ...] = ()
    # The organization whose one-part identifier (証書番号) this is; None for the
    # 記号・番号 the 健保組合 and 共済組合 share. A one-part number has symbol "".
    org: str | None = None


DEMO_MEMBERS = (
    DemoMember(
        symbol="1001",
        number="23",
        name="山田 太郎",
        name_kana="ヤマダ タロウ",
        birth_date=date(1985, 4, 1),
        phone="+819012345678",
        acquired_on=date(2010, 4, 1),
        dependants=(
            DemoMember(
                symbol="1001",
                number="23",
                name="山田 花子",
                name_kana="ヤマダ ハナコ",
                birth_date=date(2012, 6, 15),
                phone=None,  # a child with no phone of her own: she cannot get a code
                acquired_on=date(2012, 6, 15),
            ),
        ),
    ),
    DemoMember(
        symbol="1001",
        number="57",
        name="佐藤 次郎",
        name_kana="サトウ ジロウ",
        birth_date=date(1979, 11, 30),
        phone="+818022223333",
        acquired_on=date(2003, 10, 1),
        lost_on=date(2024, 3, 31),
    ),
    DemoMember(
        symbol="",
        number="2023001234",
        name="鈴木 一郎",
        name_kana="スズキ イチロウ",
        birth_date=date(1970, 5, 5),
        phone="+819011112222",
        acquired_on=date(2023, 4, 1),
        org="gunma-shoko-kyosai",
    ),
    DemoMember(
        symbol="",
        number="880012345678",
        name="高橋 桜",
        name_kana="タカハシ サクラ",
        birth_date=date(1990, 8, 20),
        phone="+818033334444",
        acquired_on=date(2015, 9, 1),
        org="coop-kyosai",
    ),
)


def demo_member_for(org_id: str) -> DemoMember:
    """The demo member to verify with at ``org_id``: its own, or the shared 記号・番号 one."""
    own = [spec for spec in DEMO_MEMBERS if spec.org == org_id]
    return own[0] if own else DEMO_MEMBERS[0]


def _find(session: Session, spec: DemoMember) -> Member | None:
    statement = select(Member).where(
        Member.symbol == spec.symbol,
        Member.number == spec.number,
        Member.birth_date == spec.birth_date,
    )
    member: Member | None = session.execute(statement).scalar_one_or_none()
    return member


def _ensure(session: Session, spec: DemoMember, insured: Member | None) -> tuple[Member, int]:
    existing = _find(session, spec)
    if existing is not None:
        return existing, 0
    member = Member(
        symbol=spec.symbol,
        number=spec.number,
        name=spec.name,
        name_kana=spec.name_kana,
        birth_date=spec.birth_date,
        phone=spec.phone,
        acquired_on=spec.acquired_on,
        lost_on=spec.lost_on,
        relationship=(Relationship.DEPENDANT if insured else Relationship.INSURED).value,
        insured_id=insured.id if insured else None,
    )
    session.add(member)
    session.flush()  # the insured person's id is needed by their dependants
    return member, 1


def load_demo(session: Session) -> int:
    """Add the demo members that are missing; returns how many were added."""
    added = 0
    for spec in DEMO_MEMBERS:
        insured, count = _ensure(session, spec, None)
        added += count
        for dependant in spec.dependants:
            added += _ensure(session, dependant, insured)[1]
    return added


# Generated members live in 記号 5000 and up, far from the demo's 1001.
GENERATED_SYMBOL_BASE = 5000
_PER_SYMBOL = 1000
_FAMILY = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
    ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"),
    ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山口", "ヤマグチ"),
]  # fmt: skip
_GIVEN = [
    ("翔", "ショウ"), ("蓮", "レン"), ("大輔", "ダイスケ"), ("健一", "ケンイチ"),
    ("陽子", "ヨウコ"), ("美咲", "ミサキ"), ("結衣", "ユイ"), ("直樹", "ナオキ"),
    ("恵", "メグミ"), ("誠", "マコト"), ("さくら", "サクラ"), ("拓也", "タクヤ"),
]  # fmt: skip


def generated_member(index: int) -> dict[str, Any]:
    """The column values of generated member ``index`` (0-based), always the same."""
    rng = random.Random(f"privacy-bot-generated-member-{index}")
    family, family_kana = rng.choice(_FAMILY)
    given, given_kana = rng.choice(_GIVEN)
    born = date(1945, 1, 1) + timedelta(days=rng.randrange(365 * 60))
    acquired = born + timedelta(days=365 * 20 + rng.randrange(365 * 20))
    lost = acquired + timedelta(days=rng.randrange(365 * 10)) if rng.random() < 0.1 else None
    return {
        "insurer_number": None,
        "symbol": str(GENERATED_SYMBOL_BASE + index // _PER_SYMBOL),
        "number": str(index % _PER_SYMBOL + 1),
        "name": f"{family} {given}",
        "name_kana": f"{family_kana} {given_kana}",
        "birth_date": born,
        "phone": f"+8190{rng.randrange(10**8):08d}",
        "acquired_on": acquired,
        "lost_on": lost,
        "relationship": Relationship.INSURED.value,
        "insured_id": None,
    }


def _generated_rows(count: int, batch: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, count, batch):
        yield [generated_member(index) for index in range(start, min(count, start + batch))]


def generate_members(session: Session, count: int, batch: int = 5000) -> int:
    """Make sure generated members ``0 .. count-1`` exist; returns how many were added."""
    if count <= 0:
        return 0
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"generating members is not supported on {dialect}")
    count_members = select(func.count()).select_from(Member)
    before: int = session.execute(count_members).scalar_one()
    # Core INSERT ... ON CONFLICT DO NOTHING in batches: fast for 10^5 rows, and rows
    # that exist (an earlier, smaller --generate) are skipped by the unique key.
    statement = insert(Member.__table__).on_conflict_do_nothing()
    for rows in _generated_rows(count, batch):
        session.execute(statement, rows)
    after: int = session.execute(count_members).scalar_one()
    return after - before
