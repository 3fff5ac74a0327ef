"""Staff accounts: names, roles, scrypt password hashes, sign-in throttling (stdlib only).

Each account has its own random salt; a password is checked in constant time. A wrong
name, a wrong password, a locked and a deactivated account look the same to the caller
(None), and all cost one scrypt, so neither the answer nor its timing tells which names
exist. :data:`MAX_FAILED_LOGINS` wrong passwords in a row lock the account for
:data:`LOCK_MINUTES`; while locked even the right password is refused.

Every sign-in, failure, lock and account change is audited (never a password). Messages
of :class:`AccountError` are Japanese, with the English gist after `` / `` for the
command line; the console shows the Japanese part.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.audit import audit
from bot.db.models import StaffAccount, StaffRole
from bot.staff.sessions import end_sessions_of

# scrypt cost: ~16 MiB and a few tens of milliseconds per check.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 64
MIN_PASSWORD_CHARS = 12
# Long enough for any passphrase; bounded so a huge body cannot make scrypt chew on it.
MAX_PASSWORD_CHARS = 256
MAX_NAME_CHARS = 64
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
_DUMMY_SALT = "00" * 16


class AccountError(Exception):
    """An account change that is refused (duplicate name, weak password, bad role...)."""


@dataclass(frozen=True)
class StaffView:
    """A staff account without its secrets."""

    id: int
    name: str
    role: StaffRole
    active: bool
    created_at: datetime | None = None
    last_login_at: datetime | None = None
    locked_until: datetime | None = None


def hash_password(password: str, salt_hex: str) -> str:
    """The scrypt hash (hex) of ``password`` with the salt ``salt_hex``."""
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=bytes.fromhex(salt_hex),
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=KEY_BYTES,
    ).hex()


def verify_password(password: str, salt_hex: str, expected_hex: str) -> bool:
    """Whether ``password`` hashes to ``expected_hex``, compared in constant time."""
    return hmac.compare_digest(hash_password(password, salt_hex), expected_hex)


def _burn(password: str) -> None:
    """Spend one scrypt for nothing, so a refusal costs what a real check costs."""
    verify_password(password[:MAX_PASSWORD_CHARS], _DUMMY_SALT, "00" * KEY_BYTES)


def _view(row: StaffAccount) -> StaffView:
    return StaffView(
        id=row.id,
        name=row.name,
        role=StaffRole(row.role),
        active=row.active,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        locked_until=row.locked_until,
    )


def check_password_rules(password: str) -> None:
    """Refuse a password the product does not accept.

    Raises:
        AccountError: shorter than :data:`MIN_PASSWORD_CHARS` or longer than
            :data:`MAX_PASSWORD_CHARS`.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(
            f"パスワードは{MIN_PASSWORD_CHARS}文字以上にしてください。"
            f" / password must have at least {MIN_PASSWORD_CHARS} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(
            f"パスワードは{MAX_PASSWORD_CHARS}文字以内にしてください。"
            f" / password must have at most {MAX_PASSWORD_CHARS} characters"
        )


def _set_password(row: StaffAccount, password: str) -> None:
    check_password_rules(password)
    row.password_salt = secrets.token_hex(16)
    row.password_hash = hash_password(password, row.password_salt)
    row.failed_logins = 0
    row.locked_until = None


