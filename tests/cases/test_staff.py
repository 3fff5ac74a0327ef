"""The staff side of formal requests against real databases (SQLite file and PostgreSQL):
every transition legal and illegal, due dates, pauses and extensions, decisions,
notifications, the work list and the audit trail."""

from __future__ import annotations

import itertools
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from bot.cases import (
    OUTCOME_LABELS,
    CaseError,
    CaseStatus,
    CaseType,
    Outcome,
    RequesterRole,
    SmsNotifier,
    case_detail,
    close_case,
    decide_case,
    extend_case,
    list_cases,
    member_cases,
    move_case,
)
from bot.cases.types import EXPLANATION_REQUIRED, GROUND_REQUIRED, OUTCOMES_BY_TYPE, TRANSITIONS
from bot.db.models import Escalation, Member, OutboundMessage
from bot.outbound.outbox import Carriers
from tests.cases.desk import (
    BENESSE,
    DATED,
    DUE0,
    KOKUSAI,
    T0,
    Desk,
    at,
    conv,
)
from tests.outbound.draining import drain

S = CaseStatus
STAFF = "田中"
_scopes = itertools.count()


def bring_to(desk: Desk, status: CaseStatus, profile=DATED, **fields) -> str:
    """A fresh case (a scope of its own) moved along the lifecycle to ``status``."""
    fields.setdefault("scope", [f"項目{next(_scopes)}"])
    number = desk.open(profile=profile, **fields).case_number
    steps = {
        S.RECEIVED: [],
        S.AWAITING_DOCUMENTS: [S.AWAITING_DOCUMENTS],
        S.UNDER_REVIEW: [S.UNDER_REVIEW],
        S.EXTENDED: [S.UNDER_REVIEW, S.EXTENDED],
        S.DECIDED: [S.UNDER_REVIEW, S.DECIDED],
        S.CLOSED: [S.UNDER_REVIEW, S.DECIDED, S.CLOSED],
        S.WITHDRAWN: [S.WITHDRAWN],
    }[status]
    for step in steps:
        apply(desk, number, step, at(1))
    return number


def apply(desk: Desk, number: str, to: CaseStatus, now: datetime):
    """Move a case to ``to`` with the staff function that does it."""
    if to is S.EXTENDED:
        return desk.run(
            lambda s: extend_case(
                s, number, 5, STAFF, "資料の確認に時間を要するため", now, desk.notifier
            )
        )
    if to is S.DECIDED:
        return desk.run(
            lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, now, desk.notifier)
        )
    return desk.run(lambda s: move_case(s, number, to, STAFF, "手続のため", now))  # fmt: skip


def status(desk: Desk, number: str) -> CaseStatus:
    return CaseStatus(desk.case(number).status)


# --- every transition ------------------------------------------------------------------


@pytest.mark.parametrize("start", list(CaseStatus))
def test_every_transition_from_a_status_is_allowed_or_refused_as_specified(desk, start):
    for to in CaseStatus:
        number = bring_to(desk, start)
        events_before = len(desk.events(number))
        if to in TRANSITIONS[start]:
            view = apply(desk, number, to, at(2))
            assert view.status is to and status(desk, number) is to, (start, to)
            last = desk.events(number)[-1]
            assert (last.from_status, last.to_status, last.actor) == (
                start.value, to.value, f"staff:{STAFF}",
            ), (start, to)  # fmt: skip
        else:
            with pytest.raises(CaseError) as refused:
                apply(desk, number, to, at(2))
            assert refused.value.allowed == TRANSITIONS[start], (start, to)
            assert status(desk, number) is start, (start, to)
            assert len(desk.events(number)) == events_before, (start, to)
            if TRANSITIONS[start]:
                assert "次に移せる状態" in str(refused.value)
                assert all(s.value in str(refused.value) for s in TRANSITIONS[start])
            else:
                assert "終了" in str(refused.value)


