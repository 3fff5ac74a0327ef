"""The request actions with tracker fixtures, on a real migrated database with demo data.

Each test verifies a demo member through the real verification form first (the code
comes from the demo outbox), then drives the request actions the way Rasa's form
would: the validation action for each answer, the ask action for each question.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from actions.cases import (
    ASK_ACTIONS,
    ActionCancelCase,
    ActionCaseStatus,
    ActionStartCase,
    ValidateCancelCaseForm,
    ValidateCaseForm,
)
from bot.db.session import session_factory
from tests.action_runs import run, slot_events
from tests.identity.verifying import MEMBER_A, verify

CASE_NUMBER = re.compile(r"PR-\d{4}-\d{6}")
MEMBER_B = ("1001-57", "昭和54年11月30日")


@pytest.fixture
def database(demo, migrated_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", migrated_url)
    return migrated_url


class Conversation:
    """A conversation driven through the request actions (verified unless its history is empty)."""

    def __init__(self, tracker, history: list[dict[str, Any]], sender: str = "member-1") -> None:
        self.tracker = tracker
        self.history = history
        self.sender = sender
        self.slots: dict[str, Any] = {}

    def act(self, action, text: str = "", intent: str = "inform") -> str:
        events, said = run(
            action,
            self.tracker(
                text, intent, slots=dict(self.slots), history=self.history, sender=self.sender
            ),
        )
        self.history += [{"event": "user", "text": text}, *events]
        self.slots.update(slot_events(events))
        return said

    def answer(self, text: str, intent: str = "inform", form=None) -> str:
        """The member answers the slot the form asked for."""
        return self.act(form or ValidateCaseForm(), text, intent)

    @property
    def requested(self) -> str | None:
        """The next slot Rasa's form would ask for: the first one still empty."""
        from bot.cases.dialog import FORM_SLOTS

        if self.slots.get("requested_slot", "") is None:
            return None
        return next((s for s in FORM_SLOTS if self.slots.get(s) is None), None)

    def fill(self, text: str, intent: str = "inform") -> str:
        self.slots["requested_slot"] = self.requested
        return self.answer(text, intent)


@pytest.fixture
def verified(tracker, tmp_path) -> Callable[..., Conversation]:
    """Starts the conversation of a demo member who went through the verification form."""

    def start(member: tuple[str, str] = MEMBER_A, sender: str = "member-1") -> Conversation:
        return Conversation(tracker, verify(tracker, tmp_path, member, sender), sender)

    return start


def ask_action(slot: str):
    return next(a for a in ASK_ACTIONS if a().name() == f"action_ask_{slot}")()


def cases_in_db(url: str) -> list[tuple[str, str, str]]:
    with session_factory(url).begin() as session:
        rows = session.execute(sa.text("SELECT case_number, case_type, status FROM cases"))
        return [tuple(row) for row in rows]


def test_a_question_about_a_request_is_answered_before_anything_starts(database, tracker):
    events, said = run(
        ActionStartCase(), tracker("データを消してもらうことはできますか", "request_suspension")
    )
    # Answered from the profile and the law, with a button; no verification yet.
    assert "利用停止・消去のご請求を受け付けています" in said
    assert "個人情報保護法第35条第1項・第5項" in said and "提出方法" in said
    assert not any(e.get("event") == "followup" for e in events)
    assert cases_in_db(database) == []


def test_the_start_button_of_an_answer_starts_the_request(database, tracker):
    events, said = run(ActionStartCase(), tracker("/request_suspension", "request_suspension"))
    assert "本人確認" in said
    assert {"event": "followup", "name": "verification_form"} in [
        {"event": e["event"], "name": e.get("name")} for e in events
    ]


def test_a_request_before_verification_verifies_first(database, tracker):
    events, said = run(ActionStartCase(), tracker("レセプトを開示してほしい", "request_disclosure"))
    assert "本人確認" in said
    assert slot_events(events)["pending_request"] == "request_disclosure:receipts"
    assert {"event": "followup", "name": "verification_form"} in [
        {"event": e["event"], "name": e.get("name")} for e in events
    ]


