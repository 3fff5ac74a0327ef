"""What the assistant says, built from the active organization's profile.

Every answer about the organization comes from its profile and ends with the policy
section it comes from. Where the profile has nothing, the answer says the published
policy does not say it and gives the contact window: it never fills the gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bot.policy.profiles.schema import Fact, Profile, UsageCategory, source_parts
from bot.policy.profiles.topics import TOPIC_IDS, topic_label


@dataclass(frozen=True)
class Button:
    """A quick reply: what the member sees and the payload it sends."""

    title: str
    payload: str


# The kind of a reply that says the published policy does not say something: the
# actions write it into the bot event's metadata (``answer_kind``), where the privacy
# officer's overview counts it (``bot.insights.events``).
NOT_STATED = "not_stated"


@dataclass(frozen=True)
class Reply:
    """One chat message.

    ``kind`` marks a reply for the overview (:data:`NOT_STATED`); it is not shown and
    does not take part in comparisons.
    """

    text: str
    buttons: tuple[Button, ...] = field(default_factory=tuple)
    kind: str | None = field(default=None, compare=False)


INTENT_LABELS: dict[str, str] = {
    "ask_usage_purpose": "個人情報の利用目的",
    "ask_security_measures": "安全管理措置",
    "ask_third_party_provision": "第三者への提供",
    "ask_joint_use": "共同利用",
    "ask_outsourcing": "業務の委託",
    "ask_sensitive_data": "健康・病歴などの要配慮個人情報",
    "ask_my_number": "マイナンバーの取扱い",
    "ask_request_procedure": "開示等の請求の手続",
    "ask_fee": "請求の手数料",
    "ask_processing_time": "請求の処理期間",
    "ask_agent_request": "代理人による請求",
    "ask_identity_documents": "本人確認書類",
    "ask_contact": "問い合わせ窓口",
    "ask_complaint": "苦情の申出",
    "ask_email_fax": "メール・FAXでの問い合わせ",
    "ask_household_mailing": "通知の世帯まとめ送付",
    "ask_employer_sharing": "勤務先との健診結果の共有",
    "ask_anonymized_data": "匿名加工情報・仮名加工情報",
    "ask_data_breach": "漏えい時の対応",
    "ask_retention": "個人情報の保存期間・消去",
    "ask_foreign_transfer": "外国での取扱い・外国への提供",
    "ask_organization": "組合の住所・代表者",
    "request_disclosure": "保有個人データの開示請求",
    "request_correction": "訂正・追加・削除の請求",
    "request_suspension": "利用停止・消去の請求",
    "request_third_party_stop": "第三者提供の停止の請求",
    "request_purpose_notice": "利用目的の通知の請求",
    "request_mailing_opt_out": "世帯まとめ送付をやめる申出",
    "ask_my_data": "ご自身の登録内容の確認",
    "check_case_status": "請求の進み具合の確認",
    "cancel_case": "請求の取り下げ",
    "request_human": "担当者への相談",
}

# The topics offered as quick replies when the assistant greets or is unsure.
MENU_INTENTS = (
    "ask_usage_purpose",
    "ask_security_measures",
    "ask_third_party_provision",
    "ask_request_procedure",
    "ask_contact",
)

REQUEST_TYPE_LABELS: dict[str, str] = {
    "purpose_notice": "利用目的の通知",
    "disclosure": "開示",
    "third_party_record_disclosure": "第三者提供記録の開示",
    "receipt_disclosure": "レセプト（診療報酬明細書等）の開示",
    "correction": "訂正・追加・削除",
    "suspension": "利用停止・消去",
    "third_party_stop": "第三者提供の停止",
    "mailing_opt_out": "世帯単位の送付に同意しない旨の申出",
}

REQUEST_INTENT_TYPES: dict[str, tuple[str, ...]] = {
    "request_disclosure": ("disclosure", "third_party_record_disclosure", "receipt_disclosure"),
    "request_correction": ("correction",),
    "request_suspension": ("suspension",),
    "request_third_party_stop": ("third_party_stop",),
    "request_purpose_notice": ("purpose_notice",),
    "request_mailing_opt_out": ("mailing_opt_out",),
}

# Intents answered with one plain fact of the profile.
FACT_INTENTS: dict[str, str] = {
    "ask_security_measures": "security_measures",
    "ask_third_party_provision": "third_party_provision",
    "ask_outsourcing": "outsourcing",
    "ask_sensitive_data": "sensitive_data",
    "ask_agent_request": "agents",
    "ask_identity_documents": "identity_documents",
    "ask_email_fax": "email_fax",
    "ask_household_mailing": "household_mailing",
    "ask_employer_sharing": "employer_sharing",
    "ask_anonymized_data": "anonymized_data",
    "ask_data_breach": "breach_response",
    "ask_retention": "retention",
    "ask_foreign_transfer": "foreign_transfer",
}

MAX_ROWS = 3  # usage-purpose rows in one answer, to fit a phone screen
MESSAGE_CHARS = 300  # a longer fact is split into messages of about this size


def citation(profile: Profile, source: str) -> str:
    """The line that says where an answer comes from: each document it cites by title."""
    parts = source_parts(source)
    if all(key is None for key, _section in parts):
        return f"（出典：{profile.policy_title} {source}）"
    cited = []
    for key, section in parts:
        title = profile.documents[key] if key else profile.policy_title
        cited.append(f"{title} {section}" if section else title)
    return f"（出典：{'／'.join(cited)}）"


def contact_line(profile: Profile) -> str:
    """The contact window in one short phrase, with only what the policy publishes."""
    contact = profile.contact
    name = contact.name + (f" {contact.department}" if contact.department else "")
    reach = []
    if contact.phone:
        note = f"（{contact.phone_note}）" if contact.phone_note else ""
        reach.append(f"電話 {contact.phone}{note}")
    if contact.hours:
        reach.append(f"受付 {contact.hours}")
    if not reach:
        return f"{name}（公表内容に電話番号の記載はありません）"
    return f"{name}（{'、'.join(reach)}）"


def _with_source(profile: Profile, lines: Iterable[str], source: str) -> str:
    return "\n".join([*lines, citation(profile, source)])


def _split(lines: Sequence[str], limit: int = MESSAGE_CHARS) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and size + len(line) > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    return chunks


def _cited(
    profile: Profile, lines: Sequence[str], source: str, buttons: tuple[Button, ...] = ()
) -> list[Reply]:
    """Lines as messages that fit a phone screen; the last one cites and offers buttons."""
    chunks = _split(lines)
    replies = [Reply("\n".join(chunk)) for chunk in chunks[:-1]]
    replies.append(Reply(_with_source(profile, chunks[-1], source), buttons))
    return replies


def render_fact(profile: Profile, fact: Fact) -> list[Reply]:
    """A fact as messages that fit a phone screen: summary, details, then the source."""
    return _cited(profile, [fact.summary, *(f"・{detail}" for detail in fact.details)], fact.source)


def not_stated(profile: Profile, subject: str) -> Reply:
    """The answer for anything the organization's published policy does not say."""
    others = "ほか公表されている文書" if profile.documents else ""
    published = f"「{profile.policy_title}」{others}"
    return Reply(
        f"申し訳ありません。{profile.name}の{published}には、"
        f"{subject}についての記載が見当たらないため、こちらではお答えできません。\n"
        f"正確な内容は {contact_line(profile)} へお問い合わせください。",
        kind=NOT_STATED,
    )


