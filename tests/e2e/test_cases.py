"""Formal requests through the REST channel, on the real servers, model and database."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from tests.e2e.records import database, latest_code
from tests.e2e.rest import joined

pytestmark = pytest.mark.e2e

CASE_NUMBER = re.compile(r"PR-\d{4}-\d{6}")


def verify_for(say, assistant, request: str) -> str:
    """Ask for something that needs verification and verify as demo member A."""
    assert "本人確認" in joined(say(request))
    say("記号1001 番号23")
    assert "090-****-5678" in joined(say("昭和60年4月1日"))
    return joined(say(latest_code(assistant)))


def buttons(messages: list[dict]) -> list[dict]:
    return [button for m in messages for button in m.get("buttons") or []]


def test_a_verified_member_opens_follows_and_withdraws_a_disclosure(say, assistant):
    body = verify_for(say, assistant, "保有個人データの開示を請求したいです")
    assert "確認できました" in body
    assert "開示のご請求を承ります" in body and "どなたの情報" in body  # goes on by itself

    assert "対象となる情報" in joined(say("1"))
    method = say("すべて")
    paper = next(b for b in buttons(method) if "書面" in b["title"])
    summary = joined(say(paper["payload"]))
    # kokusai publishes no period: the Act's 遅滞なく with its article; nothing invented.
    assert "個人情報保護法第33条第2項" in summary and "主治医" not in summary
    opened = joined(say("はい、請求します"))
    number = CASE_NUMBER.search(opened)
    assert number, opened
    assert "手数料" in opened and "提出方法" in opened and "送付先" not in opened

    # Pressing confirm again opens nothing more.
    say("はい、請求します")
    with database(assistant).connect() as connection:
        count = connection.execute(
            sa.text("SELECT count(*) FROM cases WHERE case_number = :n"), {"n": number.group()}
        ).scalar()
        total = connection.execute(sa.text("SELECT count(*) FROM cases")).scalar()
    assert count == 1

    status = joined(say("請求の状況を教えてください"))
    assert number.group() in status and "受付" in status

    assert number.group() in joined(say("請求を取り下げたいです"))
    assert "取り下げました" in joined(say("はい、取り下げます"))
    with database(assistant).connect() as connection:
        state = connection.execute(
            sa.text("SELECT status FROM cases WHERE case_number = :n"), {"n": number.group()}
        ).scalar()
        after = connection.execute(sa.text("SELECT count(*) FROM cases")).scalar()
    assert (state, after) == ("withdrawn", total)


def test_a_correction_can_be_stopped_and_nothing_is_opened(say, assistant):
    verify_for(say, assistant, "自分の登録内容を確認したいです")
    with database(assistant).connect() as connection:
        before = connection.execute(sa.text("SELECT count(*) FROM cases")).scalar()
    assert "どなたの情報" in joined(say("登録内容の訂正を請求したい"))
    assert "誤っている内容" in joined(say("本人です"))
    # 5,000 characters never reach the form: the channel guard answers (2,000 at most).
    assert "2000文字以内" in joined(say("あ" * 5000))
    assert "500文字以内" in joined(say("あ" * 1500))  # the form's own limit
    assert "中止しました" in joined(say("やめる"))
    with database(assistant).connect() as connection:
        after = connection.execute(sa.text("SELECT count(*) FROM cases")).scalar()
    assert after == before


def test_receipts_are_not_offered_where_the_policy_does_not_name_them(say, assistant):
    body = verify_for(say, assistant, "レセプトの開示を請求したいです")
    assert "「レセプト（診療報酬明細書等）」の開示の受付についての記載がない" in body


def test_a_question_about_a_request_is_answered_first(say):
    messages = say("私のデータの利用停止を請求することはできますか")
    body = joined(messages)
    assert "受け付けています" in body and "本人確認" in body
    assert [b["title"] for b in buttons(messages)] == ["この請求を始める"]


def test_status_needs_verification_first(say):
    body = joined(say("請求の状況を教えてください"))
    assert "本人確認" in body and not CASE_NUMBER.search(body)


def opened_case(assistant, number: str) -> tuple[str, str, str]:
    with database(assistant).connect() as connection:
        row = connection.execute(
            sa.text("SELECT case_type, role, status FROM cases WHERE case_number = :n"),
            {"n": number},
        ).one()
    return tuple(row)


@pytest.mark.parametrize(
    ("request_text", "answers", "expected"),
    [
        (
            "利用目的を通知してください",
            ["任意代理人", "弁護士 鈴木一郎 03-1234-5678"],
            ("purpose_notice", "appointed_agent", "awaiting_documents"),
        ),
        (
            "子どもの健診データの利用を停止してほしい",
            ["花子", "すべて", "1"],
            ("suspension", "legal_guardian", "received"),
        ),
        (
            "第三者への提供を止めてほしいです",
            ["1", "1", "利用する必要がもうないため"],
            ("third_party_stop", "self", "received"),
        ),
        (
            "登録内容の訂正を請求したい",
            ["1", "住所が旧住所のままです", "新しい住所に直してください"],
            ("correction", "self", "received"),
        ),
    ],
    ids=["purpose_notice-agent", "suspension-guardian", "third_party_stop", "correction"],
)
def test_each_request_type_is_opened_after_a_summary(
    say, assistant, request_text, answers, expected
):
    verify_for(say, assistant, "自分の登録内容を確認したいです")
    assert "承ります" in joined(say(request_text))
    for answer in answers:
        said = joined(say(answer))
    assert "よろしいですか" in said  # the summary comes before anything is opened
    number = CASE_NUMBER.search(joined(say("はい")))
    assert number
    assert opened_case(assistant, number.group()) == expected
