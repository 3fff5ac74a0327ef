"""The identity-verification service against real databases (SQLite file and PostgreSQL).

Each step runs in its own transaction, as the action server runs it, and time is moved
with the ``now`` argument. Codes are read from an OutboxSender file, as a member reads
their phone. The SMS limits are the settings' defaults (5 per number in 24 hours, 30 a
minute) unless a test passes its own.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.core.conversation import Conversation
from bot.db.demo import generate_members, generated_member
from bot.db.models import (
    AuditLog,
    Escalation,
    Member,
    OutboundMessage,
    Verification,
    VerificationEvent,
    VerificationFailure,
)
from bot.handoff import escalations
from bot.identity import verification as v
from bot.identity.verification import MemberView, Outcome, SmsLimits, Status
from bot.outbound.sms import OutboxSender

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)
TARO = ("1001", "23", date(1985, 4, 1))
HANAKO = ("1001", "23", date(2012, 6, 15))
JIRO = ("1001", "57", date(1979, 11, 30))
PHONE_TARO = "+819012345678"
PHONE_JIRO = "+818022223333"
PERSONAL_VALUES = (
    "1985-04-01", "19850401", "2012-06-15", "1979-11-30", "09012345678", "+819012345678",
    "090-1234-5678", "08022223333", "+818022223333", "080-2222-3333", "1001-23", "1001-57",
)  # fmt: skip


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def conv(sender: str = "c1", session_key: str = "s1", channel: str = "rest") -> Conversation:
    return Conversation(sender_id=sender, session_key=session_key, channel=channel)


class RecordingSender:
    """Keeps what it sent in memory (for threads: each has its own)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))

    @property
    def code(self) -> str:
        return code_in(self.sent[-1][1])


class BrokenSender:
    def send(self, to: str, text: str) -> None:
        raise ConnectionError(f"carrier refused {to}")


def code_in(text: str) -> str:
    match = re.search(r"\d{6}", text)
    assert match, text
    return match.group()


@dataclass
class Service:
    """The service as the action server uses it: one transaction per call."""

    sessions: Any
    outbox: Path
    sender: OutboxSender = field(init=False)

    def __post_init__(self) -> None:
        self.sender = OutboxSender(self.outbox)

    def run(self, step: Callable[[Any], Any]) -> Any:
        with self.sessions.begin() as session:
            return step(session)

    def factors(
        self,
        c: Conversation,
        factors: Sequence[Any],
        now: datetime,
        sender=None,
        limits: SmsLimits | None = None,
    ) -> Outcome:
        symbol, number, born = factors
        return self.run(
            lambda s: v.submit_factors(
                s, c, symbol, number, born, sender or self.sender, now, limits
            )
        )

    def code(self, c: Conversation, code: str, now: datetime) -> Outcome:
        return self.run(lambda s: v.submit_code(s, c, code, now))

    def resend(
        self, c: Conversation, now: datetime, sender=None, limits: SmsLimits | None = None
    ) -> Outcome:
        return self.run(lambda s: v.resend_code(s, c, sender or self.sender, now, limits))

    def member(self, c: Conversation, now: datetime) -> Member | None:
        return self.run(lambda s: v.verified_member(s, c, now))

    def record(self, c: Conversation, now: datetime) -> MemberView | None:
        return self.run(lambda s: v.read_own_record(s, c, now))

    def cancel(self, c: Conversation, now: datetime) -> None:
        self.run(lambda s: v.cancel(s, c, now))

    def outbox_lines(self) -> list[dict[str, str]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text("utf-8").splitlines()]

    def last_code(self, to: str = PHONE_TARO) -> str:
        texts = [line["text"] for line in self.outbox_lines() if line["to"] == to]
        return code_in(texts[-1])

    def verify(self, c: Conversation, now: datetime, factors=TARO) -> None:
        assert self.factors(c, factors, now).status is Status.CODE_SENT
        to = PHONE_TARO if factors == TARO else PHONE_JIRO
        assert self.code(c, self.last_code(to), now).status is Status.VERIFIED

    def rows(self, model: Any) -> list[Any]:
        return self.run(lambda s: list(s.execute(sa.select(model).order_by(model.id)).scalars()))

    def actions(self) -> list[str]:
        return [row.action for row in self.rows(AuditLog)]

    def count(self, model: Any) -> int:
        return len(self.rows(model))

    def dump(self) -> str:
        """Every app table's content as text, to search for values in clear."""
        tables = (
            Verification,
            VerificationFailure,
            VerificationEvent,
            AuditLog,
            OutboundMessage,
            Escalation,
        )
        return json.dumps(
            [[{k: str(w) for k, w in vars(r).items()} for r in self.rows(t)] for t in tables],
            ensure_ascii=False,
        )


@pytest.fixture
def svc(demo, tmp_path) -> Service:
    return Service(demo, tmp_path / "outbox.jsonl")


def wrong(code: str) -> str:
    """A code that is not ``code``."""
    return "000000" if code != "000000" else "111111"


def set_phone(svc: Service, factors, phone: str | None) -> None:
    symbol, number, born = factors

    def update(session) -> None:
        session.execute(
            sa.update(Member)
            .where(Member.symbol == symbol, Member.number == number, Member.birth_date == born)
            .values(phone=phone)
        )

    svc.run(update)


# --- the success path ---------------------------------------------------------------