def _rows_for(profile: Profile, topics: Sequence[str]) -> list[UsageCategory]:
    wanted = set(topics)
    return [row for row in profile.usage_purposes.categories if wanted & set(row.topics)]


def _render_row(profile: Profile, row: UsageCategory) -> str:
    lines = [f"「{row.label}」は、次の目的で利用されます。"]
    lines.extend(f"・{purpose}" for purpose in row.purposes)
    return "\n".join(lines)


def usage_purpose(profile: Profile, topics: Sequence[str]) -> list[Reply]:
    """The usage purposes: the rows for the asked topics, or an overview."""
    table = profile.usage_purposes
    known = [topic for topic in topics if topic in TOPIC_IDS]
    if known:
        rows = _rows_for(profile, known)
        if rows:
            body = "\n\n".join(_render_row(profile, row) for row in rows[:MAX_ROWS])
            return [Reply(_with_source(profile, [body], table.source))]
        labels = "・".join(topic_label(topic) for topic in known)
        replies = [not_stated(profile, f"「{labels}」の利用目的")]
        if table.categories:
            replies.extend(_overview(profile))
        return replies
    if not table.categories:
        return render_fact(profile, table)
    return _overview(profile)


def _overview(profile: Profile) -> list[Reply]:
    table = profile.usage_purposes
    lines = [table.summary, *(f"・{detail}" for detail in table.details)]
    lines.append("情報の種類は次のとおりです。")
    lines.extend(f"・{row.label}" for row in table.categories)
    lines.append("知りたい情報の種類を教えていただければ、その利用目的をお答えします。")
    return _cited(profile, lines, table.source, tuple(_topic_buttons(profile)))


