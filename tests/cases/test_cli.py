"""``python -m bot.cases`` against real databases, in process and in a fresh process,
and ``python -m bench.cases`` run tiny."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bench.cases import main as bench_main
from bot.cases import CaseStatus, RequesterRole
from bot.cases.cli import main
from bot.db.models import OutboundMessage
from tests.conftest import ROOT


@pytest.fixture
def cli(desk, migrated_url, monkeypatch) -> str:
    """The URL the in-process CLI runs against, with osaka-city-kyosai as the organization."""
    monkeypatch.setenv("PRIVACY_BOT_ORG", "osaka-city-kyosai")
    return migrated_url


def run(capsys, url: str, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["--url", url, *argv])
    except SystemExit as exit_:  # argparse refusals
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def now() -> datetime:
    # The CLI runs on the clock: cases are received "now" so their period is running.
    return datetime.now(timezone.utc)


def test_staff_take_a_case_from_the_list_to_closing(desk, cli, capsys):
    number = desk.open(now=now()).case_number
    other = desk.open(scope=["別件"], now=now() - timedelta(days=40)).case_number  # overdue

    code, out, err = run(capsys, cli, "list", "--staff", "田中")
    assert (code, err) == (0, "")
    assert "大阪市職員共済組合" in out and "2 open case(s)" in out
    lines = [line for line in out.splitlines() if line.startswith("PR-")]
    assert [line.split()[0] for line in lines] == [other, number]  # overdue first
    assert "OVERDUE" in lines[0] and "OVERDUE" not in lines[1]

    code, out, _ = run(
        capsys,
        cli,
        "move",
        number,
        "--to",
        "under_review",
        "--reason",
        "書類確認済み",
        "--staff",
        "田中",
    )
    assert code == 0 and f"{number}: under_review (審査中)" in out

    code, out, _ = run(
        capsys,
        cli,
        "extend",
        number,
        "--days",
        "30",
        "--reason",
        "医療機関への照会",
        "--staff",
        "田中",
    )
    assert code == 0 and "extended (期限延長中)" in out and "(extended 30 days)" in out

    code, out, _ = run(
        capsys,
        cli,
        "decide",
        number,
        "--outcome",
        "partially_disclosed",
        "--ground",
        "法33条2項1号",
        "--explanation",
        "主治医の意見による",
        "--staff",
        "鈴木",
    )
    assert code == 0 and "decided (決定済み)" in out and "outcome partially_disclosed" in out

    code, out, _ = run(capsys, cli, "close", number, "--reason", "写しを送付", "--staff", "鈴木")
    assert code == 0 and "closed (完了)" in out

    code, out, _ = run(capsys, cli, "show", number, "--staff", "佐藤")
    assert code == 0
    assert "山田 太郎" in out and "2024年度の医療費通知" in out and "規程細則" in out
    assert "extended 30 of 30" in out and "主治医の意見による" in out
    history = out[out.index("history:") :].splitlines()[1:]
    assert [line.split()[3] for line in history] == [
        "opened",
        "moved",
        "extended",
        "decided",
        "closed",
    ]
    assert "staff:田中" in history[1] and "「書類確認済み」" in history[1]
    assert "staff:鈴木" in history[4]

    # Every command is audited under the staff name; the member was told twice.
    actors = [(r.actor, r.action) for r in desk.audit() if r.actor.startswith("staff:")]
    assert actors == [
        ("staff:田中", "case.listed_by_staff"),
        ("staff:田中", "case.moved"),
        ("staff:田中", "case.extended"),
        ("staff:鈴木", "case.decided"),
        ("staff:鈴木", "case.closed"),
        ("staff:佐藤", "case.viewed"),
    ]
    # The CLI's notifier writes to the settings' outbox: var/outbox.jsonl of the test.
    outbox_file = Path(os.environ["PRIVACY_BOT_VAR_DIR"]) / "outbox.jsonl"
    outbox = [json.loads(line) for line in outbox_file.read_text("utf-8").splitlines()]
    assert [line["to"] for line in outbox] == ["+819012345678", "+819012345678"]
    assert all(number in line["text"] for line in outbox)
    assert [m.status for m in desk.rows(OutboundMessage)] == ["sent", "sent"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["move", "{n}", "--to", "decided", "--reason", "x", "--staff", "田中"], "次に移せる状態"),
        (
            ["move", "{n}", "--to", "closed", "--reason", "x", "--staff", "田中"],
            "awaiting_documents",
        ),
        (["extend", "{n}", "--days", "5", "--reason", "x", "--staff", "田中"], "under_review"),
        (["close", "{n}", "--reason", "x", "--staff", "田中"], "次に移せる状態"),
        (
            ["move", "PR-2025-999999", "--to", "under_review", "--reason", "x", "--staff", "田中"],
            "見つかりませんでした",
        ),
        (["move", "{n}", "--to", "under_review", "--reason", " ", "--staff", "田中"], "理由"),
        (["show", "PR-2025-999999"], "見つかりませんでした"),
    ],
)
def test_refusals_print_why_and_exit_2(desk, cli, capsys, argv, message):
    number = desk.open(now=now()).case_number
    code, _, err = run(capsys, cli, *[a.replace("{n}", number) for a in argv])
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert desk.case(number).status == "received"


def test_decisions_that_break_the_rules_are_refused(desk, cli, capsys):
    number = desk.open(now=now()).case_number
    run(capsys, cli, "move", number, "--to", "under_review", "--reason", "確認", "--staff", "田中")
    code, _, err = run(
        capsys,
        cli,
        "decide",
        number,
        "--outcome",
        "not_disclosed",
        "--explanation",
        "理由",
        "--staff",
        "田中",
    )
    assert code == 2 and "法令上の根拠" in err
    code, _, err = run(capsys, cli, "decide", number, "--outcome", "corrected", "--staff", "田中")
    assert code == 2 and "選べる結果" in err
    code, _, err = run(
        capsys, cli, "extend", number, "--days", "31", "--reason", "x", "--staff", "田中"
    )
    assert code == 2 and "あと30日" in err
    code, _, err = run(capsys, cli, "decide", number, "--outcome", "won", "--staff", "田中")
    assert code == 2 and "invalid choice" in err
    code, _, err = run(capsys, cli, "move", number, "--to", "decided", "--reason", "x")
    assert code == 2 and "--staff" in err
    assert desk.case(number).status == "under_review"


def test_list_by_status(desk, cli, capsys):
    waiting = desk.open(now=now(), role=RequesterRole.APPOINTED_AGENT, agent_name="弁護士 甲")
    desk.open(scope=["別件"], now=now())
    code, out, _ = run(capsys, cli, "list", "--status", CaseStatus.AWAITING_DOCUMENTS.value)
    assert code == 0 and "1 awaiting_documents case(s)" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("PR-")] == [
        waiting.case_number
    ]


def test_the_cli_runs_in_a_fresh_process(desk, migrated_url, secret, tmp_path):
    number = desk.open(now=now()).case_number
    env = {
        **os.environ,
        "DATABASE_URL": migrated_url,
        "PRIVACY_BOT_ORG": "osaka-city-kyosai",
        "PRIVACY_BOT_VAR_DIR": str(tmp_path / "var"),
    }
    command = [sys.executable, "-m", "bot.cases"]
    listed = subprocess.run([*command, "list"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert number in listed.stdout
    refused = subprocess.run(
        [*command, "move", number, "--to", "closed", "--reason", "x", "--staff", "田中"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2
    assert "「受付済み」から「完了」へは移せません" in refused.stderr
    assert "received -> closed is not allowed" in refused.stderr


def test_the_benchmark_runs_tiny_on_both_backends(capsys):
    assert (
        bench_main(
            ["--members", "120", "--cases", "1500", "--baseline-cases", "60", "--samples", "4"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "SQLite          1,500 cases, 120 members" in out
    assert "SQLite      large/baseline (1,500 vs 60 cases): confirm p50" in out
    covering = "SEARCH cases USING COVERING INDEX"
    assert (
        f"SQLite      plan member_cases: {covering} ix_cases_requester_member_id_received_at" in out
    )
    assert f"SQLite      plan list_cases: {covering} ix_cases_status_due_at_received_at" in out
    if "PostgreSQL  skipped" not in out:
        assert "PostgreSQL  large/baseline" in out
        # On tables this small PostgreSQL may prefer a bitmap scan, but of the same indexes.
        for operation, index in (
            ("member_cases", "ix_cases_requester_member_id_received_at"),
            ("list_cases", "ix_cases_status_due_at_received_at"),
        ):
            plan = [
                line
                for line in out.splitlines()
                if line.startswith(f"PostgreSQL  plan {operation}:")
            ]
            assert any(index in line for line in plan), plan


def test_a_longer_extension_is_refused_where_the_policy_does_not_allow_it(
    desk, cli, capsys, monkeypatch
):
    number = desk.open(now=now()).case_number
    run(capsys, cli, "move", number, "--to", "under_review", "--reason", "確認", "--staff", "田中")
    monkeypatch.setenv("PRIVACY_BOT_ORG", "kokusai-kogyo-kenpo")
    args = ("extend", number, "--days", "45", "--reason", "照会先が多いため", "--staff", "田中")
    code, _, err = run(capsys, cli, *args, "--longer")
    assert code == 2 and "上限を超える延長を定めていません" in err
    monkeypatch.setenv("PRIVACY_BOT_ORG", "osaka-city-kyosai")
    assert run(capsys, cli, *args)[0] == 2  # past the 30-day cap without --longer
    code, _, err = run(capsys, cli, *args, "--longer")
    assert (code, err) == (0, "")
    assert desk.case(number).extended_days == 45
