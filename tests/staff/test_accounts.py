"""Staff accounts: scrypt hashes, sign-in and its throttling, roles and the CLI (both backends)."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from bot.db.migrate import downgrade, upgrade
from bot.db.models import AuditLog, SignInThrottle, StaffAccount, StaffRole
from bot.db.session import engine_for
from bot.staff import accounts
from bot.staff.accounts import (
    AccountError,
    SignInPolicy,
    StaffView,
    authenticate,
    change_password,
    create_account,
    japanese,
    list_accounts,
    reset_password,
    set_active,
    verify_password,
)
from bot.staff.cli import main

NOW = datetime(2025, 11, 24, 1, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"
POLICY = SignInPolicy(key=b"test-throttle-key")
OFFICE = "198.51.100.7"
ATTACKER = "203.0.113.66"


def _sign_in(
    sessions, name: str, password: str, now: datetime = NOW, address: str = OFFICE
) -> StaffView | None:
    with sessions.begin() as session:
        return authenticate(session, name, password, now, address=address, policy=POLICY)


def _audit_rows(sessions) -> list[AuditLog]:
    with sessions.begin() as session:
        return list(session.execute(sa.select(AuditLog).order_by(AuditLog.id)).scalars())


def _throttle_rows(sessions) -> list[SignInThrottle]:
    with sessions.begin() as session:
        return list(session.execute(sa.select(SignInThrottle)).scalars())


def _account(sessions, name: str) -> StaffAccount:
    with sessions.begin() as session:
        return session.execute(
            sa.select(StaffAccount).where(StaffAccount.name == name)
        ).scalar_one()


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
    ok = _sign_in(sessions, "tanaka", PASSWORD)
    assert ok is not None and ok.role is StaffRole.PRIVACY_OFFICER
    assert _sign_in(sessions, "tanaka", PASSWORD + "x") is None
    assert _sign_in(sessions, "nobody", PASSWORD) is None
    rows = _audit_rows(sessions)
    assert [(row.actor, row.action) for row in rows] == [
        ("system", "staff.account_created"),
        ("staff:tanaka", "staff.login"),
        ("system", "staff.login_failed"),
        ("system", "staff.login_failed"),
    ]
    assert rows[1].detail["address"] == OFFICE
    assert rows[2].detail["why"] == "wrong_password" and "staff_account_id" in rows[2].detail
    # The name typed for an unknown account is never recorded (it may be a password).
    assert rows[3].detail["why"] == "unknown" and "staff_account_id" not in rows[3].detail
    assert "nobody" not in str([row.detail for row in rows])


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


# --- who created an account --------------------------------------------------------------


def test_the_creator_is_recorded_and_audited(sessions):
    with sessions.begin() as session:
        made = create_account(
            session, "takahashi", "agent", PASSWORD, NOW, created_by="kanri", actor="staff:kanri"
        )
    assert made.created_by == "kanri"
    assert _account(sessions, "takahashi").created_by == "kanri"
    [created] = [row for row in _audit_rows(sessions) if row.action == "staff.account_created"]
    assert created.actor == "staff:kanri" and created.detail["created_by"] == "kanri"
    with sessions.begin() as session:
        assert [view.created_by for view in list_accounts(session)] == ["kanri"]


def test_the_cli_creates_an_account_from_stdin_and_records_the_os_user(
    migrated_url, monkeypatch, capsys, sessions
):
    monkeypatch.setattr("getpass.getuser", lambda: "opsuser")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["--url", migrated_url, "create-account", "tanaka", "--role", "agent"]
    assert main([*argv, "--password-stdin"]) == 0
    assert "account created: tanaka (agent)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main([*argv, "--password-stdin"]) == 2
    assert "exists" in capsys.readouterr().err
    assert _sign_in(sessions, "tanaka", PASSWORD) is not None
    assert _account(sessions, "tanaka").created_by == "cli:opsuser"


def test_the_cli_records_cli_when_the_os_user_is_unknown(migrated_url, monkeypatch, sessions):
    def no_user() -> str:
        raise OSError("no login name")

    monkeypatch.setattr("getpass.getuser", no_user)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["--url", migrated_url, "create-account", "sato", "--role", "admin", "--password-stdin"]
    assert main(argv) == 0
    assert _account(sessions, "sato").created_by == "cli"


def test_the_cli_prompts_twice(migrated_url, monkeypatch, capsys):
    answers = iter([PASSWORD, PASSWORD + "!"])
    monkeypatch.setattr(accounts, "MIN_PASSWORD_CHARS", 12)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert main(["--url", migrated_url, "create-account", "t", "--role", "admin"]) == 2
    assert "differ" in capsys.readouterr().err


def test_the_cli_works_the_queue(migrated_url, capsys, sessions):
    from bot.core.conversation import Conversation
    from bot.handoff import escalations

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


# --- the same work and the same answer on every path ----------------------------------------


@pytest.fixture
def scrypt_calls(monkeypatch) -> list[int]:
    """The length (bytes) of every password scrypt is run on."""
    calls: list[int] = []
    real = accounts.hash_password

    def counted(password: str, salt: str) -> str:
        calls.append(len(password.encode("utf-8")))
        return real(password, salt)

    monkeypatch.setattr(accounts, "hash_password", counted)
    return calls


def test_every_sign_in_path_costs_one_bounded_scrypt_and_gives_the_same_none(
    sessions, scrypt_calls
):
    long_password = "長" * accounts.MAX_PASSWORD_CHARS  # the longest the rules allow
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
        create_account(session, "gone", "agent", PASSWORD, NOW)
        create_account(session, "long", "agent", long_password, NOW)
        create_account(session, "held", "agent", PASSWORD, NOW)
    with sessions.begin() as session:
        set_active(session, 2, False, "admin", NOW)
    for _ in range(POLICY.pair_free + 1):  # "held" now waits at this address
        assert _sign_in(sessions, "held", "wrong password!") is None
    bound = accounts.MAX_PASSWORD_CHARS * 3  # UTF-8 bytes of 256 characters, at most
    paths = {
        "unknown name": ("nobody", PASSWORD),
        "wrong password": ("tanaka", PASSWORD + "x"),
        # Over the limit but starting with the right one: refused only after the work.
        "over-long password": ("long", long_password + "x" * 10_000),
        "over-long, unknown name": ("nobody", "x" * 1_000_000),
        "inactive account": ("gone", PASSWORD),
        "throttled account, right password": ("held", PASSWORD),
    }
    for path, (name, password) in paths.items():
        scrypt_calls.clear()
        assert _sign_in(sessions, name, password) is None, path
        assert len(scrypt_calls) == 1, path
        assert scrypt_calls[0] <= bound, path
    scrypt_calls.clear()
    assert _sign_in(sessions, "long", long_password) is not None
    assert len(scrypt_calls) == 1
    why = [row.detail.get("why") for row in _audit_rows(sessions)][-7:-1]
    assert why == ["unknown", "wrong_password", "too_long", "unknown", "inactive", "throttled"]


def test_change_password_checks_an_over_long_current_password_after_the_work(
    sessions, scrypt_calls
):
    with sessions.begin() as session:
        tanaka = create_account(session, "tanaka", "agent", PASSWORD, NOW).id
    scrypt_calls.clear()
    with sessions.begin() as session, pytest.raises(AccountError, match="current password"):
        change_password(session, tanaka, PASSWORD + "x" * 5_000, "another long passphrase", NOW)
    assert len(scrypt_calls) == 1 and scrypt_calls[0] <= accounts.MAX_PASSWORD_CHARS


# --- throttling ------------------------------------------------------------------------------


@pytest.fixture
def fast_hash(monkeypatch) -> None:
    """A cheap stand-in for scrypt: these tests count attempts, not their cost."""
    monkeypatch.setattr(
        accounts,
        "hash_password",
        lambda password, salt: hashlib.sha512(f"{salt}:{password}".encode()).hexdigest(),
    )


def _wait_of(sessions, name_key: str, address_key: str) -> timedelta | None:
    with sessions.begin() as session:
        row = session.get(SignInThrottle, (name_key, address_key))
        if row is None or row.blocked_until is None or row.last_failed_at is None:
            return None
        return row.blocked_until - row.last_failed_at


def test_the_wait_doubles_with_each_failure_up_to_the_cap_then_the_right_password_works(
    sessions, fast_hash
):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    pair = (POLICY.name_key("tanaka"), POLICY.address_key(OFFICE))
    now = NOW
    waits = []
    for _ in range(9):
        assert _sign_in(sessions, "tanaka", "wrong password!", now) is None
        wait = _wait_of(sessions, *pair)
        waits.append(None if wait is None else int(wait.total_seconds()))
        if wait is not None:
            # One second before the wait ends even the right password is refused, and
            # the refusal is not counted (the wait does not grow).
            assert _sign_in(sessions, "tanaka", PASSWORD, now + wait - timedelta(seconds=1)) is None
            assert _wait_of(sessions, *pair) == wait
            now += wait
    assert waits == [None, None, None, 60, 120, 240, 480, 900, 900]
    assert _sign_in(sessions, "tanaka", PASSWORD, now) is not None
    throttled = [row for row in _audit_rows(sessions) if row.action == "staff.throttled"]
    assert [row.detail["seconds"] for row in throttled] == [60, 120, 240, 480, 900, 900]
    assert {row.detail["scope"] for row in throttled} == {"name_at_address"}
    # The right password cleared the count: the next typo is free again.
    assert _sign_in(sessions, "tanaka", "wrong password!", now) is None
    assert _wait_of(sessions, *pair) is None


def test_the_cap_follows_the_policy(sessions):
    policy = SignInPolicy(key=b"k", max_delay=timedelta(minutes=3))
    assert [policy.delay(failures, 3) for failures in (3, 4, 5, 6, 7, 100)] == [
        None,
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=3),
        timedelta(minutes=3),
        timedelta(minutes=3),
    ]


def test_an_attacker_elsewhere_never_locks_the_staff_member_out(sessions, fast_hash):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW, OFFICE) is not None  # a known address
    # An attacker guesses tanaka's password for an hour from many addresses, every
    # address once a minute.
    now = NOW + timedelta(minutes=1)
    for minute in range(60):
        for host in range(12):
            assert _sign_in(sessions, "tanaka", f"guess {minute}", now, f"192.0.2.{host}") is None
        # Meanwhile the staff member signs in from the office whenever they like.
        assert _sign_in(sessions, "tanaka", PASSWORD, now, OFFICE) is not None, minute
        now += timedelta(minutes=1)
    # Few guesses were checked at all: the free ones, then one per name-wide wait
    # (1, 2, 4, 8, 15, 15, 15 minutes fit in the hour).
    checked = [
        row
        for row in _audit_rows(sessions)
        if row.action == "staff.login_failed" and row.detail["why"] == "wrong_password"
    ]
    assert len(checked) <= POLICY.name_free + 1 + 7, len(checked)
    # From a new address (travelling) they get in at the latest the cap after the
    # attack's last guess: nothing stays locked.
    last = now - timedelta(minutes=1)
    assert _sign_in(sessions, "tanaka", PASSWORD, last + POLICY.max_delay, "233.252.0.9")


def test_failures_of_one_name_from_many_addresses_hold_it_back_until_the_wait_passes(
    sessions, fast_hash
):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    for host in range(POLICY.name_free + 1):
        assert _sign_in(sessions, "tanaka", "wrong password!", NOW, f"192.0.2.{host}") is None
    name_wait = _wait_of(sessions, POLICY.name_key("tanaka"), accounts.ANY)
    assert name_wait == timedelta(minutes=1)
    # From an address that never failed and never signed in: held back, then let in.
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW, "233.252.0.1") is None
    later = NOW + name_wait
    assert _sign_in(sessions, "tanaka", PASSWORD, later, "233.252.0.1") is not None
    with sessions.begin() as session:
        [view] = list_accounts(session, NOW, POLICY)
        assert view.throttled_until == later
        [view] = list_accounts(session, later, POLICY)
        assert view.throttled_until is None


def test_one_address_is_throttled_across_account_names(sessions, fast_hash):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
        create_account(session, "sato", "agent", PASSWORD, NOW)
    names = ["sato", "nobody", "admin", "root", "suzuki", "yamada", "kato", "ito", "sasaki", "abe"]
    for name in [*names, "one more"][: POLICY.address_free + 1]:  # one failure per name
        assert _sign_in(sessions, name, "wrong password!", NOW, ATTACKER) is None
    assert _wait_of(sessions, accounts.ANY, POLICY.address_key(ATTACKER)) == timedelta(minutes=1)
    # Every name from that address is held back, even with the right password...
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW, ATTACKER) is None
    # ...but not from another address, nor from the same one once the wait passes.
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW, OFFICE) is not None
    assert _sign_in(sessions, "sato", PASSWORD, NOW + timedelta(minutes=1), ATTACKER) is not None


def test_unknown_and_known_names_are_throttled_alike_and_stored_only_as_hmacs(sessions, fast_hash):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    for name in ("tanaka", "nobody"):
        for _ in range(POLICY.pair_free + 1):
            assert _sign_in(sessions, name, "wrong password!", NOW, ATTACKER) is None
    known = _wait_of(sessions, POLICY.name_key("tanaka"), POLICY.address_key(ATTACKER))
    unknown = _wait_of(sessions, POLICY.name_key("nobody"), POLICY.address_key(ATTACKER))
    assert known == unknown == timedelta(minutes=1)
    rows = _throttle_rows(sessions)
    stored = str([(row.name_key, row.address_key) for row in rows])
    for secret in ("tanaka", "nobody", ATTACKER, "wrong password!"):
        assert secret not in stored
    assert all(len(key) == 64 for row in rows for key in (row.name_key, row.address_key) if key)


def test_a_success_forgets_stale_rows_but_keeps_known_addresses_and_running_counts(
    sessions, fast_hash
):
    with sessions.begin() as session:
        create_account(session, "tanaka", "agent", PASSWORD, NOW)
    assert _sign_in(sessions, "tanaka", PASSWORD, NOW, OFFICE) is not None
    assert _sign_in(sessions, "nobody", "wrong password!", NOW, ATTACKER) is None
    later = NOW + timedelta(hours=accounts.FAILURE_MEMORY_HOURS, minutes=1)
    assert _sign_in(sessions, "ghost", "wrong password!", later, ATTACKER) is None
    assert _sign_in(sessions, "tanaka", PASSWORD, later, OFFICE) is not None
    keys = {(row.name_key, row.address_key) for row in _throttle_rows(sessions)}
    nobody = POLICY.name_key("nobody")
    assert all(name_key != nobody for name_key, _ in keys)  # a day old: forgotten
    assert (POLICY.name_key("ghost"), POLICY.address_key(ATTACKER)) in keys  # still counting
    assert (POLICY.name_key("tanaka"), POLICY.address_key(OFFICE)) in keys  # known address


# --- account changes ---------------------------------------------------------------------------


def test_deactivate_and_activate(sessions):
    with sessions.begin() as session:
        tanaka = create_account(session, "tanaka", "agent", PASSWORD, NOW).id
        create_account(session, "kanri", "admin", PASSWORD, NOW)
    with sessions.begin() as session:
        assert set_active(session, tanaka, False, "kanri", NOW).active is False
    assert _sign_in(sessions, "tanaka", PASSWORD) is None
    with sessions.begin() as session, pytest.raises(AccountError, match="own account"):
        set_active(session, 2, False, "kanri", NOW)
    with sessions.begin() as session:
        assert set_active(session, tanaka, True, "kanri", NOW).active is True
    assert _sign_in(sessions, "tanaka", PASSWORD) is not None
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
    assert _sign_in(sessions, "tanaka", PASSWORD) is None
    assert _sign_in(sessions, "tanaka", new) is not None
    with sessions.begin() as session:
        reset_password(session, tanaka, PASSWORD, "kanri", NOW)
    assert _sign_in(sessions, "tanaka", PASSWORD) is not None
    assert japanese(AccountError("日本語 / English")) == "日本語"
    rows = _audit_rows(sessions)
    assert ("staff:kanri", "staff.password_reset") in [(r.actor, r.action) for r in rows]
    assert new not in str([row.detail for row in rows])


def test_revision_0007_keeps_accounts_with_live_sessions_and_goes_back(db_url, secret):
    # SQLite: dropping the lock columns must not rebuild staff_accounts, which a live
    # session refers to (foreign keys are on).
    upgrade(db_url, "0006")
    at = datetime(2026, 1, 1)
    with engine_for(db_url).begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO staff_accounts (name, role, password_salt, password_hash, active,"
                " created_at, failed_logins, locked_until)"
                " VALUES ('tanaka', 'agent', '00', '00', :active, :at, 4, :at)"
            ),
            {"active": True, "at": at},
        )
        connection.execute(
            sa.text(
                "INSERT INTO staff_sessions (id, account_id, csrf_token, created_at, last_seen_at)"
                " VALUES ('s', 1, 'c', :at, :at)"
            ),
            {"at": at},
        )
    upgrade(db_url)
    with engine_for(db_url).begin() as connection:
        assert connection.execute(sa.text("SELECT name, created_by FROM staff_accounts")).all() == [
            ("tanaka", None)
        ]
        assert connection.execute(sa.text("SELECT account_id FROM staff_sessions")).all() == [(1,)]
    downgrade(db_url, "0006")
    with engine_for(db_url).begin() as connection:
        assert connection.execute(
            sa.text("SELECT failed_logins, locked_until FROM staff_accounts")
        ).all() == [(0, None)]
    upgrade(db_url)