def _topic_buttons(profile: Profile, limit: int = 4) -> Iterable[Button]:
    seen: list[str] = []
    for row in profile.usage_purposes.categories:
        for topic in row.topics:
            if topic not in seen:
                seen.append(topic)
    for topic in seen[:limit]:
        payload = f'/ask_usage_purpose{{"info_category": "{topic}"}}'
        yield Button(topic_label(topic), payload)


JOINT_USE_LABELS = {
    "partner": "共同利用の相手先",
    "purpose": "目的",
    "items": "項目",
    "handlers": "取扱者の範囲",
    "manager": "管理責任者",
}


def joint_use(profile: Profile) -> list[Reply]:
    """Every joint use with every field the profile holds, then the joint-use note."""
    note = render_fact(profile, profile.joint_use_note) if profile.joint_use_note else []
    if not profile.joint_use:
        return note or [not_stated(profile, "個人データの共同利用")]
    replies = [Reply(f"{profile.name}は、次の共同利用を公表しています。")]
    for entry in profile.joint_use:
        fields = [(label, getattr(entry, name)) for name, label in JOINT_USE_LABELS.items()]
        lines = [f"{label}：{value}" for label, value in fields if value]
        replies.extend(_cited(profile, lines, entry.source))
    return [*replies, *note]


def my_number(profile: Profile) -> list[Reply]:
    """マイナンバー: the policy's own statement, or the usage rows that mention it."""
    if profile.facts.my_number:
        return render_fact(profile, profile.facts.my_number)
    rows = _rows_for(profile, ["my_number"])
    if rows:
        lines = ["マイナンバーに関わる利用目的として、次の記載があります。"]
        for row in rows:
            related = [p for p in row.purposes if "番号" in p] or row.purposes
            lines.append(f"・{row.label}：{'、'.join(related)}")
        return [Reply(_with_source(profile, lines, profile.usage_purposes.source))]
    return [not_stated(profile, "マイナンバー（特定個人情報）の取扱い")]


def fees(profile: Profile) -> list[Reply]:
    """The request fees exactly as the policy sets them."""
    fee = profile.fees
    if fee is None:
        return [not_stated(profile, "開示等の請求の手数料")]
    return render_fact(profile, fee)


def processing_time(profile: Profile) -> list[Reply]:
    """How long a request takes, as published."""
    if profile.processing_time is None:
        return [not_stated(profile, "請求への回答までの期間")]
    return render_fact(profile, profile.processing_time)


def request_procedure(profile: Profile) -> list[Reply]:
    """The request procedure and which requests the organization accepts."""
    replies = []
    if profile.requests:
        kinds = "、".join(REQUEST_TYPE_LABELS[kind] for kind in profile.requests.types)
        text = f"{profile.name}では、次の請求を受け付けています：{kinds}。"
        replies.append(Reply(_with_source(profile, [text], profile.requests.source)))
    if profile.facts.request_procedure:
        replies.extend(render_fact(profile, profile.facts.request_procedure))
    return replies or [not_stated(profile, "開示等の請求の手続")]


