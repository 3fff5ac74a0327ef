"""The identity-verification dialog: what the member is asked and told at each step.

Plain Python, called by the ``validate_verification_form`` action adapter. The
decisions that grant access are made by :mod:`bot.identity.verification` against the database;
this module only turns the member's words into typed values, hands them to the service
and words the outcome. Slots it sets hold masked values or step labels, never personal
data in clear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.core.conversation import Conversation
from bot.core.japan_time import japanese_date
from bot.identity import sealed, verification
from bot.identity.parsing import InputError, parse_birth_date, parse_code, parse_member_number
from bot.identity.verification import MemberView, Outcome, Status
from bot.outbound.sms import SmsSender
from bot.policy.answers import Button, Reply, answer, citation, contact_line
from bot.policy.profiles.schema import Profile

MEMBER_NUMBER_SLOT = "id_member_number"
BIRTH_DATE_SLOT = "id_birth_date"
CODE_SLOT = "id_code"
FORM_SLOTS = (MEMBER_NUMBER_SLOT, BIRTH_DATE_SLOT, CODE_SLOT)
OUTCOME_SLOT = "verification_outcome"  # verified | locked | limited | cancelled: wording only
FAILURES_SLOT = "id_input_failures"
REQUESTED_SLOT = "requested_slot"

BIRTH_DATE_MASK = "****年**月**日"
CODE_MASK = "******"
STOP_OFFER_AFTER = 2  # input errors in a row before stopping is offered as a button
STOP_WORDS = ("やめ", "ヤメ", "中止", "キャンセル", "中断", "ストップ")
RESEND_WORDS = ("再送", "送り直", "もう一度送", "もう一回送")
STOP_BUTTON = Button("本人確認をやめる", "/stop")
RESEND_BUTTON = Button("コードを再送する", "/resend_code")

ASKS = {
    BIRTH_DATE_SLOT: "生年月日を教えてください。例：「1985年4月1日」「昭和60年4月1日」",
    CODE_SLOT: "SMSで届いた6桁の認証コードを入力してください。"
    "届かない場合は「再送」と送ってください。",
}


def ask(profile: Profile, slot: str) -> str:
    """The question of one verification slot; the identifier is the organization's own."""
    if slot == MEMBER_NUMBER_SLOT:
        identifier = profile.member_identifier
        labels = "」と「".join(part.label for part in identifier.parts)
        return (
            f"{identifier.printed_on}に記載の「{labels}」を教えてください。"
            f"例：「{identifier.example}」"
        )
    return ASKS[slot]


# Questions answered in the middle of the form before the member is asked again.
_NOT_A_QUESTION = {"inform", "affirm", "deny", "stop", "resend_code", "ask_my_data"}


@dataclass
class Turn:
    """What the form step says and which slots it sets."""

    replies: list[Reply] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Said:
    """The member's latest message as the NLU read it."""

    text: str
    intent: str | None
    topics: Sequence[str] = ()


def wants_to_stop(said: Said) -> bool:
    """「やめる」 in any wording, or the stop intent/button."""
    return said.intent == "stop" or any(word in said.text for word in STOP_WORDS)


def _input_problem(error: InputError, failures: int) -> Reply:
    if failures >= STOP_OFFER_AFTER:
        return Reply(
            f"{error.message}\n本人確認をやめる場合は「やめる」と送ってください。",
            (STOP_BUTTON,),
        )
    return Reply(error.message)


def _end(outcome: str) -> dict[str, Any]:
    # requested_slot = None makes Rasa's form end here; the rule after it words the end.
    return {OUTCOME_SLOT: outcome, REQUESTED_SLOT: None, FAILURES_SLOT: 0}


def mismatch_reply(profile: Profile) -> Reply:
    """What an unknown number, a wrong birth date and a locked number all get.

    One text for the three, with the contact window: a member whose number is locked
    learns where to turn without anyone learning that the number exists or is locked.
    """
    return Reply(
        "申し訳ありません。お伺いした内容では、ご本人であることを確認できませんでした。"
        f"お手数ですが、{profile.member_identifier.label}からもう一度お願いします。"
        f"確認できない場合は、{contact_line(profile)} へお問い合わせください。"
    )


_SMS_REFUSED = {
    Status.SMS_LIMIT: "認証コードのSMSをお送りできる回数の上限に達したため、"
    "ただいまはお送りできません。24時間ほどおいてからもう一度お試しいただくか、",
    Status.SMS_BUSY: "ただいまSMSの送信が混み合っているため、認証コードをお送りできませんでした。"
    "数分おいてからもう一度お試しいただくか、",
}


