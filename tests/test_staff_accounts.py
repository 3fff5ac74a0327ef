"""Staff accounts: scrypt hashes, authentication, roles and the CLI (both backends)."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from bot.db.models import AuditLog, StaffAccount, StaffRole
from bot.staff import accounts
from bot.staff.accounts import AccountError, authenticate, create_account, verify_password
from bot.staff.cli import main

pytest_plugins = ["tests.db_fixtures"]

NOW = datetime(2025, 11, 24, 1, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


def test_hash_is_salted_per_account_and_verified(sessions):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
        create_account(session, "suzuki", StaffRole.ADMIN, PASSWORD, NOW)
    with sessions.begin() as session:
        rows = session.execute(sa.select(StaffAccount).order_by(StaffAccount.id)).scalars().all()
        assert rows[0].password_salt != rows[1].password_salt
        assert rows[0].password_hash != rows[1].password_hash
        assert PASSWORD not in rows[0].password_hash
        assert verify_password(PASSWORD, rows[0].password_salt, rows[0].password_hash)
        assert [row.role for row in rows] == ["agent", "admin"]


def test_authenticate(sessions):
    with sessions.begin() as session:
        create_account(session, "tanaka", "privacy_officer", PASSWORD, NOW)
    with sessions.begin() as session:
        ok = authenticate(session, "tanaka", PASSWORD, NOW)
        assert ok is not None and ok.role is StaffRole.PRIVACY_OFFICER
        assert authenticate(session, "tanaka", PASSWORD + "x", NOW) is None
        assert authenticate(session, "nobody", PASSWORD, NOW) is None
    with sessions.begin() as session:
        actions = [
            (row.actor, row.action)
            for row in session.execute(sa.select(AuditLog).order_by(AuditLog.id)).scalars()
        ]
    assert actions == [
        ("system", "staff.account_created"),
        ("staff:tanaka", "staff.login"),
        ("system", "staff.login_failed"),
        ("system", "staff.login_failed"),
    ]


@pytest.mark.parametrize(
    ("name", "role", "password", "message"),
    [
        ("tanaka", "boss", PASSWORD, "unknown role"),
        ("tanaka", "agent", "short", "at least"),
        ("", "agent", PASSWORD, "name"),
    ],
)
def test_bad_accounts_are_refused(sessions, name, role, password, message):
    with sessions.begin() as session, pytest.raises(AccountError, match=message):
        create_account(session, name, role, password, NOW)


def test_the_role_is_checked_by_the_database(sessions):
    with pytest.raises(sa.exc.IntegrityError), sessions.begin() as session:
        session.add(
            StaffAccount(
                name="x", role="boss", password_salt="00", password_hash="00", created_at=NOW
            )
        )


def test_the_cli_creates_an_account_from_stdin(migrated_url, monkeypatch, capsys, sessions):
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["--url", migrated_url, "create-account", "tanaka", "--role", "agent"]
    assert main([*argv, "--password-stdin"]) == 0
    assert "account created: tanaka (agent)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main([*argv, "--password-stdin"]) == 2
    assert "exists" in capsys.readouterr().err
    with sessions.begin() as session:
        assert authenticate(session, "tanaka", PASSWORD, NOW) is not None


def test_the_cli_prompts_twice(migrated_url, monkeypatch, capsys):
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr(accounts, "MIN_PASSWORD_CHARS", 12)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["--url", migrated_url, "create-account", "t", "--role", "admin"]) == 2
    assert "differ" in capsys.readouterr().err


def test_the_cli_works_the_queue(migrated_url, capsys, sessions):
    from bot import escalations
    from bot.verification import Conversation

    with sessions.begin() as session:
        opened = escalations.escalate(
            session, Conversation("s1", "start", "rest"), "complaint", NOW
        )
    assert main(["--url", migrated_url, "queue"]) == 0
    out = capsys.readouterr().out
    assert f"#{opened.id}  waiting  complaint  rest  s1" in out and "waiting: 1" in out
    assert main(["--url", migrated_url, "claim", str(opened.id), "--staff", "tanaka"]) == 0
    assert "in_progress" in capsys.readouterr().out
    assert main(["--url", migrated_url, "claim", str(opened.id), "--staff", "suzuki"]) == 2
    assert (
        main(["--url", migrated_url, "close", str(opened.id), "--staff", "tanaka", "--note", "済"])
        == 0
    )
    assert "closed" in capsys.readouterr().out