def test_a_member_verifies_with_the_code_sent_to_their_phone(svc):
    c = conv()
    outcome = svc.factors(c, TARO, at(0))
    assert outcome == Outcome(Status.CODE_SENT, masked_phone="090-****-5678")
    [sms] = svc.outbox_lines()
    assert sms["to"] == PHONE_TARO
    assert sms["text"].startswith("【本人確認】認証コード：")
    code = code_in(sms["text"])
    # Only a salted keyed hash is stored; the outbound record has the code masked.
    assert code not in svc.dump()
    [row] = svc.rows(Verification)
    assert row.status == "pending_code" and len(row.code_hash) == 64 and row.code_salt
    assert row.code_expires_at == at(5)
    [message] = svc.rows(OutboundMessage)
    assert (message.channel, message.to, message.status) == ("sms", PHONE_TARO, "sent")
    assert "認証コード：******（5分間有効）" in message.text
    # Sent after the commit (on the real clock); the clear code is dropped once sent.
    assert message.sent_at > message.created_at == at(0) and message.payload is None

    assert svc.member(c, at(1)) is None  # not before the code
    assert svc.code(c, code, at(1)) == Outcome(Status.VERIFIED)
    member = svc.member(c, at(2))
    assert member is not None and member.name == "山田 太郎"
    [row] = svc.rows(Verification)
    assert (row.status, row.verified_at, row.code_hash) == ("verified", at(1), None)
    assert svc.actions() == [
        "verification.factors_matched",
        "verification.code_sent",
        "verification.succeeded",
    ]
    assert svc.rows(AuditLog)[-1].actor == f"member:{member.id}"


def test_a_dependant_verifies_as_herself_and_sees_no_one_elses_record(svc):
    set_phone(svc, HANAKO, "+819087654321")
    c = conv()
    assert svc.factors(c, HANAKO, at(0)).masked_phone == "090-****-4321"
    assert svc.code(c, svc.last_code("+819087654321"), at(1)).status is Status.VERIFIED
    view = svc.record(c, at(2))
    assert view is not None
    assert (view.name, view.relationship, view.dependant_names) == ("山田 花子", "dependant", ())


def test_a_member_with_no_phone_gets_an_ordinary_mismatch(svc):
    # The demo's 山田 花子 has no phone of her own: no code can reach her.
    assert svc.factors(conv("c1"), HANAKO, at(0)) == Outcome(Status.MISMATCH, attempts_left=2)
    assert svc.factors(conv("c2"), ("1001", "99", HANAKO[2]), at(0)) == Outcome(
        Status.MISMATCH, attempts_left=2
    )
    assert svc.outbox_lines() == []
    reasons = [row.detail["reason"] for row in svc.rows(AuditLog)]
    assert reasons == ["no_phone_on_record", "factors_mismatch"]


# --- mismatches and locks -----------------------------------------------------------


def test_a_mismatch_never_tells_which_factor_was_wrong(svc):
    wrong_birth_date = svc.factors(conv("c1"), ("1001", "23", date(1985, 4, 2)), at(0))
    unknown_number = svc.factors(conv("c2"), ("1001", "99", date(1985, 4, 1)), at(0))
    not_digits = svc.factors(conv("c3"), ("1001", "二三", date(1985, 4, 1)), at(0))
    assert (
        wrong_birth_date
        == unknown_number
        == not_digits
        == Outcome(Status.MISMATCH, attempts_left=2)
    )
    assert svc.outbox_lines() == []
    assert [r.member_id for r in svc.rows(Verification)] == [None, None, None]
    assert {r.status for r in svc.rows(Verification)} == {"failed"}
    assert [r.member_id for r in svc.rows(AuditLog)] == [None, None, None]


def test_three_failures_on_one_number_lock_it_for_every_conversation(svc):
    wrong = ("1001", "23", date(1985, 4, 2))
    assert svc.factors(conv("c1"), wrong, at(0)).attempts_left == 2
    assert svc.factors(conv("c2"), wrong, at(1)).attempts_left == 1
    assert svc.factors(conv("c3"), wrong, at(2)) == Outcome(Status.LOCKED, locked_until=at(32))
    # The right factors do not open a locked number, whoever gives them: they get what
    # any mismatch gets (the number's existence is not told), and no SMS.
    assert svc.factors(conv("c4"), TARO, at(3)) == Outcome(Status.MISMATCH, attempts_left=2)
    assert svc.outbox_lines() == []
    # Another number from a sender with one failure is not locked.
    assert svc.factors(conv("c1"), JIRO, at(3)).status is Status.CODE_SENT
    [escalation] = svc.rows(Escalation)
    assert (escalation.reason, escalation.status, escalation.sender_id) == (
        "verification_locked",
        "waiting",
        "c3",
    )
    assert svc.actions().count("verification.locked") == 1
    # The lock ends after 30 minutes.
    assert svc.factors(conv("c5"), TARO, at(31, 59)).status is Status.MISMATCH
    assert svc.factors(conv("c6"), TARO, at(32)).status is Status.CODE_SENT
    assert svc.count(Escalation) == 1


def test_three_failures_in_one_conversation_lock_it_for_every_number(svc):
    c = conv("c1")
    assert svc.factors(c, ("1001", "91", date(1990, 1, 1)), at(0)).attempts_left == 2
    assert svc.factors(c, ("1001", "92", date(1990, 1, 1)), at(1)).attempts_left == 1
    assert svc.factors(c, ("1001", "93", date(1990, 1, 1)), at(2)).status is Status.LOCKED
    assert svc.factors(c, TARO, at(3)) == Outcome(Status.LOCKED, locked_until=at(32))
    # A new session of the same sender is still locked: the lock is on the sender.
    assert svc.factors(conv("c1", "s2"), TARO, at(3)).status is Status.LOCKED
    assert svc.code(conv("c1", "s2"), "123456", at(3)).status is Status.LOCKED
    # Other conversations may verify; the number of the locking attempt is locked too
    # (which, for a number nobody has, looks like the mismatch it is anyway).
    assert svc.factors(conv("c2"), TARO, at(3)).status is Status.CODE_SENT
    locked_number = ("1001", "93", date(1990, 1, 1))
    assert svc.factors(conv("c3"), locked_number, at(3)).status is Status.MISMATCH
    assert svc.count(Escalation) == 1
    assert svc.factors(c, TARO, at(32)).status is Status.CODE_SENT


