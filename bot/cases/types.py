"""The values of formal requests: kinds, statuses, outcomes, the lifecycle, the views.

The enums are the ones stored in the database (defined with the models so that the
tables' CHECK constraints are built from them); they are re-exported here under the
names the dialog uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.db.models import CaseOutcome as Outcome
from bot.db.models import (
    CaseStatus,
    CaseType,
    DisclosureTarget,
    DraftStatus,
    Method,
    RequesterRole,
)

__all__ = [
    "ALTERNATIVE_OUTCOMES",
    "EXPLANATION_REQUIRED",
    "GROUND_REQUIRED",
    "OPEN_STATUSES",
    "OUTCOMES_BY_TYPE",
    "TRANSITIONS",
    "CaseError",
    "CaseStatus",
    "CaseType",
    "CaseView",
    "DisclosureTarget",
    "Draft",
    "DraftError",
    "DraftStatus",
    "Fee",
    "FeeKind",
    "HistoryEntry",
    "Method",
    "Opened",
    "Outcome",
    "RequesterRole",
    "StaffCaseDetail",
    "StaffCaseRow",
]

FeeKind = Literal["none_by_law", "free", "fixed", "detailed_rules", "unpublished"]

# The lifecycle. EXTENDED -> EXTENDED is a further extension within the cap (only
# through extend_case); DECIDED only through decide_case; everything else is refused.
TRANSITIONS: Mapping[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.RECEIVED: (
        CaseStatus.AWAITING_DOCUMENTS,
        CaseStatus.UNDER_REVIEW,
        CaseStatus.WITHDRAWN,
    ),
    CaseStatus.AWAITING_DOCUMENTS: (
        CaseStatus.UNDER_REVIEW,
        CaseStatus.WITHDRAWN,
        CaseStatus.CLOSED,
    ),
    CaseStatus.UNDER_REVIEW: (
        CaseStatus.AWAITING_DOCUMENTS,
        CaseStatus.EXTENDED,
        CaseStatus.DECIDED,
        CaseStatus.WITHDRAWN,
    ),
    CaseStatus.EXTENDED: (CaseStatus.EXTENDED, CaseStatus.DECIDED, CaseStatus.WITHDRAWN),
    CaseStatus.DECIDED: (CaseStatus.CLOSED,),
    CaseStatus.CLOSED: (),
    CaseStatus.WITHDRAWN: (),
}

# Open: the organization still owes a decision, and the member may withdraw.
OPEN_STATUSES: tuple[CaseStatus, ...] = (
    CaseStatus.RECEIVED,
    CaseStatus.AWAITING_DOCUMENTS,
    CaseStatus.UNDER_REVIEW,
    CaseStatus.EXTENDED,
)

OUTCOMES_BY_TYPE: Mapping[CaseType, tuple[Outcome, ...]] = {
    CaseType.PURPOSE_NOTICE: (Outcome.NOTIFIED, Outcome.NOT_NOTIFIED),
    CaseType.DISCLOSURE: (
        Outcome.DISCLOSED,
        Outcome.PARTIALLY_DISCLOSED,
        Outcome.NOT_DISCLOSED,
        Outcome.NOT_HELD,
    ),
    CaseType.CORRECTION: (
        Outcome.CORRECTED,
        Outcome.PARTIALLY_CORRECTED,
        Outcome.NOT_CORRECTED,
    ),
    CaseType.SUSPENSION: (
        Outcome.SUSPENDED,
        Outcome.PARTIALLY_SUSPENDED,
        Outcome.ALTERNATIVE_MEASURE,
        Outcome.NOT_SUSPENDED,
    ),
    # 35条4項: an alternative measure is allowed for stopping provision too.
    CaseType.THIRD_PARTY_STOP: (
        Outcome.STOPPED,
        Outcome.ALTERNATIVE_MEASURE,
        Outcome.NOT_STOPPED,
    ),
    CaseType.MAILING_OPT_OUT: (Outcome.ACCEPTED, Outcome.NOT_ACCEPTED),
}

# Refusals, partial outcomes and different measures must be explained (36条) and rest
# on a ground the law allows (33条2項 etc.).
GROUND_REQUIRED: frozenset[Outcome] = frozenset(
    {
        Outcome.PARTIALLY_DISCLOSED,
        Outcome.NOT_DISCLOSED,
        Outcome.PARTIALLY_CORRECTED,
        Outcome.NOT_CORRECTED,
        Outcome.PARTIALLY_SUSPENDED,
        Outcome.ALTERNATIVE_MEASURE,
        Outcome.NOT_SUSPENDED,
        Outcome.NOT_STOPPED,
        Outcome.NOT_NOTIFIED,
        Outcome.NOT_ACCEPTED,
    }
)
# "Not held" is no refusal, but the member must be told it, and what was searched.
EXPLANATION_REQUIRED: frozenset[Outcome] = GROUND_REQUIRED | {Outcome.NOT_HELD}
ALTERNATIVE_OUTCOMES: frozenset[Outcome] = frozenset({Outcome.ALTERNATIVE_MEASURE})


class CaseError(Exception):
    """A case operation was refused; the message can be shown as it is (Japanese).

    Attributes:
        allowed: For a refused status change, the statuses the case may move to next.
    """

    def __init__(self, message: str, allowed: Iterable[CaseStatus] = ()) -> None:
        """Keep the message and the allowed next statuses."""
        super().__init__(message)
        self.allowed: tuple[CaseStatus, ...] = tuple(allowed)


class DraftError(CaseError):
    """A draft could not be read or changed (another sender's, confirmed, bad field)."""


@dataclass(frozen=True)
class Fee:
    """What a request costs, as the organization's policy says it.

    ``kind``: ``none_by_law`` (38条 allows fees only for 利用目的の通知 and 開示),
    ``free``, ``fixed`` (``amount_yen`` set), ``detailed_rules`` (set by the
    organization's detailed rules, amount not published) or ``unpublished`` (the policy
    says nothing: the member is sent to the contact window). Never a guessed figure.
    """

    kind: FeeKind
    amount_yen: int | None
    source: str | None  # the policy section it comes from (or the article of the law)


@dataclass(frozen=True)
class Draft:
    """A request being put together; the dialog keeps only its ``id``."""

    id: str
    case_type: CaseType
    requester_member_id: int
    subject_member_id: int
    role: RequesterRole
    target: DisclosureTarget | None
    scope: tuple[str, ...]
    method: Method | None
    reason: str | None
    wrong_text: str | None
    right_text: str | None
    agent_name: str | None
    agent_contact: str | None
    confirmed_case_number: str | None
    status: DraftStatus = DraftStatus.OPEN


@dataclass(frozen=True)
class Opened:
    """What confirming a draft came to."""

    case_number: str
    status: CaseStatus
    due_at: datetime | None
    fee: Fee
    created: bool  # False: this draft had been confirmed before (or found a duplicate)
    duplicate_of_open_case: bool  # the same request of this member was already open
    documents: tuple[str, ...] = ()  # what the policy says must accompany the request


@dataclass(frozen=True)
class CaseView:
    """A case as its requester or its subject sees it: never staff's internal notes."""

    case_number: str
    case_type: CaseType
    target: DisclosureTarget | None
    status: CaseStatus
    received_at: datetime
    due_at: datetime | None
    extended_days: int
    extension_reason: str | None  # the member is told it (osaka 第28条)
    outcome: Outcome | None
    explanation: str | None
    subject_is_requester: bool
    role: RequesterRole = RequesterRole.SELF
    legal_ground: str | None = None
    decided_at: datetime | None = None
    fee: Fee | None = None


@dataclass(frozen=True)
class StaffCaseRow:
    """One line of the staff's work list."""

    case_number: str
    case_type: CaseType
    target: DisclosureTarget | None
    status: CaseStatus
    role: RequesterRole
    received_at: datetime
    due_at: datetime | None
    overdue: bool
    extended_days: int


@dataclass(frozen=True)
class HistoryEntry:
    """One change in a case's history."""

    at: datetime
    actor: str
    action: str
    from_status: CaseStatus | None
    to_status: CaseStatus
    reason: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class StaffCaseDetail:
    """Everything staff need to handle one case, with its history."""

    case_number: str
    case_type: CaseType
    target: DisclosureTarget | None
    status: CaseStatus
    allowed_next: tuple[CaseStatus, ...]
    role: RequesterRole
    requester_member_id: int
    requester_name: str
    subject_member_id: int
    subject_name: str
    agent_name: str | None
    agent_contact: str | None
    scope: tuple[str, ...]
    method: Method | None
    reason: str | None
    wrong_text: str | None
    right_text: str | None
    channel: str
    received_at: datetime
    due_at: datetime | None
    overdue: bool
    period_days: int | None
    paused_days: int
    extended_days: int
    max_extension_days: int
    extension_reason: str | None
    fee: Fee
    outcome: Outcome | None
    legal_ground: str | None
    explanation: str | None
    decided_at: datetime | None
    closed_at: datetime | None
    history: tuple[HistoryEntry, ...]


@dataclass(frozen=True)
class CaseFieldValue:
    """The clear value of one field staff see masked, and the case it belongs to."""

    case_number: str
    subject_member_id: int
    value: str
