"""The request dialog: a verified member opens, follows and withdraws formal requests.

Plain Python, called by the adapters in ``actions/cases.py``. The case service in
:mod:`bot.cases` decides and records everything against the database; this module asks
the questions, reads the member's answers and words the results. What the member types
(the wrong and right data, reasons, an agent's name) goes straight into the draft row
in the database: the slots hold only step markers and choice keys, and the draft id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import cases
from bot.cases import METHOD_LABELS, CaseStatus, CaseType, DisclosureTarget, Method, RequesterRole
from bot.cases.types import OPEN_STATUSES
from bot.core.conversation import Conversation
from bot.core.japan_time import japanese_date
from bot.core.text import fold
from bot.handoff import escalations
from bot.identity.dialog import Said, wants_to_stop
from bot.policy.answers import Button, Reply, answer, citation, contact_line
from bot.policy.profiles.schema import Fact, Profile

DRAFT_SLOT = "case_draft_id"
SUBJECT_SLOT = "case_subject"
AGENT_SLOT = "case_agent"
TARGET_SLOT = "case_target"
SCOPE_SLOT = "case_scope"
METHOD_SLOT = "case_method"
WRONG_SLOT = "case_wrong"
RIGHT_SLOT = "case_right"
REASON_SLOT = "case_reason"
CONFIRM_SLOT = "case_confirm"
FORM_SLOTS = (
    SUBJECT_SLOT,
    AGENT_SLOT,
    TARGET_SLOT,
    SCOPE_SLOT,
    METHOD_SLOT,
    WRONG_SLOT,
    RIGHT_SLOT,
    REASON_SLOT,
    CONFIRM_SLOT,
)
CANCEL_NUMBER_SLOT = "cancel_case_number"
CANCEL_CONFIRM_SLOT = "cancel_confirm"
CANCEL_SLOTS = (CANCEL_NUMBER_SLOT, CANCEL_CONFIRM_SLOT)
FAILURES_SLOT = "case_input_failures"
REQUESTED_SLOT = "requested_slot"
NOT_NEEDED = "-"  # a form slot this kind of request does not ask for
DONE = "done"  # a free-text answer, kept in the draft row, not in the slot

MAX_TEXT = 500  # characters of one free-text answer
STOP_OFFER_AFTER = 2
STOP_BUTTON = Button("請求をやめる", "やめる")
YES_WORDS = (
    "はい",
    "お願い",
    "おねがい",
    "請求します",
    "請求する",
    "ok",
    "OK",
    "よろしい",
    "大丈夫",
)
NO_WORDS = ("いいえ", "やめ", "しない", "取り消", "中止")

INTENT_TYPES: dict[str, CaseType] = {
    "request_disclosure": CaseType.DISCLOSURE,
    "request_correction": CaseType.CORRECTION,
    "request_suspension": CaseType.SUSPENSION,
    "request_third_party_stop": CaseType.THIRD_PARTY_STOP,
    "request_purpose_notice": CaseType.PURPOSE_NOTICE,
    "request_mailing_opt_out": CaseType.MAILING_OPT_OUT,
}
# Words of a disclosure request that already name what is to be disclosed.
TARGET_WORDS: dict[DisclosureTarget, tuple[str, ...]] = {
    DisclosureTarget.RECEIPTS: ("レセプト", "診療報酬明細", "明細書"),
    DisclosureTarget.THIRD_PARTY_RECORDS: ("提供記録", "提供の記録", "提供した記録"),
}

# The member's grounds under 法35条, offered as quick replies; free text is taken too.
SUSPENSION_REASONS = (
    "目的外の利用や不正な取得があるため",
    "利用する必要がなくなったため",
    "漏えいなどが起きたため",
    "権利や正当な利益が害されるおそれがあるため",
)
THIRD_PARTY_STOP_REASONS = (
    "本人の同意なく第三者に提供されているため",
    "提供する必要がなくなったため",
    "漏えいなどが起きたため",
    "権利や正当な利益が害されるおそれがあるため",
)
METHOD_WORDS = {
    Method.ELECTRONIC: ("電磁", "電子", "データ", "メール", "PDF", "pdf"),
    Method.PAPER: ("書面", "紙", "郵送", "印刷"),
}


@dataclass
class Turn:
    """What a step says, which slots it sets, and whether a form should start."""

    replies: list[Reply] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    start_form: str | None = None


@dataclass(frozen=True)
class Context:
    """Everything one step needs besides the member's message."""

    session: Session
    conversation: Conversation
    profile: Profile
    now: datetime
    member_id: int  # the verified member, from the database
    draft_id: str | None = None
    failures: int = 0


# --- helpers ------------------------------------------------------------------------


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", fold(text))]


def _choose(text: str, options: Sequence[tuple[str, Sequence[str]]]) -> str | None:
    """The key of the option the member picked by its number or by one of its words."""
    said = fold(text).strip()
    if said.isdigit() and 1 <= int(said) <= len(options):
        return options[int(said) - 1][0]
    hits = [key for key, words in options if any(fold(w).strip() in said for w in words if w)]
    return hits[0] if len(set(hits)) == 1 else None