def test_a_disclosure_is_opened_once_with_number_due_date_and_fee(database, verified):
    talk = verified()
    said = talk.act(ActionStartCase(), "自分の情報を開示してほしい", "request_disclosure")
    assert "開示のご請求を承ります" in said
    # kokusai's policy names only the disclosure of retained data: nothing to choose.
    assert talk.slots["case_wrong"] == "-" and talk.slots["case_target"] == "retained_data"
    draft_id = talk.slots["case_draft_id"]
    assert draft_id

    assert talk.fill("1") == ""  # ご本人として
    assert talk.slots["case_subject"] == "self"
    talk.fill("すべて")
    talk.fill("書面で")
    assert talk.requested == "case_confirm"
    said = talk.fill("はい、請求します", "affirm")
    number = CASE_NUMBER.search(said)
    assert number, said
    # kokusai-kogyo-kenpo publishes neither a fee nor a period: nothing is made up.
    assert "手数料についての記載がありません" in said
    assert "方針に定められていません" in said and "個人情報保護法第33条第2項" in said
    # Where to submit is what section 3. says, not the complaint window's address.
    assert "提出方法：請求は、当組合が定める要領に基づいて" in said and "送付先" not in said
    assert talk.slots["requested_slot"] is None
    assert cases_in_db(database) == [(number.group(), "disclosure", "received")]

    # The same confirmation delivered again (the slots not yet cleared): still one case.
    talk.slots["requested_slot"] = "case_confirm"
    talk.slots["case_confirm"] = None
    again = talk.answer("はい、請求します", "affirm")
    assert CASE_NUMBER.findall(again) == [number.group()]
    assert len(cases_in_db(database)) == 1


def test_a_correction_keeps_what_was_typed_out_of_the_slots(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "登録内容を訂正したい", "request_correction")
    talk.fill("本人")
    talk.fill("住所が旧住所の東京都港区1-1のままです")
    talk.fill("新住所は東京都品川区2-2です")
    assert talk.slots["case_wrong"] == "done" and talk.slots["case_right"] == "done"
    assert not any("港区" in str(v) for v in talk.slots.values())
    summary = talk.act(ask_action("case_confirm"))
    assert "港区" in summary and "品川区" in summary
    assert "手数料はかかりません" in summary and "個人情報保護法第38条第1項" in summary
    said = talk.fill("はい", "affirm")
    assert CASE_NUMBER.search(said)
    assert [row[1:] for row in cases_in_db(database)] == [("correction", "received")]


def test_a_parent_requests_for_a_minor_dependant(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "利用をやめてほしい", "request_suspension")
    assert talk.fill("花子") == ""
    assert talk.slots["case_subject"] == "guardian"
    talk.fill("1")
    talk.fill("2")
    summary = talk.act(ask_action("case_confirm"))
    assert "山田 花子様（法定代理人として）" in summary
    # What the law allows every organization instead, with its article; nothing about
    # benefits, which neither the policy nor article 35 says.
    assert "第35条第2項・第4項・第6項ただし書" in summary and "給付" not in summary
    assert CASE_NUMBER.search(talk.fill("はい", "affirm"))


def test_an_appointed_agent_starts_awaiting_documents(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "利用目的を通知してほしい", "request_purpose_notice")
    talk.fill("任意代理人")
    assert talk.requested == "case_agent"
    talk.fill("弁護士 鈴木一郎 03-1234-5678")
    said = talk.fill("はい", "affirm")
    assert "代理人であることを確認できる書類が届いてから" in said
    assert [row[1:] for row in cases_in_db(database)] == [("purpose_notice", "awaiting_documents")]


def test_a_request_the_policy_does_not_offer_is_not_opened(database, verified):
    talk = verified()
    said = talk.act(ActionStartCase(), "医療費通知を別送にしてほしい", "request_mailing_opt_out")
    assert "記載がない" in said and "お受けできません" in said
    assert "case_draft_id" not in talk.slots or talk.slots["case_draft_id"] is None


def test_bad_input_gets_a_polite_answer_and_a_way_out(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "訂正したい", "request_correction")
    talk.fill("1")
    said = talk.fill("あ" * 5000)
    assert "500文字以内" in said and talk.slots["case_wrong"] is None
    said = talk.fill("🙂" * 600)
    assert "請求をやめる場合" in said
    said = talk.fill("やめる", "stop")
    assert "中止しました" in said
    assert cases_in_db(database) == []