def _sms_refused(profile: Profile, status: Status, resend: bool) -> Turn:
    # Only the right factors get here, which a code would have told as well.
    text = (
        f"申し訳ありません。{_SMS_REFUSED[status]}{contact_line(profile)} へお問い合わせください。"
    )
    if resend:
        # The code sent before is still good if it has not expired: the form goes on.
        return Turn(
            [
                Reply(
                    f"{text}\nお手元の認証コードが有効期限内でしたら、そのまま入力してください。",
                    (STOP_BUTTON,),
                )
            ],
            {CODE_SLOT: None},
        )
    return Turn([Reply(text)], _end("limited"))


def _outcome_turn(profile: Profile, outcome: Outcome, resend: bool = False) -> Turn:
    status = outcome.status
    if status is Status.CODE_SENT:
        return Turn(
            [
                Reply(
                    f"ご登録の電話番号（{outcome.masked_phone}）あてに、"
                    "6桁の認証コードをSMSでお送りしました。5分以内に入力してください。"
                )
            ],
            {BIRTH_DATE_SLOT: BIRTH_DATE_MASK, CODE_SLOT: None, FAILURES_SLOT: 0},
        )
    if status is Status.MISMATCH:
        return Turn(
            [mismatch_reply(profile)],
            {
                MEMBER_NUMBER_SLOT: None,
                BIRTH_DATE_SLOT: None,
                CODE_SLOT: None,
                REQUESTED_SLOT: MEMBER_NUMBER_SLOT,
            },
        )
    if status is Status.LOCKED:
        return Turn(
            [
                Reply(
                    "確認が続けてできなかったため、安全のため、このチャットでの本人確認を"
                    "30分間お休みします。お急ぎの場合は "
                    f"{contact_line(profile)} へお問い合わせください。"
                )
            ],
            _end("locked"),
        )
    if status in _SMS_REFUSED:
        return _sms_refused(profile, status, resend)
    if status is Status.VERIFIED:
        return Turn([], {CODE_SLOT: CODE_MASK, **_end("verified")})
    if status is Status.WRONG_CODE:
        left = outcome.attempts_left
        more = f"あと{left}回入力できます。" if left else ""
        return Turn([Reply(f"認証コードが一致しません。{more}")], {CODE_SLOT: None})
    if status is Status.CODE_EXPIRED:
        return Turn(
            [
                Reply(
                    "認証コードの有効期限（5分）が過ぎました。"
                    "「再送」と送っていただくと、新しいコードをお送りします。",
                    (RESEND_BUTTON, STOP_BUTTON),
                )
            ],
            {CODE_SLOT: None},
        )
    if status is Status.CODE_DEAD:
        return Turn(
            [
                Reply(
                    "認証コードを3回間違えたため、このコードは使えなくなりました。"
                    "「再送」と送っていただくと、新しいコードをお送りします。",
                    (RESEND_BUTTON, STOP_BUTTON),
                )
            ],
            {CODE_SLOT: None},
        )
    # NO_PENDING: no live code for this conversation, start over from the number.
    return Turn(
        [Reply(f"お手数ですが、{profile.member_identifier.label}からもう一度お願いします。")],
        {
            MEMBER_NUMBER_SLOT: None,
            BIRTH_DATE_SLOT: None,
            CODE_SLOT: None,
            REQUESTED_SLOT: MEMBER_NUMBER_SLOT,
        },
    )


@dataclass(frozen=True)
class Context:
    """Everything one form step needs besides the member's message."""

    session: Session
    conversation: Conversation
    profile: Profile
    sender: SmsSender
    now: datetime
    failures: int
    # The member's earlier message that gave the 記号・番号, unsealed from its slot.
    member_number_text: str | None


def _parsing_step(
    context: Context,
    said: Said,
    slot: str,
    parse: Callable[[str], Any],
    on_value: Callable[[Any], Turn],
) -> Turn:
    try:
        value = parse(said.text)
    except InputError as error:
        if said.intent and said.intent not in _NOT_A_QUESTION and said.intent != "nlu_fallback":
            # A question in the middle of the form: answer it, then ask again.
            return Turn(list(answer(context.profile, said.intent, said.topics)), {slot: None})
        failures = context.failures + 1
        return Turn([_input_problem(error, failures)], {slot: None, FAILURES_SLOT: failures})
    return on_value(value)


