"""Request drafts: what the member is putting together, kept in the database.

The dialog keeps only the draft id in its slots; everything the member typed (the
scope, the reason, the wrong and right values, an agent's details) is stored here, so
it is never in the tracker store, and a restarted action server finds it again. A
draft belongs to the sender that started it: another sender can neither read nor
change it.

Who a request can be about: the requester themself, or a dependant linked to them in
the member database (``members.insured_id``) who is a minor on the day, for whom the
requester acts as 法定代理人. Each dependant is a person of their own: an adult
dependant's data is not the insured person's to request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases.records import MAX_TEXT, member_actor, utc
from bot.cases.types import (
    CaseType,
    DisclosureTarget,
    Draft,
    DraftError,
    DraftStatus,
    Method,
    RequesterRole,
)
from bot.core.conversation import Conversation
from bot.core.japan_time import jst_day
from bot.db.audit import audit
from bot.db.models import Case, CaseDraft, Member

logger = logging.getLogger(__name__)

AGE_OF_MAJORITY = 18  # 民法4条 since 2022-04-01
MAX_SCOPE_ITEMS = 20
_LIMITS = {"agent_name": 128, "agent_contact": 255}
_TEXT_FIELDS = ("reason", "wrong_text", "right_text", "agent_name", "agent_contact")
UPDATABLE_FIELDS = frozenset(
    {"subject_member_id", "role", "target", "scope", "method", *_TEXT_FIELDS}
)


def adult_on(birth_date: date) -> date:
    """The first day on which someone born on ``birth_date`` is 18.

    年齢計算ニ関スル法律: the age goes up at the end of the day before the birthday, so
    on the 18th birthday one is an adult; born on 29 February, on 1 March.
    """
    try:
        return birth_date.replace(year=birth_date.year + AGE_OF_MAJORITY)
    except ValueError:  # 29 February, and the 18th year is no leap year
        return date(birth_date.year + AGE_OF_MAJORITY, 3, 1)


def is_minor(birth_date: date, now: datetime) -> bool:
    """Whether someone born on ``birth_date`` is under 18 on ``now``'s date in Japan."""
    return jst_day(now) < adult_on(birth_date)


def minor_dependants(session: Session, member_id: int, now: datetime) -> list[tuple[int, str]]:
    """The minor dependants linked to this insured member: (member id, name), eldest first.

    These are the people the member may make a request for as 法定代理人.
    """
    now = utc(now)
    rows = session.execute(
        select(Member.id, Member.name, Member.birth_date)
        .where(Member.insured_id == member_id)
        .order_by(Member.birth_date, Member.id)
    ).all()
    return [(row.id, row.name) for row in rows if is_minor(row.birth_date, now)]


# This chat's own procedure, not the law: the law lets any 法定代理人 or 任意代理人
# request (個人情報保護法第37条第3項), but the chat can check only the minor dependants
# linked in the member records; every other agent sends documents (see needs_agent_proof).
CHAT_SUBJECTS_MESSAGE = (
    "このチャットでお受けできるのは、ご本人についてのご請求（代理人によるものを含みます）と、"
    "扶養されている未成年のご家族の法定代理人としてのご請求です。"
    "成人のご家族の分は、その方ご自身で本人確認のうえご請求ください。"
)


def needs_agent_proof(row: CaseDraft) -> bool:
    """Whether an agent's authority must be proven by documents.

    A 任意代理人 always; a 法定代理人 of the member themself (e.g. a 成年後見人 using
    the ward's verification), whom the member records cannot show. A parent of a minor
    dependant linked in the records needs none.
    """
    role = RequesterRole(row.role)
    return role is RequesterRole.APPOINTED_AGENT or (
        role is RequesterRole.LEGAL_GUARDIAN and row.subject_member_id == row.requester_member_id
    )


def may_request_for(session: Session, requester_id: int, subject_id: int, now: datetime) -> bool:
    """Whether the requester may make a request about ``subject_id`` on ``now``."""
    if subject_id == requester_id:
        return True
    subject = session.get(Member, subject_id)
    return (
        subject is not None
        and subject.insured_id == requester_id
        and is_minor(subject.birth_date, now)
    )