def test_a_question_in_the_form_is_answered_and_asked_again(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "開示してほしい", "request_disclosure")
    said = talk.fill("手数料はいくらですか？", "ask_fee")
    assert "出典" in said or "記載" in said
    assert talk.slots["case_subject"] is None


def test_status_and_withdrawal_show_only_the_members_own_cases(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "訂正したい", "request_correction")
    talk.fill("1")
    talk.fill("電話番号が古いです")
    talk.fill("新しい番号に直してください")
    opened = CASE_NUMBER.search(talk.fill("はい", "affirm"))
    assert opened
    number = opened.group()

    other = verified(MEMBER_B, "member-2")
    assert "お受けしているご請求はありません" in other.act(
        ActionCaseStatus(), "状況", "check_case_status"
    )
    assert "取り下げできるご請求" in other.act(
        ActionCancelCase(), f"{number}を取り下げ", "cancel_case"
    )

    status = talk.act(ActionCaseStatus(), "請求の状況は？", "check_case_status")
    assert number in status and "訂正" in status

    talk.act(ActionCancelCase(), "請求を取り下げたい", "cancel_case")
    assert talk.slots["cancel_case_number"] == number
    talk.slots["requested_slot"] = "cancel_confirm"
    said = talk.answer("はい、取り下げます", "affirm", form=ValidateCancelCaseForm())
    assert "取り下げました" in said
    assert cases_in_db(database) == [(number, "correction", "withdrawn")]


def test_a_forged_draft_id_or_slot_opens_nothing(database, tracker, verified):
    verified(MEMBER_B, "member-2")
    owner = verified()
    owner.act(ActionStartCase(), "開示してほしい", "request_disclosure")
    stolen = owner.slots["case_draft_id"]

    thief = verified(MEMBER_B, "member-2")
    thief.slots = {"case_draft_id": stolen, "requested_slot": "case_confirm"}
    said = thief.answer("はい", "affirm")
    assert "見つかりませんでした" in said
    unverified = Conversation(tracker, [], sender="member-3")
    unverified.slots = {"case_draft_id": stolen, "requested_slot": "case_confirm"}
    assert "有効期限が切れました" in unverified.answer("はい", "affirm")
    assert cases_in_db(database) == []


def test_a_third_party_stop_takes_scope_and_reason(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "第三者への提供をやめてほしい", "request_third_party_stop")
    assert talk.slots["case_method"] == "-" and talk.slots["case_scope"] is None
    talk.fill("1")
    assert talk.fill("1と2") == ""
    assert talk.slots["case_scope"] == "2"
    talk.fill("1")
    summary = talk.act(ask_action("case_confirm"))
    assert "本人の同意なく第三者に提供されているため" in summary
    assert "代わりの措置" in summary
    assert CASE_NUMBER.search(talk.fill("はい", "affirm"))
    assert [row[1:] for row in cases_in_db(database)] == [("third_party_stop", "received")]


def test_household_mailing_opt_out_where_the_policy_has_it(database, monkeypatch, verified):
    monkeypatch.setenv("PRIVACY_BOT_ORG", "benesse-kenpo")
    talk = verified()
    said = talk.act(ActionStartCase(), "医療費通知を別送にしてほしい", "request_mailing_opt_out")
    assert "承ります" in said
    talk.fill("1")
    assert CASE_NUMBER.search(talk.fill("はい", "affirm"))
    assert [row[1:] for row in cases_in_db(database)] == [("mailing_opt_out", "received")]


def test_fee_and_deadline_come_from_the_policy(database, monkeypatch, verified):
    monkeypatch.setenv("PRIVACY_BOT_ORG", "osaka-city-kyosai")
    talk = verified()
    talk.act(ActionStartCase(), "第三者提供記録を開示してほしい", "request_disclosure")
    assert talk.slots["case_target"] == "third_party_records"
    assert talk.slots["case_scope"] == "-"
    talk.fill("1")
    talk.fill("データで")
    summary = talk.act(ask_action("case_confirm"))
    assert "規程細則" in summary and "金額" in summary  # the policy publishes no amount
    assert "円" not in summary
    said = talk.fill("はい", "affirm")
    # The 30 days run from the submission of the request form with its documents
    # (第28条), not from this chat: no date yet, and the case waits for the documents.
    assert "提出日から30日以内" in said and "第28条）" in said
    assert "までに決定します" not in said
    assert "開示等請求(申出)書" in said and "第27条第1項・第2項）" in said
    assert [row[1:] for row in cases_in_db(database)] == [("disclosure", "awaiting_documents")]


