"""What an organization's profile says about formal requests: pure functions of a profile.

Which request types it offers, what they cost, by when it decides and how far it may
extend, what documents go with a request. Everything comes from the profile (the
organization's published policy); where the policy is silent the answer says so
(``unpublished``, no due date, no extension), never a default figure.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from bot.cases.types import (
    CaseStatus,
    CaseType,
    DisclosureTarget,
    Fee,
    Method,
    Outcome,
    RequesterRole,
)
from bot.core.japan_time import JST, japanese_date, jst_day
from bot.policy.profiles.schema import Profile

TYPE_LABELS: dict[CaseType, str] = {
    CaseType.PURPOSE_NOTICE: "利用目的の通知",
    CaseType.DISCLOSURE: "開示",
    CaseType.CORRECTION: "訂正・追加・削除",
    CaseType.SUSPENSION: "利用停止・消去",
    CaseType.THIRD_PARTY_STOP: "第三者提供の停止",
    CaseType.MAILING_OPT_OUT: "世帯単位の送付に同意しない旨の申出",
}
TARGET_LABELS: dict[DisclosureTarget, str] = {
    DisclosureTarget.RETAINED_DATA: "保有個人データ",
    DisclosureTarget.THIRD_PARTY_RECORDS: "第三者提供記録",
    DisclosureTarget.RECEIPTS: "レセプト（診療報酬明細書等）",
}
# The member picks the method by these labels (buttons), staff read them in the console.
METHOD_LABELS: dict[Method, str] = {
    Method.ELECTRONIC: "電磁的記録（データ）での提供",
    Method.PAPER: "書面の交付",
}
ROLE_LABELS: dict[RequesterRole, str] = {
    RequesterRole.SELF: "ご本人",
    RequesterRole.LEGAL_GUARDIAN: "法定代理人",
    RequesterRole.APPOINTED_AGENT: "任意代理人",
}
STATUS_LABELS: dict[CaseStatus, str] = {
    CaseStatus.RECEIVED: "受付済み",
    CaseStatus.AWAITING_DOCUMENTS: "書類の提出待ち",
    CaseStatus.UNDER_REVIEW: "審査中",
    CaseStatus.EXTENDED: "期限延長中",
    CaseStatus.DECIDED: "決定済み",
    CaseStatus.CLOSED: "完了",
    CaseStatus.WITHDRAWN: "取下げ",
}
OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.DISCLOSED: "開示する",
    Outcome.PARTIALLY_DISCLOSED: "一部を開示する",
    Outcome.NOT_DISCLOSED: "開示しない",
    Outcome.NOT_HELD: "該当する保有個人データはありません",
    Outcome.CORRECTED: "訂正等を行う",
    Outcome.PARTIALLY_CORRECTED: "一部について訂正等を行う",
    Outcome.NOT_CORRECTED: "訂正等を行わない",
    Outcome.SUSPENDED: "利用停止等を行う",
    Outcome.PARTIALLY_SUSPENDED: "一部について利用停止等を行う",
    Outcome.ALTERNATIVE_MEASURE: "代わりの措置をとる",
    Outcome.NOT_SUSPENDED: "利用停止等を行わない",
    Outcome.STOPPED: "第三者への提供を停止する",
    Outcome.NOT_STOPPED: "第三者への提供を停止しない",
    Outcome.NOTIFIED: "利用目的を通知する",
    Outcome.NOT_NOTIFIED: "利用目的を通知しない",
    Outcome.ACCEPTED: "世帯あて送付を停止する",
    Outcome.NOT_ACCEPTED: "世帯あて送付の停止に応じない",
}

# Profile request type -> the case type it is requested as.
_PROFILE_TYPES: dict[str, CaseType] = {
    "purpose_notice": CaseType.PURPOSE_NOTICE,
    "disclosure": CaseType.DISCLOSURE,
    "third_party_record_disclosure": CaseType.DISCLOSURE,
    "receipt_disclosure": CaseType.DISCLOSURE,
    "correction": CaseType.CORRECTION,
    "suspension": CaseType.SUSPENSION,
    "third_party_stop": CaseType.THIRD_PARTY_STOP,
    "mailing_opt_out": CaseType.MAILING_OPT_OUT,
}
# Disclosure target -> the profile request type its fee is published under.
_TARGET_REQUEST_TYPES: dict[DisclosureTarget, str] = {
    DisclosureTarget.RETAINED_DATA: "disclosure",
    DisclosureTarget.THIRD_PARTY_RECORDS: "third_party_record_disclosure",
    DisclosureTarget.RECEIPTS: "receipt_disclosure",
}
# 38条1項: a fee only for 利用目的の通知 and 開示 (第三者提供記録 included).
FEE_ARTICLE = "個人情報保護法第38条第1項"
_FEE_TYPES = (CaseType.PURPOSE_NOTICE, CaseType.DISCLOSURE)
# The article that obliges every organization to act on each request 遅滞なく. The
# household-mailing opt-out is not a request under the Act: no article, no 遅滞なく.
PROMPTNESS_ARTICLES: dict[CaseType, str] = {
    CaseType.PURPOSE_NOTICE: "個人情報保護法第32条第2項",
    CaseType.DISCLOSURE: "個人情報保護法第33条第2項",
    CaseType.CORRECTION: "個人情報保護法第34条第2項",
    CaseType.SUSPENSION: "個人情報保護法第35条第2項・第6項",
    CaseType.THIRD_PARTY_STOP: "個人情報保護法第35条第4項・第6項",
}
# 35条2・4・6項 ただし書: where stopping is very costly or difficult, the organization may
# take another measure that protects the person instead. True for every organization.
ALTERNATIVE_MEASURE_NOTE = (
    "※利用停止等が困難な場合は、ご本人の権利利益を保護するための代わりの措置が"
    "とられることがあります（個人情報保護法第35条第2項・第4項・第6項ただし書）。"
)


def _profile_types(profile: Profile) -> set[str]:
    return set(profile.requests.types) if profile.requests is not None else set()


def offered_types(profile: Profile) -> tuple[CaseType, ...]:
    """The request types the organization accepts, in the order of :class:`CaseType`.

    Empty when the profile does not list its requests.
    """
    offered = {_PROFILE_TYPES[name] for name in _profile_types(profile)}
    return tuple(kind for kind in CaseType if kind in offered)


def offered_targets(profile: Profile) -> tuple[DisclosureTarget, ...]:
    """What a disclosure request may be about at this organization.

    Only what the policy lists: "disclosure" is the member's retained data; レセプト
    and 第三者提供記録 are offered only where the policy names them
    (``receipt_disclosure``, ``third_party_record_disclosure``), since how each is
    disclosed is the organization's own procedure.
    """
    names = _profile_types(profile)
    offered: set[DisclosureTarget] = set()
    if "disclosure" in names:
        offered.add(DisclosureTarget.RETAINED_DATA)
    if "receipt_disclosure" in names:
        offered.add(DisclosureTarget.RECEIPTS)
    if "third_party_record_disclosure" in names:
        offered.add(DisclosureTarget.THIRD_PARTY_RECORDS)
    return tuple(target for target in DisclosureTarget if target in offered)


def fee_for(profile: Profile, case_type: CaseType, target: DisclosureTarget | None) -> Fee:
    """The fee of one request, exactly as far as the policy publishes it.

    Correction, suspension and stopping provision cost nothing by law (38条1項 allows
    a fee only for 利用目的の通知 and 開示). For those two, and for the household-mailing
    opt-out (not a request under the Act), the profile's fee applies when its
    ``applies_to`` names the request type (a disclosure of 第三者提供記録 or レセプト
    falls back to "disclosure"); otherwise the policy publishes no fee: ``unpublished``.
    """
    case_type = CaseType(case_type)
    if case_type in PROMPTNESS_ARTICLES and case_type not in _FEE_TYPES:
        return Fee("none_by_law", None, FEE_ARTICLE)
    fees = profile.fees
    if fees is None:
        return Fee("unpublished", None, None)
    if case_type is CaseType.MAILING_OPT_OUT:
        candidates = ["mailing_opt_out"]
    elif case_type is CaseType.PURPOSE_NOTICE:
        candidates = ["purpose_notice"]
    else:
        specific = _TARGET_REQUEST_TYPES[DisclosureTarget(target)] if target else "disclosure"
        candidates = [specific, "disclosure"]
    if not any(name in fees.applies_to for name in candidates):
        return Fee("unpublished", None, None)
    return Fee(fees.policy, fees.amount_yen, fees.source)


def period_days(profile: Profile) -> int | None:
    """The published decision period in calendar days, or None (遅滞なく only)."""
    timing = profile.processing_time
    return timing.days if timing is not None else None


def max_extension_days(profile: Profile) -> int:
    """How many days a case may be extended in all (0: the policy allows none)."""
    timing = profile.processing_time
    return (timing.extension_days or 0) if timing is not None else 0


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` in Japan, in UTC."""
    return datetime.combine(day, time.max, tzinfo=JST).astimezone(timezone.utc)


