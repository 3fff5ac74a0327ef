"""The outbox on real databases (SQLite and PostgreSQL): after commit, once, retried.

Messages are written with :func:`bot.outbound.sender.enqueue` in a unit of work and
delivered by :class:`bot.outbound.outbox.Deliverer`; LINE pushes go to the loopback
stand-in of the Messaging API, which honours ``X-Line-Retry-Key`` as LINE does.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.db.models import AuditLog, OutboundMessage
from bot.outbound.outbox import ApiPusher, Carriers, Deliverer, RetryPolicy
from bot.outbound.sender import AFTER_COMMIT_KEY, LINE, SMS, enqueue
from tests.line_stand_in import ACCESS_TOKEN, line_stand_in

PHONE = "+819012345678"
LINE_USER = "U4af4980629a0b8e5c1f3a7d9e2b6c001"


class Recorder:
    """An SMS carrier that keeps what it was given (thread-safe), optionally slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.sent: list[tuple[str, str]] = []
        self.delay_s = delay_s
        self._lock = threading.Lock()

    def send(self, to: str, text: str) -> None:
        time.sleep(self.delay_s)
        with self._lock:
            self.sent.append((to, text))


class Broken:
    def send(self, to: str, text: str) -> None:
        raise ConnectionError(f"carrier refused {to}")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def rows(sessions) -> list[OutboundMessage]:
    with sessions.begin() as session:
        return list(
            session.execute(sa.select(OutboundMessage).order_by(OutboundMessage.id)).scalars()
        )


def write(sessions, count: int = 1, channel: str = SMS, deliver: bool = True, **options) -> list:
    """Write ``count`` messages in one unit of work; without ``deliver``, as if the
    writer died right after its commit (nothing sent by it)."""
    now = datetime.now(timezone.utc)
    with sessions.begin() as session:
        ids = [
            enqueue(
                session,
                channel,
                PHONE if channel == SMS else "hashed",
                f"お知らせ {i}",
                now,
                address=None if channel == SMS else LINE_USER,
                send_text=f"コード {i:06d}",
                **options,
            ).message_id
            for i in range(count)
        ]
        if not deliver:
            session.info.pop(AFTER_COMMIT_KEY)
    return ids


def test_a_message_of_a_transaction_that_rolls_back_is_never_sent(sessions):
    carrier = Recorder()
    with pytest.raises(RuntimeError), sessions.begin() as session:
        enqueue(session, SMS, PHONE, "x", datetime.now(timezone.utc), carriers=Carriers(carrier))
        raise RuntimeError("the change fails after the message was written")
    assert rows(sessions) == []
    assert Deliverer(sessions, Carriers(carrier)).run_once() == 0
    assert carrier.sent == []


def test_a_committed_message_is_sent_at_once_and_only_once(sessions):
    carrier = Recorder()
    [row_id] = write(sessions, carriers=Carriers(carrier))
    assert carrier.sent == [(PHONE, "コード 000000")]  # the clear text, right after commit
    [row] = rows(sessions)
    assert (row.id, row.status, row.attempts, row.payload) == (row_id, "sent", 1, None)
    assert row.text == "お知らせ 0"  # what is kept is the masked text
    later = Clock()
    later.advance(3600)
    assert Deliverer(sessions, Carriers(carrier), clock=later).run_once() == 0
    assert len(carrier.sent) == 1


