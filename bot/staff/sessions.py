"""Signed-in console sessions: created at sign-in, checked on every request, ended.

The browser holds a random token (the ``console_session`` cookie); the database holds
only its SHA-256 (``staff_sessions.id``), so a copy of the table signs nobody in. Each
session has its own CSRF token. A session ends when its holder signs out, after
``idle`` without a request, ``absolute`` after sign-in whatever the activity, and when
the account is deactivated or its password changes. An ended session never comes back.

Plain functions: the caller passes the unit of work and the clock.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.db.audit import audit
from bot.db.models import StaffAccount, StaffRole, StaffSession

# However active a session is, it ends this long after sign-in (one working day).
ABSOLUTE_LIMIT = timedelta(hours=12)
TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; anything far longer is not ours.
MAX_TOKEN_CHARS = 128


class SessionError(Exception):
    """A session cannot be started: the account is unknown or deactivated."""


@dataclass(frozen=True)
class StaffSessionView:
    """A live session and who holds it."""

    id: str  # sha256 hex of the token
    account_id: int
    name: str
    role: StaffRole
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class SessionCheck:
    """What a token is worth now: the live session, or why there is none.

    ``reason``: ``unknown`` (no such session), ``ended`` (signed out or closed),
    ``expired`` (the idle or absolute limit was reached) or ``inactive`` (the account
    was deactivated). Returned rather than raised: ending an expired session is a
    write that the caller's unit of work must commit.
    """

    view: StaffSessionView | None
    reason: str | None = None


def token_hash(token: str) -> str:
    """The stored id of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_session(
    session: Session, account_id: int, now: datetime
) -> tuple[str, StaffSessionView]:
    """Start a session for an account that has just signed in.

    Returns:
        The token for the cookie (never stored) and the session.
    """
    account = session.get(StaffAccount, account_id)
    if account is None or not account.active:
        raise SessionError("inactive account")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = StaffSession(
        id=token_hash(token),
        account_id=account_id,
        csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    session.flush()
    return token, _view(row, account)


def _view(row: StaffSession, account: StaffAccount) -> StaffSessionView:
    return StaffSessionView(
        id=row.id,
        account_id=account.id,
        name=account.name,
        role=StaffRole(account.role),
        csrf_token=row.csrf_token,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


def expiry_of(
    row: StaffSession, now: datetime, idle: timedelta, absolute: timedelta = ABSOLUTE_LIMIT
) -> str | None:
    """``idle`` or ``absolute`` when the session has run out at ``now``, else None."""
    if now >= row.created_at + absolute:
        return "absolute"
    if now >= row.last_seen_at + idle:
        return "idle"
    return None


def check_session(
    session: Session,
    token: str,
    now: datetime,
    idle: timedelta,
    absolute: timedelta = ABSOLUTE_LIMIT,
    touch: bool = True,
) -> SessionCheck:
    """The live session of ``token``; with ``touch``, this request counts as activity.

    A session found expired is ended here and the expiry audited
    (``staff.session_expired``), so it is reported once and never revived.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        return SessionCheck(None, "unknown")
    found = session.execute(
        select(StaffSession, StaffAccount)
        .join(StaffAccount, StaffAccount.id == StaffSession.account_id)
        .where(StaffSession.id == token_hash(token))
        .with_for_update(of=StaffSession)
    ).first()
    if found is None:
        return SessionCheck(None, "unknown")
    row, account = found
    if row.ended_at is not None:
        return SessionCheck(None, "ended")
    if not account.active:
        row.ended_at = now
        return SessionCheck(None, "inactive")
    limit = expiry_of(row, now, idle, absolute)
    if limit is not None:
        row.ended_at = now
        audit(
            session,
            now,
            "staff.session_expired",
            f"staff:{account.name}",
            staff_account_id=account.id,
            limit=limit,
        )
        return SessionCheck(None, "expired")
    if touch:
        row.last_seen_at = now
    return SessionCheck(_view(row, account))


def touch_session(session: Session, session_id: str, now: datetime) -> None:
    """Count ``now`` as activity of a live session."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.id == session_id, StaffSession.ended_at.is_(None))
        .values(last_seen_at=now)
    )


def end_session(session: Session, token: str, now: datetime) -> StaffSessionView | None:
    """Sign out: end the session of ``token`` (audited ``staff.logout``).

    Returns:
        The session that was ended, or None if it was not live.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    found = session.execute(
        select(StaffSession, StaffAccount)
        .join(StaffAccount, StaffAccount.id == StaffSession.account_id)
        .where(StaffSession.id == token_hash(token), StaffSession.ended_at.is_(None))
    ).first()
    if found is None:
        return None
    row, account = found
    row.ended_at = now
    audit(session, now, "staff.logout", f"staff:{account.name}", staff_account_id=account.id)
    return _view(row, account)


def end_sessions_of(
    session: Session, account_id: int, now: datetime, except_id: str | None = None
) -> int:
    """End every live session of an account (deactivated, password changed).

    Returns:
        How many were ended.
    """
    query = update(StaffSession).where(
        StaffSession.account_id == account_id, StaffSession.ended_at.is_(None)
    )
    if except_id is not None:
        query = query.where(StaffSession.id != except_id)
    result = session.execute(
        query.values(ended_at=now).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
