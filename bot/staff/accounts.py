"""Staff accounts: names, roles, scrypt password hashes, sign-in throttling.

Each account has its own random salt; a password is checked in constant time.

Sign-in answers the same for every failure and costs the same: an unknown name, a
wrong password, a password over :data:`MAX_PASSWORD_CHARS`, a deactivated account and
an attempt held back by the throttle all come back as None after exactly one scrypt of
at most :data:`MAX_PASSWORD_CHARS` characters (an over-long password is refused only
after that work), so neither the answer nor its timing tells which names exist.

Throttling, instead of a lock that anyone who knows a name could set off: failures are
counted in ``signin_throttles`` (so they hold across console replicas) under three
keys, each with some failures free and then a wait before its next attempt that starts
at one minute and doubles with every further failure up to a cap (15 minutes by
default, ``CONSOLE_SIGNIN_MAX_DELAY_MINUTES``):

- the name at one client address (:data:`PAIR_FREE_FAILURES` free): one guesser at one
  account;
- the client address, whatever names it tries (:data:`ADDRESS_FREE_FAILURES` free):
  one address guessing across names;
- the name, from every address (:data:`NAME_FREE_FAILURES` free): many addresses
  guessing one account. This one does not hold back an address the account signed in
  from within :data:`KNOWN_ADDRESS_DAYS` days, so an attacker elsewhere cannot keep the
  staff member out of their own office; from a new address they wait at most the cap.

An attempt made while any of its keys waits is refused without checking the password
(after the same scrypt) and is not counted. A right password clears the name-at-address
count and marks that address as known for the account; the other counts are forgotten
after :data:`FAILURE_MEMORY_HOURS` hours without a failure. So an attacker gets a
bounded number of guesses per account per day, however many addresses they use, and
never locks anyone out for longer than the cap. Names and addresses are stored only as
HMACs with the console's key: the table neither lists the names people tried nor keeps a
password typed into the name field, and it looks the same for names that exist.

Every sign-in, failure, wait and account change is audited (never a password, and never
the name typed for an unknown account). Messages of :class:`AccountError` are Japanese,
with the English gist after `` / `` for the command line; the console shows the
Japanese part.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.db.audit import audit
from bot.db.models import SignInThrottle, StaffAccount, StaffRole
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
_DUMMY_SALT = "00" * 16

# Sign-in throttling (see the module docstring). A few typos are free; an office of
# staff behind one address shares that address's allowance, hence the larger ones.
PAIR_FREE_FAILURES = 3
ADDRESS_FREE_FAILURES = 10
NAME_FREE_FAILURES = 10
FIRST_DELAY_SECONDS = 60
MAX_DELAY_MINUTES = 15
FAILURE_MEMORY_HOURS = 24
KNOWN_ADDRESS_DAYS = 90
# The empty half of a per-name or per-address key (an HMAC is never empty).
ANY = ""
# Stale throttle rows forgotten per successful sign-in, at most (bounded work).
_FORGET_BATCH = 1000


class AccountError(Exception):
    """An account change that is refused (duplicate name, weak password, bad role...)."""


@dataclass(frozen=True)
class StaffView:
    """A staff account without its secrets.

    ``throttled_until`` is filled by :func:`list_accounts` when asked: the end of the
    wait that failures from many addresses put on the name (known addresses pass).
    """

    id: int
    name: str
    role: StaffRole
    active: bool
    created_at: datetime | None = None
    last_login_at: datetime | None = None
    created_by: str | None = None
    throttled_until: datetime | None = None


@dataclass(frozen=True)
class SignInPolicy:
    """How failed sign-ins are counted and held back (see the module docstring).

    Attributes:
        key: the HMAC key of the names and addresses stored in ``signin_throttles``;
            every console replica must use the same one.
        max_delay: the longest wait a run of failures imposes.
        first_delay: the first wait, doubled by each further failure.
        pair_free: failures of one name at one address before a wait.
        address_free: failures from one address, whatever the names, before a wait.
        name_free: failures of one name from any address before a wait.
        memory: failures are forgotten after this long without one.
        known_for: an address the account signed in from counts as its own this long.
    """

    key: bytes = field(repr=False)
    max_delay: timedelta = timedelta(minutes=MAX_DELAY_MINUTES)
    first_delay: timedelta = timedelta(seconds=FIRST_DELAY_SECONDS)
    pair_free: int = PAIR_FREE_FAILURES
    address_free: int = ADDRESS_FREE_FAILURES
    name_free: int = NAME_FREE_FAILURES
    memory: timedelta = timedelta(hours=FAILURE_MEMORY_HOURS)
    known_for: timedelta = timedelta(days=KNOWN_ADDRESS_DAYS)

    def name_key(self, name: str) -> str:
        """The stored key of a name as typed (stripped, bounded)."""
        return self._digest("name", name.strip()[: MAX_NAME_CHARS + 1])

    def address_key(self, address: str) -> str:
        """The stored key of a client address."""
        return self._digest("address", address[:128])

    def _digest(self, kind: str, value: str) -> str:
        message = f"{kind}\x00{value}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def delay(self, failures: int, free: int) -> timedelta | None:
        """The wait after the ``failures``-th failure of a key with ``free`` free ones."""
        over = failures - free
        if over <= 0:
            return None
        # The exponent is capped so that a long run cannot overflow timedelta.
        return min(self.first_delay * 2 ** min(over - 1, 30), self.max_delay)


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


def _checked(password: str, salt_hex: str, expected_hex: str) -> bool:
    """``password`` is right: one scrypt of at most MAX_PASSWORD_CHARS characters.

    The length is judged after the work, so an over-long password costs what any other
    does (it used to be refused at once, which told that the name existed).
    """
    right = verify_password(password[:MAX_PASSWORD_CHARS], salt_hex, expected_hex)
    return right and len(password) <= MAX_PASSWORD_CHARS


def _burn(password: str) -> None:
    """Spend one scrypt for nothing, so a refusal costs what a real check costs."""
    _checked(password, _DUMMY_SALT, "00" * KEY_BYTES)


def _view(row: StaffAccount, throttled_until: datetime | None = None) -> StaffView:
    return StaffView(
        id=row.id,
        name=row.name,
        role=StaffRole(row.role),
        active=row.active,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
        created_by=row.created_by,
        throttled_until=throttled_until,
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


def create_account(
    session: Session,
    name: str,
    role: StaffRole | str,
    password: str,
    now: datetime,
    *,
    created_by: str | None = None,
    actor: str = "system",
) -> StaffView:
    """Create a staff account.

    Args:
        session: the unit of work.
        name: the login name (unique).
        role: agent, privacy_officer or admin.
        password: at least :data:`MIN_PASSWORD_CHARS` characters.
        now: the current time (aware).
        created_by: who creates it, shown on the accounts page: the administrator's
            name (the console), ``cli:<os user>`` (the command line).
        actor: the audit log's actor (``staff:<name>`` for an administrator).

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
    row = StaffAccount(
        name=name,
        role=role.value,
        active=True,
        created_at=now,
        created_by=created_by[:MAX_NAME_CHARS] if created_by else None,
    )
    _set_password(row, password)
    session.add(row)
    session.flush()
    audit(
        session,
        now,
        "staff.account_created",
        actor,
        staff_account_id=row.id,
        role=role.value,
        created_by=row.created_by,
    )
    return _view(row)