def own_draft_row(
    session: Session, conversation: Conversation, draft_id: str, lock: bool = False
) -> CaseDraft | None:
    """This sender's draft row (row-locked on PostgreSQL when ``lock``), or None."""
    statement = select(CaseDraft).where(
        CaseDraft.id == str(draft_id), CaseDraft.sender_id == conversation.sender_id
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    row: CaseDraft | None = session.execute(statement).scalar_one_or_none()
    return row


def to_draft(session: Session, row: CaseDraft) -> Draft:
    """The public view of a draft row."""
    case_number = None
    if row.case_id is not None:
        case_number = session.execute(
            select(Case.case_number).where(Case.id == row.case_id)
        ).scalar_one()
    return Draft(
        id=row.id,
        case_type=CaseType(row.case_type),
        requester_member_id=row.requester_member_id,
        subject_member_id=row.subject_member_id,
        role=RequesterRole(row.role),
        target=DisclosureTarget(row.target) if row.target else None,
        scope=tuple(row.scope or ()),
        method=Method(row.method) if row.method else None,
        reason=row.reason,
        wrong_text=row.wrong_text,
        right_text=row.right_text,
        agent_name=row.agent_name,
        agent_contact=row.agent_contact,
        confirmed_case_number=case_number,
        status=DraftStatus(row.status),
    )


def wipe_text(row: CaseDraft) -> None:
    """Remove what the member typed: it now lives in the case, or nowhere."""
    for name in _TEXT_FIELDS:
        setattr(row, name, None)
    row.scope = []


def start_draft(
    session: Session,
    conversation: Conversation,
    requester_member_id: int,
    case_type: CaseType,
    now: datetime,
) -> Draft:
    """Start a draft of ``case_type`` for the (verified) member, about themself.

    The dialog calls this only for a verified member (:func:`bot.identity.verification.
    verified_member`); the draft is tied to the conversation's sender.

    Raises:
        DraftError: If the member does not exist or the type is unknown.
    """
    now = utc(now)
    try:
        kind = CaseType(case_type)
    except ValueError as error:
        raise DraftError("この種類の請求は受け付けていません。") from error
    if session.get(Member, requester_member_id) is None:
        raise DraftError("会員情報が見つかりません。")
    row = CaseDraft(
        id=uuid.uuid4().hex,
        sender_id=conversation.sender_id,
        session_key=conversation.session_key,
        channel=conversation.channel,
        status=DraftStatus.OPEN.value,
        case_type=kind.value,
        requester_member_id=requester_member_id,
        subject_member_id=requester_member_id,
        role=RequesterRole.SELF.value,
        scope=[],
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        now,
        "case.draft_started",
        member_actor(requester_member_id),
        member_id=requester_member_id,
        conversation=conversation,
        draft_id=row.id,
        case_type=kind.value,
    )
    logger.info("case draft %s started (%s)", row.id, kind.value)
    return to_draft(session, row)


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DraftError(f"{name} must be text")
    text = value.strip()
    limit = _LIMITS.get(name, MAX_TEXT)
    if len(text) > limit:
        raise DraftError(f"入力が長すぎます（{limit}文字まで）。")
    return text or None


def _scope(value: Any) -> list[str]:
    if value is None:
        return []
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    scope = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if len(scope) > MAX_SCOPE_ITEMS:
        raise DraftError(f"対象は{MAX_SCOPE_ITEMS}件までにしてください。")
    if any(len(item) > MAX_TEXT for item in scope):
        raise DraftError(f"入力が長すぎます（{MAX_TEXT}文字まで）。")
    return scope


def _enum(kind: Any, value: Any, name: str) -> Any:
    if value is None:
        return None
    try:
        return kind(value).value
    except ValueError as error:
        raise DraftError(f"{name}: unknown value") from error


def update_draft(
    session: Session, conversation: Conversation, draft_id: str, now: datetime, **fields: Any
) -> Draft:
    """Set fields of an open draft of this sender; returns the draft as it now is.

    Fields: ``subject_member_id``, ``role``, ``target``, ``scope``, ``method``,
    ``reason``, ``wrong_text``, ``right_text``, ``agent_name``, ``agent_contact``.
    Text is stripped (empty means unset); ``target`` fits disclosures only and the
    wrong/right values corrections only. Whether everything the type needs is there
    is checked when the draft is confirmed.

    Raises:
        DraftError: For another sender's draft, a draft no longer open, an unknown
            field or value, or a subject who is neither the requester nor a minor
            dependant linked to them.
    """
    now = utc(now)
    unknown = set(fields) - UPDATABLE_FIELDS
    if unknown:
        raise DraftError(f"unknown draft fields: {', '.join(sorted(unknown))}")
    row = own_draft_row(session, conversation, draft_id, lock=True)
    if row is None:
        raise DraftError("この下書きは見つかりませんでした。")
    if row.status != DraftStatus.OPEN.value:
        raise DraftError("この下書きは確定済みか取り消し済みのため、変更できません。")
    kind = CaseType(row.case_type)
    if "subject_member_id" in fields:
        subject = fields["subject_member_id"]
        if (
            isinstance(subject, bool)
            or not isinstance(subject, int)
            or not may_request_for(session, row.requester_member_id, subject, now)
        ):
            raise DraftError(CHAT_SUBJECTS_MESSAGE)
        row.subject_member_id = subject
    if "role" in fields:
        row.role = _enum(RequesterRole, fields["role"], "role") or RequesterRole.SELF.value
    if "target" in fields:
        target = _enum(DisclosureTarget, fields["target"], "target")
        if target is not None and kind is not CaseType.DISCLOSURE:
            raise DraftError(
                "対象の種類（保有個人データ・第三者提供記録・レセプト）は開示の請求だけに指定できます。"
            )
        row.target = target
    if "method" in fields:
        method = _enum(Method, fields["method"], "method")
        if method is not None and kind not in (CaseType.DISCLOSURE, CaseType.PURPOSE_NOTICE):
            raise DraftError("受け取り方法は開示・利用目的の通知の請求だけに指定できます。")
        row.method = method
    if "scope" in fields:
        row.scope = _scope(fields["scope"])
    for name in _TEXT_FIELDS:
        if name not in fields:
            continue
        value = _text(name, fields[name])
        if name in ("wrong_text", "right_text") and value and kind is not CaseType.CORRECTION:
            raise DraftError("誤っている内容・正しい内容は訂正等の請求だけに指定できます。")
        setattr(row, name, value)
    row.updated_at = now
    session.flush()
    audit(
        session,
        now,
        "case.draft_updated",
        member_actor(row.requester_member_id),
        member_id=row.requester_member_id,
        conversation=conversation,
        draft_id=row.id,
        fields=sorted(fields),  # which fields, never their values
    )
    return to_draft(session, row)


def get_draft(session: Session, conversation: Conversation, draft_id: str) -> Draft | None:
    """This sender's draft, or None (another sender's draft looks like no draft)."""
    row = own_draft_row(session, conversation, draft_id)
    return None if row is None else to_draft(session, row)


def discard_draft(
    session: Session, conversation: Conversation, draft_id: str, now: datetime
) -> None:
    """Throw away an open draft of this sender and what was typed into it.

    Discarding twice is harmless. A confirmed draft is a case now: it is withdrawn
    with :func:`bot.cases.service.withdraw_case`, not discarded.

    Raises:
        DraftError: If the draft is not this sender's, or was confirmed.
    """
    now = utc(now)
    row = own_draft_row(session, conversation, draft_id, lock=True)
    if row is None:
        raise DraftError("この下書きは見つかりませんでした。")
    if row.status == DraftStatus.DISCARDED.value:
        return
    if row.status != DraftStatus.OPEN.value:
        raise DraftError("この請求は受付済みです。取り下げる場合は請求の取下げをご利用ください。")
    row.status = DraftStatus.DISCARDED.value
    wipe_text(row)
    row.updated_at = now
    audit(
        session,
        now,
        "case.draft_discarded",
        member_actor(row.requester_member_id),
        member_id=row.requester_member_id,
        conversation=conversation,
        draft_id=row.id,
    )
    logger.info("case draft %s discarded", row.id)