def contact(profile: Profile) -> list[Reply]:
    """The contact window with every detail the policy publishes."""
    window = profile.contact
    lines = ["お問い合わせ窓口は次のとおりです。", window.name]
    if window.department:
        lines.append(window.department)
    rows = [
        (
            "電話",
            window.phone and window.phone + (f"（{note}）" if (note := window.phone_note) else ""),
        ),
        ("FAX", window.fax),
        ("メール", window.email),
        ("受付時間", window.hours),
        ("住所", window.address),
        ("ウェブサイト", window.url),
    ]
    lines.extend(f"{label}：{value}" for label, value in rows if value)
    if not window.phone:
        lines.append("※公表されている内容には、窓口の電話番号の記載がありません。")
    if not window.address:
        # Members ask for it to post their request; it must not look as if it were left out.
        lines.append(
            "※窓口の住所は公表されている方針に記載が見当たらないため、郵送の際は窓口にご確認ください。"
        )
    return [Reply(_with_source(profile, lines, window.source))]


def organization(profile: Profile) -> list[Reply]:
    """The organization's address and representative, each as far as the policy says."""
    replies: list[Reply] = []
    missing = []
    for fact, subject in ((profile.address, "住所"), (profile.representative, "代表者")):
        if fact is not None:
            replies.extend(render_fact(profile, fact))
        else:
            missing.append(subject)
    if missing:
        if profile.organization_rule is not None:
            replies.extend(render_fact(profile, profile.organization_rule))
        replies.append(not_stated(profile, f"{profile.name}の{'・'.join(missing)}"))
    return replies


def handoff_button(title: str, reason: str) -> Button:
    """A quick reply that hands the conversation to a person (see bot/handoff/dialog.py)."""
    return Button(title, f'/request_human{{"handoff_reason": "{reason}"}}')


def complaint(profile: Profile) -> list[Reply]:
    """Where to complain, and a quick reply to file the complaint with a person."""
    if profile.facts.complaints:
        replies = render_fact(profile, profile.facts.complaints)
    else:
        replies = [not_stated(profile, "苦情の申出先")]
    last = replies[-1]
    button = handoff_button("担当者に苦情を申し出る", "complaint")
    return [*replies[:-1], Reply(last.text, (*last.buttons, button))]


def personal_request(profile: Profile, intent: str) -> list[Reply]:
    """A formal request: explain the procedure; nothing personal is handled yet."""
    subject = INTENT_LABELS[intent]
    offered = set(profile.requests.types) if profile.requests else set()
    kinds = [kind for kind in REQUEST_INTENT_TYPES[intent] if kind in offered]
    if not kinds:
        return [not_stated(profile, subject)]
    assert profile.requests is not None  # kinds is non-empty only with requests
    names = "、".join(REQUEST_TYPE_LABELS[kind] for kind in kinds)
    lines = [f"{names}のご請求ですね。{profile.name}では、この請求を受け付けています。"]
    replies = [Reply(_with_source(profile, lines, profile.requests.source))]
    if profile.facts.request_procedure:
        replies.extend(render_fact(profile, profile.facts.request_procedure))
    replies.append(_verification_needed(profile))
    return replies


def own_data(profile: Profile, intent: str) -> list[Reply]:
    """Questions about the member's own record or requests: verification first."""
    return [_verification_needed(profile, INTENT_LABELS[intent])]


def _verification_needed(profile: Profile, subject: str | None = None) -> Reply:
    lead = f"{subject}には、" if subject else "ご請求には、"
    return Reply(
        f"{lead}ご本人であることの確認が必要です。"
        f"このチャットで本人確認（{profile.member_identifier.label}、生年月日、"
        "SMSの認証コード）をしたうえで"
        f"お手続きいただけます。窓口（{contact_line(profile)}）でも承ります。"
    )


def greet(profile: Profile) -> list[Reply]:
    """The greeting, with the most asked topics as quick replies."""
    return [
        Reply(
            f"こんにちは。{profile.name}の個人情報の取扱いについてお答えするアシスタントです。"
            "利用目的、安全管理、開示等の請求方法などをお尋ねください。",
            _menu_buttons(MENU_INTENTS),
        )
    ]


def _menu_buttons(intents: Iterable[str]) -> tuple[Button, ...]:
    return tuple(Button(INTENT_LABELS[intent], f"/{intent}") for intent in intents)


def bot_challenge(profile: Profile) -> list[Reply]:
    """Say plainly that this is an automated assistant."""
    return [
        Reply(
            f"私は{profile.name}の公表している個人情報の取扱い方針をもとにお答えする、"
            "自動応答のアシスタントです。担当者へのご相談は "
            f"{contact_line(profile)} で承ります。"
        )
    ]