def test_moving_to_extended_or_decided_needs_its_own_command(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    with pytest.raises(CaseError, match="extend"):
        desk.run(lambda s: move_case(s, number, S.EXTENDED, STAFF, "x", at(2)))
    with pytest.raises(CaseError, match="decide"):
        desk.run(lambda s: move_case(s, number, S.DECIDED, STAFF, "x", at(2)))
    assert status(desk, number) is S.UNDER_REVIEW


def test_close_case_closes_decided_cases_and_those_whose_documents_never_came(desk):
    decided = bring_to(desk, S.DECIDED)
    waiting = bring_to(desk, S.AWAITING_DOCUMENTS)
    for number in (decided, waiting):
        view = desk.run(lambda s, n=number: close_case(s, n, STAFF, "完了", at(3)))
        assert view.status is S.CLOSED and desk.case(number).closed_at == at(3)
    with pytest.raises(CaseError):
        desk.run(lambda s: close_case(s, bring_to(desk, S.UNDER_REVIEW), STAFF, "x", at(3)))


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_every_move_needs_a_reason_and_a_staff_name(desk, reason):
    number = bring_to(desk, S.RECEIVED)
    with pytest.raises(CaseError, match="理由"):
        desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, reason, at(1)))
    with pytest.raises(CaseError, match="担当者名"):
        desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, " ", "ok", at(1)))
    with pytest.raises(CaseError, match="理由"):
        desk.run(lambda s: close_case(s, bring_to(desk, S.DECIDED), STAFF, reason, at(1)))
    assert status(desk, number) is S.RECEIVED


def test_an_unknown_case_or_status_is_refused(desk):
    with pytest.raises(CaseError, match="見つかりませんでした"):
        desk.run(lambda s: move_case(s, "PR-2025-000404", S.UNDER_REVIEW, STAFF, "x", at(1)))
    number = bring_to(desk, S.RECEIVED)
    with pytest.raises(CaseError, match="不明な状態"):
        lost: Any = "lost"
        desk.run(lambda s: move_case(s, number, lost, STAFF, "x", at(1)))


# --- due dates: pauses and extensions --------------------------------------------------


def test_days_awaiting_documents_do_not_count(desk):
    number = bring_to(desk, S.RECEIVED)
    desk.run(lambda s: move_case(s, number, S.AWAITING_DOCUMENTS, STAFF, "補正依頼", at(4)))
    assert desk.case(number).due_at == DUE0  # not moved while waiting
    view = desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, "補正完了", at(9)))
    assert view.due_at == DUE0 + timedelta(days=5)
    case = desk.case(number)
    assert (case.paused_days, case.awaiting_since) == (5, None)
    assert desk.events(number)[-1].detail["due_moved_days"] == 5
    # A second pause adds up.
    desk.run(lambda s: move_case(s, number, S.AWAITING_DOCUMENTS, STAFF, "追加資料", at(10)))
    desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, "受領", at(12)))
    case = desk.case(number)
    assert (case.due_at, case.paused_days) == (DUE0 + timedelta(days=7), 7)


def test_the_pause_counts_calendar_days_in_japan(desk):
    number = bring_to(desk, S.RECEIVED)
    late = datetime(2025, 1, 10, 14, 30, tzinfo=timezone.utc)  # 23:30 JST on 10 January
    desk.run(lambda s: move_case(s, number, S.AWAITING_DOCUMENTS, STAFF, "補正依頼", late))
    # One hour later it is 11 January in Japan: one day waited.
    desk.run(
        lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, "補正完了", late + timedelta(hours=1))
    )
    assert desk.case(number).due_at == DUE0 + timedelta(days=1)
    # Documents that come the same day move nothing.
    other = bring_to(desk, S.RECEIVED)
    desk.run(lambda s: move_case(s, other, S.AWAITING_DOCUMENTS, STAFF, "補正依頼", at(2)))
    desk.run(lambda s: move_case(s, other, S.UNDER_REVIEW, STAFF, "補正完了", at(2, 8)))
    assert (desk.case(other).due_at, desk.case(other).paused_days) == (DUE0, 0)


def test_an_agents_case_waits_from_receipt_until_the_documents_come(desk):
    number = desk.open(role=RequesterRole.APPOINTED_AGENT, agent_name="弁護士 甲").case_number
    view = desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, "委任状受領", at(14)))
    assert view.due_at == DUE0 + timedelta(days=14)


def test_a_case_awaiting_documents_is_never_overdue(desk):
    number = bring_to(desk, S.AWAITING_DOCUMENTS)
    later = DUE0 + timedelta(days=10)
    [row] = desk.run(lambda s: list_cases(s, later))
    assert (row.case_number, row.overdue) == (number, False)
    detail = desk.run(lambda s: case_detail(s, number, STAFF, later))
    assert not detail.overdue