def test_a_kind_of_information_is_taken_as_the_scope_not_as_a_question(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "利用を停止してほしい", "request_suspension")
    talk.fill("1")
    # The NLU may read a bare kind of information as a question about it.
    assert talk.fill("すべて", "ask_usage_purpose") == ""
    assert talk.slots["case_scope"] == "all"
    said = talk.fill("口座の情報は何に使いますか？", "ask_usage_purpose")
    assert "出典" in said and talk.slots["case_reason"] is None


def test_the_request_made_before_verifying_goes_on_after_it(database, monkeypatch, verified):
    monkeypatch.setenv("PRIVACY_BOT_ORG", "osaka-city-kyosai")
    talk = verified()
    talk.slots = {"pending_request": "request_disclosure:receipts"}
    said = talk.act(ActionStartCase(), "123456")
    assert "レセプト（診療報酬明細書等）の開示のご請求を承ります" in said
    assert talk.slots["case_target"] == "receipts" and talk.slots["pending_request"] is None


def test_receipts_are_refused_where_the_policy_does_not_name_them(database, verified):
    # kokusai's policy names the disclosure of retained data, not of レセプト.
    talk = verified()
    talk.slots = {"pending_request": "request_disclosure:receipts"}
    said = talk.act(ActionStartCase(), "123456")
    assert "「レセプト（診療報酬明細書等）」の開示の受付についての記載がない" in said
    assert "03-3273-6974" in said and "主治医" not in said
    assert cases_in_db(database) == []


def escalations_in_db(url: str) -> list[tuple[str, str, str | None, bool]]:
    with session_factory(url).begin() as session:
        rows = session.execute(
            sa.text("SELECT reason, status, note, paused FROM escalations ORDER BY id")
        )
        return [(row[0], row[1], row[2], bool(row[3])) for row in rows]


def test_asking_about_an_overdue_case_hands_it_to_a_person(database, verified):
    talk = verified()
    talk.act(ActionStartCase(), "訂正したい", "request_correction")
    talk.fill("1")
    talk.fill("電話番号が古いです")
    talk.fill("新しい番号に直してください")
    number = CASE_NUMBER.search(talk.fill("はい", "affirm")).group()  # type: ignore[union-attr]

    on_time = talk.act(ActionCaseStatus(), "請求の状況は？", "check_case_status")
    assert number in on_time and "担当者" not in on_time
    assert [e for e in escalations_in_db(database) if e[0] == "case_needs_person"] == []

    with session_factory(database).begin() as session:
        # Every published period is over (or none is published): due yesterday.
        session.execute(
            sa.text("UPDATE cases SET due_at = :due WHERE case_number = :number"),
            {"due": datetime.now(timezone.utc) - timedelta(days=1), "number": number},
        )
    late = talk.act(ActionCaseStatus(), "まだ回答が来ません", "check_case_status")
    assert "回答期限を過ぎている" in late and "担当者から改めてご連絡します" in late
    needs_person = [e for e in escalations_in_db(database) if e[0] == "case_needs_person"]
    # Waiting for staff, about that case, and the member may go on talking to the bot.
    assert needs_person == [
        (
            "case_needs_person",
            "waiting",
            f"回答期限を過ぎた請求について会員から問い合わせ：{number}",
            False,
        )
    ]
    talk.act(ActionCaseStatus(), "状況は？", "check_case_status")
    assert len([e for e in escalations_in_db(database) if e[0] == "case_needs_person"]) == 1
    # Opened by the hand-off service, so audited like every escalation.
    with session_factory(database).begin() as session:
        opened = session.execute(
            sa.text("SELECT actor, sender_id FROM audit_log WHERE action = 'escalation.opened'")
        )
        assert [tuple(row) for row in opened] == [("system", "member-1")]
