"""The escalation queue in the console: order, labels, waiting times, paging, claiming.

Real console server, real SQLite file and PostgreSQL schema, ``requests`` clients.
"""

from __future__ import annotations

import random
import re
import threading
import time
from datetime import timedelta

import requests
import sqlalchemy as sa

from bot.db.models import Escalation
from bot.handoff.queue import queue_ids_statement
from tests.console_fixtures import RunningConsole, Staff
from tests.db_fixtures import backend_of

REASONS = {
    "member_request": "担当者希望",
    "complaint": "苦情",
    "repeated_fallback": "自動応答で解決せず",
    "verification_locked": "本人確認ロック",
}


def seed(console: RunningConsole, waiting: int, in_progress: int = 0) -> list[int]:
    """Escalations created 1 minute apart, inserted in random order; ids oldest first."""
    now = console.clock()
    minutes = list(range(waiting + in_progress))
    random.Random(7).shuffle(minutes)
    reasons = list(REASONS)
    rows = []
    for minute in minutes:
        ago = waiting + in_progress - minute  # minute 0 is the oldest
        busy = minute >= waiting
        rows.append(
            {
                "created_at": now - timedelta(minutes=ago),
                "reason": reasons[minute % len(reasons)],
                "sender_id": f"s{minute}",
                "channel": "line" if minute % 2 else "socketio",
                "status": "in_progress" if busy else "waiting",
                "assigned_staff": "sato" if busy else None,
                "claimed_at": now - timedelta(minutes=1) if busy else None,
                "member_id": None,
                "paused": False,
            }
        )
    with console.sessions.begin() as session:
        session.execute(sa.insert(Escalation), rows)
    with console.sessions.begin() as session:
        return list(
            session.execute(
                sa.select(Escalation.id).order_by(Escalation.created_at, Escalation.id)
            ).scalars()
        )


def listed(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'<td><a href="/escalations/(\d+)">', page)]


def test_the_queue_lists_waiting_oldest_first_then_in_progress_with_pages(console):
    ids = seed(console, waiting=60, in_progress=5)
    staff = console.sign_in("tanaka")
    first = staff.get("/queue")
    assert first.status_code == 200
    assert listed(first.text) == ids[:50]
    assert "対応待ち <strong>60</strong> 件・対応中 <strong>5</strong> 件" in first.text
    assert 'href="/queue?page=2" rel="next"' in first.text and 'rel="prev"' not in first.text
    assert "1 / 2 ページ" in first.text
    # The oldest waited 65 minutes; the reasons and channels are in Japanese.
    assert "1時間5分待ち" in first.text
    for label in REASONS.values():
        assert label in first.text
    assert "LINE" in first.text and "Webチャット" in first.text
    second = staff.get("/queue?page=2")
    assert listed(second.text) == ids[50:]  # 10 waiting, then the 5 in progress
    body = second.text
    assert body.index("<h2>対応待ち</h2>") < body.index("<h2>対応中</h2>")
    assert body.count("<td>sato</td>") == 5
    assert 'rel="next"' not in body and 'href="/queue?page=1" rel="prev"' in body
    # A page past the end shows the last one; nonsense shows the first.
    assert listed(staff.get("/queue?page=99").text) == ids[50:]
    assert listed(staff.get("/queue?page=abc").text) == ids[:50]


def test_waiting_time_reads_in_minutes(console):
    [only] = seed(console, waiting=1)
    console.clock.advance(minutes=11)  # created 1 minute before the start
    page = console.sign_in("tanaka").get("/queue").text
    assert f'<a href="/escalations/{only}">#{only}</a>' in page
    assert "12分待ち" in page


def test_an_empty_queue_says_so(console):
    page = console.sign_in("tanaka").get("/queue").text
    assert "対応待ちの案件はありません。" in page and "対応中の案件はありません。" in page


def test_paging_stays_fast_with_ten_thousand_escalations(console, migrated_url):
    ids = seed(console, waiting=9_500, in_progress=500)
    staff = console.sign_in("tanaka")
    with console.sessions.begin() as session:
        if backend_of(migrated_url) == "postgresql":
            session.execute(sa.text("ANALYZE escalations"))
        else:
            statement = queue_ids_statement("waiting", 9_450, 50).compile(
                session.get_bind(), compile_kwargs={"literal_binds": True}
            )
            plan = " ".join(
                str(row[-1]) for row in session.execute(sa.text(f"EXPLAIN QUERY PLAN {statement}"))
            )
            # The index alone, in order: no table scan, no sort of 9,500 rows.
            assert "COVERING INDEX ix_escalations_status_created_at" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    timings = {}
    for page in (1, 100, 190, 200):
        staff.get(f"/queue?page={page}")  # warm
        started = time.perf_counter()
        answer = staff.get(f"/queue?page={page}")
        timings[page] = time.perf_counter() - started
        assert answer.status_code == 200
        assert listed(answer.text) == ids[(page - 1) * 50 : page * 50]
    assert "200 / 200 ページ" in answer.text and 'rel="next"' not in answer.text
    # Generous bounds for a loaded 2-core machine; locally each page takes a few ms.
    assert max(timings.values()) < 2.0, timings


