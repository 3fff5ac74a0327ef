"""One engine and one session factory per process and database URL.

Use it the 2.0 way::

    with session_factory(url).begin() as session:
        session.execute(select(Member).where(...))

SQLite is set up for a server that several threads (and processes) write to: every
transaction starts with ``BEGIN IMMEDIATE``, so writers queue on SQLite's lock (for up
to 30 s) instead of failing when two read-then-write transactions meet; WAL lets
readers in other processes go on meanwhile, and foreign keys are enforced. On every
backend, SQL parameters are kept out of logs and error messages (``hide_parameters``):
they are birth dates, phone numbers and member numbers. PostgreSQL connections give up
after ``CONNECT_TIMEOUT_S``; the action server also bounds each unit of work's
statements (``actions/offloop.py``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, create_engine, make_url
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool

SQLITE_BUSY_TIMEOUT_S = 30
# A database server that does not answer must not hold a thread (and its member) for
# the operating system's TCP timeout, minutes: libpq gives up connecting after this.
CONNECT_TIMEOUT_S = 10

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker] = {}


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    options: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    }
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # 1.4 defaults to NullPool for files, i.e. a new connection (and its PRAGMAs)
        # for every unit of work; a pool keeps them, as 2.0 does.
        options["poolclass"] = QueuePool
    engine = create_engine(url, future=True, hide_parameters=True, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control away from pysqlite; the "begin" hook below opens
        # every transaction itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads and then
        # writes fails with "database is locked" when another one wrote in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_app_engine(url: str) -> Engine:
    """A new engine for ``url`` with the app's settings (prefer :func:`engine_for`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return create_engine(parsed, future=True, hide_parameters=True, pool_pre_ping=True, **options)


def engine_for(url: str) -> Engine:
    """The process's engine for ``url``, created on first use."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_app_engine(url)
        return engine


def session_factory(url: str) -> sessionmaker:
    """The process's session factory for ``url``.

    Sessions keep loaded objects usable after commit (``expire_on_commit=False``):
    services return members and views that callers read after the unit of work ends.
    """
    engine = engine_for(url)
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            factory = _factories[url] = sessionmaker(
                bind=engine, future=True, expire_on_commit=False
            )
        return factory


def dispose(url: str | None = None) -> None:
    """Close the pooled connections of ``url`` (of every URL if None) and forget them."""
    with _lock:
        urls = list(_engines) if url is None else [url]
        for key in urls:
            engine = _engines.pop(key, None)
            _factories.pop(key, None)
            if engine is not None:
                engine.dispose()