def due_on(received_at: datetime, days: int | None) -> datetime | None:
    """The end (JST) of the ``days``-th day after the day of receipt; None without days.

    The day of receipt does not count (民法140条): received on 1 April with 30 days,
    the period ends at the end of 1 May.
    """
    if days is None:
        return None
    return end_of_day(jst_day(received_at) + timedelta(days=days))


def clock_waits_for_documents(profile: Profile) -> bool:
    """Whether the policy counts its period from the documents, not the request."""
    timing = profile.processing_time
    return timing is not None and timing.days is not None and timing.starts == "documents"


def due_at(profile: Profile, received_at: datetime) -> datetime | None:
    """When a request received at ``received_at`` must be decided (aware UTC).

    None when the profile publishes no period (the member is told what the policy or
    the law says instead), and when the period runs from the documents: the due date
    is set the day staff record that they arrived.
    """
    if clock_waits_for_documents(profile):
        return None
    return due_on(received_at, period_days(profile))


def waits_for_documents(profile: Profile, agent_proof: bool) -> bool:
    """Whether a new case starts in 書類の提出待ち.

    Where the policy's period runs from the documents, and where an agent's authority
    (a 任意代理人, or a 法定代理人 the member records cannot show, such as a 成年後見人)
    must be proven by documents before the case can be reviewed.
    """
    return clock_waits_for_documents(profile) or agent_proof


