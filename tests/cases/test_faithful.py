"""Every sentence of the request dialogs comes from the profile, the law table, or says
it is the chat's own procedure: for each organization and each request type.

The scan looks at what can be checked mechanically: numbers, article references, URLs
and 「quoted」 phrases must each be in the organization's profile file or in
docs/legal-statements.md; every sentence that cites 個人情報保護法 must be in that table.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from bot import cases
from bot.cases import CaseType, DisclosureTarget, RequesterRole
from bot.cases import dialog as case_dialog
from bot.cases.explain import START_TITLE, explain, is_question
from bot.identity import dialog as identity_dialog
from bot.policy.answers import Reply
from bot.policy.profiles.loader import DEFAULT_DIR, load_all
from tests.conftest import ROOT

PROFILES = load_all()
LEGAL = (ROOT / "docs" / "legal-statements.md").read_text(encoding="utf-8")
LAW_SENTENCE = re.compile(r"[^。\n※]*個人情報保護法第[^。]*。")
CHECKED = re.compile(
    r"https?://[^\s（）)]+|第\d+条(?:の\d+)?(?:第\d+項)?|「[^「」]{1,60}」|\d[\d,\-]*"
)
# The product's own words in 「」: the names of the requests, and what to type.
PRODUCT_WORDS = {
    *cases.TYPE_LABELS.values(),
    *cases.TARGET_LABELS.values(),
    "請求の状況",
    "やめる",
}
# Sentences that are the chat's own procedure; they carry no number, law or quote.
OWN_PROCEDURE = ("このチャットでは", "このチャットでも", "このチャットでお受けできる")


def rendered(org: str, kind: CaseType) -> list[str]:
    """Every text the request dialog can say for this organization and request type."""
    profile = PROFILES[org]
    replies: list[Reply] = list(explain(profile, kind))
    targets = (None, *DisclosureTarget) if kind is CaseType.DISCLOSURE else (None,)
    texts = [reply.text for reply in replies]
    for target in targets:
        texts += case_dialog.type_notes(profile, kind, target)
        texts.append(case_dialog.fee_line(profile, cases.fee_for(profile, kind, target)))
    when = datetime(2025, 1, 6, tzinfo=timezone.utc)
    texts.append(case_dialog.due_line(profile, kind, cases.due_at(profile, when)))
    texts.append(case_dialog.due_line(profile, kind, None))
    for role in RequesterRole:
        texts += case_dialog.documents_lines(profile, role)
    texts.append(case_dialog.submission_line(profile))
    texts += [reply.text for reply in case_dialog.not_offered(profile, kind)]
    for target in DisclosureTarget:
        texts += [reply.text for reply in case_dialog.target_not_offered(profile, target)]
    texts.append(identity_dialog.ask(profile, identity_dialog.MEMBER_NUMBER_SLOT))
    texts.append(identity_dialog.start_verification(profile, "開示のご請求").text)
    texts.append(identity_dialog.mismatch_reply(profile).text)
    return texts


CASES = [(org, kind) for org in sorted(PROFILES) for kind in CaseType]


@pytest.mark.parametrize(("org", "kind"), CASES)
def test_every_number_article_url_and_quote_is_in_the_profile_or_the_law_table(org, kind):
    source = (DEFAULT_DIR / f"{org}.yml").read_text(encoding="utf-8")
    for text in rendered(org, kind):
        for token in CHECKED.findall(text):
            bare = token.strip("「」")
            known = bare in source or token in LEGAL or bare in PRODUCT_WORDS
            assert known, (org, kind.value, token, text)


@pytest.mark.parametrize(("org", "kind"), CASES)
def test_every_sentence_of_law_is_in_the_table_of_legal_statements(org, kind):
    for text in rendered(org, kind):
        for sentence in LAW_SENTENCE.findall(text):
            assert sentence.strip() in LEGAL, (org, kind.value, sentence)


@pytest.mark.parametrize(("org", "kind"), CASES)
def test_offered_types_get_an_answer_with_a_start_button_and_others_the_window(org, kind):
    profile = PROFILES[org]
    replies = explain(profile, kind)
    buttons = [button for reply in replies for button in reply.buttons]
    if kind in cases.offered_types(profile):
        assert [b.title for b in buttons] == [START_TITLE]
        assert buttons[0].payload == f"/request_{kind.value}"
        assert "受け付けています" in replies[0].text and "（出典：" in replies[0].text
    else:
        assert buttons == []
        assert "記載がない" in replies[0].text and profile.contact.name in replies[0].text


@pytest.mark.parametrize("org", sorted(PROFILES))
def test_the_identity_prompt_asks_for_what_the_organization_issues(org):
    profile = PROFILES[org]
    prompt = identity_dialog.ask(profile, identity_dialog.MEMBER_NUMBER_SLOT)
    identifier = profile.member_identifier
    assert identifier.printed_on in prompt and identifier.example in prompt
    if profile.kind == "kyosai" and org != "osaka-city-kyosai":
        # A fire or CO·OP 共済 issues no health-insurance card.
        assert "保険証" not in prompt and "記号" not in prompt
    assert "保険証" not in prompt or profile.kind == "kenpo"


@pytest.mark.parametrize("org", sorted(PROFILES))
def test_no_receipts_or_doctors_where_the_policy_does_not_name_them(org):
    profile = PROFILES[org]
    texts = "\n".join(rendered(org, CaseType.DISCLOSURE))
    assert "主治医" not in texts and "給付に影響" not in texts
    named = "receipt_disclosure" in (profile.requests.types if profile.requests else [])
    assert (DisclosureTarget.RECEIPTS in cases.offered_targets(profile)) == named


@pytest.mark.parametrize("org", sorted(PROFILES))
def test_the_household_mailing_opt_out_is_never_given_an_article(org):
    texts = "\n".join(rendered(org, CaseType.MAILING_OPT_OUT))
    assert "第38条" not in texts and "遅滞なく" not in texts


@pytest.mark.parametrize("org", sorted(PROFILES))
def test_documents_and_submission_say_only_what_the_profile_says(org):
    profile = PROFILES[org]
    submission = case_dialog.submission_line(profile)
    if profile.requests and profile.requests.submission:
        assert profile.requests.submission.summary in submission
    else:
        assert submission.startswith("提出方法は窓口にご確認ください")
    assert "送付先" not in submission
    own = case_dialog.documents_lines(profile, RequesterRole.SELF)
    if profile.facts.identity_documents is None:
        assert own == ["必要な書類は方針に記載がないため、窓口にご確認ください。"]


def test_own_procedure_sentences_say_so():
    for org, kind in CASES:
        for text in rendered(org, kind):
            if "代理人であることを確認できる書類が届いてから" in text:
                assert text.startswith(OWN_PROCEDURE)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("データを消してもらうことはできますか", True),
        ("開示請求したいのですが、どうすればいいですか", True),
        ("訂正の手数料はいくら？", True),
        ("住所の登録を直してもらえますか？", True),
        ("第三者への提供を止めるのに何日かかりますか", True),
        ("登録が事実と違っていたら、直してもらえるんですか", True),
        ("消去の請求って、本人しかできないのですか", True),
        ("削除してください", False),
        ("開示を請求します", False),
        ("利用停止をお願いします。", False),
        ("/request_suspension", False),
        ("", False),
    ],
)
def test_a_question_about_a_request_is_told_from_a_request(text, question):
    assert is_question(text) is question