def test_extensions_add_up_to_the_profiles_cap_and_move_the_due_date(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    view = desk.run(lambda s: extend_case(s, number, 20, STAFF, "大量の資料", at(5), desk.notifier))
    assert (view.status, view.extended_days, view.extension_reason) == (
        S.EXTENDED,
        20,
        "大量の資料",
    )
    assert view.due_at == DUE0 + timedelta(days=20)
    view = desk.run(
        lambda s: extend_case(s, number, 10, STAFF, "医療機関への照会", at(6), desk.notifier)
    )
    assert (view.status, view.extended_days, view.due_at) == (
        S.EXTENDED, 30, DUE0 + timedelta(days=30),
    )  # fmt: skip
    assert view.extension_reason == "医療機関への照会"  # the member is told the latest reason
    with pytest.raises(CaseError, match="あと0日"):
        desk.run(lambda s: extend_case(s, number, 1, STAFF, "さらに", at(7), desk.notifier))
    assert desk.case(number).extended_days == 30
    assert [e.detail.get("days") for e in desk.events(number) if e.action == "extended"] == [20, 10]


@pytest.mark.parametrize("days", [31, 0, -1, True])
def test_an_extension_beyond_the_cap_or_of_no_days_is_refused(desk, days):
    number = bring_to(desk, S.UNDER_REVIEW)
    with pytest.raises(CaseError):
        desk.run(lambda s: extend_case(s, number, days, STAFF, "理由", at(2), desk.notifier))
    assert (status(desk, number), desk.case(number).due_at) == (S.UNDER_REVIEW, DUE0)
    assert desk.outbox_lines() == []


def test_an_extension_needs_a_reason(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    with pytest.raises(CaseError, match="延長の理由"):
        desk.run(lambda s: extend_case(s, number, 5, STAFF, " ", at(2), desk.notifier))


def test_no_extension_where_the_policy_has_none(desk):
    number = bring_to(desk, S.UNDER_REVIEW, profile=KOKUSAI)
    with pytest.raises(CaseError, match="延長の定めがない"):
        desk.run(lambda s: extend_case(s, number, 5, STAFF, "理由", at(2), desk.notifier))


def test_no_extension_once_the_period_has_ended(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    with pytest.raises(CaseError, match="過ぎている"):
        desk.run(
            lambda s: extend_case(
                s, number, 5, STAFF, "理由", DUE0 + timedelta(seconds=1), desk.notifier
            )
        )
    # Up to the last instant of the last day it still can be extended.
    view = desk.run(lambda s: extend_case(s, number, 5, STAFF, "理由", DUE0, desk.notifier))
    assert view.due_at == DUE0 + timedelta(days=5)


def test_the_rules_a_case_was_received_under_stay_with_it(desk):
    # The cap and period are copied at receipt: listing or extending needs no profile.
    number = bring_to(desk, S.UNDER_REVIEW)
    case = desk.case(number)
    assert (case.period_days, case.max_extension_days, case.fee_kind) == (30, 30, "detailed_rules")
    kokusai = desk.case(bring_to(desk, S.UNDER_REVIEW, profile=KOKUSAI))
    assert (kokusai.period_days, kokusai.max_extension_days, kokusai.due_at) == (None, 0, None)


# --- decisions ----------------------------------------------------------------------------

GROUND = "個人情報保護法第33条第2項第1号"
WHY = "主治医の意見により、診療上の支障があるため一部を開示しません。"


def test_every_outcome_of_every_type_can_be_decided(desk):
    profiles = {CaseType.MAILING_OPT_OUT: BENESSE}
    for kind, outcomes in OUTCOMES_BY_TYPE.items():
        for outcome in outcomes:
            number = desk.open(
                kind, profile=profiles.get(kind, DATED), scope=[f"{kind}-{outcome}"]
            ).case_number
            apply(desk, number, S.UNDER_REVIEW, at(1))
            needs_ground = outcome in GROUND_REQUIRED
            needs_why = outcome in EXPLANATION_REQUIRED
            view = desk.run(
                lambda s, n=number, o=outcome, g=needs_ground, w=needs_why: decide_case(
                    s, n, o, STAFF, at(2), desk.notifier,
                    legal_ground=GROUND if g else None, explanation=WHY if w else None,
                )
            )  # fmt: skip
            assert (view.status, view.outcome) == (S.DECIDED, outcome)
            assert view.decided_at == at(2)


def test_an_outcome_must_fit_the_case_type(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    with pytest.raises(CaseError, match="選べる結果") as refused:
        desk.run(lambda s: decide_case(s, number, Outcome.CORRECTED, STAFF, at(2), desk.notifier))
    assert Outcome.DISCLOSED in str(refused.value) and "not_held" in str(refused.value)
    assert status(desk, number) is S.UNDER_REVIEW


@pytest.mark.parametrize(
    ("outcome", "ground", "explanation", "message"),
    [
        (Outcome.NOT_DISCLOSED, None, WHY, "法令上の根拠"),
        (Outcome.NOT_DISCLOSED, GROUND, None, "説明"),
        (Outcome.PARTIALLY_DISCLOSED, " ", WHY, "法令上の根拠"),
        (Outcome.PARTIALLY_DISCLOSED, GROUND, "", "説明"),
        (Outcome.NOT_HELD, None, None, "説明"),
    ],
)
def test_refusals_and_partial_outcomes_need_their_ground_and_explanation(
    desk, outcome, ground, explanation, message
):
    number = bring_to(desk, S.UNDER_REVIEW)
    with pytest.raises(CaseError, match=message):
        desk.run(
            lambda s: decide_case(
                s, number, outcome, STAFF, at(2), desk.notifier, ground, explanation
            )
        )
    assert status(desk, number) is S.UNDER_REVIEW and desk.outbox_lines() == []


def test_a_refusal_is_explained_to_the_member_who_never_sees_internal_notes(desk):
    number = bring_to(desk, S.RECEIVED)
    desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, "内部メモ：医師照会済み", at(1)))
    desk.run(
        lambda s: decide_case(
            s, number, Outcome.PARTIALLY_DISCLOSED, STAFF, at(2), desk.notifier, GROUND, WHY
        )
    )
    [view] = desk.run(lambda s: member_cases(s, desk.taro, now=at(3)))
    assert (view.outcome, view.legal_ground, view.explanation) == (
        Outcome.PARTIALLY_DISCLOSED, GROUND, WHY,
    )  # fmt: skip
    assert "内部メモ" not in repr(view)


def test_a_late_decision_is_recorded_as_late(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    desk.run(
        lambda s: decide_case(
            s, number, Outcome.DISCLOSED, STAFF, DUE0 + timedelta(days=1), desk.notifier
        )
    )
    assert desk.events(number)[-1].detail["late"] is True
    assert [row.detail["late"] for row in desk.audit("case.decided")] == [True]


# --- notifications ---------------------------------------------------------------------------


def test_extensions_and_decisions_are_sent_to_the_requester(desk):
    number = bring_to(desk, S.UNDER_REVIEW)
    desk.run(lambda s: extend_case(s, number, 10, STAFF, "照会中のため", at(3), desk.notifier))
    desk.run(lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, at(4), desk.notifier))
    extended, decided = desk.outbox_lines()
    assert extended["to"] == decided["to"] == "+819012345678"
    assert number in extended["text"] and "10日延長" in extended["text"]
    assert "2025年2月15日" in extended["text"]
    assert "照会中のため" not in extended["text"]  # reasons are read after verification
    assert number in decided["text"] and OUTCOME_LABELS[Outcome.DISCLOSED] in decided["text"]
    rows = desk.rows(OutboundMessage)
    # Written with the change (created_at), sent once it committed (sent_at, real clock).
    assert [(m.channel, m.to, m.status, m.created_at) for m in rows] == [
        ("sms", "+819012345678", "sent", at(3)),
        ("sms", "+819012345678", "sent", at(4)),
    ]
    assert all(m.sent_at is not None and m.payload is None for m in rows)
    assert [m.text for m in rows] == [extended["text"], decided["text"]]
    assert [r.action for r in desk.audit() if r.action.startswith("case.notification")] == [
        "case.notification_sent",
        "case.notification_sent",
    ]


def test_a_guardians_case_is_notified_to_the_guardian(desk):
    number = bring_to(
        desk, S.UNDER_REVIEW, subject_member_id=desk.hanako, role=RequesterRole.LEGAL_GUARDIAN
    )
    desk.run(lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, at(2), desk.notifier))
    [line] = desk.outbox_lines()
    assert line["to"] == "+819012345678"


def test_a_member_without_a_phone_gets_a_failed_message_and_staff_an_escalation(desk, caplog):
    caplog.set_level(logging.INFO)
    desk.run(
        lambda s: s.execute(sa.update(Member).where(Member.id == desk.jiro).values(phone=None))
    )
    number = bring_to(desk, S.UNDER_REVIEW, member=desk.jiro, c=conv("jiro"))
    view = desk.run(
        lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, at(2), desk.notifier)
    )
    assert view.status is S.DECIDED  # the decision stands
    [message] = desk.rows(OutboundMessage)
    assert (message.status, message.to, message.error, message.sent_at) == (
        "failed", "", "no phone on record", None,
    )  # fmt: skip
    [escalation] = desk.rows(Escalation)
    assert (escalation.reason, escalation.member_id) == ("case_notification_failed", desk.jiro)
    assert desk.outbox_lines() == []
    assert f"member {desk.jiro} failed (no phone on record)" in caplog.text
    assert "佐藤" not in caplog.text and "+8180" not in caplog.text