def out_of_scope(profile: Profile) -> list[Reply]:
    """Politely decline what is not about personal information."""
    return [
        Reply(
            "申し訳ありません。こちらでは、個人情報の取扱いについてのご質問にお答えしています。"
            f"そのほかのご用件は {contact_line(profile)} へお問い合わせください。",
            _menu_buttons(MENU_INTENTS[:3]),
        )
    ]


def request_human(profile: Profile) -> list[Reply]:
    """The contact window, for when the chat cannot hand over (see bot/handoff/dialog.py)."""
    return [
        Reply(f"担当者へのご相談をご希望ですね。{contact_line(profile)} へお問い合わせください。")
    ]


def other_person(profile: Profile) -> list[Reply]:
    """Another person's data, a family member's included, is theirs: politely refuse."""
    return [
        Reply(
            "申し訳ありません。ご家族を含め、ほかの方の個人情報は、このチャットではお答えできません。"
            "その方ご本人が本人確認をしたうえでお尋ねいただくか、代理人による請求の方法を"
            f"ご確認ください。ご不明な点は {contact_line(profile)} へお問い合わせください。",
            _menu_buttons(("ask_agent_request",)),
        )
    ]


def _small_talk(text: str) -> Callable[[Profile], list[Reply]]:
    return lambda profile: [Reply(text)]


def clarify(profile: Profile, ranking: Sequence[str]) -> list[Reply]:
    """When unsure: ask politely and offer the likely topics as quick replies."""
    likely = [intent for intent in ranking if intent in INTENT_LABELS][:3]
    for intent in MENU_INTENTS:
        if len(likely) >= 3:
            break
        if intent not in likely:
            likely.append(intent)
    return [
        Reply(
            "申し訳ありません、ご質問の内容をうまく読み取れませんでした。"
            "お知りになりたいのは次のどれでしょうか。言い換えてお尋ねいただいても結構です。",
            _menu_buttons(likely),
        )
    ]


_HANDLERS: dict[str, Callable[[Profile], list[Reply]]] = {
    "greet": greet,
    "goodbye": _small_talk("ご利用ありがとうございました。またいつでもお尋ねください。"),
    "thank": _small_talk("どういたしまして。ほかにもご不明な点があればお尋ねください。"),
    "affirm": _small_talk("承知しました。ほかにお知りになりたいことはありますか。"),
    "deny": _small_talk("承知しました。ほかにご質問があれば、お気軽にお尋ねください。"),
    "bot_challenge": bot_challenge,
    "out_of_scope": out_of_scope,
    "request_human": request_human,
    "ask_other_person_data": other_person,
    "stop": _small_talk("承知しました。ほかにご質問があれば、お気軽にお尋ねください。"),
    "resend_code": _small_talk(
        "いま認証コードをお送りしている手続はありません。"
        "ご登録内容の確認をご希望の場合は、その旨をお知らせください。"
    ),
    "ask_joint_use": joint_use,
    "ask_my_number": my_number,
    "ask_fee": fees,
    "ask_processing_time": processing_time,
    "ask_request_procedure": request_procedure,
    "ask_contact": contact,
    "ask_complaint": complaint,
    "ask_organization": organization,
}


def answer(profile: Profile, intent: str, topics: Sequence[str] = ()) -> list[Reply]:
    """The assistant's reply to ``intent`` for the organization of ``profile``.

    Args:
        profile: the active organization's profile.
        intent: the recognized intent name.
        topics: ``info_category`` values (topic ids) the member mentioned.
    """
    if intent == "ask_usage_purpose":
        return usage_purpose(profile, topics)
    if intent in FACT_INTENTS:
        fact = getattr(profile.facts, FACT_INTENTS[intent])
        return render_fact(profile, fact) if fact else [not_stated(profile, INTENT_LABELS[intent])]
    if intent in REQUEST_INTENT_TYPES:
        return personal_request(profile, intent)
    if intent in ("ask_my_data", "check_case_status", "cancel_case"):
        return own_data(profile, intent)
    handler = _HANDLERS.get(intent)
    if handler is None:
        return clarify(profile, ())
    return handler(profile)
