"""The kinds of personal information members ask about, shared by all profiles.

Training data annotates the ``info_category`` entity with these ids (its synonyms map
the member's words to them); each organization's usage-purpose table marks which of
its rows cover which ids. The labels are what the assistant says back.
"""

from __future__ import annotations

TOPIC_LABELS: dict[str, str] = {
    "qualification": "資格（加入・喪失）に関する情報",
    "income": "収入に関する情報",
    "dependant": "被扶養者に関する情報",
    "benefit": "保険給付・現金給付に関する情報",
    "receipt": "レセプト（診療報酬明細書）・医療費に関する情報",
    "bank_account": "口座情報",
    "health_checkup": "健康診断（健診）に関する情報",
    "health_guidance": "保健指導に関する情報",
    "health_program": "保健事業に関する情報",
    "employment": "勤務・労務の状況に関する情報",
    "medical_inquiry": "医師等への照会で得た療養状況に関する情報",
    "third_party_act": "第三者行為（交通事故など）に関する情報",
    "other_insurer": "資格喪失後に加入した保険者に関する情報",
    "contract": "共済契約に関する情報",
    "claim": "共済金の請求・支払に関する情報",
    "marketing": "商品・サービスのご案内に使う情報",
    "website": "ウェブサイトの入力内容・閲覧履歴",
    "recruitment": "採用応募者の情報",
    "officer": "役員・議員の情報",
    "staff": "職員の情報",
    "contact_details": "住所・氏名・電話番号などの連絡先",
    "my_number": "マイナンバー（個人番号）",
}

TOPIC_IDS = frozenset(TOPIC_LABELS)


def topic_label(topic: str) -> str:
    """The Japanese label of a topic id, or the id itself when unknown."""
    return TOPIC_LABELS.get(topic, topic)