def test_failures_that_led_to_a_lock_do_not_count_again_after_it(svc):
    wrong = ("1001", "23", date(1985, 4, 2))
    for minute in (0, 1, 2):
        svc.factors(conv(f"c{minute}"), wrong, at(minute))
    # After the lock (ended at 32), one new failure leaves two, not zero.
    assert svc.factors(conv("c9"), wrong, at(33)) == Outcome(Status.MISMATCH, attempts_left=2)


def test_failures_older_than_thirty_minutes_do_not_count(svc):
    wrong = ("1001", "23", date(1985, 4, 2))
    svc.factors(conv("c1"), wrong, at(0))
    svc.factors(conv("c2"), wrong, at(1))
    # At 30:30 the failure at 0:00 has left the window; the one at 1:00 has not.
    assert svc.factors(conv("c3"), wrong, at(30, 30)) == Outcome(Status.MISMATCH, attempts_left=1)
    assert svc.factors(conv("c4"), wrong, at(31)) == Outcome(Status.MISMATCH, attempts_left=1)
    assert svc.factors(conv("c5"), wrong, at(31, 10)).status is Status.LOCKED


def test_a_lock_on_the_number_stops_a_code_already_sent(svc):
    holder = conv("holder")
    svc.factors(holder, TARO, at(0))
    code = svc.last_code()
    wrong = ("1001", "23", date(1985, 4, 2))
    for name in ("a", "b", "c"):
        svc.factors(conv(name), wrong, at(1))
    assert svc.code(holder, code, at(2)) == Outcome(Status.LOCKED, locked_until=at(31))
    assert svc.member(holder, at(2)) is None
    # The code died with the lock: it does not come back when the lock ends.
    assert svc.code(holder, code, at(31)).status is Status.NO_PENDING


# --- codes --------------------------------------------------------------------------


def test_a_code_lives_five_minutes(svc):
    early, late = conv("early"), conv("late")
    svc.factors(early, TARO, at(0))
    assert svc.code(early, svc.last_code(), at(4, 59)).status is Status.VERIFIED
    svc.factors(late, JIRO, at(0))
    code = svc.last_code(PHONE_JIRO)
    assert svc.code(late, code, at(5)) == Outcome(Status.CODE_EXPIRED)
    assert svc.code(late, code, at(5)).status is Status.NO_PENDING
    assert svc.resend(late, at(6)) == Outcome(Status.CODE_SENT, masked_phone="080-****-3333")
    assert svc.code(late, svc.last_code(PHONE_JIRO), at(7)).status is Status.VERIFIED


