"""The databases the scale benchmarks fill: SQLite files, and PostgreSQL when it answers.

PostgreSQL: ``PRIVACY_BOT_BENCH_POSTGRES_URL``, else ``PRIVACY_BOT_TEST_POSTGRES_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test`` (then user ``root``); every database
is a schema of its own there, dropped afterwards.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from bot.db.session import dispose, engine_for

POSTGRES_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
BATCH = 20_000  # rows per executemany (SQLite) or COPY (PostgreSQL)


@dataclass(frozen=True)
class Backend:
    """Where fresh databases come from."""

    name: str  # "SQLite" or "PostgreSQL", as the reports print it
    location: str  # the folder of the SQLite files, or the PostgreSQL server's URL
    skipped: str | None = None  # why PostgreSQL cannot be measured

    @contextmanager
    def fresh_database(self, label: str) -> Iterator[str]:
        """The URL of a new, empty database, disposed of (a schema dropped) afterwards.

        A SQLite file gets a folder of its own: the product keeps Rasa's events in
        ``tracker.db`` beside it.
        """
        if self.name == "SQLite":
            folder = Path(self.location) / label
            folder.mkdir(parents=True)
            url = f"sqlite:///{folder / 'app.db'}"
            try:
                yield url
            finally:
                dispose(url)
            return
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(self.location, future=True)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in self.location else "?"
        url = f"{self.location}{separator}options={quote(f'-csearch_path={schema}')}"
        try:
            yield url
        finally:
            dispose(url)
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _reachable_postgres() -> tuple[str | None, str]:
    """The first PostgreSQL URL that answers, or None and what each one said."""
    configured = os.environ.get("PRIVACY_BOT_BENCH_POSTGRES_URL") or os.environ.get(
        "PRIVACY_BOT_TEST_POSTGRES_URL"
    )
    problems = []
    for url in (configured,) if configured else POSTGRES_URLS:
        engine = sa.create_engine(url, future=True, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return url, ""
        except sa.exc.OperationalError as error:
            problems.append(f"{url}: {str(error.orig).strip().splitlines()[0]}")
        finally:
            engine.dispose()
    return None, "; ".join(problems)


def backends(folder: Path, wanted: Sequence[str] = ("sqlite", "postgresql")) -> list[Backend]:
    """The backends to measure: SQLite files in ``folder``; PostgreSQL, maybe skipped."""
    found = [Backend("SQLite", str(folder))] if "sqlite" in wanted else []
    if "postgresql" in wanted:
        url, problem = _reachable_postgres()
        found.append(Backend("PostgreSQL", url or "", None if url else problem))
    return found


def stamp(moment: datetime | None) -> str | None:
    """A UTC time as the text SQLAlchemy stores on SQLite and PostgreSQL reads."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def bulk_load(url: str, table: str, rows: Iterable[dict[str, Any]]) -> int:
    """Loads ``rows`` (all with the same keys) into ``table``; returns how many there were.

    One transaction: ``executemany`` on SQLite, ``COPY`` on PostgreSQL, :data:`BATCH`
    rows at a time. The values go to the database as they are: times as :func:`stamp`
    text, JSON as text; None is NULL (and so is an empty string on PostgreSQL).
    """
    remaining = iter(rows)
    batch = list(itertools.islice(remaining, BATCH))
    columns = list(batch[0]) if batch else []
    sqlite = url.startswith("sqlite")
    names = ", ".join(columns)
    if sqlite:
        values = ", ".join(f":{column}" for column in columns)
        statement = f"INSERT INTO {table} ({names}) VALUES ({values})"
    else:
        statement = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv)"
    count = 0
    connection = engine_for(url).raw_connection()
    try:
        cursor = connection.cursor()
        if sqlite:
            cursor.execute("BEGIN IMMEDIATE")
        while batch:
            if sqlite:
                cursor.executemany(statement, batch)
            else:
                buffer = io.StringIO()
                csv.DictWriter(buffer, columns).writerows(batch)
                buffer.seek(0)
                cursor.copy_expert(statement, buffer)
            count += len(batch)
            batch = list(itertools.islice(remaining, BATCH))
        connection.commit()
    finally:
        connection.close()
    return count


def analyze(url: str, *tables: str) -> None:
    """On PostgreSQL, the tables' statistics now rather than whenever autovacuum runs."""
    engine = engine_for(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for table in tables:
                connection.exec_driver_sql(f"ANALYZE {table}")


def explain(connection: sa.engine.Connection, statement: str, parameters: Any = None) -> list[str]:
    """The planner's plan of ``statement``, one line per step, without costs or arrows."""
    prefix = "EXPLAIN QUERY PLAN" if connection.dialect.name == "sqlite" else "EXPLAIN"
    rows = connection.exec_driver_sql(f"{prefix} {statement}", parameters).all()
    steps = []
    for row in rows:  # SQLite's step is in the last column, PostgreSQL's in the only one
        text = re.sub(r"\s*\(cost=[^)]*\)|->", "", str(row[-1]))
        steps.append(" ".join(text.split()))
    return steps