def test_a_carrier_failure_is_recorded_without_its_message(desk):
    class Broken:
        def send(self, to: str, text: str) -> None:
            raise ConnectionError(f"carrier refused {to}")

    number = bring_to(desk, S.UNDER_REVIEW)
    desk.run(
        lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, at(2), SmsNotifier(Broken()))
    )
    [message] = desk.rows(OutboundMessage)
    assert (message.status, message.error) == ("pending", "ConnectionError")  # retried later
    assert desk.rows(Escalation) == []
    assert drain(desk.sessions, Carriers(sms=Broken())) == 0  # the worker's tries
    [message] = desk.rows(OutboundMessage)
    assert (message.status, message.error, message.attempts) == ("failed", "ConnectionError", 5)
    assert message.payload is None
    assert len(desk.rows(Escalation)) == 1


def test_failed_notifications_reach_staff_through_the_hand_off_service(desk):
    class Broken:
        def send(self, to: str, text: str) -> None:
            raise ConnectionError(f"carrier refused {to}")

    number = bring_to(desk, S.UNDER_REVIEW)
    notifier = SmsNotifier(Broken())
    desk.run(lambda s: extend_case(s, number, 10, STAFF, "照会中のため", at(2), notifier))
    desk.run(lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, at(3), notifier))
    drain(desk.sessions, Carriers(sms=Broken()))
    first, second = desk.rows(OutboundMessage)
    # One escalation for the member while it is open: each failure adds a line to it.
    [escalation] = desk.rows(Escalation)
    assert (escalation.reason, escalation.sender_id, escalation.status) == (
        "case_notification_failed",
        None,
        "waiting",
    )
    assert escalation.note == (
        f"outbound message #{first.id}: ConnectionError\n"
        f"outbound message #{second.id}: ConnectionError"
    )
    [opened] = desk.audit("escalation.opened")
    assert (opened.actor, opened.member_id, opened.detail) == (
        "system",
        escalation.member_id,
        {"escalation_id": escalation.id, "reason": "case_notification_failed"},
    )


