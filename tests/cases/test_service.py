"""The member side of formal requests against real databases (SQLite file and PostgreSQL).

Each step runs in its own transaction, as the action server runs it; time moves with
the ``now`` argument (the ``desk`` fixture, tests/cases/desk.py).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from bot.cases import (
    CaseError,
    CaseStatus,
    CaseType,
    DisclosureTarget,
    DraftError,
    Method,
    Outcome,
    RequesterRole,
    confirm_draft,
    discard_draft,
    get_draft,
    member_cases,
    minor_dependants,
    move_case,
    update_draft,
    withdraw_case,
)
from bot.cases.types import DraftStatus
from bot.core.conversation import Conversation
from bot.db.models import Case, CaseDraft, CaseEvent, OutboundMessage
from bot.db.session import create_app_engine, engine_for
from tests.cases.desk import (
    BENESSE,
    COOP,
    DATED,
    DUE0,
    GUNMA,
    KOKUSAI,
    OSAKA,
    T0,
    Desk,
    at,
    conv,
)

# Free text no log line, audit detail or SMS may ever carry.
SECRET_TEXTS = {
    "wrong_text": "旧住所は大阪市北区梅田九丁目",
    "right_text": "新住所は大阪市中央区難波八丁目",
    "reason": "退職後も勧誘に使われている疑い",
    "agent_name": "弁護士 鈴木一郎",
    "agent_contact": "06-9999-8888",
    "scope": "二〇二三年度の受診記録ぜんぶ",
}


def all_at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)

    def run(index: int) -> Any:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


# --- opening a case -----------------------------------------------------------------------


def test_a_confirmed_disclosure_request_becomes_a_case(desk):
    draft_id = desk.draft(CaseType.DISCLOSURE, target=DisclosureTarget.RECEIPTS)
    opened = desk.confirm(draft_id)
    assert opened.case_number == "PR-2025-000001"
    assert (opened.status, opened.due_at, opened.created) == (CaseStatus.RECEIVED, DUE0, True)
    assert not opened.duplicate_of_open_case
    assert (opened.fee.kind, opened.fee.amount_yen) == ("detailed_rules", None)
    assert opened.documents and "本人" in opened.documents[0]
    case = desk.case(opened.case_number)
    assert (case.case_type, case.target, case.method, case.role) == (
        "disclosure", "receipts", "paper", "self",
    )  # fmt: skip
    assert (case.requester_member_id, case.subject_member_id) == (desk.taro, desk.taro)
    assert (case.received_at, case.period_days, case.max_extension_days) == (T0, 30, 30)
    assert (case.scope, case.channel, case.sender_id, case.draft_id) == (
        ["2024年度の医療費通知"], "rest", "c1", draft_id,
    )  # fmt: skip
    [event] = desk.events(opened.case_number)
    assert (event.actor, event.action, event.from_status, event.to_status) == (
        f"member:{desk.taro}", "opened", None, "received",
    )  # fmt: skip
    [row] = desk.audit("case.opened")
    assert (row.actor, row.member_id, row.sender_id, row.channel) == (
        f"member:{desk.taro}", desk.taro, "c1", "rest",
    )  # fmt: skip
    assert row.detail["case_number"] == "PR-2025-000001"
    # The typed text now lives in the case only.
    [draft] = desk.rows(CaseDraft)
    assert (draft.status, draft.case_id, draft.scope) == ("confirmed", case.id, [])
    assert get_draft_of(desk, draft_id).confirmed_case_number == "PR-2025-000001"


def get_draft_of(desk: Desk, draft_id: str, c: Conversation | None = None):
    return desk.run(lambda s: get_draft(s, c or conv(), draft_id))


def test_case_numbers_count_up_per_japanese_year(desk):
    first = desk.open(scope=["a"])
    second = desk.open(scope=["b"], now=at(1))
    # 15:30 UTC on 31 December is 00:30 on 1 January in Japan: a new year's numbers.
    new_year = desk.open(scope=["c"], now=datetime(2025, 12, 31, 15, 30, tzinfo=timezone.utc))
    assert [first.case_number, second.case_number, new_year.case_number] == [
        "PR-2025-000001",
        "PR-2025-000002",
        "PR-2026-000001",
    ]


@pytest.mark.parametrize(
    ("kind", "profile", "due"),
    [
        (CaseType.CORRECTION, DATED, DUE0),
        (CaseType.SUSPENSION, GUNMA, None),
        (CaseType.THIRD_PARTY_STOP, KOKUSAI, None),
        (CaseType.PURPOSE_NOTICE, KOKUSAI, None),
        (CaseType.MAILING_OPT_OUT, BENESSE, None),
    ],
)
def test_every_type_opens_where_it_is_offered(desk, kind, profile, due):
    opened = desk.open(kind, profile=profile)
    assert (opened.status, opened.due_at, opened.created) == (CaseStatus.RECEIVED, due, True)
    # The Act allows no fee for correction or stopping; the household-mailing opt-out is
    # not a request under the Act, and benesse publishes no fee for it.
    by_law = kind not in (CaseType.PURPOSE_NOTICE, CaseType.MAILING_OPT_OUT)
    expected_fee = "none_by_law" if by_law else "unpublished"
    assert opened.fee.kind == expected_fee
    assert desk.case(opened.case_number).fee_kind == expected_fee


def test_where_the_period_runs_from_the_documents_a_case_waits_for_them_undated(desk):
    # osaka counts 30 days from the submission of the 開示等請求(申出)書 (第28条): a chat
    # message starts nothing; the due date is set the day staff record the documents.
    opened = desk.open(CaseType.CORRECTION, profile=OSAKA)
    assert (opened.status, opened.due_at) == (CaseStatus.AWAITING_DOCUMENTS, None)
    desk.run(
        lambda s: move_case(
            s, opened.case_number, CaseStatus.UNDER_REVIEW, "田中", "書類受領", at(3)
        )
    )
    case = desk.case(opened.case_number)
    # Documents on 9 January (JST): the 30 days end at the end of 8 February.
    assert case.due_at == datetime(2025, 2, 8, 14, 59, 59, 999999, tzinfo=timezone.utc)
    assert (case.status, case.paused_days) == ("under_review", 0)


def test_the_member_is_told_the_clock_waits_for_the_documents(desk):
    from bot.cases.dialog import status_lines

    desk.open(CaseType.CORRECTION, profile=OSAKA)
    [view] = desk.run(lambda s: member_cases(s, desk.taro, now=at(1)))
    text = status_lines(view, OSAKA)
    assert "書類の提出待ち" in text and "書類が届いた日から数えて決まります" in text


def test_a_case_withdrawn_while_awaiting_documents_never_gets_a_due_date(desk):
    opened = desk.open(CaseType.CORRECTION, profile=OSAKA)
    desk.run(
        lambda s: move_case(s, opened.case_number, CaseStatus.WITHDRAWN, "田中", "取下げ", at(3))
    )
    assert desk.case(opened.case_number).due_at is None


@pytest.mark.parametrize(
    ("kind", "profile"),
    [
        (CaseType.MAILING_OPT_OUT, KOKUSAI),
        (CaseType.PURPOSE_NOTICE, COOP),
        (CaseType.THIRD_PARTY_STOP, BENESSE),
    ],
)
def test_a_type_the_profile_does_not_offer_is_refused(desk, kind, profile):
    draft_id = desk.draft(kind)
    with pytest.raises(CaseError, match="案内されていません"):
        desk.confirm(draft_id, profile=profile)
    assert desk.rows(Case) == []
    assert get_draft_of(desk, draft_id).status is DraftStatus.OPEN  # nothing half-done


@pytest.mark.parametrize(
    ("kind", "fields", "message"),
    [
        (CaseType.CORRECTION, {"right_text": None}, "誤っている内容と正しい内容"),
        (CaseType.CORRECTION, {"wrong_text": "  "}, "誤っている内容と正しい内容"),
        (CaseType.SUSPENSION, {"reason": None}, "理由"),
        (CaseType.THIRD_PARTY_STOP, {"reason": ""}, "理由"),
        (CaseType.DISCLOSURE, {"target": None}, "対象"),
        (CaseType.DISCLOSURE, {"method": None}, "方法"),
        (
            CaseType.DISCLOSURE,
            {"role": RequesterRole.APPOINTED_AGENT, "agent_name": None},
            "代理人のお名前",
        ),
    ],
)
def test_a_request_missing_what_its_type_needs_is_refused(desk, kind, fields, message):
    draft_id = desk.draft(kind, **fields)
    with pytest.raises(CaseError, match=message):
        desk.confirm(draft_id)
    assert desk.rows(Case) == []


def test_an_appointed_agents_request_waits_for_documents_and_keeps_the_agent(desk):
    opened = desk.open(
        role=RequesterRole.APPOINTED_AGENT,
        agent_name=SECRET_TEXTS["agent_name"],
        agent_contact=SECRET_TEXTS["agent_contact"],
    )
    assert opened.status is CaseStatus.AWAITING_DOCUMENTS
    assert "未成年者又は成年被後見人の法定代理人" in opened.documents  # the agent rules
    case = desk.case(opened.case_number)
    assert (case.agent_name, case.agent_contact, case.role) == (
        SECRET_TEXTS["agent_name"], SECRET_TEXTS["agent_contact"], "appointed_agent",
    )  # fmt: skip
    assert (case.awaiting_since, case.due_at) == (T0, DUE0)
    [draft] = desk.rows(CaseDraft)
    assert (draft.agent_name, draft.agent_contact) == (None, None)


def test_the_draft_belongs_to_its_sender(desk):
    draft_id = desk.draft()
    other = conv("someone-else")
    assert get_draft_of(desk, draft_id, other) is None
    with pytest.raises(DraftError):
        desk.run(lambda s: update_draft(s, other, draft_id, T0, reason="x"))
    with pytest.raises(CaseError):
        desk.confirm(draft_id, other)
    with pytest.raises(DraftError):
        desk.run(lambda s: discard_draft(s, other, draft_id, T0))
    assert desk.rows(Case) == []
    assert get_draft_of(desk, draft_id).status is DraftStatus.OPEN


def test_a_confirmed_draft_cannot_be_changed_or_discarded(desk):
    draft_id = desk.draft()
    desk.confirm(draft_id)
    with pytest.raises(DraftError, match="変更できません"):
        desk.run(lambda s: update_draft(s, conv(), draft_id, T0, scope=["other"]))
    with pytest.raises(DraftError, match="取下げ"):
        desk.run(lambda s: discard_draft(s, conv(), draft_id, T0))


def test_a_discarded_draft_forgets_its_text_and_cannot_be_confirmed(desk):
    draft_id = desk.draft(CaseType.CORRECTION)
    desk.run(lambda s: discard_draft(s, conv(), draft_id, T0))
    desk.run(lambda s: discard_draft(s, conv(), draft_id, T0))  # twice: harmless
    draft = get_draft_of(desk, draft_id)
    assert draft.status is DraftStatus.DISCARDED
    assert (draft.wrong_text, draft.right_text, draft.scope) == (None, None, ())
    with pytest.raises(CaseError, match="取り消されています"):
        desk.confirm(draft_id)
    assert desk.rows(Case) == []


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (CaseType.CORRECTION, {"target": DisclosureTarget.RECEIPTS}),
        (CaseType.DISCLOSURE, {"wrong_text": "x"}),
        (CaseType.SUSPENSION, {"method": Method.ELECTRONIC}),
        (CaseType.DISCLOSURE, {"colour": "blue"}),
        (CaseType.DISCLOSURE, {"target": "everything"}),
        (CaseType.DISCLOSURE, {"agent_name": "x" * 129}),
    ],
)
def test_fields_that_do_not_fit_the_draft_are_refused(desk, kind, fields):
    draft_id = desk.draft(kind)
    with pytest.raises(DraftError):
        desk.run(lambda s: update_draft(s, conv(), draft_id, T0, **fields))


def test_update_draft_strips_text_and_returns_the_draft(desk):
    draft_id = desk.draft(CaseType.SUSPENSION)
    draft = desk.run(
        lambda s: update_draft(s, conv(), draft_id, T0, reason="  理由  ", scope="健診結果 ")
    )
    assert (draft.reason, draft.scope, draft.role) == ("理由", ("健診結果",), RequesterRole.SELF)
    assert desk.run(lambda s: update_draft(s, conv(), draft_id, T0, reason="   ")).reason is None


# --- exactly once ---------------------------------------------------------------------------


def test_confirming_twice_in_a_row_gives_the_same_case(desk):
    draft_id = desk.draft()
    first = desk.confirm(draft_id)
    second = desk.confirm(draft_id, now=at(0, 1))
    assert first.created and not second.created
    assert second.case_number == first.case_number and second.due_at == first.due_at
    assert not second.duplicate_of_open_case
    assert len(desk.rows(Case)) == 1 and len(desk.rows(CaseEvent)) == 1
    assert len(desk.audit("case.opened")) == 1 and len(desk.audit("case.confirm_repeated")) == 1


def test_confirming_after_a_restart_gives_the_same_case(desk, migrated_url):
    draft_id = desk.draft()
    first = desk.confirm(draft_id)
    # A new process: a new engine with new connections, nothing shared in memory.
    engine_for(migrated_url).dispose()
    engine = create_app_engine(migrated_url)
    try:
        with sessionmaker(bind=engine, future=True).begin() as session:
            again = confirm_draft(session, conv(), draft_id, DATED, at(0, 2))
    finally:
        engine.dispose()
    assert (again.case_number, again.created) == (first.case_number, False)
    assert len(desk.rows(Case)) == 1


def test_confirming_from_two_threads_at_once_makes_one_case(desk):
    draft_id = desk.draft()
    results = all_at_once(4, lambda _: desk.confirm(draft_id))
    assert {r.case_number for r in results} == {"PR-2025-000001"}
    assert sorted(r.created for r in results) == [False, False, False, True]
    assert not any(r.duplicate_of_open_case for r in results)  # found as confirmed, not as a twin
    assert len(desk.rows(Case)) == 1 and len(desk.rows(CaseEvent)) == 1
    assert get_draft_of(desk, draft_id).status is DraftStatus.CONFIRMED


def test_concurrent_confirmations_of_different_requests_get_consecutive_numbers(desk):
    drafts = [desk.draft(scope=[f"項目{i}"], c=conv(f"c{i}")) for i in range(6)]
    results = all_at_once(6, lambda i: desk.confirm(drafts[i], conv(f"c{i}")))
    assert sorted(r.case_number for r in results) == [f"PR-2025-00000{i}" for i in range(1, 7)]
    assert all(r.created for r in results)


def test_the_same_open_request_is_not_opened_twice(desk):
    first = desk.open()
    second_draft = desk.draft(c=conv("c2"), scope=[" 2024年度の医療費通知"])  # same, spaced
    second = desk.confirm(second_draft, conv("c2"), now=at(1))
    assert (second.case_number, second.created, second.duplicate_of_open_case) == (
        first.case_number, False, True,
    )  # fmt: skip
    assert len(desk.rows(Case)) == 1
    assert get_draft_of(desk, second_draft, conv("c2")).status is DraftStatus.DUPLICATE
    # Pressing confirm again on the duplicate says the same.
    assert desk.confirm(second_draft, conv("c2")).duplicate_of_open_case
    [row] = desk.audit("case.duplicate_request")
    assert row.detail["case_number"] == first.case_number
    # Once the first is withdrawn, the same request opens a new case.
    desk.run(lambda s: withdraw_case(s, conv(), desk.taro, first.case_number, at(2)))
    third = desk.open(now=at(3))
    assert third.created and third.case_number == "PR-2025-000002"


def test_different_requests_of_one_member_are_separate_cases(desk):
    desk.open()
    assert desk.open(scope=["2023年度の医療費通知"]).created
    assert desk.open(target=DisclosureTarget.THIRD_PARTY_RECORDS).created
    assert desk.open(CaseType.CORRECTION).created
    # Another correction of the same item into something else is a request of its own.
    assert desk.open(CaseType.CORRECTION, right_text="山田 多郎").created
    assert not desk.open(CaseType.CORRECTION).created  # the very same one again
    assert len(desk.rows(Case)) == 5


def test_two_drafts_of_one_request_confirmed_at_once_make_one_case(desk):
    drafts = [desk.draft(c=conv(f"c{i}")) for i in range(3)]
    results = all_at_once(3, lambda i: desk.confirm(drafts[i], conv(f"c{i}")))
    assert len({r.case_number for r in results}) == 1
    assert sorted(r.duplicate_of_open_case for r in results) == [False, True, True]
    assert len(desk.rows(Case)) == 1


# --- who a request can be about -----------------------------------------------------------


def test_a_guardian_requests_for_a_minor_dependant_who_then_sees_it_too(desk):
    assert desk.run(lambda s: minor_dependants(s, desk.taro, T0)) == [(desk.hanako, "山田 花子")]
    opened = desk.open(subject_member_id=desk.hanako, role=RequesterRole.LEGAL_GUARDIAN)
    case = desk.case(opened.case_number)
    assert (case.requester_member_id, case.subject_member_id, case.role) == (
        desk.taro, desk.hanako, "legal_guardian",
    )  # fmt: skip
    [for_taro] = desk.run(lambda s: member_cases(s, desk.taro, now=T0))
    [for_hanako] = desk.run(lambda s: member_cases(s, desk.hanako, now=T0))
    assert for_taro == for_hanako
    assert not for_taro.subject_is_requester and for_taro.role is RequesterRole.LEGAL_GUARDIAN
    assert desk.run(lambda s: member_cases(s, desk.jiro, now=T0)) == []


def test_an_adult_dependant_or_a_stranger_cannot_be_the_subject(desk):
    adult = desk.add_member("山田 一郎", date(2000, 5, 5), desk.taro, None)
    assert desk.run(lambda s: minor_dependants(s, desk.taro, T0)) == [(desk.hanako, "山田 花子")]
    draft_id = desk.draft()
    for subject in (adult, desk.jiro, 999_999):
        with pytest.raises(DraftError, match="未成年"):
            desk.run(
                lambda s, x=subject: update_draft(s, conv(), draft_id, T0, subject_member_id=x)
            )
    assert get_draft_of(desk, draft_id).subject_member_id == desk.taro


def test_a_dependant_who_comes_of_age_before_confirming_is_refused(desk):
    eve = datetime(2030, 6, 14, 12, 0, tzinfo=timezone.utc)  # 21:00 JST, the day before
    draft_id = desk.draft(now=eve, subject_member_id=desk.hanako, role=RequesterRole.LEGAL_GUARDIAN)
    with pytest.raises(CaseError, match="未成年"):
        desk.confirm(draft_id, now=eve + timedelta(hours=3))  # 00:00 JST, her 18th birthday
    assert desk.run(lambda s: minor_dependants(s, desk.taro, eve + timedelta(hours=3))) == []
    assert desk.confirm(draft_id, now=eve).created


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # A 法定代理人 of the member themself (a 成年後見人) must be named.
        ({"role": RequesterRole.LEGAL_GUARDIAN}, "代理人のお名前"),
        ({"subject_member_id": "hanako"}, "法定代理人"),
    ],
)
def test_the_role_must_fit_the_subject(desk, fields, message):
    if fields.get("subject_member_id") == "hanako":
        fields = {"subject_member_id": desk.hanako}
    draft_id = desk.draft(**fields)
    with pytest.raises(CaseError, match=message):
        desk.confirm(draft_id)


def test_a_guardian_of_an_adult_ward_waits_for_documents_like_any_agent(desk):
    # 個人情報保護法第37条第3項: a 成年後見人 may request; the records cannot show it.
    opened = desk.open(
        CaseType.CORRECTION, role=RequesterRole.LEGAL_GUARDIAN, agent_name="後見人 佐々木 恵"
    )
    assert opened.status is CaseStatus.AWAITING_DOCUMENTS
    case = desk.case(opened.case_number)
    assert (case.role, case.agent_name) == ("legal_guardian", "後見人 佐々木 恵")


# --- following and withdrawing -------------------------------------------------------------


def test_a_member_sees_their_cases_newest_first_and_nobody_elses(desk):
    numbers = [desk.open(scope=[f"項目{i}"], now=at(i)).case_number for i in range(4)]
    desk.open(member=desk.jiro, c=conv("jiro"))
    views = desk.run(lambda s: member_cases(s, desk.taro, now=at(5)))
    assert [v.case_number for v in views] == numbers[::-1]
    assert [v.case_number for v in desk.run(lambda s: member_cases(s, desk.taro, 2))] == [
        numbers[3],
        numbers[2],
    ]
    [jiros] = desk.run(lambda s: member_cases(s, desk.jiro, now=at(5)))
    assert jiros.case_number not in numbers
    assert views[0].due_at == DUE0 + timedelta(days=3) and views[0].subject_is_requester
    rows = desk.audit("case.listed")
    assert (
        rows[0].actor == f"member:{desk.taro}" and rows[0].detail["case_numbers"] == numbers[::-1]
    )


def test_a_member_withdraws_their_open_case(desk):
    opened = desk.open()
    view = desk.run(lambda s: withdraw_case(s, conv(), desk.taro, opened.case_number, at(1)))
    assert view.status is CaseStatus.WITHDRAWN
    events = desk.events(opened.case_number)
    assert [(e.action, e.from_status, e.to_status, e.actor) for e in events][-1] == (
        "withdrawn", "received", "withdrawn", f"member:{desk.taro}",
    )  # fmt: skip
    # A second delivery of the same message changes nothing.
    again = desk.run(lambda s: withdraw_case(s, conv(), desk.taro, opened.case_number, at(2)))
    assert again.status is CaseStatus.WITHDRAWN and len(desk.events(opened.case_number)) == 2
    assert len(desk.audit("case.withdrawn")) == 1
    assert desk.case(opened.case_number).closed_at == at(1)


def test_nobody_withdraws_someone_elses_case_and_cannot_tell_it_exists(desk):
    opened = desk.open()
    with pytest.raises(CaseError) as not_theirs:
        desk.run(lambda s: withdraw_case(s, conv("j"), desk.jiro, opened.case_number, at(1)))
    with pytest.raises(CaseError) as missing:
        desk.run(lambda s: withdraw_case(s, conv("j"), desk.jiro, "PR-2025-999999", at(1)))
    assert str(not_theirs.value).replace(opened.case_number, "N") == str(missing.value).replace(
        "PR-2025-999999", "N"
    )
    # The minor the case is about cannot withdraw her guardian's request either.
    guarded = desk.open(subject_member_id=desk.hanako, role=RequesterRole.LEGAL_GUARDIAN)
    with pytest.raises(CaseError, match="見つかりませんでした"):
        desk.run(lambda s: withdraw_case(s, conv("h"), desk.hanako, guarded.case_number, at(1)))
    assert desk.case(opened.case_number).status == "received"


def test_a_decided_case_cannot_be_withdrawn(desk):
    from bot.cases import decide_case, move_case

    opened = desk.open()
    desk.run(lambda s: move_case(s, opened.case_number, CaseStatus.UNDER_REVIEW, "t", "ok", at(1)))
    desk.run(
        lambda s: decide_case(s, opened.case_number, Outcome.DISCLOSED, "t", at(2), desk.notifier)
    )
    with pytest.raises(CaseError, match="決定済み"):
        desk.run(lambda s: withdraw_case(s, conv(), desk.taro, opened.case_number, at(3)))


# --- the records themselves -----------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    ["UPDATE case_events SET reason = 'rewritten'", "DELETE FROM case_events"],
)
def test_the_case_history_is_append_only_in_the_database(desk, migrated_url, statement):
    desk.open()
    with (
        pytest.raises(sa.exc.DatabaseError, match="append-only"),
        engine_for(migrated_url).begin() as connection,
    ):
        connection.execute(sa.text(statement))
    [event] = desk.rows(CaseEvent)
    assert event.reason is None


def test_the_database_refuses_a_case_without_its_target_or_a_second_case_per_draft(desk):
    opened = desk.open()
    case = desk.case(opened.case_number)
    with pytest.raises(sa.exc.IntegrityError):
        desk.run(lambda s: s.execute(sa.update(Case).values(target=None)))
    with pytest.raises(sa.exc.IntegrityError):
        desk.run(lambda s: s.execute(sa.update(Case).values(extended_days=31)))

    def copy(session) -> None:
        values = {c.name: getattr(case, c.name) for c in Case.__table__.columns if c.name != "id"}
        session.add(Case(**{**values, "case_number": "PR-2025-000099"}))

    with pytest.raises(sa.exc.IntegrityError):
        desk.run(copy)  # the same draft_id


def test_naive_times_are_refused(desk):
    draft_id = desk.draft()
    with pytest.raises(ValueError):
        desk.confirm(draft_id, now=datetime(2025, 1, 6))


def test_no_typed_text_reaches_logs_audit_details_or_messages(desk, caplog):
    from bot.cases import case_detail, decide_case, extend_case, move_case

    caplog.set_level(logging.DEBUG)
    correction = desk.open(
        CaseType.CORRECTION,
        wrong_text=SECRET_TEXTS["wrong_text"],
        right_text=SECRET_TEXTS["right_text"],
        scope=[SECRET_TEXTS["scope"]],
        role=RequesterRole.APPOINTED_AGENT,
        agent_name=SECRET_TEXTS["agent_name"],
        agent_contact=SECRET_TEXTS["agent_contact"],
    )
    stop = desk.open(CaseType.SUSPENSION, reason=SECRET_TEXTS["reason"])
    number = correction.case_number
    desk.run(lambda s: move_case(s, number, CaseStatus.UNDER_REVIEW, "田中", "書類受領", at(1)))
    desk.run(lambda s: extend_case(s, number, 5, "田中", "調査中", at(2), desk.notifier))
    desk.run(
        lambda s: decide_case(
            s, number, Outcome.NOT_CORRECTED, "田中", at(3), desk.notifier, "法34条", "事実と一致"
        )
    )
    desk.run(lambda s: case_detail(s, number, "田中", at(4)))
    desk.run(lambda s: withdraw_case(s, conv(), desk.taro, stop.case_number, at(4)))
    desk.run(lambda s: member_cases(s, desk.taro, now=at(5)))

    audit_details = json.dumps([row.detail for row in desk.audit()], ensure_ascii=False)
    sms = json.dumps(desk.outbox_lines(), ensure_ascii=False)
    messages = json.dumps([m.text for m in desk.rows(OutboundMessage)], ensure_ascii=False)
    drafts = json.dumps([vars(d).get("reason") for d in desk.rows(CaseDraft)], ensure_ascii=False)
    for text in SECRET_TEXTS.values():
        assert text not in caplog.text
        assert text not in audit_details
        assert text not in sms and text not in messages
        assert text not in drafts
    for value in ("+819012345678", "1985-04-01", "1001-23", "山田 太郎"):
        assert value not in caplog.text and value not in audit_details
    assert number in caplog.text  # the logs do say what happened, by case number
