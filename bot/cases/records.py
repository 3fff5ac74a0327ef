"""What the member side and the staff side share: audit rows, history, numbers, views.

Internal to :mod:`bot.cases`; the public functions are in ``drafts``, ``service`` and
``staff``. Audit details and log lines carry ids, case numbers, types and statuses only:
never what the member typed, nor names, birth dates, phone numbers or member numbers.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.cases.rules import STATUS_LABELS, due_on
from bot.cases.types import (
    OPEN_STATUSES,
    TRANSITIONS,
    CaseError,
    CaseStatus,
    CaseType,
    CaseView,
    DisclosureTarget,
    Fee,
    Outcome,
    RequesterRole,
)
from bot.core.japan_time import jst_day
from bot.db.models import Case, CaseEvent, CaseNumberSequence

CASE_NUMBER_PREFIX = "PR"
MAX_TEXT = 4000  # per free-text field: a request, not a document upload
MAX_STAFF_NAME = 64 - len("staff:")


def utc(now: datetime) -> datetime:
    """``now`` in UTC; naive datetimes are refused."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(timezone.utc)


def member_actor(member_id: int) -> str:
    """The audit and history actor of a member."""
    return f"member:{member_id}"


def staff_actor(staff: str) -> str:
    """The audit and history actor of a staff member; refuses an empty or long name."""
    name = (staff or "").strip()
    if not name:
        raise CaseError("担当者名（--staff）を指定してください。/ a staff name is required")
    if len(name) > MAX_STAFF_NAME:
        raise CaseError(f"担当者名は{MAX_STAFF_NAME}文字以内にしてください。")
    return f"staff:{name}"


def add_event(
    session: Session,
    case: Case,
    now: datetime,
    actor: str,
    action: str,
    from_status: CaseStatus | None,
    reason: str | None = None,
    **detail: Any,
) -> None:
    """Append one history entry of ``case`` (its status already changed)."""
    session.add(
        CaseEvent(
            case_id=case.id,
            at=now,
            actor=actor,
            action=action,
            from_status=from_status.value if from_status else None,
            to_status=case.status,
            reason=reason,
            detail=detail,
        )
    )


def find_case(session: Session, case_number: str, lock: bool = False) -> Case | None:
    """The case with this number (row-locked on PostgreSQL when ``lock``), or None."""
    statement = select(Case).where(Case.case_number == case_number.strip().upper())
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    case: Case | None = session.execute(statement).scalar_one_or_none()
    return case


def not_found(case_number: str) -> CaseError:
    """The one error for a case that does not exist or is not the caller's."""
    return CaseError(f"受付番号 {case_number.strip()} の請求は見つかりませんでした。")


def required_text(value: str | None, what: str) -> str:
    """``value`` stripped; refuses an empty or overlong one."""
    text = (value or "").strip()
    if not text:
        raise CaseError(f"{what}を入力してください。")
    if len(text) > MAX_TEXT:
        raise CaseError(f"{what}は{MAX_TEXT}文字以内にしてください。")
    return text