def test_the_default_notifier_writes_to_the_configured_outbox(desk, tmp_path, monkeypatch):
    outbox = tmp_path / "default-outbox.jsonl"
    monkeypatch.setenv("PRIVACY_BOT_OUTBOX", str(outbox))
    number = bring_to(desk, S.UNDER_REVIEW)
    desk.run(lambda s: decide_case(s, number, Outcome.DISCLOSED, STAFF, at(2), SmsNotifier()))
    assert number in outbox.read_text("utf-8")


# --- the work list and one case ----------------------------------------------------------


def test_the_work_list_puts_overdue_cases_first_then_by_due_date(desk):
    now = at(36)  # 2025-02-11 09:00 JST
    overdue = bring_to(desk, S.UNDER_REVIEW)  # due 02-05
    waiting_early = desk.open(scope=["早い"], now=at(-3)).case_number  # due 02-02
    desk.run(lambda s: move_case(s, waiting_early, S.AWAITING_DOCUMENTS, STAFF, "補正", at(-2)))
    later = desk.open(scope=["後"], now=at(10)).case_number  # due 02-15
    undated = desk.open(CaseType.SUSPENSION, profile=KOKUSAI, now=at(1)).case_number
    undated_older = desk.open(
        CaseType.SUSPENSION, profile=KOKUSAI, scope=["古"], now=at(0)
    ).case_number
    done = bring_to(desk, S.CLOSED)
    gone = bring_to(desk, S.WITHDRAWN)

    rows = desk.run(lambda s: list_cases(s, now))
    assert [r.case_number for r in rows] == [overdue, waiting_early, later, undated_older, undated]
    assert [r.overdue for r in rows] == [True, False, False, False, False]
    assert rows[0].status is S.UNDER_REVIEW and rows[1].status is S.AWAITING_DOCUMENTS
    assert [r.case_number for r in desk.run(lambda s: list_cases(s, now, limit=2))] == [
        overdue,
        waiting_early,
    ]
    by_status = desk.run(lambda s: list_cases(s, now, status=S.AWAITING_DOCUMENTS))
    assert [r.case_number for r in by_status] == [waiting_early]
    assert [r.case_number for r in desk.run(lambda s: list_cases(s, now, S.CLOSED))] == [done]
    assert [r.case_number for r in desk.run(lambda s: list_cases(s, now, S.WITHDRAWN))] == [gone]
    assert desk.audit("case.listed_by_staff") == []
    desk.run(lambda s: list_cases(s, now, staff=STAFF))
    [row] = desk.audit("case.listed_by_staff")
    assert (row.actor, row.detail["count"]) == (f"staff:{STAFF}", 5)