@pytest.mark.parametrize("deliverers", [4])
def test_concurrent_deliverers_never_send_one_message_twice(sessions, deliverers):
    ids = write(sessions, 40, deliver=False)
    carrier = Recorder(delay_s=0.005)
    errors: list[BaseException] = []

    def work() -> None:
        deliverer = Deliverer(sessions, Carriers(carrier))
        try:
            while deliverer.deliver(limit=5):
                pass
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(deliverers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    counts = Counter(text for _, text in carrier.sent)
    assert len(counts) == len(ids) and set(counts.values()) == {1}
    assert {row.status for row in rows(sessions)} == {"sent"}


def test_of_two_claims_of_one_message_only_the_first_gets_it(sessions):
    [row_id] = write(sessions, deliver=False)
    first = Deliverer(sessions, Carriers(Recorder())).claim([row_id])
    second = Deliverer(sessions, Carriers(Recorder())).claim([row_id])
    assert [claimed.id for claimed in first] == [row_id] and second == []


def test_a_failing_carrier_is_retried_with_backoff_then_the_message_fails(sessions):
    [row_id] = write(sessions, deliver=False)
    clock = Clock()
    deliverer = Deliverer(
        sessions, Carriers(Broken()), RetryPolicy(max_attempts=4, base_delay_s=5), clock=clock
    )
    waits = []
    for attempt in range(1, 5):
        assert deliverer.run_once() == 0
        [row] = rows(sessions)
        assert row.attempts == attempt and row.error == "ConnectionError"
        if attempt == 4:
            break
        assert row.status == "pending"
        wait = (row.next_attempt_at - clock.now).total_seconds()
        waits.append(wait)
        clock.advance(wait - 1)
        assert deliverer.claim() == []  # not before its time
        clock.advance(1)
    assert waits == [5, 10, 20]
    assert (row.id, row.status, row.payload) == (row_id, "failed", None)


def test_a_message_past_its_end_is_not_sent(sessions):
    carrier = Recorder()
    soon = datetime.now(timezone.utc) + timedelta(minutes=5)
    write(sessions, deliver=False, expires_at=soon)
    clock = Clock()
    clock.advance(301)
    assert Deliverer(sessions, Carriers(carrier), clock=clock).run_once() == 0
    [row] = rows(sessions)
    assert (row.status, row.error, row.payload, carrier.sent) == ("failed", "expired", None, [])


def test_an_sms_left_sending_by_a_dead_deliverer_becomes_unknown_and_is_never_resent(sessions):
    write(sessions, deliver=False, purpose="verification_code", member_id=7)
    clock = Clock()
    dead = Deliverer(sessions, Carriers(Recorder()), RetryPolicy(lease_s=120), clock=clock)
    [claimed] = dead.claim()  # ...and the process dies before the carrier answers
    carrier = Recorder()
    other = Deliverer(sessions, Carriers(carrier), RetryPolicy(lease_s=120), clock=clock)
    clock.advance(119)
    assert other.recover() == (0, 0)  # within the lease: maybe still sending
    assert rows(sessions)[0].status == "sending"
    clock.advance(2)
    assert other.recover() == (1, 0)
    [row] = rows(sessions)
    assert (row.status, row.payload) == ("unknown", None)
    clock.advance(3600)
    assert other.run_once() == 0 and carrier.sent == []
    with sessions.begin() as session:
        [audit] = session.execute(
            sa.select(AuditLog).where(AuditLog.action == "outbound.unknown")
        ).scalars()
        assert (audit.member_id, audit.detail["outbound_message_id"]) == (7, claimed.id)
        assert PHONE not in json.dumps(audit.detail)


def test_a_line_push_left_sending_is_pushed_again_with_its_retry_key_and_shown_once(sessions):
    [row_id] = write(sessions, channel=LINE, deliver=False)
    clock = Clock()
    with line_stand_in() as line:
        pusher = ApiPusher(ACCESS_TOKEN, line.url)
        dead = Deliverer(sessions, Carriers(line=pusher), clock=clock)
        [claimed] = dead.claim()
        # It pushed, LINE accepted, and it died before marking the row.
        pusher.push(claimed.to, claimed.text, claimed.retry_key)
        clock.advance(121)
        survivor = Deliverer(sessions, Carriers(line=pusher), clock=clock)
        assert survivor.recover() == (0, 1)
        assert survivor.deliver() == 1
    [row] = rows(sessions)
    assert (row.id, row.status, row.attempts, row.payload) == (row_id, "sent", 2, None)
    keys = [call.headers["x-line-retry-key"] for call in line.calls]
    assert keys == [row.retry_key, row.retry_key]
    assert [call.status for call in line.calls] == [200, 409]  # shown once
    assert [call.body["to"] for call in line.successful()] == [LINE_USER]


def test_a_line_push_refused_for_good_is_not_retried(sessions):
    write(sessions, channel=LINE, deliver=False)
    with line_stand_in() as line:
        pusher = ApiPusher("not-the-token", line.url)
        assert Deliverer(sessions, Carriers(line=pusher)).run_once() == 0
    [row] = rows(sessions)
    assert (row.status, row.error, len(line.calls)) == ("failed", "HTTP 401", 1)


def test_a_push_after_a_commit_on_an_event_loop_thread_is_sent(sessions):
    # An async server (the action server) commits on its event loop's thread.
    import asyncio

    with line_stand_in() as line:
        pusher = ApiPusher(ACCESS_TOKEN, line.url)

        async def server() -> None:
            write(sessions, channel=LINE, carriers=Carriers(line=pusher))

        asyncio.run(server())
    assert [row.status for row in rows(sessions)] == ["sent"]
    assert [call.body["to"] for call in line.successful()] == [LINE_USER]