def required_documents(profile: Profile, role: RequesterRole) -> tuple[str, ...]:
    """What the policy says must accompany a request, in its own words.

    The identity documents; for a 法定代理人 or 任意代理人 also what the policy says
    about agents. Empty when the policy says nothing: the member is then pointed to
    the contact window, never told a list the organization did not publish.
    """
    facts = profile.facts
    lines: list[str] = []
    if facts.identity_documents is not None:
        lines += [facts.identity_documents.summary, *facts.identity_documents.details]
    if RequesterRole(role) is not RequesterRole.SELF and facts.agents is not None:
        lines += [facts.agents.summary, *facts.agents.details]
    return tuple(lines)


def describe_fee(fee: Fee) -> str:
    """The fee in one member-facing Japanese sentence."""
    if fee.kind == "none_by_law":
        return (
            "この請求に手数料はかかりません。法律で手数料を求められるのは、"
            "利用目的の通知と開示の請求です（個人情報保護法第38条第1項）。"
        )
    if fee.kind == "free":
        return "手数料は無料です。"
    if fee.kind == "fixed":
        return f"手数料は1件につき{fee.amount_yen:,}円です。"
    if fee.kind == "detailed_rules":
        return (
            "手数料は組織の規程細則で定められており、公表されている方針には金額が"
            "掲載されていません。金額と納付方法は窓口でご確認ください。"
        )
    return (
        "公表されている方針には、この請求の手数料についての記載がありません。窓口でご確認ください。"
    )


def describe_due(case_type: CaseType, due: datetime | None) -> str:
    """The deadline in one member-facing Japanese sentence, without the policy's own words.

    A date where the case has one; otherwise what the law says for this request type
    (with its article) or, for the household-mailing opt-out, that no period is set.
    """
    if due is not None:
        return f"{japanese_date(due)}までに決定します。"
    article = PROMPTNESS_ARTICLES.get(CaseType(case_type))
    if article is None:
        return "対応の期限は、方針に定められていません。"
    return (
        f"決定までの日数は方針に定められていません。法律では、遅滞なく対応することと"
        f"されています（{article}）。"
    )
