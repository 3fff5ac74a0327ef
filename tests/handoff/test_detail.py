"""One escalation as staff see it, read by :mod:`bot.handoff.detail` (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from bot.db.models import Escalation, Member, StaffMessage
from bot.handoff.detail import escalation_detail, known_names

NOW = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)


def member_ids(sessions) -> dict[str, int]:
    with sessions.begin() as session:
        return dict(session.execute(sa.select(Member.name, Member.id)).all())


def test_a_family_is_masked_together(demo):
    ids = member_ids(demo)
    with demo.begin() as session:
        # The dependant's conversation: her own name first, then the family's.
        assert known_names(session, ids["山田 花子"]) == ("山田 花子", "山田 太郎")
        assert set(known_names(session, ids["山田 太郎"])) == {"山田 太郎", "山田 花子"}
        assert known_names(session, ids["佐藤 次郎"]) == ("佐藤 次郎",)
        assert known_names(session, None) == () and known_names(session, 10**9) == ()


def test_the_detail_has_the_member_and_the_replies_not_yet_delivered(demo):
    taro = member_ids(demo)["山田 太郎"]
    with demo.begin() as session:
        row = Escalation(
            created_at=NOW - timedelta(minutes=30),
            reason="member_request",
            sender_id="web:abc",
            channel="socketio",
            member_id=taro,
            status="in_progress",
            assigned_staff="tanaka",
            claimed_at=NOW - timedelta(minutes=10),
            paused=True,
        )
        session.add(row)
        session.flush()
        for text, delivered in (("届いた", NOW), ("まだ", None), ("これも", None)):
            session.add(
                StaffMessage(
                    escalation_id=row.id,
                    sender_id="web:abc",
                    staff="tanaka",
                    text=text,
                    created_at=NOW,
                    delivered_at=delivered,
                )
            )
        escalation_id = row.id
    with demo.begin() as session:
        detail = escalation_detail(session, escalation_id, NOW)
        assert escalation_detail(session, escalation_id + 1, NOW) is None
    assert detail is not None
    assert (detail.status, detail.assigned_staff, detail.paused) == ("in_progress", "tanaka", True)
    assert detail.member_name == "山田 太郎" and "山田 花子" in detail.known_names
    # Waited until it was claimed, not until now.
    assert detail.waiting == timedelta(minutes=20)
    assert [message.text for message in detail.pending] == ["まだ", "これも"]