# --- signing in ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Keys:
    """The three throttle keys of one attempt."""

    name: str
    address: str

    @property
    def pair(self) -> tuple[str, str]:
        return (self.name, self.address)

    @property
    def by_name(self) -> tuple[str, str]:
        return (self.name, ANY)

    @property
    def by_address(self) -> tuple[str, str]:
        return (ANY, self.address)


def _throttles(
    session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], SignInThrottle]:
    """Create (if missing) and lock the throttle rows of ``keys``, in one fixed order.

    Every transaction locks in sorted order, so two attempts may wait for each other
    but never deadlock. A row another sign-in deleted meanwhile (a stale one forgotten)
    is skipped by the locking read: it is created again and read once more.
    """
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"sign-in throttling is not implemented for {dialect}")
    wanted = sorted(set(keys))
    for _ in range(3):
        for name_key, address_key in wanted:
            session.execute(
                insert(SignInThrottle)
                .values(name_key=name_key, address_key=address_key, failures=0)
                .on_conflict_do_nothing()
            )
        rows = session.execute(
            select(SignInThrottle)
            .where(
                or_(
                    *(
                        and_(
                            SignInThrottle.name_key == name_key,
                            SignInThrottle.address_key == address_key,
                        )
                        for name_key, address_key in wanted
                    )
                )
            )
            .order_by(SignInThrottle.name_key, SignInThrottle.address_key)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalars()
        found = {(row.name_key, row.address_key): row for row in rows}
        if len(found) == len(wanted):
            return found
    raise RuntimeError("sign-in throttle rows keep disappearing")


def _waiting(row: SignInThrottle, now: datetime) -> bool:
    return row.blocked_until is not None and now < row.blocked_until


def _count_failure(
    row: SignInThrottle, free: int, now: datetime, policy: SignInPolicy
) -> timedelta | None:
    """Count one failure of a key; the wait it now imposes, if any."""
    if row.last_failed_at is None or now - row.last_failed_at >= policy.memory:
        row.failures = 0
    row.failures = (row.failures or 0) + 1
    row.last_failed_at = now
    wait = policy.delay(row.failures, free)
    if wait is not None:
        row.blocked_until = now + wait
    return wait


def _forget_stale(session: Session, now: datetime, policy: SignInPolicy) -> None:
    """Delete throttle rows that no longer hold anything (bounded, never waiting).

    Rows another sign-in holds are skipped (``SKIP LOCKED``), so this never waits for,
    nor deadlocks with, an attempt in progress.
    """
    stale = (
        select(SignInThrottle.name_key, SignInThrottle.address_key)
        .where(
            or_(
                SignInThrottle.last_failed_at.is_(None),
                SignInThrottle.last_failed_at < now - policy.memory,
            ),
            or_(SignInThrottle.blocked_until.is_(None), SignInThrottle.blocked_until <= now),
            or_(
                SignInThrottle.last_success_at.is_(None),
                SignInThrottle.last_success_at < now - policy.known_for,
            ),
        )
        .limit(_FORGET_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(SignInThrottle)
        .where(tuple_(SignInThrottle.name_key, SignInThrottle.address_key).in_(stale))
        .execution_options(synchronize_session=False)
    )


def _account_ids(row: StaffAccount | None) -> dict[str, Any]:
    # The attempted name of an unknown account is never audited: people type their
    # password into the name field.
    return {} if row is None else {"staff_account_id": row.id}


def authenticate(
    session: Session,
    name: str,
    password: str,
    now: datetime,
    *,
    address: str,
    policy: SignInPolicy,
) -> StaffView | None:
    """The active account if ``password`` is right and no wait holds, else None.

    Every path costs one scrypt and gives the same None (see the module docstring);
    each is audited (``staff.login``, ``staff.login_failed`` with ``why``, and
    ``staff.throttled`` when a failure starts a wait).

    Args:
        session: the unit of work.
        name: the name as typed.
        password: the password as typed.
        now: the current time (aware).
        address: the client's address as the console sees it (see
            :func:`bot.console.auth.client_address`).
        policy: the throttle's key and limits.
    """
    keys = _Keys(policy.name_key(name), policy.address_key(address))
    rows = _throttles(session, [keys.pair, keys.by_name, keys.by_address])
    pair, by_name, by_address = rows[keys.pair], rows[keys.by_name], rows[keys.by_address]
    account = session.execute(
        select(StaffAccount).where(StaffAccount.name == name.strip()[: MAX_NAME_CHARS + 1])
    ).scalar_one_or_none()
    ids = _account_ids(account)
    known = pair.last_success_at is not None and now - pair.last_success_at < policy.known_for
    # The name-wide wait does not hold back an address the account signed in from: an
    # attacker elsewhere must not keep the staff member out of their own office.
    holding = [pair, by_address] if known else [pair, by_address, by_name]
    if any(_waiting(row, now) for row in holding):
        _burn(password)
        audit(session, now, "staff.login_failed", "system", **ids, why="throttled", address=address)
        return None
    if account is None or not account.active:
        _burn(password)
        right = False
        why = "unknown" if account is None else "inactive"
    else:
        right = _checked(password, account.password_salt, account.password_hash)
        why = "too_long" if len(password) > MAX_PASSWORD_CHARS else "wrong_password"
    if not right:
        audit(session, now, "staff.login_failed", "system", **ids, why=why, address=address)
        for scope, row, free in (
            ("name_at_address", pair, policy.pair_free),
            ("address", by_address, policy.address_free),
            ("name", by_name, policy.name_free),
        ):
            wait = _count_failure(row, free, now, policy)
            if wait is not None:
                audit(
                    session,
                    now,
                    "staff.throttled",
                    "system",
                    **ids,
                    scope=scope,
                    failures=row.failures,
                    seconds=int(wait.total_seconds()),
                    address=address,
                )
        return None
    assert account is not None  # right implies a checked account
    pair.failures = 0
    pair.last_failed_at = None
    pair.blocked_until = None
    pair.last_success_at = now
    account.last_login_at = now
    audit(session, now, "staff.login", f"staff:{account.name}", **ids, address=address)
    _forget_stale(session, now, policy)
    return _view(account)


def throttled_names(
    session: Session, names: Iterable[str], now: datetime, policy: SignInPolicy
) -> dict[str, datetime]:
    """The names among ``names`` whose name-wide wait runs now, with its end."""
    by_key = {policy.name_key(name): name for name in names}
    if not by_key:
        return {}
    rows = session.execute(
        select(SignInThrottle.name_key, SignInThrottle.blocked_until).where(
            SignInThrottle.address_key == ANY,
            SignInThrottle.name_key.in_(list(by_key)),
            SignInThrottle.blocked_until > now,
        )
    ).all()
    return {by_key[key]: until for key, until in rows}


def _account(session: Session, account_id: int) -> StaffAccount:
    row = session.execute(
        select(StaffAccount).where(StaffAccount.id == account_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise AccountError(
            f"アカウント #{account_id} は見つかりません。 / no account #{account_id}"
        )
    return row


def list_accounts(
    session: Session, now: datetime | None = None, policy: SignInPolicy | None = None
) -> list[StaffView]:
    """Every staff account by name (there are few).

    Args:
        session: the unit of work.
        now: the current time; with ``policy``, fills each view's ``throttled_until``.
        policy: the sign-in throttle's key.
    """
    rows = list(session.execute(select(StaffAccount).order_by(StaffAccount.name)).scalars())
    waits: dict[str, datetime] = {}
    if now is not None and policy is not None:
        waits = throttled_names(session, [row.name for row in rows], now, policy)
    return [_view(row, waits.get(row.name)) for row in rows]


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

    Nobody deactivates their own account: the last administrator could otherwise lock
    everyone out.

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
    if not active:
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

    Sign-in waits are not lifted: they end by themselves (at most the cap), and lifting
    them would hand a guesser new attempts.

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
    if not _checked(current, row.password_salt, row.password_hash):
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