def allocate_case_number(session: Session, received_at: datetime) -> str:
    """The next PR-YYYY-NNNNNN of the JST year of ``received_at``.

    The year's counter row is created if missing and locked until the transaction
    ends, so concurrent confirmations take numbers one after another on PostgreSQL (on
    SQLite every transaction holds the write lock from its start). The increment
    commits or rolls back with the case: no number is skipped.
    """
    year = jst_day(received_at).year
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"case numbers are not implemented for {dialect}")
    session.execute(
        insert(CaseNumberSequence).values(year=year, last_value=0).on_conflict_do_nothing()
    )
    counter = session.execute(
        select(CaseNumberSequence)
        .where(CaseNumberSequence.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    counter.last_value += 1
    return format_case_number(year, counter.last_value)


def format_case_number(year: int, value: int) -> str:
    """PR-YYYY-NNNNNN (wider, still unique, past a million cases in a year)."""
    return f"{CASE_NUMBER_PREFIX}-{year:04d}-{value:06d}"


def fee_of(case: Case) -> Fee:
    """The fee the case was received under."""
    return Fee(case.fee_kind, case.fee_amount_yen, case.fee_source)


def status_of(case: Case) -> CaseStatus:
    """The case's status as the enum."""
    return CaseStatus(case.status)


def target_of(case: Case) -> DisclosureTarget | None:
    """The case's disclosure target as the enum."""
    return DisclosureTarget(case.target) if case.target else None


def outcome_of(case: Case) -> Outcome | None:
    """The case's outcome as the enum."""
    return Outcome(case.outcome) if case.outcome else None


def is_open(case: Case) -> bool:
    """Whether the organization still owes a decision."""
    return status_of(case) in OPEN_STATUSES


def is_overdue(case: Case, now: datetime) -> bool:
    """Past its due date while the clock runs (it stands still awaiting documents)."""
    return (
        case.due_at is not None
        and status_of(case) in OPEN_STATUSES
        and status_of(case) is not CaseStatus.AWAITING_DOCUMENTS
        and utc(now) > case.due_at
    )


def member_view(case: Case, member_id: int) -> CaseView:
    """The case as the member ``member_id`` (its requester or subject) sees it."""
    return CaseView(
        case_number=case.case_number,
        case_type=CaseType(case.case_type),
        target=target_of(case),
        status=status_of(case),
        received_at=case.received_at,
        due_at=case.due_at,
        extended_days=case.extended_days,
        extension_reason=case.extension_reason,
        outcome=outcome_of(case),
        explanation=case.explanation,
        subject_is_requester=case.subject_member_id == case.requester_member_id,
        role=RequesterRole(case.role),
        legal_ground=case.legal_ground,
        decided_at=case.decided_at,
        fee=fee_of(case),
    )


def check_transition(case: Case, to_status: CaseStatus) -> None:
    """Refuse a status change the lifecycle does not allow, naming the allowed ones."""
    current = status_of(case)
    allowed = TRANSITIONS[current]
    if to_status in allowed:
        return
    if allowed:
        names = "、".join(STATUS_LABELS[status] for status in allowed)
        values = ", ".join(status.value for status in allowed)
        following = f"次に移せる状態：{names}（{values}）"
    else:
        following = "この請求は終了しているため、これ以上状態を変えられません"
    raise CaseError(
        f"受付番号 {case.case_number} は「{STATUS_LABELS[current]}」から"
        f"「{STATUS_LABELS[to_status]}」へは移せません。{following}。"
        f" / {current.value} -> {to_status.value} is not allowed",
        allowed,
    )


def leave_awaiting(case: Case, now: datetime, start_clock: bool = True) -> int:
    """Stop the pause of a case leaving AWAITING_DOCUMENTS; returns the days added.

    The days spent waiting for the member's documents do not count towards the period
    (補正に要した日数は期間に含めない): the due date moves back by the calendar days
    (JST) from the day the wait began to the day it ended. A case whose period runs
    from the documents (the policy counts from the day they are submitted) has no due
    date yet: it gets one now, counted from today, unless the case is ending
    (``start_clock`` False).
    """
    if start_clock and case.due_at is None and case.period_days is not None:
        case.due_at = due_on(now, case.period_days)
        case.awaiting_since = None
        return 0
    if case.awaiting_since is None:
        return 0
    days = max(0, (jst_day(now) - jst_day(case.awaiting_since)).days)
    if case.due_at is not None and days:
        case.due_at = case.due_at + timedelta(days=days)
    case.paused_days += days
    case.awaiting_since = None
    return days


def set_status(case: Case, to_status: CaseStatus, now: datetime) -> int:
    """Change the status with its bookkeeping; returns the days the due date moved."""
    leaving = status_of(case) is CaseStatus.AWAITING_DOCUMENTS
    ending = to_status in (CaseStatus.CLOSED, CaseStatus.WITHDRAWN)
    moved = leave_awaiting(case, now, start_clock=not ending) if leaving else 0
    if to_status is CaseStatus.AWAITING_DOCUMENTS:
        case.awaiting_since = now
    if to_status in (CaseStatus.CLOSED, CaseStatus.WITHDRAWN):
        case.closed_at = now
    case.status = to_status.value
    case.updated_at = now
    return moved
