"""Things members ask about that a policy may not mention at all.

A question about call recordings, a website's cookies or history, AI, cameras, apps,
location data, where the servers are or whether data goes abroad is often close enough
to a topic (利用目的, 安全管理措置) for the NLU to pick it with confidence; that topic's answer
then says nothing about what was asked. When the active organization's published text
never names the thing, no passage of it can answer, so the assistant says that the
policy does not say it, with the contact window and the closest topics, whatever topic
was recognized. Where a policy does name it, the usual answer (a topic or a quote)
stands.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from bot.core.text import fold
from bot.policy.answers import FACT_INTENTS, INTENT_LABELS, Reply, not_stated
from bot.policy.profiles.schema import Profile
from bot.policy.quoting import topic_buttons
from bot.policy.search import index_for, query_lemmas

# What is asked about (as the folded message writes it) and how the answer names it.
SUBJECTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"クッキー|cookie"), "ウェブサイトのクッキー（Cookie）"),
    # 「サイトを見た履歴」: a website's history, not 受診履歴 or a request's record.
    (
        re.compile(r"閲覧履歴|アクセス履歴|アクセスログ|(?:サイト|ホームページ|ウェブ)\S{0,8}履歴"),
        "ウェブサイトの閲覧履歴",
    ),
    (re.compile(r"録音"), "通話の録音"),
    (re.compile(r"(?<![a-z])ai(?![a-z])|人工知能"), "AI（人工知能）での利用"),
    (re.compile(r"カメラ|映像"), "カメラの映像"),
    (re.compile(r"アプリ"), "アプリで記録される情報"),
    (re.compile(r"サーバ|クラウド"), "データを保管するサーバーやクラウドサービス"),
    (re.compile(r"位置情報|gps"), "位置情報"),
    # Data kept or sent abroad, worded as the ask_foreign_transfer topic says it (that
    # topic answers the same where the policy is silent). 海外療養費 and the like are
    # benefits, not where the data goes.
    (
        re.compile(r"(?:海外|外国|国外)(?!療養|旅行|赴任|出張|留学)"),
        INTENT_LABELS["ask_foreign_transfer"],
    ),
)

# The recognized topics whose answer is a statement of the policy; requests, the
# member's own data, the contact window and small talk are answered as usual.
TOPIC_INTENTS = frozenset(
    {
        *FACT_INTENTS,
        "ask_usage_purpose",
        "ask_joint_use",
        "ask_my_number",
        "ask_fee",
        "ask_processing_time",
        "ask_request_procedure",
        "ask_organization",
        "out_of_scope",
        "nlu_fallback",
    }
)


def unmentioned_subject(profile: Profile, question: str) -> str | None:
    """What ``question`` asks about that the policy never names, as the answer names it."""
    asked = fold(question).lower()
    published = index_for(profile).folded_text
    for pattern, subject in SUBJECTS:
        if pattern.search(asked) and not pattern.search(published):
            return subject
    return None


def for_unmentioned(
    profile: Profile, intent: str, question: str, ranking: Sequence[str]
) -> list[Reply] | None:
    """That the policy does not say it, when ``question`` asks about what it never names.

    Args:
        profile: the active organization's profile.
        intent: the recognized intent (only topic intents are answered here).
        question: the member's message.
        ranking: intents the NLU found likely, best first (for the quick replies).

    Returns:
        The reply, or None when the usual answer stands.
    """
    if intent not in TOPIC_INTENTS:
        return None
    subject = unmentioned_subject(profile, question)
    if subject is None:
        return None
    stated = not_stated(profile, subject)
    return [replace(stated, buttons=topic_buttons(profile, query_lemmas(question), ranking))]
