"""A question about a request is answered before anything starts.

「データを消してもらうことはできますか」 asks whether and how; it is not yet a request.
The answer comes from the profile and the law, exactly as the request dialog words
them (offered or not, what the policy notes, fee, deadline, documents, submission),
with a quick reply that starts the request. A clear request (「請求します」「消して
ください」) starts the dialog as before.
"""

from __future__ import annotations

import re

from bot import cases
from bot.cases import CaseType, DisclosureTarget, RequesterRole
from bot.cases.dialog import (
    INTENT_TYPES,
    documents_lines,
    due_line,
    fee_line,
    not_offered,
    submission_line,
    target_not_offered,
    type_notes,
)
from bot.core.text import fold
from bot.policy.answers import Button, Reply, citation
from bot.policy.profiles.schema import Profile

START_TITLE = "この請求を始める"

# Asking whether, how, how much, how long: 「できますか」「どうすれば」「いくら」「？」.
_QUESTION = re.compile(
    r"(できますか|できるの|できる\?|出来ますか|出来るの|可能ですか|可能でしょうか"
    r"|もらえますか|もらえるの|もらえる\?|いただけますか|くれますか|くれるの"
    r"|どうすれば|どうしたら|どうやって|どのように|どうやったら|方法|やり方"
    r"|いくら|費用|手数料|何日|どのくらい|どれくらい|必要ですか|必要なもの"
    r"|でしょうか|んですか|のですか|ますか\??$|の\?$|\?$)"
)
# A request said plainly at the end of the message starts the dialog, whatever came before.
_CLEAR_REQUEST = re.compile(
    r"(請求します|お願いします|お願いいたします|申し込みます|申請します)[。!]*$"
)

_INTENTS: dict[CaseType, str] = {kind: intent for intent, kind in INTENT_TYPES.items()}
# The grounds the Act gives for each request that has conditions (true for every
# organization): 34条1項, 35条1・3・5項. The others are a right without conditions.
_GROUNDS: dict[CaseType, str] = {
    CaseType.CORRECTION: (
        "訂正・追加・削除は、保有個人データの内容が事実でないときに請求できます"
        "（個人情報保護法第34条第1項）。"
    ),
    CaseType.SUSPENSION: (
        "利用停止・消去は、目的外の利用や不正な取得があるとき、利用する必要がなくなったとき、"
        "漏えい等が起きたとき、ご本人の権利や正当な利益が害されるおそれがあるときに"
        "請求できます（個人情報保護法第35条第1項・第5項）。"
    ),
    CaseType.THIRD_PARTY_STOP: (
        "第三者提供の停止は、ご本人の同意なく提供されているとき、利用する必要がなくなったとき、"
        "漏えい等が起きたとき、ご本人の権利や正当な利益が害されるおそれがあるときに"
        "請求できます（個人情報保護法第35条第3項・第5項）。"
    ),
}


def is_question(text: str) -> bool:
    """Whether a message about a request asks about it rather than makes it."""
    said = fold(text).strip()
    if not said or said.startswith("/"):
        return False  # a button's payload is a choice, never a question
    if _CLEAR_REQUEST.search(said):
        return False
    return _QUESTION.search(said) is not None


def explain(
    profile: Profile, case_type: CaseType, target: DisclosureTarget | None = None
) -> list[Reply]:
    """Whether and how this organization takes the request, with a button to start it.

    Args:
        profile: the active organization's profile.
        case_type: the request the member asks about.
        target: for a disclosure, the kind of record the member named, if any.
    """
    if case_type not in cases.offered_types(profile):
        return not_offered(profile, case_type)
    if target is not None and target not in cases.offered_targets(profile):
        return target_not_offered(profile, target)
    assert profile.requests is not None  # offered_types is empty without requests
    label = cases.TYPE_LABELS[case_type]
    if target is not None:
        label = f"{cases.TARGET_LABELS[target]}の{label}"
    head = [
        f"{profile.name}では、{label}のご請求を受け付けています。"
        + citation(profile, profile.requests.source)
    ]
    if case_type in _GROUNDS:
        head.append(_GROUNDS[case_type])
    head.extend(type_notes(profile, case_type, target))
    fee = cases.fee_for(profile, case_type, target)
    head.append(fee_line(profile, fee))
    head.append(due_line(profile, case_type, None))
    how = [*documents_lines(profile, RequesterRole.SELF), submission_line(profile)]
    how.append(
        "このチャットでも、本人確認"
        f"（{profile.member_identifier.label}・生年月日・SMSの認証コード）のうえで"
        "お申し込みいただけます。"
    )
    start = Button(START_TITLE, f"/{_INTENTS[case_type]}")
    return [Reply("\n".join(head)), Reply("\n".join(how), (start,))]