def test_three_wrong_codes_kill_it_and_count_as_one_failure(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    code = svc.last_code()
    wrong = "000000" if code != "000000" else "111111"
    assert svc.code(c, wrong, at(1)) == Outcome(Status.WRONG_CODE, attempts_left=2)
    assert svc.code(c, "12345", at(1)) == Outcome(Status.WRONG_CODE, attempts_left=1)
    assert svc.code(c, wrong, at(1)) == Outcome(Status.CODE_DEAD)
    assert svc.code(c, code, at(1)).status is Status.NO_PENDING
    assert svc.count(VerificationFailure) == 1
    # Two more dead codes (after resends) make three failed verifications: a lock.
    for minute in (2, 3):
        assert svc.resend(c, at(minute)).status is Status.CODE_SENT
        fresh = svc.last_code()
        bad = "000000" if fresh != "000000" else "111111"
        outcomes = [svc.code(c, bad, at(minute)).status for _ in range(3)]
    assert outcomes == [Status.WRONG_CODE, Status.WRONG_CODE, Status.LOCKED]
    assert svc.count(VerificationFailure) == 3
    assert svc.factors(conv("other"), TARO, at(4)) == Outcome(Status.MISMATCH, attempts_left=2)
    assert len(svc.outbox_lines()) == 3
    [escalation] = svc.rows(Escalation)
    assert escalation.member_id == svc.rows(Member)[0].id


def test_resends_are_limited(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    assert svc.resend(c, at(1)).status is Status.CODE_SENT
    assert svc.resend(c, at(2)).status is Status.CODE_SENT
    assert svc.resend(c, at(3)) == Outcome(Status.NO_PENDING)
    assert len(svc.outbox_lines()) == 3
    assert svc.code(c, svc.last_code(), at(4)).status is Status.VERIFIED


def test_nothing_to_resend_without_matched_factors(svc):
    assert svc.resend(conv("c1"), at(0)) == Outcome(Status.NO_PENDING)
    svc.factors(conv("c2"), ("1001", "99", date(1990, 1, 1)), at(0))
    assert svc.resend(conv("c2"), at(0)) == Outcome(Status.NO_PENDING)
    assert svc.outbox_lines() == []


def test_a_used_code_does_not_work_again(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    code = svc.last_code()
    assert svc.code(c, code, at(1)).status is Status.VERIFIED
    assert svc.code(c, code, at(1)) == Outcome(Status.NO_PENDING)
    assert svc.code(conv("c2"), code, at(1)) == Outcome(Status.NO_PENDING)
    assert svc.resend(c, at(1)) == Outcome(Status.NO_PENDING)
    assert svc.member(c, at(2)) is not None  # the verification itself stands


def test_a_new_code_replaces_the_old_one(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    first = svc.last_code()
    svc.resend(c, at(1))
    second = svc.last_code()
    if first != second:
        assert svc.code(c, first, at(1)) == Outcome(Status.WRONG_CODE, attempts_left=2)
    svc.factors(c, TARO, at(2))  # new factors: a new code again
    third = svc.last_code()
    if second != third:
        assert svc.code(c, second, at(2)).status is Status.WRONG_CODE
    assert svc.code(c, third, at(2)).status is Status.VERIFIED


def test_a_member_has_one_live_code_across_conversations(svc):
    x, y = conv("x"), conv("y")
    svc.factors(x, TARO, at(0))
    code_x = svc.last_code()
    svc.factors(y, TARO, at(1))
    code_y = svc.last_code()
    assert svc.code(x, code_x, at(1)) == Outcome(Status.NO_PENDING)
    assert svc.code(y, code_y, at(1)).status is Status.VERIFIED
    replaced = [r for r in svc.rows(AuditLog) if r.action == "verification.code_replaced"]
    assert [(r.sender_id, r.member_id is not None) for r in replaced] == [("x", True)]


def test_a_code_works_only_in_the_conversation_that_asked_for_it(svc):
    x, y = conv("x"), conv("y")
    svc.factors(x, TARO, at(0))
    code_x = svc.last_code()
    assert svc.code(y, code_x, at(1)) == Outcome(Status.NO_PENDING)
    svc.factors(y, JIRO, at(1))
    if code_x != svc.last_code(PHONE_JIRO):
        assert svc.code(y, code_x, at(1)).status is Status.WRONG_CODE
    assert svc.code(conv("x", "another-session"), code_x, at(1)).status is Status.NO_PENDING
    assert svc.code(x, code_x, at(2)).status is Status.VERIFIED
    assert svc.member(y, at(2)) is None


def test_a_failed_sms_is_recorded_and_can_be_resent(svc):
    # The code is issued with the commit; the carrier fails after it: the row waits for
    # the worker's retry (until the code's end) and the member may ask for another code.
    c = conv()
    outcome = svc.factors(c, TARO, at(0), sender=BrokenSender())
    assert outcome == Outcome(Status.CODE_SENT, masked_phone="090-****-5678")
    [message] = svc.rows(OutboundMessage)
    assert (message.status, message.sent_at, message.error, message.attempts) == (
        "pending", None, "ConnectionError", 1,
    )  # fmt: skip
    assert message.expires_at == at(5)
    assert svc.resend(c, at(1)).status is Status.CODE_SENT
    assert svc.code(c, svc.last_code(), at(1)).status is Status.VERIFIED


# --- wrong codes count per member number, across resends and conversations -----------


def test_a_resend_gives_no_more_tries(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    assert svc.code(c, wrong(svc.last_code()), at(1)) == Outcome(Status.WRONG_CODE, attempts_left=2)
    assert svc.code(c, wrong(svc.last_code()), at(1)) == Outcome(Status.WRONG_CODE, attempts_left=1)
    assert svc.resend(c, at(2)).status is Status.CODE_SENT
    fresh = svc.last_code()
    # The third wrong entry of the number kills the new code too: one failure.
    assert svc.code(c, wrong(fresh), at(2)) == Outcome(Status.CODE_DEAD)
    assert svc.code(c, fresh, at(2)) == Outcome(Status.NO_PENDING)
    assert svc.count(VerificationFailure) == 1
    [row] = svc.rows(Verification)
    assert (row.status, row.code_wrong_attempts, row.codes_sent) == ("failed", 3, 2)


def test_two_resends_cannot_buy_more_guesses_and_end_in_a_lock(svc):
    """「再送」 twice used to give 6 guesses for 3 SMS with nothing recorded; again and again."""
    c = conv()
    svc.factors(c, TARO, at(0))
    statuses = []
    for minute in (1, 2, 3):
        if minute > 1:
            assert svc.resend(c, at(minute)).status is Status.CODE_SENT
        for _ in range(2):
            statuses.append(svc.code(c, wrong(svc.last_code()), at(minute)).status)
    assert statuses == [
        Status.WRONG_CODE,
        Status.WRONG_CODE,
        Status.CODE_DEAD,  # the third wrong entry, though on a new code
        Status.NO_PENDING,  # that code died with it
        Status.WRONG_CODE,  # the next code has the tries a dead code starts afresh
        Status.WRONG_CODE,
    ]
    assert svc.count(VerificationFailure) == 1
    assert svc.code(c, wrong(svc.last_code()), at(4)) == Outcome(Status.CODE_DEAD)
    assert svc.resend(c, at(4)) == Outcome(Status.NO_PENDING)  # three codes per verification
    # New factors give no more tries either: the third dead code locks the number.
    assert svc.factors(c, TARO, at(5)).status is Status.CODE_SENT
    outcomes = [svc.code(c, wrong(svc.last_code()), at(5)).status for _ in range(3)]
    assert outcomes == [Status.WRONG_CODE, Status.WRONG_CODE, Status.LOCKED]
    assert svc.count(VerificationFailure) == 3
    assert len(svc.outbox_lines()) == 4
    assert svc.factors(conv("c9"), TARO, at(6)).status is Status.MISMATCH
    assert len(svc.outbox_lines()) == 4


def test_wrong_codes_count_for_the_number_across_conversations_and_channels(svc):
    web, line = conv("web:a", channel="socketio"), conv("line:U1", channel="line")
    svc.factors(web, TARO, at(0))
    svc.code(web, wrong(svc.last_code()), at(0))
    svc.code(web, wrong(svc.last_code()), at(0))
    # Another conversation takes a new code: the number has one wrong entry left.
    assert svc.factors(line, TARO, at(1)).status is Status.CODE_SENT
    assert svc.code(line, wrong(svc.last_code()), at(1)) == Outcome(Status.CODE_DEAD)
    assert [(f.sender_id, f.at) for f in svc.rows(VerificationFailure)] == [("line:U1", at(1))]


def test_dead_codes_in_three_conversations_lock_the_number(svc):
    for index in range(3):
        c = conv(f"c{index}")
        assert svc.factors(c, TARO, at(index)).status is Status.CODE_SENT
        outcomes = [svc.code(c, wrong(svc.last_code()), at(index)).status for _ in range(3)]
    assert outcomes == [Status.WRONG_CODE, Status.WRONG_CODE, Status.LOCKED]
    # Each sender failed once: the lock is the number's.
    assert sorted(f.sender_id for f in svc.rows(VerificationFailure)) == ["c0", "c1", "c2"]
    assert svc.factors(conv("c3"), TARO, at(3)).status is Status.MISMATCH
    assert svc.count(Escalation) == 1


def test_wrong_codes_of_a_dependant_count_for_the_shared_number(svc):
    set_phone(svc, HANAKO, "+819087654321")
    hanako, taro = conv("hanako"), conv("taro")
    svc.factors(hanako, HANAKO, at(0))
    hanako_code = svc.last_code("+819087654321")
    svc.factors(taro, TARO, at(0))
    for _ in range(2):
        svc.code(taro, wrong(svc.last_code()), at(1))
    assert svc.code(hanako, wrong(hanako_code), at(1)) == Outcome(Status.CODE_DEAD)
    # Every live code under the number died with the tries.
    assert svc.code(taro, svc.last_code(), at(1)) == Outcome(Status.NO_PENDING)


def test_a_success_starts_the_tries_afresh_and_old_entries_leave_the_window(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    svc.code(c, wrong(svc.last_code()), at(0))
    svc.code(c, wrong(svc.last_code()), at(0))
    assert svc.code(c, svc.last_code(), at(1)).status is Status.VERIFIED
    svc.factors(conv("c2"), TARO, at(2))
    assert svc.code(conv("c2"), wrong(svc.last_code()), at(2)).attempts_left == 2
    # Wrong entries older than 30 minutes count no more.
    svc.code(conv("c2"), wrong(svc.last_code()), at(3))
    svc.factors(conv("c3"), TARO, at(32, 30))
    assert svc.code(conv("c3"), wrong(svc.last_code()), at(32, 30)).attempts_left == 1
    assert svc.code(conv("c3"), wrong(svc.last_code()), at(33, 30)).attempts_left == 1


# --- SMS limits ----------------------------------------------------------------------


def test_factors_given_again_and_again_stop_sending_sms_at_the_daily_limit(svc):
    holders = [conv(f"c{index}") for index in range(5)]
    for minute, c in enumerate(holders):
        assert svc.factors(c, TARO, at(minute)).status is Status.CODE_SENT
    live_code = svc.last_code()
    # The sixth SMS of the number in 24 hours: no SMS, and the live code is not killed.
    assert svc.factors(conv("c5"), TARO, at(5)) == Outcome(Status.SMS_LIMIT)
    assert svc.resend(holders[-1], at(6)) == Outcome(Status.SMS_LIMIT)
    assert len(svc.outbox_lines()) == 5
    assert svc.actions().count("verification.sms_refused") == 2
    assert [r.detail["reason"] for r in svc.rows(AuditLog) if r.detail.get("reason")] == [
        "member_daily_limit",
        "member_daily_limit",
    ]
    assert svc.count(VerificationFailure) == 0  # the right factors are no failure
    assert svc.code(holders[-1], live_code, at(7)).status is Status.VERIFIED
    # 24 hours after the first SMS, one more may go.
    assert svc.factors(conv("c6"), TARO, at(24 * 60 - 1)).status is Status.SMS_LIMIT
    assert svc.factors(conv("c6"), TARO, at(24 * 60)).status is Status.CODE_SENT
    # Another number has its own count.
    assert svc.factors(conv("c7"), JIRO, at(24 * 60)).status is Status.CODE_SENT


def test_resends_count_towards_the_daily_limit(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    svc.resend(c, at(1))
    svc.resend(c, at(2))
    svc.factors(c, TARO, at(3))
    assert svc.resend(c, at(4)).status is Status.CODE_SENT
    assert svc.resend(c, at(5)) == Outcome(Status.SMS_LIMIT)
    assert len(svc.outbox_lines()) == 5


def test_a_failed_sms_counts_towards_the_daily_limit(svc):
    limits = SmsLimits(per_member_day=1)
    c = conv()
    assert svc.factors(c, TARO, at(0), sender=BrokenSender(), limits=limits).status is (
        Status.CODE_SENT
    )
    assert svc.resend(c, at(1), limits=limits) == Outcome(Status.SMS_LIMIT)


def test_the_daily_limit_comes_from_the_settings(svc, monkeypatch):
    monkeypatch.setenv("VERIFICATION_SMS_PER_MEMBER_DAY", "2")
    assert svc.factors(conv("c1"), TARO, at(0)).status is Status.CODE_SENT
    assert svc.factors(conv("c2"), TARO, at(1)).status is Status.CODE_SENT
    assert svc.factors(conv("c3"), TARO, at(2)).status is Status.SMS_LIMIT
    assert v.sms_limits() == SmsLimits(per_member_day=2, per_minute=30)


def test_the_global_sms_rate_holds_across_members(svc):
    limits = SmsLimits(per_minute=2)
    set_phone(svc, HANAKO, "+819087654321")
    assert svc.factors(conv("a"), TARO, at(0), limits=limits).status is Status.CODE_SENT
    assert svc.factors(conv("b"), JIRO, at(0, 30), limits=limits).status is Status.CODE_SENT
    assert svc.factors(conv("c"), HANAKO, at(0, 59), limits=limits) == Outcome(Status.SMS_BUSY)
    assert svc.resend(conv("a"), at(0, 59), limits=limits) == Outcome(Status.SMS_BUSY)
    assert len(svc.outbox_lines()) == 2
    reasons = [r.detail["reason"] for r in svc.rows(AuditLog) if r.detail.get("reason")]
    assert reasons == ["global_rate", "global_rate"]
    # The code sent before the refusal still works.
    assert svc.code(conv("a"), svc.last_code(), at(1)).status is Status.VERIFIED
    # A minute after the first SMS, there is room for one more.
    assert svc.factors(conv("c"), HANAKO, at(1), limits=limits).status is Status.CODE_SENT
    assert svc.factors(conv("d"), TARO, at(1), limits=limits).status is Status.SMS_BUSY


def test_concurrent_factors_never_exceed_the_daily_limit(svc):
    senders = [RecordingSender() for _ in range(8)]
    outcomes = together(8, lambda i: svc.factors(conv(f"c{i}"), TARO, at(0), sender=senders[i]))
    statuses = sorted(o.status.value for o in outcomes)
    assert statuses == sorted([Status.CODE_SENT.value] * 5 + [Status.SMS_LIMIT.value] * 3)
    assert sum(len(s.sent) for s in senders) == 5


def test_concurrent_factors_of_many_members_never_exceed_the_global_rate(svc):
    svc.run(lambda session: generate_members(session, 8))
    members = [generated_member(index) for index in range(8)]
    senders = [RecordingSender() for _ in range(8)]
    limits = SmsLimits(per_minute=5)

    def attempt(i: int) -> Status:
        m = members[i]
        factors = (m["symbol"], m["number"], m["birth_date"])
        return svc.factors(conv(f"c{i}"), factors, at(0), senders[i], limits).status

    statuses = sorted(status.value for status in together(8, attempt))
    assert statuses == sorted([Status.CODE_SENT.value] * 5 + [Status.SMS_BUSY.value] * 3)
    assert sum(len(s.sent) for s in senders) == 5


# --- what a locked number tells, and what staff get ------------------------------------


def lock_taros_number(svc: Service) -> None:
    for minute in (0, 1, 2):
        svc.factors(conv(f"lock{minute}"), ("1001", "23", date(1985, 4, 2)), at(minute))
    assert svc.factors(conv("probe"), TARO, at(2)).status is Status.MISMATCH


def test_an_unknown_number_a_wrong_birth_date_and_a_locked_number_look_the_same(svc):
    lock_taros_number(svc)
    before = len(svc.rows(Verification))
    unknown = svc.factors(conv("x"), ("1001", "99", date(1985, 4, 1)), at(3))
    wrong_birth_date = svc.factors(conv("y"), ("1001", "57", date(1979, 11, 29)), at(3))
    locked = svc.factors(conv("z"), TARO, at(3))  # the right factors of a locked number
    assert unknown == wrong_birth_date == locked == Outcome(Status.MISMATCH, attempts_left=2)
    assert svc.outbox_lines() == []
    rows = svc.rows(Verification)[before:]
    assert [(r.status, r.member_id, r.codes_sent) for r in rows] == [("failed", None, 0)] * 3
    # And alike again: three tries lock the sender, whatever the number was.
    for name, factors in (("x", ("1001", "99", date(1985, 4, 1))), ("z", TARO)):
        outcomes = [svc.factors(conv(name), factors, at(4 + i)).status for i in range(2)]
        assert outcomes == [Status.MISMATCH, Status.LOCKED]
    assert svc.outbox_lines() == []
    # Staff see what it was.
    reasons = [
        r.detail["reason"]
        for r in svc.rows(AuditLog)
        if r.action == "verification.failed" and r.sender_id in ("x", "y", "z")
    ]
    assert reasons == [
        "factors_mismatch",  # x
        "factors_mismatch",  # y
        "number_locked",  # z
        "factors_mismatch",  # x again
        "number_locked",  # z again
    ]


def test_a_locked_member_gets_one_escalation_across_attempts_and_conversations(svc):
    wrong_birth_date = ("1001", "23", date(1985, 4, 2))
    lock_taros_number(svc)
    # During the lock, a conversation tries the number until it locks itself.
    assert [svc.factors(conv("d"), TARO, at(3 + i)).status for i in range(3)] == [
        Status.MISMATCH,
        Status.MISMATCH,
        Status.LOCKED,
    ]
    # After the lock, three more failures (dead codes, mismatches) lock it again.
    assert svc.factors(conv("e"), wrong_birth_date, at(40)).status is Status.MISMATCH
    svc.factors(conv("f"), TARO, at(41))
    for _ in range(3):
        svc.code(conv("f"), wrong(svc.last_code()), at(41))
    assert svc.factors(conv("g"), wrong_birth_date, at(42)).status is Status.LOCKED
    assert svc.actions().count("verification.locked") == 3
    [escalation] = svc.rows(Escalation)
    taro = svc.rows(Member)[0]
    assert (escalation.reason, escalation.member_id, escalation.sender_id) == (
        "verification_locked",
        taro.id,
        "lock2",
    )
    assert len(escalation.note.splitlines()) == 3
    locked = [r.detail for r in svc.rows(AuditLog) if r.action == "verification.locked"]
    assert [(d["escalation_id"], d["escalation_opened"]) for d in locked] == [
        (escalation.id, True),
        (escalation.id, False),
        (escalation.id, False),
    ]
    # Once staff have closed it, the next lock is news again.
    svc.run(
        lambda session: session.execute(
            sa.update(Escalation).values(status="closed", closed_at=at(50))
        )
    )
    for minute in (80, 81, 82):
        svc.factors(conv(f"h{minute}"), wrong_birth_date, at(minute))
    assert [e.status for e in svc.rows(Escalation)] == ["closed", "waiting"]


def test_a_lock_reuses_the_senders_open_escalation(svc):
    def hand_off(session) -> None:
        session.add(
            Escalation(created_at=at(0), reason="member_request", sender_id="c1", channel="rest")
        )

    svc.run(hand_off)
    for number in ("91", "92", "93"):
        svc.factors(conv("c1"), ("1001", number, date(1990, 1, 1)), at(1))
    [escalation] = svc.rows(Escalation)
    assert escalation.reason == "member_request" and "locked until" in escalation.note


def test_a_lockout_escalation_goes_through_the_hand_off_service(svc):
    # A new lock escalation is opened by the service, so it is audited as every other.
    lock_taros_number(svc)
    [escalation] = svc.rows(Escalation)
    taro = svc.rows(Member)[0]
    opened = [r for r in svc.rows(AuditLog) if r.action == "escalation.opened"]
    assert [(r.actor, r.member_id, r.sender_id, r.channel, r.detail) for r in opened] == [
        (
            "system",
            taro.id,
            "lock2",
            "rest",
            {"escalation_id": escalation.id, "reason": "verification_locked"},
        )
    ]
    assert svc.actions()[-3:] == [
        "escalation.opened",
        "verification.locked",
        "verification.failed",  # the probe with the right factors
    ]


def test_a_lock_keeps_the_one_open_escalation_of_the_conversation(svc):
    # The member asked for a person first (the hand-off dialog), then locked the sender.
    handed = svc.run(lambda s: escalations.escalate(s, conv("c1"), "member_request", at(0)))
    for number in ("91", "92", "93"):
        svc.factors(conv("c1"), ("1001", number, date(1990, 1, 1)), at(1))
    [escalation] = svc.rows(Escalation)
    assert (escalation.id, escalation.reason) == (handed.id, "member_request")
    assert escalation.note is not None and "locked until" in escalation.note
    assert svc.actions().count("escalation.opened") == 1  # the hand-off's own
    [locked] = [r.detail for r in svc.rows(AuditLog) if r.action == "verification.locked"]
    assert (locked["escalation_id"], locked["escalation_opened"]) == (handed.id, False)


# --- how long a verification lasts ----------------------------------------------------


def test_a_new_session_is_not_verified_and_ends_the_old_one(svc):
    svc.verify(conv("c1", "s1"), at(0))
    assert svc.member(conv("c1", "s2"), at(1)) is None
    assert svc.record(conv("c1", "s2"), at(1)) is None
    assert svc.member(conv("c1", "s1"), at(1)) is None  # nothing carries over, either way
    assert svc.member(conv("c2", "s1"), at(1)) is None  # nor to another sender
    assert [r.status for r in svc.rows(Verification)] == ["expired"]


def test_fifteen_idle_minutes_end_the_verification(svc):
    c = conv()
    svc.verify(c, at(0))
    assert svc.member(c, at(14, 59)) is not None
    assert svc.member(c, at(29, 58)) is not None  # each use keeps it alive
    assert svc.member(c, at(44, 58)) is None
    assert [r.status for r in svc.rows(Verification)] == ["expired"]
    assert svc.actions()[-1] == "verification.expired"
    assert svc.rows(AuditLog)[-1].detail["reason"] == "idle"


def test_cancel_ends_a_pending_code_and_a_verification(svc):
    c = conv()
    svc.factors(c, TARO, at(0))
    code = svc.last_code()
    svc.cancel(c, at(1))
    assert svc.code(c, code, at(1)) == Outcome(Status.NO_PENDING)
    svc.verify(c, at(2))
    assert svc.member(c, at(3)) is not None
    svc.cancel(c, at(3))
    assert svc.member(c, at(3)) is None
    assert svc.actions().count("verification.cancelled") == 2


def test_naive_times_are_refused(svc):
    with pytest.raises(ValueError, match="aware"):
        svc.factors(conv(), TARO, datetime(2025, 1, 6, 9, 0))


# --- the member's own record ----------------------------------------------------------


def test_the_own_record_is_masked_lists_dependants_by_name_and_is_audited(svc):
    c = conv(channel="socketio")
    assert svc.record(c, at(0)) is None
    assert "member.read" not in svc.actions()
    svc.verify(c, at(0))
    view = svc.record(c, at(1))
    taro = svc.rows(Member)[0]
    assert view == MemberView(
        member_id=taro.id,
        name="山田 太郎",
        relationship="insured",
        masked_member_number="記号****・番号**23",
        acquired_on=date(2010, 4, 1),
        lost_on=None,
        masked_phone="090-****-5678",
        dependant_names=("山田 花子",),
    )
    read = svc.rows(AuditLog)[-1]
    assert (read.action, read.actor, read.member_id) == (
        "member.read",
        f"member:{taro.id}",
        taro.id,
    )
    assert (read.sender_id, read.channel, read.at) == ("c1", "socketio", at(1))
    assert read.detail["fields"] == list(v.READ_FIELDS)


def test_a_former_members_record_shows_the_loss_of_qualification(svc):
    c = conv()
    svc.verify(c, at(0), factors=JIRO)
    view = svc.record(c, at(1))
    assert view is not None
    assert (view.acquired_on, view.lost_on, view.dependant_names) == (
        date(2003, 10, 1),
        date(2024, 3, 31),
        (),
    )
    assert (view.masked_phone, view.masked_member_number) == ("080-****-3333", "記号****・番号**57")


# --- privacy of logs and records ------------------------------------------------------


def test_no_personal_value_reaches_the_logs_or_the_audit_trail(svc, caplog):
    caplog.set_level(logging.DEBUG)
    # SQL statements logged too: their parameters must stay hidden (hide_parameters).
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    c = conv()
    svc.factors(c, ("1001", "23", date(1985, 4, 2)), at(0))
    svc.factors(c, TARO, at(1))
    svc.code(c, "000000" if svc.last_code() != "000000" else "111111", at(1))
    svc.code(c, svc.last_code(), at(2))
    assert svc.record(c, at(3)) is not None
    wrong = ("1001", "57", date(1979, 1, 1))
    for name in ("a", "b", "c"):
        svc.factors(conv(name), wrong, at(4))
    svc.cancel(c, at(5))
    assert any(r.name == "bot.identity.verification" for r in caplog.records)
    assert any(r.name.startswith("sqlalchemy.engine") for r in caplog.records)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert [value for value in PERSONAL_VALUES if value in logged] == []
    audit = json.dumps([r.detail for r in svc.rows(AuditLog)], ensure_ascii=False)
    notes = " ".join(e.note or "" for e in svc.rows(Escalation))
    assert [value for value in PERSONAL_VALUES if value in audit + notes] == []
    assert "\\d{6}" not in audit and not re.search(r"\d{6}", audit + notes)


# --- concurrency ----------------------------------------------------------------------


def together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(0..count-1)`` in threads released at the same moment."""
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait(timeout=30)
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_code_requests_leave_one_live_code_and_one_winner(svc):
    senders = [RecordingSender() for _ in range(5)]  # the daily limit: 5 SMS
    outcomes = together(5, lambda i: svc.factors(conv(f"c{i}"), TARO, at(0), sender=senders[i]))
    assert {o.status for o in outcomes} == {Status.CODE_SENT}
    live = [r for r in svc.rows(Verification) if r.status == "pending_code"]
    assert len(live) == 1
    results = together(5, lambda i: svc.code(conv(f"c{i}"), senders[i].code, at(1)).status)
    assert sorted(results) == sorted([Status.VERIFIED] + [Status.NO_PENDING] * 4)
    winner = results.index(Status.VERIFIED)
    assert live[0].sender_id == f"c{winner}"


def test_one_code_typed_concurrently_in_two_conversations_verifies_once(svc):
    x = conv("x")
    svc.factors(x, TARO, at(0))
    code = svc.last_code()
    where = [x, x, conv("y"), conv("y")]
    results = together(4, lambda i: svc.code(where[i], code, at(1)).status)
    assert results.count(Status.VERIFIED) == 1
    assert results[:2].count(Status.VERIFIED) == 1
    assert sorted(r.status for r in svc.rows(Verification)) == ["verified"]


def test_concurrent_failures_on_one_number_are_all_counted(svc):
    wrong = ("1001", "23", date(1985, 4, 2))
    outcomes = together(6, lambda i: svc.factors(conv(f"c{i}"), wrong, at(0)).status)
    # The third takes the lock; the three after it meet a locked number, which answers
    # like any mismatch (and counts for their senders).
    assert sorted(outcomes) == sorted([Status.MISMATCH] * 5 + [Status.LOCKED])
    assert svc.count(VerificationFailure) == 6
    assert svc.count(Escalation) == 1
    assert svc.actions().count("verification.locked") == 1


def test_concurrent_failures_in_one_conversation_are_all_counted(svc):
    def attempt(i: int) -> Status:
        return svc.factors(conv("c1", f"s{i}"), ("1001", f"9{i}", date(1990, 1, 1)), at(0)).status

    outcomes = together(6, attempt)
    assert sorted(outcomes) == sorted([Status.MISMATCH] * 2 + [Status.LOCKED] * 4)
    assert svc.count(VerificationFailure) == 3
    assert svc.count(Escalation) == 1


def test_a_lock_on_the_number_covers_the_dependants_under_it(svc):
    set_phone(svc, HANAKO, "+819087654321")
    hanako = conv("hanako")
    svc.factors(hanako, HANAKO, at(0))
    code = svc.last_code("+819087654321")
    taro = conv("taro")
    svc.factors(taro, TARO, at(0))
    for minute in (1, 2, 3):
        if minute > 1:
            svc.resend(taro, at(minute))
        bad = "000000" if svc.last_code() != "000000" else "111111"
        outcomes = [svc.code(taro, bad, at(minute)).status for _ in range(3)]
    assert outcomes[-1] is Status.LOCKED
    assert svc.code(hanako, code, at(4)).status is Status.LOCKED
    assert svc.factors(conv("other"), HANAKO, at(4)).status is Status.MISMATCH
    assert svc.code(hanako, code, at(33)).status is Status.NO_PENDING  # died with the lock