def step(context: Context, requested_slot: str | None, said: Said) -> Turn:
    """One turn of the verification form.

    Args:
        context: the database session, conversation, profile, SMS sender and clock.
        requested_slot: the slot the form asked for.
        said: the member's latest message.

    Returns:
        The replies to send and the slot updates (masked values only).
    """
    if wants_to_stop(said):
        verification.cancel(context.session, context.conversation, context.now)
        return Turn([], _end("cancelled"))
    wants_resend = said.intent == "resend_code" or any(w in said.text for w in RESEND_WORDS)
    if requested_slot == CODE_SLOT and wants_resend:
        outcome = verification.resend_code(
            context.session, context.conversation, context.sender, context.now
        )
        return _outcome_turn(context.profile, outcome, resend=True)

    if requested_slot == MEMBER_NUMBER_SLOT:
        return _parsing_step(
            context,
            said,
            MEMBER_NUMBER_SLOT,
            lambda text: parse_member_number(text, context.profile.member_identifier),
            # Sealed, not masked: the birth date's turn reads it again (bot.identity.sealed).
            lambda number: Turn([], {MEMBER_NUMBER_SLOT: sealed.seal(said.text), FAILURES_SLOT: 0}),
        )
    if requested_slot == BIRTH_DATE_SLOT:
        return _parsing_step(
            context,
            said,
            BIRTH_DATE_SLOT,
            lambda text: parse_birth_date(text, context.now.date()),
            lambda born: _submit_factors(context, born),
        )
    if requested_slot == CODE_SLOT:
        return _parsing_step(
            context,
            said,
            CODE_SLOT,
            parse_code,
            lambda code: _outcome_turn(
                context.profile,
                verification.submit_code(context.session, context.conversation, code, context.now),
            ),
        )
    return Turn()


def _submit_factors(context: Context, born: date) -> Turn:
    try:
        number = parse_member_number(
            context.member_number_text or "", context.profile.member_identifier
        )
    except InputError:
        # The earlier answer is gone (a restarted form): ask for it again.
        return _outcome_turn(context.profile, Outcome(Status.NO_PENDING))
    outcome = verification.submit_factors(
        context.session,
        context.conversation,
        number.symbol,
        number.number,
        born,
        context.sender,
        context.now,
    )
    return _outcome_turn(context.profile, outcome)


def verification_ended(profile: Profile, outcome: str | None, verified: bool) -> list[Reply]:
    """What is said when the form ends; ``verified`` comes from the database."""
    if verified:
        return [Reply("ご本人であることを確認できました。ありがとうございます。")]
    if outcome == "cancelled":
        return [Reply("本人確認を中止しました。ほかにご質問があれば、お気軽にお尋ねください。")]
    return []  # locked or limited: that message was already sent


def start_verification(profile: Profile, subject: str) -> Reply:
    """The first words of a verification, naming what it is for."""
    return Reply(
        f"{subject}の前に、ご本人確認をさせてください。"
        f"{profile.member_identifier.label}、生年月日をお伺いし、ご登録の電話番号へSMSで認証コードをお送りします。"
        "途中でやめる場合は「やめる」と送ってください。"
    )


def own_record(profile: Profile, view: MemberView) -> list[Reply]:
    """The verified member's own registered data, masked where it can be."""
    identifier = profile.member_identifier
    lines = [
        "ご登録内容は次のとおりです。",
        f"・{identifier.label}：{view.masked_member_number}",
        f"・{identifier.joined_label}：{japanese_date(view.acquired_on, missing='なし')}",
        f"・{identifier.left_label}：{japanese_date(view.lost_on, missing='なし')}",
        f"・電話番号：{view.masked_phone or 'ご登録なし'}",
    ]
    if identifier.dependants_label:
        dependants = "、".join(f"{name} 様" for name in view.dependant_names) or "なし"
        lines.append(f"・{identifier.dependants_label}：{dependants}")
    replies = [Reply("\n".join(lines))]
    requests = profile.requests
    if requests and "correction" in requests.types:
        # Only where the policy offers it, and with its source.
        replies.append(
            Reply(
                "内容に誤りがある場合は、訂正等の請求ができます。"
                + citation(profile, requests.source),
                (Button("訂正の請求について", "/request_correction"),),
            )
        )
    return replies
