"""Alembic environment: run by :mod:`bot.db.migrate`, configured in code, not by an ini.

The caller passes an open connection in ``config.attributes["connection"]`` (so tests
and the app migrate through the same engine settings); without one, an engine is made
from the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from typing import Any

from alembic import context

from bot.db.models import metadata
from bot.db.session import engine_for

config = context.config


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; batch mode makes later migrations do so.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Print the SQL instead of running it (``--sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the given connection, or a new one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    with engine_for(url).begin() as new_connection:
        _run(new_connection)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
