"""The databases the scale benchmarks fill: SQLite files, and PostgreSQL when it answers.

PostgreSQL: ``PRIVACY_BOT_BENCH_POSTGRES_URL``, else ``PRIVACY_BOT_TEST_POSTGRES_URL``,
else ``postgresql://postgres@127.0.0.1:5432/test`` (then user ``root``); every database
is a schema of its own there, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from bot.db.session import dispose

POSTGRES_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)


@dataclass(frozen=True)
class Backend:
    """Where fresh databases come from.

    Attributes:
        name: "SQLite" or "PostgreSQL", as the reports print it.
        location: The folder of the SQLite files, or the PostgreSQL server's URL.
        skipped: Why PostgreSQL cannot be measured (None when it can).
    """

    name: str
    location: str
    skipped: str | None = None

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
