"""The member side of formal requests: confirm a draft into a case, follow it, withdraw it.

Exactly once: a draft becomes at most one case. Confirming locks the draft row (``FOR
UPDATE`` on PostgreSQL; on SQLite every transaction holds the write lock from its
start), so a second confirmation, be it a double press, a message delivered twice,
another action-server process after a restart or a thread at the same moment, waits
for the first and then finds the draft confirmed and returns the same case with
``created=False``. ``cases.draft_id`` is unique as well, so even a path that skipped
the lock could not store a second case. The same request of the same requester about
the same person that is still open is not opened twice either: the subject's member
row is locked while looking for it, which serializes two different drafts of one
request.

A member sees the cases they requested and the cases about them, never anyone else's
and never staff's internal notes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy import select, union
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from bot.cases import rules
from bot.cases.drafts import (
    CHAT_SUBJECTS_MESSAGE,
    may_request_for,
    needs_agent_proof,
    own_draft_row,
    wipe_text,
)
from bot.cases.records import (
    add_event,
    allocate_case_number,
    fee_of,
    find_case,
    is_open,
    member_actor,
    member_view,
    not_found,
    set_status,
    status_of,
    utc,
)
from bot.cases.rules import STATUS_LABELS
from bot.cases.types import (
    OPEN_STATUSES,
    CaseError,
    CaseStatus,
    CaseType,
    CaseView,
    DisclosureTarget,
    DraftStatus,
    Opened,
    RequesterRole,
)
from bot.core.conversation import Conversation
from bot.core.text import collapse_spaces, fold
from bot.db.audit import audit
from bot.db.models import Case, CaseDraft, Member
from bot.policy.profiles.schema import Profile

logger = logging.getLogger(__name__)


def _normalized(text: str | None) -> str:
    # NFKC and single spaces: 全角/半角 and spacing differences are the same request.
    return collapse_spaces(fold(text or ""))


def _request_key(
    case_type: str,
    target: str | None,
    scope: Sequence[str],
    wrong_text: str | None,
    right_text: str | None,
) -> tuple[object, ...]:
    """What makes two requests the same.

    The kind, the target, the scope, and for a correction what is to be corrected
    into what (two different corrections of one person are two requests).
    """
    key: tuple[object, ...] = (
        case_type,
        target,
        tuple(sorted(_normalized(item) for item in scope)),
    )
    if case_type == CaseType.CORRECTION.value:
        key += (_normalized(wrong_text), _normalized(right_text))
    return key


def _check_complete(row: CaseDraft, profile: Profile, now: datetime, session: Session) -> None:
    kind = CaseType(row.case_type)
    label = rules.TYPE_LABELS[kind]
    if kind not in rules.offered_types(profile):
        raise CaseError(f"{profile.name}の方針では「{label}」の請求の受付が案内されていません。")
    if kind is CaseType.DISCLOSURE:
        if row.target is None:
            raise CaseError(
                "開示を求める対象（保有個人データ・第三者提供記録・レセプト）を選んでください。"
            )
        target = DisclosureTarget(row.target)
        if target not in rules.offered_targets(profile):
            raise CaseError(
                f"{profile.name}の方針では「{rules.TARGET_LABELS[target]}」の開示の受付が"
                "案内されていません。"
            )
        if row.method is None:
            raise CaseError("開示の方法（電磁的記録の提供・書面の交付）を選んでください。")
    if kind is CaseType.CORRECTION and not (row.wrong_text and row.right_text):
        raise CaseError("訂正等には、誤っている内容と正しい内容の両方が必要です。")
    if kind in (CaseType.SUSPENSION, CaseType.THIRD_PARTY_STOP) and not row.reason:
        raise CaseError(f"「{label}」を求める理由を入力してください。")
    role = RequesterRole(row.role)
    if needs_agent_proof(row) and not row.agent_name:
        raise CaseError("代理人による請求には、代理人のお名前が必要です。")
    itself = row.subject_member_id == row.requester_member_id
    if role is RequesterRole.SELF and not itself:
        raise CaseError("ご家族についての請求は、法定代理人として申し込んでください。")
    # Checked again on the day of confirming: a dependant may have come of age since.
    if not may_request_for(session, row.requester_member_id, row.subject_member_id, now):
        raise CaseError(CHAT_SUBJECTS_MESSAGE)


def _opened(
    case: Case, profile: Profile, created: bool, duplicate: bool, role: RequesterRole
) -> Opened:
    return Opened(
        case_number=case.case_number,
        status=status_of(case),
        due_at=case.due_at,
        fee=fee_of(case),
        created=created,
        duplicate_of_open_case=duplicate,
        documents=rules.required_documents(profile, role),
    )


def _open_duplicate(session: Session, row: CaseDraft) -> Case | None:
    candidates = session.execute(
        select(Case).where(
            Case.subject_member_id == row.subject_member_id,
            Case.requester_member_id == row.requester_member_id,
            Case.case_type == row.case_type,
            Case.status.in_([status.value for status in OPEN_STATUSES]),
        )
    ).scalars()
    wanted = _request_key(row.case_type, row.target, row.scope, row.wrong_text, row.right_text)
    for case in candidates:
        key = _request_key(
            case.case_type, case.target, case.scope, case.wrong_text, case.right_text
        )
        if key == wanted:
            return case
    return None


def confirm_draft(
    session: Session, conversation: Conversation, draft_id: str, profile: Profile, now: datetime
) -> Opened:
    """Turn the member's confirmed draft into a case, exactly once.

    Args:
        session: The app database session (the caller commits).
        conversation: The conversation the draft belongs to.
        draft_id: The draft's id.
        profile: The organization's profile: what it offers, its fee, its period.
        now: The time of confirmation (aware): the request's receipt.

    Returns:
        The case: ``created`` is False when this draft had been confirmed before (the
        same case again); ``duplicate_of_open_case`` when the same request of this
        requester about the same person was already open (that case; the draft is
        discarded). A 任意代理人's request starts in ``awaiting_documents``.

    Raises:
        CaseError: If the draft is not this sender's or was discarded, the type or
            target is not offered, or something the type needs is missing.
    """
    now = utc(now)
    row = own_draft_row(session, conversation, draft_id, lock=True)
    if row is None:
        raise CaseError("この下書きは見つかりませんでした。")
    role = RequesterRole(row.role)
    if row.status in (DraftStatus.CONFIRMED.value, DraftStatus.DUPLICATE.value):
        case = session.get(Case, row.case_id)
        if case is None:  # pragma: no cover - the foreign key keeps it
            raise CaseError("この請求の記録が見つかりません。")
        duplicate = row.status == DraftStatus.DUPLICATE.value
        audit(
            session,
            now,
            "case.confirm_repeated",
            member_actor(row.requester_member_id),
            member_id=case.subject_member_id,
            conversation=conversation,
            draft_id=row.id,
            case_number=case.case_number,
        )
        logger.info("case draft %s confirmed again: case %s", row.id, case.case_number)
        return _opened(case, profile, created=False, duplicate=duplicate, role=role)
    if row.status != DraftStatus.OPEN.value:
        raise CaseError("この下書きは取り消されています。もう一度最初からお申し込みください。")

    _check_complete(row, profile, now, session)
    # The subject's row lock serializes two drafts of the same request (PostgreSQL).
    session.execute(
        select(Member.id).where(Member.id == row.subject_member_id).with_for_update()
    ).scalar_one()
    existing = _open_duplicate(session, row)
    if existing is not None:
        row.status = DraftStatus.DUPLICATE.value
        row.case_id = existing.id
        row.updated_at = now
        wipe_text(row)
        audit(
            session,
            now,
            "case.duplicate_request",
            member_actor(row.requester_member_id),
            member_id=existing.subject_member_id,
            conversation=conversation,
            draft_id=row.id,
            case_number=existing.case_number,
        )
        logger.info("case draft %s: same request already open as %s", row.id, existing.case_number)
        return _opened(existing, profile, created=False, duplicate=True, role=role)

    kind = CaseType(row.case_type)
    target = DisclosureTarget(row.target) if row.target else None
    fee = rules.fee_for(profile, kind, target)
    status = (
        CaseStatus.AWAITING_DOCUMENTS
        if rules.waits_for_documents(profile, needs_agent_proof(row))
        else CaseStatus.RECEIVED
    )
    case = Case(
        case_number=allocate_case_number(session, now),
        draft_id=row.id,
        case_type=kind.value,
        target=row.target,
        requester_member_id=row.requester_member_id,
        subject_member_id=row.subject_member_id,
        role=role.value,
        agent_name=row.agent_name,
        agent_contact=row.agent_contact,
        scope=list(row.scope or ()),
        method=row.method,
        reason=row.reason,
        wrong_text=row.wrong_text,
        right_text=row.right_text,
        channel=conversation.channel,
        sender_id=conversation.sender_id,
        status=status.value,
        received_at=now,
        period_days=rules.period_days(profile),
        max_extension_days=rules.max_extension_days(profile),
        due_at=rules.due_at(profile, now),
        # Waiting for documents from the start: the clock stands (or has not started).
        awaiting_since=now if status is CaseStatus.AWAITING_DOCUMENTS else None,
        paused_days=0,
        extended_days=0,
        fee_kind=fee.kind,
        fee_amount_yen=fee.amount_yen,
        fee_source=fee.source,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    actor = member_actor(row.requester_member_id)
    add_event(
        session,
        case,
        now,
        actor,
        "opened",
        None,
        case_type=kind.value,
        target=row.target,
        role=role.value,
        due_at=case.due_at.isoformat() if case.due_at else None,
    )
    row.status = DraftStatus.CONFIRMED.value
    row.case_id = case.id
    row.updated_at = now
    wipe_text(row)
    audit(
        session,
        now,
        "case.opened",
        actor,
        member_id=case.subject_member_id,
        conversation=conversation,
        draft_id=row.id,
        case_number=case.case_number,
        case_type=kind.value,
        target=row.target,
        role=role.value,
        requester_member_id=case.requester_member_id,
        status=status.value,
    )
    logger.info("case %s opened (%s, %s)", case.case_number, kind.value, status.value)
    return _opened(case, profile, created=True, duplicate=False, role=role)


def member_cases_statement(member_id: int, limit: int) -> Select:
    """The query of :func:`member_cases`: two index range scans, one per role.

    A plain ``requester = :m OR subject = :m ORDER BY received_at`` would read and
    sort all of the member's cases; each half here is read newest first from its own
    index (``ix_cases_requester_member_id_received_at`` and
    ``ix_cases_subject_member_id_received_at``) and stops after ``limit`` rows.
    """
    newest = (Case.received_at.desc(), Case.id.desc())
    requested = (
        select(Case.id).where(Case.requester_member_id == member_id).order_by(*newest).limit(limit)
    ).subquery()
    about = (
        select(Case.id).where(Case.subject_member_id == member_id).order_by(*newest).limit(limit)
    ).subquery()
    ids = union(select(requested.c.id), select(about.c.id))
    return select(Case).where(Case.id.in_(ids)).order_by(*newest).limit(limit)


def member_cases(
    session: Session, member_id: int, limit: int = 10, now: datetime | None = None
) -> list[CaseView]:
    """The cases this member requested or that are about them, newest first.

    The read is audited (the member's own data, like their record) at ``now``
    (default: the clock).
    """
    now = utc(now) if now is not None else datetime.now(timezone.utc)
    limit = max(1, min(int(limit), 100))
    cases = list(session.execute(member_cases_statement(member_id, limit)).scalars())
    views = [member_view(case, member_id) for case in cases]
    if cases:
        audit(
            session,
            now,
            "case.listed",
            member_actor(member_id),
            member_id=member_id,
            case_numbers=[case.case_number for case in cases],
        )
    return views


def withdraw_case(
    session: Session, conversation: Conversation, member_id: int, case_number: str, now: datetime
) -> CaseView:
    """Withdraw an open case the member requested (取下げ).

    Withdrawing a case already withdrawn returns it unchanged (a message delivered
    twice). Only the requester can withdraw; the person a guardian's request is about
    sees it but cannot withdraw it.

    Raises:
        CaseError: If there is no such case of this member (one message for both "does
            not exist" and "not yours"), or it is decided or closed.
    """
    now = utc(now)
    case = find_case(session, case_number, lock=True)
    if case is None or case.requester_member_id != member_id:
        logger.info("withdrawal refused: no such case of member %s", member_id)
        raise not_found(case_number)
    current = status_of(case)
    if current is CaseStatus.WITHDRAWN:
        return member_view(case, member_id)
    if not is_open(case):
        raise CaseError(
            f"受付番号 {case.case_number} は「{STATUS_LABELS[current]}」のため、"
            "取り下げられません。"
        )
    set_status(case, CaseStatus.WITHDRAWN, now)
    actor = member_actor(member_id)
    add_event(session, case, now, actor, "withdrawn", current, "ご本人による取下げ")
    audit(
        session,
        now,
        "case.withdrawn",
        actor,
        member_id=case.subject_member_id,
        conversation=conversation,
        case_number=case.case_number,
        from_status=current.value,
    )
    logger.info("case %s withdrawn by its requester", case.case_number)
    return member_view(case, member_id)