def _is_yes(said: Said) -> bool:
    return said.intent == "affirm" or any(w in fold(said.text) for w in YES_WORDS)


def _is_no(said: Said) -> bool:
    return said.intent == "deny" or any(w in fold(said.text) for w in NO_WORDS)


def _numbered(options: Sequence[str]) -> str:
    return "\n".join(f"{i}. {label}" for i, label in enumerate(options, 1))


def _short(text: str | None, limit: int = 60) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fact_summary(profile: Profile, fact: Fact | None) -> str | None:
    return f"{fact.summary}{citation(profile, fact.source)}" if fact else None


def _type_label(case_type: CaseType, target: DisclosureTarget | None) -> str:
    label = cases.TYPE_LABELS[case_type]
    if case_type is CaseType.DISCLOSURE and target is not None:
        return f"{cases.TARGET_LABELS[target]}の{label}"
    return label


def _is_question(said: Said) -> bool:
    """A question asked in the middle of the dialog, to answer before asking again."""
    return (
        bool(said.intent)
        and str(said.intent).startswith("ask_")
        and said.intent
        not in {
            "ask_my_data",
            "ask_other_person_data",
        }
    )


def _retry(context: Context, slot: str, message: str) -> Turn:
    failures = context.failures + 1
    if failures >= STOP_OFFER_AFTER:
        return Turn(
            [Reply(f"{message}\n請求をやめる場合は「やめる」と送ってください。", (STOP_BUTTON,))],
            {slot: None, FAILURES_SLOT: failures},
        )
    return Turn([Reply(message)], {slot: None, FAILURES_SLOT: failures})


