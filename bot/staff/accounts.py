"""Staff accounts: names, roles and scrypt password hashes (stdlib only).

Each account has its own random salt; a password is checked in constant time. A wrong
name and a wrong password look the same to the caller (None), and both cost one
scrypt, so timing does not tell which names exist.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.db.audit import audit
from bot.db.models import StaffAccount, StaffRole

# scrypt cost: ~16 MiB and a few tens of milliseconds per check.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 64
MIN_PASSWORD_CHARS = 12
_DUMMY_SALT = "00" * 16


class AccountError(Exception):
    """An account that cannot be created (duplicate name, weak password, bad role)."""


@dataclass(frozen=True)
class StaffView:
    """A staff account without its secrets."""

    id: int
    name: str
    role: StaffRole
    active: bool


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


def _view(row: StaffAccount) -> StaffView:
    return StaffView(id=row.id, name=row.name, role=StaffRole(row.role), active=row.active)


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
    if not name or len(name) > 64:
        raise AccountError("name must be 1–64 characters")
    try:
        role = StaffRole(role)
    except ValueError as error:
        raise AccountError(f"unknown role: {role}") from error
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
    if session.execute(select(StaffAccount.id).where(StaffAccount.name == name)).first():
        raise AccountError(f"account {name} exists")
    salt = secrets.token_hex(16)
    row = StaffAccount(
        name=name,
        role=role.value,
        password_salt=salt,
        password_hash=hash_password(password, salt),
        active=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit(session, now, "staff.account_created", "system", staff_account_id=row.id, role=role.value)
    return _view(row)


def authenticate(session: Session, name: str, password: str, now: datetime) -> StaffView | None:
    """The active account if ``password`` is right, else None (audited either way)."""
    row = session.execute(
        select(StaffAccount).where(StaffAccount.name == name.strip())
    ).scalar_one_or_none()
    if row is None or not row.active:
        verify_password(password, _DUMMY_SALT, "00" * KEY_BYTES)  # same cost as a real check
        audit(session, now, "staff.login_failed", "system")
        return None
    if not verify_password(password, row.password_salt, row.password_hash):
        audit(session, now, "staff.login_failed", "system", staff_account_id=row.id)
        return None
    row.last_login_at = now
    audit(session, now, "staff.login", f"staff:{row.name}", staff_account_id=row.id)
    return _view(row)