def test_two_staff_claim_the_same_escalation_and_the_second_is_told_politely(console):
    [waiting] = seed(console, waiting=1)
    tanaka, sato = console.sign_in("tanaka"), console.sign_in("sato")
    sato.get(f"/escalations/{waiting}")  # sato had the page open too
    first = tanaka.post(f"/escalations/{waiting}/claim")
    assert first.status_code == 303
    assert "この案件の担当になりました" in tanaka.get(first.headers["Location"]).text
    second = sato.post(f"/escalations/{waiting}/claim")
    assert second.status_code == 409
    assert "この案件は、すでにtanakaさんが担当しています。" in second.text
    with console.sessions.begin() as session:
        row = session.get(Escalation, waiting)
        assert (row.status, row.assigned_staff) == ("in_progress", "tanaka")
    assert [(e.actor, e.action) for e in console.audit("escalation.claimed")] == [
        ("staff:tanaka", "escalation.claimed")
    ]
    # Claiming one's own again is no error.
    assert tanaka.post(f"/escalations/{waiting}/claim").status_code == 303


def test_claims_at_the_same_moment_give_it_to_exactly_one(console):
    [waiting] = seed(console, waiting=1)
    people: list[Staff] = [console.sign_in("tanaka"), console.sign_in("sato")]
    barrier = threading.Barrier(len(people))
    answers: dict[str, int] = {}

    def claim(staff: Staff) -> None:
        barrier.wait()
        answers[staff.name] = staff.post(f"/escalations/{waiting}/claim").status_code

    threads = [threading.Thread(target=claim, args=(staff,)) for staff in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers.values()) == [303, 409], answers
    winner = next(name for name, code in answers.items() if code == 303)
    with console.sessions.begin() as session:
        assert session.get(Escalation, waiting).assigned_staff == winner
    assert len(console.audit("escalation.claimed")) == 1


def live(staff: Staff, page: int = 1) -> requests.Response:
    """The queue's tables as the open page's script fetches them."""
    return staff.http.get(
        staff.url(f"/queue/live?page={page}"),
        headers={"X-Requested-With": "fetch"},
        timeout=30,
        allow_redirects=False,
    )


def test_the_open_queue_fetches_new_hand_offs_and_counts_them_in_the_title(console):
    staff = console.sign_in("tanaka")
    page = staff.get("/queue").text
    assert "<title>対応待ち｜" in page  # nobody waiting: no count
    assert 'data-live-url="/queue/live?page=1" data-poll="5000"' in page
    assert 'id="queue-announcer"' in page and 'aria-live="polite"' in page
    first = live(staff)
    assert first.status_code == 200 and first.headers["X-Waiting-Count"] == "0"
    assert "対応待ちの案件はありません。" in first.text and "<html" not in first.text

    [waiting] = seed(console, waiting=1)
    fresh = live(staff)
    assert fresh.headers["X-Waiting-Count"] == "1"
    assert listed(fresh.text) == [waiting]
    # What the page announces, and the claim form with the session's CSRF token.
    reason = REASONS[console_reason(console, waiting)]
    assert f'data-waiting="{waiting}" data-label="#{waiting}（{reason}・' in fresh.text
    assert f'action="/escalations/{waiting}/claim"' in fresh.text
    assert f'name="csrf" value="{staff.csrf}"' in fresh.text
    assert "<th>操作</th>" in fresh.text  # no header cell without text
    assert "<title>(1) 対応待ち｜" in staff.get("/queue").text
    # The page number is kept, as on the page itself.
    seed(console, waiting=60)
    assert listed(live(staff, 2).text) == listed(staff.get("/queue?page=2").text)


def console_reason(console: RunningConsole, escalation_id: int) -> str:
    with console.sessions.begin() as session:
        return session.get(Escalation, escalation_id).reason


def test_the_queue_poll_is_for_caseworkers_and_does_not_keep_a_session_alive(console):
    admin = console.sign_in("kanri")
    refused = live(admin)
    assert refused.status_code == 403 and refused.headers["Content-Type"].startswith(
        "application/json"
    )
    stranger = requests.get(console.base + "/queue/live", allow_redirects=False, timeout=30)
    assert stranger.status_code == 401 and stranger.json()["error"] == "signed_out"
    staff = console.sign_in("tanaka")
    for _ in range(2):
        console.clock.advance(minutes=12)
        assert live(staff).status_code == 200
    console.clock.advance(minutes=7)  # 31 minutes after the page was opened
    assert live(staff).status_code == 401
