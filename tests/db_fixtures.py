"""Database fixtures: every test runs on a real SQLite file and a real PostgreSQL schema.

Every test module has them (``pytest_plugins`` of tests/conftest.py).

PostgreSQL: ``PRIVACY_BOT_TEST_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``
(then user ``root``), trust auth. Each test gets a fresh schema ``t_<hex>``, selected by
the URL's ``options=-csearch_path=...`` so that every code path, the CLI included, uses
it; the schema is made by the real Alembic migrations and dropped afterwards. When the
server is unreachable the PostgreSQL cases are skipped with the reason shown, unless
``PRIVACY_BOT_REQUIRE_POSTGRES=1`` (CI), which makes them fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.db.demo import load_demo
from bot.db.migrate import upgrade
from bot.db.session import dispose, session_factory

DEFAULT_POSTGRES_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
TEST_SECRET = "test-secret-not-for-production"
BACKENDS = ("sqlite", "postgresql")

_postgres: dict[str, str | None] = {}


def _reachable(url: str) -> str | None:
    """None if ``url`` accepts connections, else why not."""
    engine = sa.create_engine(url, future=True, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return None
    except sa.exc.OperationalError as error:
        return str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    finally:
        engine.dispose()


def postgres_base_url() -> str:
    """The reachable PostgreSQL URL, or skip (fail when PostgreSQL is required)."""
    if "url" not in _postgres:
        override = os.environ.get("PRIVACY_BOT_TEST_POSTGRES_URL", "").strip()
        candidates = (override,) if override else DEFAULT_POSTGRES_URLS
        reasons = []
        _postgres["url"] = None
        for candidate in candidates:
            problem = _reachable(candidate)
            if problem is None:
                _postgres["url"] = candidate
                break
            reasons.append(problem)
        _postgres["reason"] = (
            f"PostgreSQL not reachable at {' / '.join(candidates)} ({'; '.join(reasons)})"
        )
    url = _postgres["url"]
    if url is None:
        reason = str(_postgres["reason"])
        if os.environ.get("PRIVACY_BOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason}; PRIVACY_BOT_REQUIRE_POSTGRES=1 requires it", pytrace=False)
        pytest.skip(f"{reason}; PostgreSQL cases skipped")
    return url


def _with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        yield url
        dispose(url)
        return
    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, future=True)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = _with_search_path(base, schema)
    try:
        yield url
    finally:
        dispose(url)
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:
    """A fixed hashing secret and a var dir of the test's own (no files in the repo)."""
    monkeypatch.setenv("PRIVACY_BOT_SECRET", TEST_SECRET)
    monkeypatch.setenv("PRIVACY_BOT_VAR_DIR", str(tmp_path / "var"))
    return TEST_SECRET


@pytest.fixture
def migrated_url(db_url: str, secret: str) -> str:
    """``db_url`` upgraded to head by the real migrations."""
    upgrade(db_url)
    return db_url


@pytest.fixture
def sessions(migrated_url: str):
    """The session factory of the migrated database."""
    return session_factory(migrated_url)


@pytest.fixture
def demo(sessions):
    """The migrated database with the demo members loaded; returns the factory."""
    with sessions.begin() as session:
        load_demo(session)
    return sessions


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql``."""
    return str(make_url(url).get_backend_name())
