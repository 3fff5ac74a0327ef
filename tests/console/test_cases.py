"""Formal requests (cases) in the console: the work list, the masked case page, and the
move, extend, decide and close forms, over real HTTP against the real databases.

Cases are opened with the real case service (``tests.cases.test_service.Desk``); the
console notifies members through its default notifier, the SMS outbox of the test's
var dir.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest

from bot.cases import move_case
from bot.cases.types import CaseStatus, CaseType
from tests.cases.desk import DATED, T0, Desk
from tests.console_fixtures import RunningConsole, Staff, start_console

S = CaseStatus


@pytest.fixture
def desk(console, tmp_path) -> Desk:
    console.clock.now = T0 + timedelta(days=2)
    return Desk(console.sessions, tmp_path / "desk-outbox.jsonl")


def open_case(desk: Desk, *, days: float = 0, to: CaseStatus | None = None, **fields) -> str:
    fields.setdefault("scope", [f"項目{days}{to}"])
    number = desk.open(now=T0 + timedelta(days=days), profile=DATED, **fields).case_number
    if to is not None:
        desk.run(
            lambda s: move_case(s, number, to, "準備", "テスト準備", T0 + timedelta(days=days))
        )
    return number


def status(desk: Desk, number: str) -> str:
    return desk.case(number).status


def outbox(console: RunningConsole) -> list[dict]:
    path = console.settings.outbox_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def history_rows(page: str) -> list[str]:
    section = page[page.index("<h2>履歴</h2>") :]
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)
    ][1:]


# --- the list -------------------------------------------------------------------------------


def test_the_list_shows_overdue_cases_first_marked_in_words_and_filters(console, desk):
    late = open_case(desk, days=0, to=S.UNDER_REVIEW)
    recent = open_case(desk, days=35)
    waiting = open_case(desk, days=1, to=S.AWAITING_DOCUMENTS)
    console.clock.now = T0 + timedelta(days=40)  # the first is past its 30 days
    staff = console.sign_in("tanaka")
    page = staff.get("/cases").text
    rows = re.findall(r'<tr( class="overdue")?>\s*<td><a href="/cases/([^"]+)">', page)
    # Overdue first; a case awaiting documents is never overdue (its period stands still).
    assert rows == [(' class="overdue"', late), ("", waiting), ("", recent)]
    assert page.count("⚠ 期限超過") == 1 and "2025年2月5日" in page  # JST due date
    filtered = staff.get("/cases?status=awaiting_documents").text
    assert re.findall(r'<a href="/cases/([^"]+)">', filtered) == [waiting]
    assert "書類の提出待ち" in filtered
    assert len(console.audit("case.listed_by_staff")) == 2


# --- one case -----------------------------------------------------------------------------------


def test_the_case_page_masks_names_and_texts_and_reveals_one_on_request(console, desk):
    number = open_case(
        desk,
        kind=CaseType.CORRECTION,
        wrong_text="旧住所は大阪市北区梅田九丁目",
        right_text="新住所は大阪市中央区難波八丁目",
        scope=["住所"],
    )
    staff = console.sign_in("tanaka")
    page = staff.get(f"/cases/{number}").text
    for clear in ("山田", "太郎", "梅田九丁目", "難波八丁目"):
        assert clear not in page, clear
    assert "［請求者の氏名］" in page and "［正しい内容］" in page
    assert "訂正・追加・削除" in page and "受付済み" in page
    [viewed] = console.audit("console.viewed")
    assert viewed.detail == {"page": "case", "case_number": number}
    answer = staff.fetch_post(f"/cases/{number}/reveal", {"field": "right_text"})
    assert answer.json() == {"value": "新住所は大阪市中央区難波八丁目"}
    name = staff.fetch_post(f"/cases/{number}/reveal", {"field": "requester_name"})
    assert name.json() == {"value": "山田 太郎"}
    assert staff.fetch_post(f"/cases/{number}/reveal", {"field": "phone"}).status_code == 400
    looks = console.audit("console.revealed")
    assert [row.detail["field"] for row in looks] == ["right_text", "requester_name"]
    assert all(row.detail["case_number"] == number for row in looks)
    assert "難波" not in str([row.detail for row in console.audit()])
    assert staff.get("/cases/PR-2025-999999").status_code == 404


# --- moving a case along -------------------------------------------------------------------


def on_case(console: RunningConsole, name: str, number: str) -> Staff:
    staff = console.sign_in(name)
    assert staff.get(f"/cases/{number}").status_code == 200
    return staff


def test_move_through_the_form_updates_the_history_and_refusals_are_shown_in_japanese(
    console, desk
):
    number = open_case(desk)
    staff = on_case(console, "tanaka", number)
    missing = staff.post(f"/cases/{number}/move", {"to": "under_review", "reason": " "})
    assert missing.status_code == 422
    form = missing.text[missing.text.index('id="move"') :]
    assert 'role="alert"' in form[:600] and "理由" in form[:600]
    assert status(desk, number) == "received"
    done = staff.post(
        f"/cases/{number}/move", {"to": "under_review", "reason": "書類を確認しました"}
    )
    assert done.status_code == 303
    page = staff.get(done.headers["Location"]).text
    assert "請求の状態を変更しました。" in page
    assert status(desk, number) == "under_review"
    assert history_rows(page)[-1].endswith(
        "staff:tanaka 状態の変更 受付済み → 審査中 書類を確認しました"
    )
    wrong = staff.post(f"/cases/{number}/move", {"to": "closed", "reason": "終わり"})
    assert wrong.status_code == 422 and "へは移せません" in wrong.text
    assert "--" not in re.findall(r'<p class="error" role="alert">([^<]*)</p>', wrong.text)[0]
    assert status(desk, number) == "under_review"


def test_extend_within_the_policy_limit_and_the_member_is_told(console, desk):
    number = open_case(desk, to=S.UNDER_REVIEW)
    staff = on_case(console, "tanaka", number)
    assert "あと30日まで延長できます" in staff.get(f"/cases/{number}").text
    too_long = staff.post(f"/cases/{number}/extend", {"days": "31", "reason": "照会のため"})
    assert too_long.status_code == 422 and "延長できるのはあと30日まで" in too_long.text
    assert 'value="31"' in too_long.text and "照会のため</textarea>" in too_long.text
    nonsense = staff.post(f"/cases/{number}/extend", {"days": "十日", "reason": "照会のため"})
    assert nonsense.status_code == 422 and "1以上の整数" in nonsense.text
    assert outbox(console) == []
    done = staff.post(f"/cases/{number}/extend", {"days": "10", "reason": "医療機関への照会のため"})
    assert done.status_code == 303
    case = desk.case(number)
    assert (case.status, case.extended_days) == ("extended", 10)
    assert case.extension_reason == "医療機関への照会のため"
    [told] = outbox(console)
    assert number in told["text"] and "10日延長" in told["text"]
    page = staff.get(f"/cases/{number}").text
    assert "期限延長中" in page and "あと20日まで延長できます" in page
    assert "期限の延長" in history_rows(page)[-1]


def test_a_longer_extension_only_where_the_policy_allows_a_reasonable_period(console, desk):
    # osaka 第28条第2項: past 30 days 「相当の期間」 where processing is especially heavy.
    number = open_case(desk, to=S.UNDER_REVIEW)
    plain = on_case(console, "tanaka", number)
    assert "相当の期間に延長する" not in plain.get(f"/cases/{number}").text
    ignored = {"days": "45", "reason": "照会先が多いため", "longer": "on"}
    assert plain.post(f"/cases/{number}/extend", ignored).status_code == 422
    osaka = start_console(
        console.sessions,
        console.url,
        settings=replace(console.settings, org_id="osaka-city-kyosai"),
        clock=console.clock,
    )
    try:
        staff = on_case(osaka, "tanaka", number)
        assert "相当の期間に延長する" in staff.get(f"/cases/{number}").text
        done = staff.post(f"/cases/{number}/extend", ignored)
        assert done.status_code == 303
    finally:
        osaka.server.stop()
    case = desk.case(number)
    assert (case.extended_days, case.max_extension_days) == (45, 45)
    [row] = console.audit("case.extended")
    assert row.detail["longer"] is True and row.detail["days"] == 45


def test_only_a_privacy_officer_decides_and_a_refusal_needs_its_ground(console, desk):
    number = open_case(desk, to=S.UNDER_REVIEW)
    agent = on_case(console, "tanaka", number)
    assert "決定は個人情報保護管理者が行います" in agent.get(f"/cases/{number}").text
    assert agent.post(f"/cases/{number}/decide", {"outcome": "disclosed"}).status_code == 403
    assert status(desk, number) == "under_review"
    officer = on_case(console, "suzuki", number)
    bare = officer.post(f"/cases/{number}/decide", {"outcome": "not_disclosed"})
    assert bare.status_code == 422
    message = re.findall(r'<p class="error" role="alert">([^<]*)</p>', bare.text)[0]
    assert "法令上の根拠" in message and "--ground" not in message and "/" not in message
    assert status(desk, number) == "under_review" and outbox(console) == []
    done = officer.post(
        f"/cases/{number}/decide",
        {
            "outcome": "not_disclosed",
            "ground": "個人情報保護法第33条第2項第2号",
            "explanation": "業務の適正な実施に著しい支障を及ぼすおそれがあるため",
        },
    )
    assert done.status_code == 303
    case = desk.case(number)
    assert (case.status, case.outcome) == ("decided", "not_disclosed")
    [told] = outbox(console)
    assert number in told["text"] and "開示しない" in told["text"]
    page = officer.get(f"/cases/{number}").text
    assert "決定を記録し、ご本人に通知しました。" not in page  # notice only after the redirect
    assert "開示しない" in page and "個人情報保護法第33条第2項第2号" in page
    assert "決定" in history_rows(page)[-1]


def test_close_a_decided_case(console, desk):
    number = open_case(desk, to=S.UNDER_REVIEW)
    officer = on_case(console, "suzuki", number)
    assert officer.post(f"/cases/{number}/decide", {"outcome": "disclosed"}).status_code == 303
    agent = on_case(console, "tanaka", number)
    empty = agent.post(f"/cases/{number}/close", {"reason": ""})
    assert empty.status_code == 422 and status(desk, number) == "decided"
    done = agent.post(f"/cases/{number}/close", {"reason": "写しを送付済み"})
    assert done.status_code == 303
    page = agent.get(done.headers["Location"]).text
    assert "請求を完了にしました。" in page and "これ以上の操作はありません" in page
    assert status(desk, number) == "closed"
    assert history_rows(page)[-1].endswith("staff:tanaka 完了 決定済み → 完了 写しを送付済み")
