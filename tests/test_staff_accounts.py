"""Staff accounts: scrypt hashes, authentication, roles and the CLI (both backends)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.db.models import AuditLog, StaffAccount, StaffRole
from bot.staff import accounts
from bot.staff.accounts import (
    AccountError,
    authenticate,
    change_password,
    create_account,
    japanese,
    reset_password,
    set_active,
    verify_password,
)
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


# --- throttling and account changes ---------------------------------------------------------


def _audit_rows(sessions) -> list[AuditLog]:
    with sessions.begin() as session:
        return list(session.execute(sa.select(AuditLog).order_by(AuditLog.id)).scalars())


def _sign_in(sessions, name: str, password: str, now: datetime):
    with sessions.begin() as session:
        return authenticate(session, name, password, now)


def test_five_wrong_passwords_lock_for_fifteen_minutes(sessions):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    for _ in range(accounts.MAX_FAILED_LOGINS - 1):
        assert _sign_in(sessions, "tanaka", "wrong", NOW) is None
    # A right password before the fifth failure resets the count.
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW) is not None
    for _ in range(accounts.MAX_FAILED_LOGINS):
        assert _sign_in(sessions, "tanaka", "wrong", NOW) is None
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW) is None  # locked: even the right one
    later = NOW + timedelta(minutes=accounts.LOCK_MINUTES) - timedelta(seconds=1)
    assert _sign_in(sessions, "tanaka", PASSWORD, later) is None
    assert _sign_in(sessions, "tanaka", PASSWORD, later + timedelta(seconds=1)) is not None
    rows = _audit_rows(sessions)
    assert [row.action for row in rows].count("staff.locked") == 1
    refusal = [row for row in rows if row.detail.get("why") == "locked"]
    assert len(refusal) == 2 and all(row.action == "staff.login_failed" for row in refusal)
    assert PASSWORD not in str([row.detail for row in rows])
    with sessions.begin() as session:
        row = session.execute(sa.select(StaffAccount)).scalar_one()
        assert (row.failed_logins, row.locked_until) == (0, None)


def test_refusals_cost_a_scrypt_whatever_the_reason(sessions, monkeypatch):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
        create_account(session, "gone", "agent", PASSWORD, NOW)
    with sessions.begin() as session:
        set_active(session, 2, False, "admin", NOW)
    calls: list[str] = []
    real = accounts.hash_password

    def counted(password: str, salt: str) -> str:
        calls.append(salt)
        return real(password, salt)

    monkeypatch.setattr(accounts, "hash_password", counted)
    for name in ("nobody", "gone", "tanaka"):
        calls.clear()
        assert _sign_in(sessions, name, "wrong", NOW) is None
        assert len(calls) == 1, name


def test_deactivate_and_activate(sessions):
    with sessions.begin() as session:
        tanaka = create_account(session, "tanaka", "agent", PASSWORD, NOW).id
        create_account(session, "kanri", "admin", PASSWORD, NOW)
    with sessions.begin() as session:
        assert set_active(session, tanaka, False, "kanri", NOW).active is False
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW) is None
    with sessions.begin() as session, pytest.raises(AccountError, match="own account"):
        set_active(session, 2, False, "kanri", NOW)
    with sessions.begin() as session:
        assert set_active(session, tanaka, True, "kanri", NOW).active is True
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW) is not None
    actions = [(row.actor, row.action) for row in _audit_rows(sessions)]
    assert ("staff:kanri", "staff.account_deactivated") in actions
    assert ("staff:kanri", "staff.account_activated") in actions
    with sessions.begin() as session, pytest.raises(AccountError, match="no account"):
        set_active(session, 99, True, "kanri", NOW)


def test_change_and_reset_password(sessions):
    new = "another long passphrase"
    with sessions.begin() as session:
        tanaka = create_account(session, "tanaka", "agent", PASSWORD, NOW).id
    with sessions.begin() as session, pytest.raises(AccountError, match="current password"):
        change_password(session, tanaka, "wrong", new, NOW)
    with sessions.begin() as session, pytest.raises(AccountError, match="at least"):
        change_password(session, tanaka, PASSWORD, "short", NOW)
    with sessions.begin() as session, pytest.raises(AccountError, match="old one"):
        change_password(session, tanaka, PASSWORD, PASSWORD, NOW)
    with sessions.begin() as session:
        change_password(session, tanaka, PASSWORD, new, NOW)
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW) is None
    assert _sign_in(sessions, "tanaka", new, NOW) is not None
    with sessions.begin() as session:
        reset_password(session, tanaka, PASSWORD, "kanri", NOW)
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW) is not None
    assert japanese(AccountError("日本語 / English")) == "日本語"
    rows = _audit_rows(sessions)
    assert ("staff:kanri", "staff.password_reset") in [(r.actor, r.action) for r in rows]
    assert new not in str([row.detail for row in rows])
