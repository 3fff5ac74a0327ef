"""The staff side of formal requests: the work list, one case, and moving it along.

Every call names the staff member (``staff``; accounts come later), writes an audit
row (actor ``staff:<name>``) and, when it changes the case, a history entry with the
reason. Refusals raise :class:`~bot.cases.types.CaseError` with a message that can be
shown as it is. Extensions and decisions are sent to the requester through a
:class:`~bot.cases.notify.Notifier`.

Each change locks the case row first (``FOR UPDATE`` on PostgreSQL; SQLite holds the
write lock for the whole transaction), so two staff members acting on one case at
once are applied one after the other and the second is checked against the first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot.cases.notify import Notifier
from bot.cases.records import (
    add_event,
    check_transition,
    fee_of,
    find_case,
    is_overdue,
    member_view,
    not_found,
    outcome_of,
    required_text,
    set_status,
    staff_actor,
    status_of,
    target_of,
    utc,
)
from bot.cases.rules import OUTCOME_LABELS, TYPE_LABELS
from bot.cases.types import (
    EXPLANATION_REQUIRED,
    GROUND_REQUIRED,
    OPEN_STATUSES,
    OUTCOMES_BY_TYPE,
    TRANSITIONS,
    CaseError,
    CaseFieldValue,
    CaseStatus,
    CaseType,
    CaseView,
    HistoryEntry,
    Method,
    Outcome,
    RequesterRole,
    StaffCaseDetail,
    StaffCaseRow,
)
from bot.core.japan_time import japanese_date
from bot.db.audit import audit
from bot.db.models import Case, CaseEvent, Member

logger = logging.getLogger(__name__)

MAX_PAGE = 500
# The fields staff see masked (the names, the agent's contact, the texts of a
# correction), revealed one at a time by :func:`case_field_value`.
MASKED_FIELDS = (
    "requester_name",
    "subject_name",
    "agent_name",
    "agent_contact",
    "wrong_text",
    "right_text",
)
# The masked names are the members', read from their records.
_NAME_FIELDS = {"requester_name": "requester_member_id", "subject_name": "subject_member_id"}
SMS_PREFIX = "【個人情報の請求】"
SMS_EXTENDED = (
    SMS_PREFIX + "受付番号 {number} の決定の期限を{days}日延長し、{due}までとしました。"
    "延長の理由は、チャットで本人確認のうえ「請求の状況」からご確認いただけます。"
)
SMS_DECIDED = (
    SMS_PREFIX + "受付番号 {number}（{kind}）について決定しました：{outcome}。"
    "詳しい内容は、チャットで本人確認のうえ「請求の状況」からご確認いただけます。"
)


def _as_status(value: CaseStatus | str) -> CaseStatus:
    try:
        return CaseStatus(value)
    except ValueError as error:
        known = ", ".join(status.value for status in CaseStatus)
        raise CaseError(f"不明な状態です: {value} (known: {known})") from error


def _locked(session: Session, case_number: str) -> Case:
    case = find_case(session, case_number, lock=True)
    if case is None:
        raise not_found(case_number)
    return case


# --- reading ------------------------------------------------------------------------


def list_cases_statement(statuses: tuple[CaseStatus, ...], limit: int) -> Select:
    """The query of :func:`list_cases`: the first ``limit`` cases by due date.

    One ``status = :s ORDER BY due_at, received_at LIMIT n`` per status (and one for
    the cases of that status without a due date), each an index range scan of
    ``ix_cases_status_due_at_received_at`` that stops after ``n`` rows; the union of
    those few rows is sorted, cases without a due date last. The cost does not grow
    with the number of cases.
    """
    parts = []
    for status in statuses:
        dated = (
            select(Case.id, Case.due_at, Case.received_at)
            .where(Case.status == status.value, Case.due_at.is_not(None))
            .order_by(Case.due_at, Case.received_at)
            .limit(limit)
            .subquery()
        )
        undated = (
            select(Case.id, Case.due_at, Case.received_at)
            .where(Case.status == status.value, Case.due_at.is_(None))
            .order_by(Case.received_at)
            .limit(limit)
            .subquery()
        )
        parts += [select(dated), select(undated)]
    page = union_all(*parts).subquery()
    return (
        select(Case)
        .join(page, Case.id == page.c.id)
        .order_by(page.c.due_at.is_(None), page.c.due_at, page.c.received_at, Case.id)
        .limit(limit)
    )


def list_cases(
    session: Session,
    now: datetime,
    status: CaseStatus | None = None,
    limit: int = 50,
    staff: str | None = None,
) -> list[StaffCaseRow]:
    """The work list: open cases (or those of ``status``) by due date, overdue first.

    Overdue cases (past their due date while the clock runs) come first, then the
    others by due date, then those without one by receipt. A case awaiting documents
    is never overdue: its period stands still. With ``staff``, the listing is audited.
    """
    now = utc(now)
    statuses = (_as_status(status),) if status is not None else OPEN_STATUSES
    limit = max(1, min(int(limit), MAX_PAGE))
    cases = list(session.execute(list_cases_statement(statuses, limit)).scalars())
    rows = [
        StaffCaseRow(
            case_number=case.case_number,
            case_type=CaseType(case.case_type),
            target=target_of(case),
            status=status_of(case),
            role=RequesterRole(case.role),
            received_at=case.received_at,
            due_at=case.due_at,
            overdue=is_overdue(case, now),
            extended_days=case.extended_days,
        )
        for case in cases
    ]
    # Stable: the database's due-date order is kept within each group.
    rows.sort(key=lambda row: not row.overdue)
    if staff is not None:
        audit(
            session,
            now,
            "case.listed_by_staff",
            staff_actor(staff),
            status=status.value if status is not None else "open",
            count=len(rows),
        )
    return rows


def case_detail(session: Session, case_number: str, staff: str, now: datetime) -> StaffCaseDetail:
    """One case with everything staff need and its whole history; the read is audited.

    Raises:
        CaseError: If there is no such case.
    """
    now = utc(now)
    actor = staff_actor(staff)
    case = find_case(session, case_number)
    if case is None:
        raise not_found(case_number)
    names = dict(
        session.execute(
            select(Member.id, Member.name).where(
                Member.id.in_([case.requester_member_id, case.subject_member_id])
            )
        ).all()
    )
    events = session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
    ).scalars()
    history = tuple(
        HistoryEntry(
            at=event.at,
            actor=event.actor,
            action=event.action,
            from_status=CaseStatus(event.from_status) if event.from_status else None,
            to_status=CaseStatus(event.to_status),
            reason=event.reason,
            detail=dict(event.detail or {}),
        )
        for event in events
    )
    audit(
        session,
        now,
        "case.viewed",
        actor,
        member_id=case.subject_member_id,
        case_number=case.case_number,
    )
    logger.info("case %s viewed by staff", case.case_number)
    return StaffCaseDetail(
        case_number=case.case_number,
        case_type=CaseType(case.case_type),
        target=target_of(case),
        status=status_of(case),
        allowed_next=TRANSITIONS[status_of(case)],
        role=RequesterRole(case.role),
        requester_member_id=case.requester_member_id,
        requester_name=names.get(case.requester_member_id, ""),
        subject_member_id=case.subject_member_id,
        subject_name=names.get(case.subject_member_id, ""),
        agent_name=case.agent_name,
        agent_contact=case.agent_contact,
        scope=tuple(case.scope or ()),
        method=Method(case.method) if case.method else None,
        reason=case.reason,
        wrong_text=case.wrong_text,
        right_text=case.right_text,
        channel=case.channel,
        received_at=case.received_at,
        due_at=case.due_at,
        overdue=is_overdue(case, now),
        period_days=case.period_days,
        paused_days=case.paused_days,
        extended_days=case.extended_days,
        max_extension_days=case.max_extension_days,
        extension_reason=case.extension_reason,
        fee=fee_of(case),
        outcome=outcome_of(case),
        legal_ground=case.legal_ground,
        explanation=case.explanation,
        decided_at=case.decided_at,
        closed_at=case.closed_at,
        history=history,
    )


def case_field_value(session: Session, case_number: str, field: str) -> CaseFieldValue | None:
    """The clear value of one masked field of a case; the caller audits the look.

    Args:
        session: the unit of work.
        case_number: the case.
        field: one of :data:`MASKED_FIELDS`.

    Returns:
        The value (empty when the case has none), or None when there is no such case.

    Raises:
        ValueError: If ``field`` is not one of :data:`MASKED_FIELDS`.
    """
    if field not in MASKED_FIELDS:
        raise ValueError(f"not a masked field of a case: {field!r}")
    case = find_case(session, case_number)
    if case is None:
        return None
    if field in _NAME_FIELDS:
        member_id = getattr(case, _NAME_FIELDS[field])
        value = session.execute(select(Member.name).where(Member.id == member_id)).scalar()
    else:
        value = getattr(case, field)
    return CaseFieldValue(
        case_number=case.case_number,
        subject_member_id=case.subject_member_id,
        value=str(value or ""),
    )


# --- changing ------------------------------------------------------------------------


def _record(
    session: Session,
    case: Case,
    now: datetime,
    actor: str,
    action: str,
    from_status: CaseStatus,
    reason: str | None,
    **detail: Any,
) -> None:
    add_event(session, case, now, actor, action, from_status, reason, **detail)
    audit(
        session,
        now,
        f"case.{action}",
        actor,
        member_id=case.subject_member_id,
        case_number=case.case_number,
        from_status=from_status.value,
        to_status=case.status,
        **{key: value for key, value in detail.items() if key in _AUDITED},
    )
    logger.info("case %s %s: %s -> %s", case.case_number, action, from_status.value, case.status)


# Detail keys that may go to the audit log: figures and codes, never free text.
_AUDITED = frozenset(
    {"days", "extended_days", "due_at", "due_moved_days", "outcome", "late", "longer"}
)


def move_case(
    session: Session,
    case_number: str,
    to_status: CaseStatus,
    staff: str,
    reason: str,
    now: datetime,
) -> CaseView:
    """Move a case to ``to_status`` with a reason.

    For extending use :func:`extend_case`, for deciding :func:`decide_case`. Leaving
    ``awaiting_documents`` moves the due date back by the days spent waiting.

    Raises:
        CaseError: If the move is not in the lifecycle (the message names the allowed
            next statuses, ``error.allowed`` holds them), or the reason is missing.
    """
    now = utc(now)
    actor = staff_actor(staff)
    reason = required_text(reason, "理由")
    target = _as_status(to_status)
    case = _locked(session, case_number)
    check_transition(case, target)
    allowed = TRANSITIONS[status_of(case)]
    if target is CaseStatus.EXTENDED:
        raise CaseError("延長は日数と理由を指定して extend で行ってください。/ use extend", allowed)
    if target is CaseStatus.DECIDED:
        raise CaseError("決定は結果を指定して decide で行ってください。/ use decide", allowed)
    current = status_of(case)
    moved = set_status(case, target, now)
    _record(
        session,
        case,
        now,
        actor,
        "moved",
        current,
        reason,
        due_moved_days=moved,
        due_at=case.due_at.isoformat() if case.due_at else None,
    )
    return member_view(case, case.requester_member_id)


def extend_case(
    session: Session,
    case_number: str,
    days: int,
    staff: str,
    reason: str,
    now: datetime,
    notifier: Notifier,
    longer: bool = False,
) -> CaseView:
    """Extend the period of a case under review by ``days``, and tell the requester.

    The extensions of one case add up to at most what the organization's policy
    allows (copied to the case when it was received); a policy without an extension
    allows none. ``longer`` is for a policy that allows a longer 「相当の期間」 where
    processing is especially heavy (``processing_time.longer_extension``; the caller
    checks the profile): then the cap is raised to what the extensions now add up to,
    and the event says so. An extension is made before the period ends: once it has
    passed, the case is late and is decided, not extended.

    Raises:
        CaseError: If the case is not under review or extended, the days are not
            positive or exceed what is left, the period has passed, or the reason is
            missing.
    """
    now = utc(now)
    actor = staff_actor(staff)
    reason = required_text(reason, "延長の理由")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise CaseError("延長する日数は1以上の整数で指定してください。")
    case = _locked(session, case_number)
    check_transition(case, CaseStatus.EXTENDED)
    if case.due_at is None or case.max_extension_days == 0:
        raise CaseError(
            "この組織の方針には期限の延長の定めがないため、延長できません。"
            " / the policy allows no extension"
        )
    if now > case.due_at:
        raise CaseError(
            f"決定の期限（{japanese_date(case.due_at)}）を過ぎているため、延長できません。"
            " / the period has already ended"
        )
    left = case.max_extension_days - case.extended_days
    if days > left and longer:
        case.max_extension_days = case.extended_days + days
    elif days > left:
        raise CaseError(
            f"延長できるのはあと{left}日までです（上限{case.max_extension_days}日、"
            f"延長済み{case.extended_days}日）。 / at most {left} more days"
        )
    current = status_of(case)
    case.due_at = case.due_at + timedelta(days=days)
    case.extended_days += days
    case.extension_reason = reason
    set_status(case, CaseStatus.EXTENDED, now)
    _record(
        session,
        case,
        now,
        actor,
        "extended",
        current,
        reason,
        days=days,
        extended_days=case.extended_days,
        due_at=case.due_at.isoformat(),
        longer=longer,
    )
    notifier.notify(
        session,
        case.requester_member_id,
        SMS_EXTENDED.format(number=case.case_number, days=days, due=japanese_date(case.due_at)),
        now,
        channel=case.channel,
        sender_id=case.sender_id,
    )
    return member_view(case, case.requester_member_id)


def decide_case(
    session: Session,
    case_number: str,
    outcome: Outcome,
    staff: str,
    now: datetime,
    notifier: Notifier,
    legal_ground: str | None = None,
    explanation: str | None = None,
) -> CaseView:
    """Record the decision of a case and tell the requester.

    The outcome must fit the case type. A refusal, a partial outcome or an
    alternative measure needs its legal ground and an explanation for the member
    (36条); "not held" needs an explanation.

    Raises:
        CaseError: If the case is not under review or extended, or the outcome does
            not fit or lacks its ground or explanation.
    """
    now = utc(now)
    actor = staff_actor(staff)
    try:
        result = Outcome(outcome)
    except ValueError as error:
        raise CaseError(f"不明な結果です: {outcome}") from error
    case = _locked(session, case_number)
    check_transition(case, CaseStatus.DECIDED)
    kind = CaseType(case.case_type)
    fitting = OUTCOMES_BY_TYPE[kind]
    if result not in fitting:
        choices = "、".join(f"{OUTCOME_LABELS[item]}（{item.value}）" for item in fitting)
        raise CaseError(
            f"「{TYPE_LABELS[kind]}」の請求に「{OUTCOME_LABELS[result]}」は選べません。"
            f"選べる結果：{choices}"
        )
    ground = (legal_ground or "").strip() or None
    told = (explanation or "").strip() or None
    if result in GROUND_REQUIRED and ground is None:
        raise CaseError(
            f"「{OUTCOME_LABELS[result]}」には法令上の根拠（--ground）が必要です。"
            " / a legal ground is required"
        )
    if result in EXPLANATION_REQUIRED and told is None:
        raise CaseError(
            f"「{OUTCOME_LABELS[result]}」には本人への理由の説明（--explanation）が必要です"
            "（個人情報保護法第36条）。 / an explanation is required"
        )
    current = status_of(case)
    late = case.due_at is not None and now > case.due_at
    case.outcome = result.value
    case.legal_ground = ground
    case.explanation = told
    case.decided_at = now
    set_status(case, CaseStatus.DECIDED, now)
    _record(
        session,
        case,
        now,
        actor,
        "decided",
        current,
        None,
        outcome=result.value,
        late=late,
        legal_ground=ground,
        explanation=told,
    )
    notifier.notify(
        session,
        case.requester_member_id,
        SMS_DECIDED.format(
            number=case.case_number, kind=TYPE_LABELS[kind], outcome=OUTCOME_LABELS[result]
        ),
        now,
        channel=case.channel,
        sender_id=case.sender_id,
    )
    return member_view(case, case.requester_member_id)


def close_case(
    session: Session, case_number: str, staff: str, reason: str, now: datetime
) -> CaseView:
    """Close a decided case, or one whose documents never came.

    Raises:
        CaseError: If the case is in another status, or the reason is missing.
    """
    now = utc(now)
    actor = staff_actor(staff)
    reason = required_text(reason, "理由")
    case = _locked(session, case_number)
    check_transition(case, CaseStatus.CLOSED)
    current = status_of(case)
    set_status(case, CaseStatus.CLOSED, now)
    _record(session, case, now, actor, "closed", current, reason)
    return member_view(case, case.requester_member_id)