def create_account(
    session: Session, name: str, role: StaffRole | str, password: str, now: datetime
) -> StaffView:
    """Create a staff account.

    Args:
        session: the unit of work.
        name: the login name (unique).
        role: agent, privacy_officer or admin.
        password: at least :data:`MIN_PASSWORD_CHARS` characters.
        now: the current time (aware).

    Raises:
        AccountError: bad name, role or password, or the name is taken.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise AccountError(
            f"名前は1〜{MAX_NAME_CHARS}文字で入力してください。"
            f" / name must be 1–{MAX_NAME_CHARS} characters"
        )
    try:
        role = StaffRole(role)
    except ValueError as error:
        raise AccountError(f"不明な役割です: {role} / unknown role: {role}") from error
    check_password_rules(password)
    if session.execute(select(StaffAccount.id).where(StaffAccount.name == name)).first():
        raise AccountError(
            f"「{name}」という名前のアカウントはすでにあります。 / account {name} exists"
        )
    row = StaffAccount(name=name, role=role.value, active=True, created_at=now, failed_logins=0)
    _set_password(row, password)
    session.add(row)
    session.flush()
    audit(session, now, "staff.account_created", "system", staff_account_id=row.id, role=role.value)
    return _view(row)


def authenticate(session: Session, name: str, password: str, now: datetime) -> StaffView | None:
    """The active account if ``password`` is right, else None (audited either way).

    A wrong password counts towards the lock; the :data:`MAX_FAILED_LOGINS`-th in a row
    locks the account for :data:`LOCK_MINUTES` minutes (audited ``staff.locked``). A
    right password resets the count. Unknown names, deactivated and locked accounts
    cost the same scrypt and give the same None. The attempted name is never audited
    for an unknown account: people type their password into the name field.
    """
    row = session.execute(
        select(StaffAccount).where(StaffAccount.name == name.strip()).with_for_update()
    ).scalar_one_or_none()
    if row is None or not row.active:
        _burn(password)
        if row is None:
            audit(session, now, "staff.login_failed", "system")
        else:
            audit(
                session,
                now,
                "staff.login_failed",
                "system",
                staff_account_id=row.id,
                why="inactive",
            )
        return None
    if row.locked_until is not None and now < row.locked_until:
        _burn(password)
        audit(session, now, "staff.login_failed", "system", staff_account_id=row.id, why="locked")
        return None
    if len(password) > MAX_PASSWORD_CHARS or not verify_password(
        password, row.password_salt, row.password_hash
    ):
        row.failed_logins = (row.failed_logins or 0) + 1
        audit(
            session,
            now,
            "staff.login_failed",
            "system",
            staff_account_id=row.id,
            failed_logins=row.failed_logins,
        )
        if row.failed_logins >= MAX_FAILED_LOGINS:
            row.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            row.failed_logins = 0
            audit(
                session,
                now,
                "staff.locked",
                "system",
                staff_account_id=row.id,
                minutes=LOCK_MINUTES,
            )
        return None
    row.failed_logins = 0
    row.locked_until = None
    row.last_login_at = now
    audit(session, now, "staff.login", f"staff:{row.name}", staff_account_id=row.id)
    return _view(row)


def _account(session: Session, account_id: int) -> StaffAccount:
    row = session.execute(
        select(StaffAccount).where(StaffAccount.id == account_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise AccountError(
            f"アカウント #{account_id} は見つかりません。 / no account #{account_id}"
        )
    return row


def list_accounts(session: Session) -> list[StaffView]:
    """Every staff account by name (there are few)."""
    rows = session.execute(select(StaffAccount).order_by(StaffAccount.name)).scalars()
    return [_view(row) for row in rows]


def get_account(session: Session, account_id: int) -> StaffView:
    """One account.

    Raises:
        AccountError: no such account.
    """
    return _view(_account(session, account_id))


def set_active(
    session: Session, account_id: int, active: bool, actor: str, now: datetime
) -> StaffView:
    """Deactivate (or activate again) an account; deactivation ends its sessions.

    Activating also lifts a sign-in lock. Nobody deactivates their own account: the
    last administrator could otherwise lock everyone out.

    Args:
        session: the unit of work.
        account_id: the account changed.
        active: the new state.
        actor: the name of the staff member who does it (audited).
        now: the current time (aware).

    Raises:
        AccountError: unknown account, or one's own.
    """
    row = _account(session, account_id)
    if not active and row.name == actor:
        raise AccountError(
            "ご自身のアカウントは無効にできません。 / you cannot deactivate your own account"
        )
    if row.active == active:
        return _view(row)
    row.active = active
    if active:
        row.failed_logins = 0
        row.locked_until = None
    else:
        end_sessions_of(session, row.id, now)
    audit(
        session,
        now,
        "staff.account_activated" if active else "staff.account_deactivated",
        f"staff:{actor}",
        staff_account_id=row.id,
    )
    return _view(row)


def reset_password(
    session: Session, account_id: int, password: str, actor: str, now: datetime
) -> StaffView:
    """Set a new password chosen by an administrator; ends the account's sessions.

    Lifts a sign-in lock too.

    Raises:
        AccountError: unknown account or a password the rules refuse.
    """
    row = _account(session, account_id)
    _set_password(row, password)
    end_sessions_of(session, row.id, now)
    audit(session, now, "staff.password_reset", f"staff:{actor}", staff_account_id=row.id)
    return _view(row)


def change_password(
    session: Session,
    account_id: int,
    current: str,
    new: str,
    now: datetime,
    keep_session_id: str | None = None,
) -> StaffView:
    """A staff member changes their own password; their other sessions end.

    Args:
        session: the unit of work.
        account_id: the account (the signed-in one).
        current: the password now, checked first.
        new: the new password.
        now: the current time (aware).
        keep_session_id: the session the change was made from, left open.

    Raises:
        AccountError: the current password is wrong, or the new one is refused.
    """
    row = _account(session, account_id)
    if len(current) > MAX_PASSWORD_CHARS or not verify_password(
        current, row.password_salt, row.password_hash
    ):
        audit(
            session,
            now,
            "staff.password_change_failed",
            f"staff:{row.name}",
            staff_account_id=row.id,
        )
        raise AccountError("現在のパスワードが違います。 / the current password is wrong")
    if hmac.compare_digest(current.encode("utf-8"), new.encode("utf-8")):
        raise AccountError(
            "新しいパスワードは現在のものと別にしてください。 / the new password is the old one"
        )
    _set_password(row, new)
    end_sessions_of(session, row.id, now, except_id=keep_session_id)
    audit(session, now, "staff.password_changed", f"staff:{row.name}", staff_account_id=row.id)
    return _view(row)


def japanese(error: Exception) -> str:
    """The Japanese part of an error message ``日本語 / English gist``."""
    return str(error).split(" / ", 1)[0].strip()