def _end(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    # requested_slot = None makes Rasa's form end here; the rule after it clears the slots.
    return {**(extra or {}), REQUESTED_SLOT: None, FAILURES_SLOT: 0}


# --- opening a request --------------------------------------------------------------


def _not_accepted(profile: Profile, what: str, buttons: tuple[Button, ...] = ()) -> list[Reply]:
    return [
        Reply(
            f"申し訳ありません。{profile.name}の公表している方針には、"
            f"{what}の受付についての記載がないため、このチャットではお受けできません。"
            f"{contact_line(profile)} へお問い合わせください。",
            buttons,
        )
    ]


def not_offered(profile: Profile, case_type: CaseType) -> list[Reply]:
    """The organization's policy does not list this request."""
    return _not_accepted(profile, f"「{cases.TYPE_LABELS[case_type]}」の請求")


def target_not_offered(profile: Profile, target: DisclosureTarget) -> list[Reply]:
    """The policy offers disclosure, but does not name this kind of record."""
    return _not_accepted(
        profile,
        f"「{cases.TARGET_LABELS[target]}」の開示",
        (Button("保有個人データの開示を請求する", "/request_disclosure"),),
    )


def case_type_of(intent: str | None) -> CaseType | None:
    """The request type an intent (or a pending request kept during verification) asks."""
    return INTENT_TYPES.get((intent or "").split(":", 1)[0])


def target_hint(text: str) -> DisclosureTarget | None:
    """A disclosure target the member already named, e.g. 「レセプトを開示して」."""
    said = fold(text)
    for target, words in TARGET_WORDS.items():
        if any(word in said for word in words):
            return target
    return None


def pending_target(pending: str) -> DisclosureTarget | None:
    """The target kept with a request while the member verified (``intent:target``)."""
    value = pending.partition(":")[2]
    return DisclosureTarget(value) if value in {t.value for t in DisclosureTarget} else None


def needed_slots(case_type: CaseType, target: DisclosureTarget | None = None) -> set[str]:
    """The form slots this kind of request asks for (the agent's details come later)."""
    needed = {SUBJECT_SLOT, CONFIRM_SLOT}
    if case_type is CaseType.DISCLOSURE:
        needed |= {TARGET_SLOT, METHOD_SLOT}
        if target is not DisclosureTarget.THIRD_PARTY_RECORDS:
            needed.add(SCOPE_SLOT)
    elif case_type is CaseType.CORRECTION:
        needed |= {WRONG_SLOT, RIGHT_SLOT}
    elif case_type in (CaseType.SUSPENSION, CaseType.THIRD_PARTY_STOP):
        needed |= {SCOPE_SLOT, REASON_SLOT}
    return needed


def start(context: Context, case_type: CaseType, hint: DisclosureTarget | None) -> Turn:
    """Open a draft for a verified member and start the request form."""
    profile = context.profile
    if case_type not in cases.offered_types(profile):
        return Turn(not_offered(profile, case_type))
    targets = cases.offered_targets(profile)
    if case_type is CaseType.DISCLOSURE and hint is not None and hint not in targets:
        return Turn(target_not_offered(profile, hint))
    draft = cases.start_draft(
        context.session, context.conversation, context.member_id, case_type, context.now
    )
    if case_type is CaseType.DISCLOSURE and hint is None and len(targets) == 1:
        hint = targets[0]
    slots: dict[str, Any] = dict.fromkeys(FORM_SLOTS)
    if case_type is CaseType.DISCLOSURE and hint in targets:
        cases.update_draft(
            context.session, context.conversation, draft.id, context.now, target=hint
        )
        slots[TARGET_SLOT] = hint.value if hint else None
    needed = needed_slots(case_type, hint)
    for slot in FORM_SLOTS:
        if slot not in needed and slots[slot] is None:
            slots[slot] = NOT_NEEDED
    slots.update({DRAFT_SLOT: draft.id, FAILURES_SLOT: 0})
    lead = (
        f"{_type_label(case_type, hint)}のご請求を承ります。いくつかお伺いします。"
        "途中でやめる場合は「やめる」と送ってください。"
    )
    return Turn([Reply(lead)], slots, start_form="case_form")


# --- asking ---------------------------------------------------------------------------


def _subject_options(context: Context) -> list[tuple[str, str, tuple[str, ...]]]:
    options: list[tuple[str, str, tuple[str, ...]]] = [
        ("self", "ご本人として", ("本人", "自分", "私"))
    ]
    for member_id, name in cases.minor_dependants(context.session, context.member_id, context.now):
        given = name.split()[-1] if name.split() else name
        options.append(
            (
                f"dependant:{member_id}",
                f"{name}様の法定代理人として",
                (name, name.replace(" ", ""), given),
            )
        )
    # Agents as the law allows them (個人情報保護法第37条第3項): a 法定代理人 whom the
    # records cannot show (a 成年後見人), and a 任意代理人 the member appointed.
    options.append(("guardian", "成年後見人など、ご本人の法定代理人として", ("後見", "成年")))
    options.append(
        ("agent", "ご本人が依頼した代理人（任意代理人）として", ("任意", "弁護士", "委任"))
    )
    return options


def _scope_labels(profile: Profile) -> list[str]:
    return [category.label for category in profile.usage_purposes.categories]


def _reasons(draft: cases.Draft) -> tuple[str, ...]:
    if draft.case_type is CaseType.THIRD_PARTY_STOP:
        return THIRD_PARTY_STOP_REASONS
    return SUSPENSION_REASONS


def _draft(context: Context) -> cases.Draft | None:
    if not context.draft_id:
        return None
    return cases.get_draft(context.session, context.conversation, context.draft_id)


def ask(context: Context, slot: str) -> list[Reply]:
    """The question of one form slot, with its choices as quick replies."""
    draft = _draft(context)
    if draft is None:
        return [
            Reply(
                "申し訳ありません。ご請求の途中の内容が見つかりません。もう一度最初からお願いします。"
            )
        ]
    profile = context.profile
    if slot == SUBJECT_SLOT:
        options = _subject_options(context)
        labels = [label for _, label, _ in options]
        return [
            Reply(
                "どなたの情報についてのご請求ですか？番号でもお答えいただけます。\n"
                + _numbered(labels),
                tuple(Button(label, label) for label in labels),
            )
        ]
    if slot == AGENT_SLOT:
        return [
            Reply(
                "代理人のお名前と、ご連絡先（電話番号など）を1つのメッセージで教えてください。"
                "例：「弁護士 鈴木一郎 03-1234-5678」"
            )
        ]
    if slot == TARGET_SLOT:
        targets = cases.offered_targets(profile)
        labels = [cases.TARGET_LABELS[t] for t in targets]
        return [
            Reply(
                "開示を求める情報はどれですか？\n" + _numbered(labels),
                tuple(Button(label, label) for label in labels),
            )
        ]
    if slot == SCOPE_SLOT:
        if draft.target is DisclosureTarget.RECEIPTS:
            return [
                Reply(
                    "対象の医療機関名と診療年月を教えてください。"
                    "例：「○○病院 2025年4月〜6月」。分からない場合は「すべて」と送ってください。"
                )
            ]
        labels = [*_scope_labels(profile), "すべての情報"]
        return [
            Reply(
                "対象となる情報を番号で選んでください（複数可、例：「1と3」）。\n"
                + _numbered(labels),
                (Button("すべての情報", "すべて"),),
            )
        ]
    if slot == METHOD_SLOT:
        labels = list(METHOD_LABELS.values())
        return [
            Reply(
                "開示の方法をお選びください。\n" + _numbered(labels),
                tuple(Button(label, label) for label in labels),
            )
        ]
    if slot == WRONG_SLOT:
        return [
            Reply("誤っている内容を教えてください。例：「登録されている住所が旧住所のままです」")
        ]
    if slot == RIGHT_SLOT:
        return [Reply("正しい内容を教えてください。例：「新しい住所は○○市△△1-2-3です」")]
    if slot == REASON_SLOT:
        reasons = _reasons(draft)
        return [
            Reply(
                "ご請求の理由を番号で選ぶか、ご自由にお書きください。\n" + _numbered(reasons),
                tuple(Button(str(i), str(i)) for i in range(1, len(reasons) + 1)),
            )
        ]
    if slot == CONFIRM_SLOT:
        return summary(context, draft)
    return []


# --- the summary before anything is created -------------------------------------------


def fee_line(profile: Profile, fee: cases.Fee) -> str:
    """What the member pays, as the policy (or the law) says; never a made-up figure."""
    published = fee.kind in ("free", "fixed", "detailed_rules")
    return cases.describe_fee(fee) + (
        citation(profile, fee.source) if published and fee.source else ""
    )


def due_line(profile: Profile, case_type: CaseType, due_at: datetime | None) -> str:
    """The deadline: the date, or what the policy says about its period, or the law."""
    timing = profile.processing_time
    if due_at is not None:
        source = citation(profile, timing.source) if timing else ""
        return cases.describe_due(case_type, due_at) + source
    if timing is not None and cases.clock_waits_for_documents(profile):
        return (
            f"{timing.summary}{citation(profile, timing.source)}"
            "回答期限は書類が届いた日から数え、届いた後は「請求の状況」でご確認いただけます。"
        )
    if timing is not None:
        return f"{timing.summary}{citation(profile, timing.source)}"
    return cases.describe_due(case_type, None)


# Case type -> the profile request type whose notes apply (a disclosure: by its target).
_NOTE_KEYS: dict[CaseType, str] = {kind: kind.value for kind in CaseType}
_TARGET_NOTE_KEYS: dict[DisclosureTarget, str] = {
    DisclosureTarget.RETAINED_DATA: "disclosure",
    DisclosureTarget.THIRD_PARTY_RECORDS: "third_party_record_disclosure",
    DisclosureTarget.RECEIPTS: "receipt_disclosure",
}


def type_notes(
    profile: Profile, case_type: CaseType, target: DisclosureTarget | None = None
) -> list[str]:
    """What the member should know of one request type before making it.

    What the policy says about this request type, with its source; for stopping use
    or provision, what the law allows every organization to do instead.
    """
    notes = []
    key = _NOTE_KEYS[case_type]
    if case_type is CaseType.DISCLOSURE and target is not None:
        key = _TARGET_NOTE_KEYS[target]
    note = profile.requests.notes.get(key) if profile.requests else None
    if note is not None:
        notes.append(f"※{note.summary}{citation(profile, note.source)}")
    if case_type in (CaseType.SUSPENSION, CaseType.THIRD_PARTY_STOP):
        notes.append(cases.ALTERNATIVE_MEASURE_NOTE)
    return notes


def warnings(profile: Profile, draft: cases.Draft) -> list[str]:
    """What the member should know before this draft is made a request."""
    return type_notes(profile, draft.case_type, draft.target)


def _subject_line(context: Context, draft: cases.Draft) -> str:
    if draft.role is RequesterRole.APPOINTED_AGENT:
        return f"・請求者：代理人 {_short(draft.agent_name, 30)} 様"
    if draft.role is RequesterRole.LEGAL_GUARDIAN and draft.subject_member_id == context.member_id:
        return f"・請求者：法定代理人 {_short(draft.agent_name, 30)} 様"
    if draft.role is RequesterRole.LEGAL_GUARDIAN:
        names = dict(cases.minor_dependants(context.session, context.member_id, context.now))
        return f"・対象者：{names.get(draft.subject_member_id, '被扶養者')}様（法定代理人として）"
    return "・対象者：ご本人"


def summary(context: Context, draft: cases.Draft) -> list[Reply]:
    """The request as it will be made, with its fee and deadline, asking to confirm."""
    profile = context.profile
    lines = [
        "ご請求の内容をご確認ください。",
        f"・種類：{_type_label(draft.case_type, draft.target)}",
    ]
    lines.append(_subject_line(context, draft))
    if draft.scope:
        scope = "すべての情報" if draft.scope == ("all",) else "、".join(draft.scope)
        lines.append(f"・対象の情報：{_short(scope)}")
    if draft.method is not None:
        lines.append(f"・方法：{METHOD_LABELS[draft.method]}")
    if draft.wrong_text:
        lines.append(f"・誤っている内容：{_short(draft.wrong_text)}")
    if draft.right_text:
        lines.append(f"・正しい内容：{_short(draft.right_text)}")
    if draft.reason:
        lines.append(f"・理由：{_short(draft.reason)}")
    fee = cases.fee_for(profile, draft.case_type, draft.target)
    lines.append(fee_line(profile, fee))
    lines.append(due_line(profile, draft.case_type, cases.due_at(profile, context.now)))
    lines.extend(warnings(profile, draft))
    lines.append("この内容で請求してよろしいですか？")
    return [
        Reply(
            "\n".join(lines),
            (Button("はい、請求します", "はい、請求します"), Button("やめる", "やめる")),
        )
    ]


def documents_lines(profile: Profile, role: RequesterRole) -> list[str]:
    """What documents go with the request, as the policy says, or to ask the window."""
    documents = _fact_summary(profile, profile.facts.identity_documents)
    lines = [
        f"必要な書類：{documents}"
        if documents
        else "必要な書類は方針に記載がないため、窓口にご確認ください。"
    ]
    if role is not RequesterRole.SELF:
        agents = _fact_summary(profile, profile.facts.agents)
        lines.append(
            f"代理人によるご請求：{agents}"
            if agents
            else "代理人であることを確認する書類は方針に記載がないため、窓口にご確認ください。"
        )
    return lines


def submission_line(profile: Profile) -> str:
    """Where and how the request is made, as far as the policy says."""
    submission = profile.requests.submission if profile.requests else None
    if submission is None:
        return f"提出方法は窓口にご確認ください（{contact_line(profile)}）。"
    return f"提出方法：{submission.summary}{citation(profile, submission.source)}"


def opened(context: Context, result: cases.Opened, draft: cases.Draft) -> list[Reply]:
    """The case number, deadline and fee; then documents and submission, as published."""
    profile = context.profile
    if result.duplicate_of_open_case:
        return [
            Reply(
                f"同じ内容のご請求（受付番号 {result.case_number}）をすでにお受けしています。"
                "新しい請求は作成していません。進み具合は「請求の状況」とお尋ねください。"
            )
        ]
    role = draft.role
    head = [
        "ご請求を受け付けました。",
        f"受付番号：{result.case_number}",
        due_line(profile, draft.case_type, result.due_at),
        fee_line(profile, result.fee),
    ]
    if result.status is CaseStatus.AWAITING_DOCUMENTS and role is not RequesterRole.SELF:
        head.append(
            "このチャットでは、代理人によるご請求は、代理人であることを確認できる書類が"
            "届いてから手続を進めます。"
        )
    steps = [*documents_lines(profile, role), submission_line(profile)]
    steps.append("進み具合は「請求の状況」とお尋ねいただくと確認できます。")
    return [Reply("\n".join(head)), Reply("\n".join(steps))]


# --- one form step ----------------------------------------------------------------------


def _save(context: Context, draft: cases.Draft, **fields: Any) -> cases.Draft:
    return cases.update_draft(
        context.session, context.conversation, draft.id, context.now, **fields
    )


def _free_text(
    context: Context, said: Said, slot: str, draft: cases.Draft, field_name: str
) -> Turn:
    text = said.text.strip()
    if not text:
        return _retry(context, slot, "内容が読み取れませんでした。文章でお書きください。")
    if len(text) > MAX_TEXT:
        return _retry(
            context, slot, f"{MAX_TEXT}文字以内でお書きください（いまは{len(text):,}文字です）。"
        )
    _save(context, draft, **{field_name: text})
    return Turn([], {slot: DONE, FAILURES_SLOT: 0})


def _step_subject(context: Context, said: Said, draft: cases.Draft) -> Turn:
    options = _subject_options(context)
    key = _choose(said.text, [(k, (label, *words)) for k, label, words in options])
    if key is None:
        return _retry(context, SUBJECT_SLOT, "番号か、ボタンからお選びください。")
    if key == "self":
        _save(context, draft, role=RequesterRole.SELF, subject_member_id=context.member_id)
        return Turn([], {SUBJECT_SLOT: "self", AGENT_SLOT: NOT_NEEDED, FAILURES_SLOT: 0})
    if key in ("agent", "guardian"):
        role = RequesterRole.APPOINTED_AGENT if key == "agent" else RequesterRole.LEGAL_GUARDIAN
        _save(context, draft, role=role, subject_member_id=context.member_id)
        return Turn([], {SUBJECT_SLOT: key, AGENT_SLOT: None, FAILURES_SLOT: 0})
    dependant = int(key.split(":", 1)[1])
    _save(context, draft, role=RequesterRole.LEGAL_GUARDIAN, subject_member_id=dependant)
    return Turn([], {SUBJECT_SLOT: "guardian", AGENT_SLOT: NOT_NEEDED, FAILURES_SLOT: 0})


def _step_agent(context: Context, said: Said, draft: cases.Draft) -> Turn:
    text = said.text.strip()
    if not text or len(text) > 200:
        return _retry(
            context, AGENT_SLOT, "代理人のお名前とご連絡先を200文字以内で教えてください。"
        )
    contact = re.search(r"[0-9０-９][0-9０-９\-‐－ー() ]{8,}[0-9０-９]", text)
    name = text.replace(contact.group(0), " ").strip() if contact else text
    _save(
        context,
        draft,
        agent_name=name or text,
        agent_contact=fold(contact.group(0)).strip() if contact else None,
    )
    return Turn([], {AGENT_SLOT: DONE, FAILURES_SLOT: 0})


def _step_target(context: Context, said: Said, draft: cases.Draft) -> Turn:
    targets = cases.offered_targets(context.profile)
    words = {
        DisclosureTarget.RETAINED_DATA: ("保有個人データ", "登録", "保有"),
        DisclosureTarget.THIRD_PARTY_RECORDS: (
            "第三者提供記録",
            *TARGET_WORDS[DisclosureTarget.THIRD_PARTY_RECORDS],
        ),
        DisclosureTarget.RECEIPTS: TARGET_WORDS[DisclosureTarget.RECEIPTS],
    }
    key = _choose(said.text, [(t.value, (cases.TARGET_LABELS[t], *words[t])) for t in targets])
    if key is None:
        return _retry(context, TARGET_SLOT, "番号か、ボタンからお選びください。")
    target = DisclosureTarget(key)
    _save(context, draft, target=target)
    slots: dict[str, Any] = {TARGET_SLOT: key, FAILURES_SLOT: 0}
    slots[SCOPE_SLOT] = NOT_NEEDED if target is DisclosureTarget.THIRD_PARTY_RECORDS else None
    if target is DisclosureTarget.THIRD_PARTY_RECORDS:
        _save(context, draft, scope=("all",))
    return Turn([], slots)


def _step_scope(context: Context, said: Said, draft: cases.Draft, topics: Sequence[str]) -> Turn:
    if draft.target is DisclosureTarget.RECEIPTS:
        if "すべて" in said.text or "全て" in said.text or "分から" in said.text:
            _save(context, draft, scope=("all",))
            return Turn([], {SCOPE_SLOT: "all", FAILURES_SLOT: 0})
        text = said.text.strip()
        if not text or len(text) > 200:
            return _retry(
                context, SCOPE_SLOT, "医療機関名と診療年月を200文字以内で教えてください。"
            )
        _save(context, draft, scope=(text,))
        return Turn([], {SCOPE_SLOT: DONE, FAILURES_SLOT: 0})
    categories = context.profile.usage_purposes.categories
    text = fold(said.text).strip()
    if any(word in text for word in ("すべて", "全て", "全部", "ぜんぶ")) or text == str(
        len(categories) + 1
    ):
        _save(context, draft, scope=("all",))
        return Turn([], {SCOPE_SLOT: "all", FAILURES_SLOT: 0})
    picked: list[str] = []
    for number in _numbers(text):
        if 1 <= number <= len(categories) and categories[number - 1].label not in picked:
            picked.append(categories[number - 1].label)
    for category in categories:
        named = category.label in text or any(topic in category.topics for topic in topics)
        if named and category.label not in picked:
            picked.append(category.label)
    if not picked:
        return _retry(
            context, SCOPE_SLOT, "番号でお選びください。すべての場合は「すべて」と送ってください。"
        )
    _save(context, draft, scope=tuple(picked))
    return Turn([], {SCOPE_SLOT: f"{len(picked)}", FAILURES_SLOT: 0})


def _step_method(context: Context, said: Said, draft: cases.Draft) -> Turn:
    key = _choose(
        said.text, [(m.value, (METHOD_LABELS[m], *METHOD_WORDS[m])) for m in METHOD_LABELS]
    )
    if key is None:
        return _retry(context, METHOD_SLOT, "「1」（データ）か「2」（書面）でお選びください。")
    _save(context, draft, method=Method(key))
    return Turn([], {METHOD_SLOT: key, FAILURES_SLOT: 0})


def _step_reason(context: Context, said: Said, draft: cases.Draft) -> Turn:
    reasons = _reasons(draft)
    text = fold(said.text).strip()
    if text.isdigit():
        if 1 <= int(text) <= len(reasons):
            _save(context, draft, reason=reasons[int(text) - 1])
            return Turn([], {REASON_SLOT: DONE, FAILURES_SLOT: 0})
        return _retry(context, REASON_SLOT, f"1〜{len(reasons)}の番号か、文章でお書きください。")
    return _free_text(context, said, REASON_SLOT, draft, "reason")


def _step_confirm(context: Context, said: Said, draft: cases.Draft) -> Turn:
    if _is_no(said):
        cases.discard_draft(context.session, context.conversation, draft.id, context.now)
        return Turn(
            [
                Reply(
                    "ご請求は作成せずに終了しました。ほかにご質問があれば、お気軽にお尋ねください。"
                )
            ],
            _end({CONFIRM_SLOT: "declined"}),
        )
    if not _is_yes(said):
        return _retry(
            context,
            CONFIRM_SLOT,
            "請求する場合は「はい」、やめる場合は「やめる」と送ってください。",
        )
    try:
        result = cases.confirm_draft(
            context.session, context.conversation, draft.id, context.profile, context.now
        )
    except cases.CaseError as error:
        # The member confirmed a request the assistant could not open: a person follows
        # it up rather than leaving the member with only a phone number.
        escalations.escalate(
            context.session,
            context.conversation,
            "case_needs_person",
            context.now,
            member_id=context.member_id,
            note=f"チャットで確認された請求を作成できませんでした（{type(error).__name__}）",
        )
        return Turn(
            [
                Reply(
                    f"申し訳ありません。{error}\n担当者に引き継ぎました。"
                    f"お急ぎの場合は {contact_line(context.profile)} へお問い合わせください。"
                )
            ],
            _end({CONFIRM_SLOT: "failed"}),
        )
    return Turn(opened(context, result, draft), _end({CONFIRM_SLOT: "confirmed"}))


def step(context: Context, requested_slot: str | None, said: Said) -> Turn:
    """One turn of the request form.

    Args:
        context: the database session, conversation, profile, clock and verified member.
        requested_slot: the slot the form asked for.
        said: the member's latest message.

    Returns:
        The replies and slot updates (choice keys and markers only).
    """
    draft = _draft(context)
    if draft is not None and draft.confirmed_case_number is not None:
        # The confirmation arrived twice: the case exists once; say again what it is.
        return _step_confirm(context, Said("はい", "affirm"), draft)
    if draft is None:
        return Turn(
            [
                Reply(
                    "ご請求の途中の内容が見つかりませんでした。お手数ですが、もう一度お申し出ください。"
                )
            ],
            _end(),
        )
    if wants_to_stop(said):
        cases.discard_draft(context.session, context.conversation, draft.id, context.now)
        return Turn(
            [Reply("ご請求の手続を中止しました。ほかにご質問があれば、お気軽にお尋ねください。")],
            _end({CONFIRM_SLOT: "cancelled"}),
        )
    if _is_question(said) and said.text.rstrip().endswith(("？", "?")):
        return _faq(context, said, requested_slot)
    try:
        turn = _answer_slot(context, requested_slot, said, draft)
    except cases.DraftError as error:
        return _retry(context, str(requested_slot), str(error))
    failed = int(turn.slots.get(FAILURES_SLOT, 0) or 0) > context.failures
    if failed and _is_question(said) and requested_slot not in FREE_TEXT_SLOTS:
        # Not one of the choices but a question: answer it, then ask again.
        return _faq(context, said, requested_slot)
    return turn


FREE_TEXT_SLOTS = (AGENT_SLOT, WRONG_SLOT, RIGHT_SLOT, REASON_SLOT)


def _faq(context: Context, said: Said, requested_slot: str | None) -> Turn:
    return Turn(list(answer(context.profile, str(said.intent))), {str(requested_slot): None})


def _answer_slot(
    context: Context, requested_slot: str | None, said: Said, draft: cases.Draft
) -> Turn:
    if requested_slot == SUBJECT_SLOT:
        return _step_subject(context, said, draft)
    if requested_slot == AGENT_SLOT:
        return _step_agent(context, said, draft)
    if requested_slot == TARGET_SLOT:
        return _step_target(context, said, draft)
    if requested_slot == SCOPE_SLOT:
        return _step_scope(context, said, draft, said.topics)
    if requested_slot == METHOD_SLOT:
        return _step_method(context, said, draft)
    if requested_slot == WRONG_SLOT:
        return _free_text(context, said, WRONG_SLOT, draft, "wrong_text")
    if requested_slot == RIGHT_SLOT:
        return _free_text(context, said, RIGHT_SLOT, draft, "right_text")
    if requested_slot == REASON_SLOT:
        return _step_reason(context, said, draft)
    if requested_slot == CONFIRM_SLOT:
        return _step_confirm(context, said, draft)
    return Turn()


# --- status and withdrawal ------------------------------------------------------------------


def status_lines(view: cases.CaseView, profile: Profile | None = None) -> str:
    """One case as the member may see it: never internal notes."""
    lines = [
        f"{view.case_number}　{_type_label(view.case_type, view.target)}",
        f"状況：{cases.STATUS_LABELS[view.status]}　受付日：{japanese_date(view.received_at)}",
    ]
    if view.due_at is not None and view.status in OPEN_STATUSES:
        lines.append(f"回答期限：{japanese_date(view.due_at)}")
    elif (
        view.status is CaseStatus.AWAITING_DOCUMENTS
        and profile is not None
        and cases.clock_waits_for_documents(profile)
    ):
        lines.append("回答期限：書類が届いた日から数えて決まります")
    if view.extended_days:
        lines.append(
            f"期限の延長：{view.extended_days}日（理由：{_short(view.extension_reason, 80)}）"
        )
    if view.outcome is not None:
        lines.append(f"結果：{cases.OUTCOME_LABELS[view.outcome]}")
    return "\n".join(lines)


def _overdue(view: cases.CaseView, now: datetime) -> bool:
    return (
        view.due_at is not None
        and view.status in OPEN_STATUSES
        and view.status is not CaseStatus.AWAITING_DOCUMENTS
        and now > view.due_at
    )


def case_status(context: Context) -> list[Reply]:
    """The verified member's own cases, newest first.

    A member asking about a case past its due date is owed an answer by a person: the
    case goes to the staff queue (reason ``case_needs_person``) and the member is told.
    """
    views = cases.member_cases(context.session, context.member_id, limit=5)
    if not views:
        return [Reply("現在、お受けしているご請求はありません。")]
    head = "ご請求の状況です（新しい順、最大5件）。"
    replies = [Reply(head), *(Reply(status_lines(view, context.profile)) for view in views)]
    late = [view.case_number for view in views if _overdue(view, context.now)]
    if late:
        escalations.escalate(
            context.session,
            context.conversation,
            "case_needs_person",
            context.now,
            member_id=context.member_id,
            note=f"回答期限を過ぎた請求について会員から問い合わせ：{'、'.join(late)}",
        )
        replies.append(
            Reply(
                "回答期限を過ぎているご請求があり、申し訳ありません。"
                "担当者に確認を依頼しましたので、担当者から改めてご連絡します。"
            )
        )
    return replies


def _open_cases(context: Context) -> list[cases.CaseView]:
    views = cases.member_cases(context.session, context.member_id, limit=20)
    return [v for v in views if v.status in OPEN_STATUSES]


CASE_NUMBER = re.compile(r"PR-?(\d{4})-?(\d{6})", re.IGNORECASE)


def find_case_number(text: str) -> str | None:
    """A case number written in any common way (full-width, without hyphens)."""
    match = CASE_NUMBER.search(fold(text).upper())
    return f"PR-{match.group(1)}-{match.group(2)}" if match else None


def start_cancel(context: Context, text: str) -> Turn:
    """Which open case to withdraw: the one named, the only one, or ask."""
    open_cases = _open_cases(context)
    if not open_cases:
        return Turn([Reply("取り下げできるご請求（手続中のもの）はありません。")])
    named = find_case_number(text)
    numbers = [v.case_number for v in open_cases]
    chosen = named if named in numbers else (numbers[0] if len(numbers) == 1 else None)
    slots = {CANCEL_NUMBER_SLOT: chosen, CANCEL_CONFIRM_SLOT: None, FAILURES_SLOT: 0}
    return Turn([], slots, start_form="cancel_case_form")


def ask_cancel(context: Context, slot: str, case_number: str | None) -> list[Reply]:
    """The questions of the withdrawal form."""
    open_cases = _open_cases(context)
    if slot == CANCEL_NUMBER_SLOT:
        numbers = [v.case_number for v in open_cases][:10]
        return [
            Reply(
                "どのご請求を取り下げますか？受付番号をお選びください。",
                tuple(Button(number, number) for number in numbers),
            )
        ]
    view = next((v for v in open_cases if v.case_number == case_number), None)
    label = _type_label(view.case_type, view.target) if view else "ご請求"
    return [
        Reply(
            f"{case_number}（{label}）を取り下げます。よろしいですか？取り下げた請求は元に戻せません。",
            (Button("はい、取り下げます", "はい、取り下げます"), Button("いいえ", "いいえ")),
        )
    ]


def cancel_step(
    context: Context, requested_slot: str | None, said: Said, case_number: str | None
) -> Turn:
    """One turn of the withdrawal form."""
    if requested_slot == CANCEL_NUMBER_SLOT:
        if wants_to_stop(said) or _is_no(said):
            return Turn([Reply("取り下げは行いませんでした。")], _end({CANCEL_CONFIRM_SLOT: "no"}))
        named = find_case_number(said.text)
        if named not in [v.case_number for v in _open_cases(context)]:
            return _retry(context, CANCEL_NUMBER_SLOT, "手続中のご請求の受付番号をお選びください。")
        return Turn([], {CANCEL_NUMBER_SLOT: named, FAILURES_SLOT: 0})
    if requested_slot == CANCEL_CONFIRM_SLOT:
        if _is_no(said) and "取り下げます" not in said.text:
            return Turn(
                [Reply("取り下げは行いませんでした。ご請求はそのまま手続を続けます。")],
                _end({CANCEL_CONFIRM_SLOT: "no"}),
            )
        if not _is_yes(said):
            return _retry(
                context,
                CANCEL_CONFIRM_SLOT,
                "取り下げる場合は「はい」、やめる場合は「いいえ」と送ってください。",
            )
        try:
            view = cases.withdraw_case(
                context.session,
                context.conversation,
                context.member_id,
                str(case_number),
                context.now,
            )
        except cases.CaseError as error:
            return Turn(
                [Reply(f"申し訳ありません。{error}")], _end({CANCEL_CONFIRM_SLOT: "failed"})
            )
        return Turn(
            [Reply(f"{view.case_number}のご請求を取り下げました。")],
            _end({CANCEL_CONFIRM_SLOT: "done"}),
        )
    return Turn()