def test_case_detail_shows_everything_with_the_history_and_is_audited(desk):
    number = desk.open(CaseType.CORRECTION).case_number
    desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, STAFF, "確認開始", at(1)))
    desk.run(lambda s: extend_case(s, number, 7, "佐々木", "原本照合", at(2), desk.notifier))
    detail = desk.run(lambda s: case_detail(s, number, "鈴木", at(3)))
    assert (detail.case_type, detail.status, detail.allowed_next) == (
        CaseType.CORRECTION, S.EXTENDED, (S.EXTENDED, S.DECIDED, S.WITHDRAWN),
    )  # fmt: skip
    assert (detail.requester_name, detail.subject_name) == ("山田 太郎", "山田 太郎")
    assert (detail.wrong_text, detail.right_text) == ("山田 太朗", "山田 太郎")
    assert (detail.period_days, detail.extended_days, detail.max_extension_days) == (30, 7, 30)
    assert detail.fee.kind == "none_by_law"
    assert [(h.actor, h.action, h.to_status, h.reason) for h in detail.history] == [
        (f"member:{desk.taro}", "opened", S.RECEIVED, None),
        (f"staff:{STAFF}", "moved", S.UNDER_REVIEW, "確認開始"),
        ("staff:佐々木", "extended", S.EXTENDED, "原本照合"),
    ]
    [viewed] = desk.audit("case.viewed")
    assert (viewed.actor, viewed.member_id, viewed.detail) == (
        "staff:鈴木", desk.taro, {"case_number": number},
    )  # fmt: skip
    with pytest.raises(CaseError):
        desk.run(lambda s: case_detail(s, "PR-2025-000404", STAFF, at(3)))


def test_every_staff_action_is_audited_under_the_staff_name(desk):
    number = bring_to(desk, S.RECEIVED)
    desk.run(lambda s: move_case(s, number, S.UNDER_REVIEW, "A", "r", at(1)))
    desk.run(lambda s: extend_case(s, number, 3, "B", "r", at(2), desk.notifier))
    desk.run(lambda s: decide_case(s, number, Outcome.DISCLOSED, "C", at(3), desk.notifier))
    desk.run(lambda s: close_case(s, number, "D", "r", at(4)))
    staff_rows = [r for r in desk.audit() if r.actor.startswith("staff:")]
    moves = [
        (r.actor, r.action, r.detail["from_status"], r.detail["to_status"]) for r in staff_rows
    ]
    assert moves == [
        ("staff:A", "case.moved", "received", "under_review"),
        ("staff:B", "case.extended", "under_review", "extended"),
        ("staff:C", "case.decided", "extended", "decided"),
        ("staff:D", "case.closed", "decided", "closed"),
    ]  # fmt: skip
    assert all(r.member_id == desk.taro and r.detail["case_number"] == number for r in staff_rows)
    assert staff_rows[0].at > T0
