"""The Alembic migrations and the ``python -m bot.db`` CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.db.__main__ import main
from bot.db.demo import generated_member
from bot.db.migrate import MIGRATIONS_DIR, current_revision, downgrade, head_revision, upgrade
from bot.db.models import Member, metadata
from bot.db.session import engine_for, session_factory
from tests.conftest import ROOT

APP_TABLES = {
    "members",
    "verifications",
    "verification_failures",
    "verification_lockouts",
    "verification_events",
    "audit_log",
    "outbound_messages",
    "escalations",
    "case_number_sequences",
    "cases",
    "case_events",
    "case_drafts",
    "staff_accounts",
    "staff_sessions",
    "staff_messages",
    "web_sessions",
    "signin_throttles",
}


def tables(url: str) -> set[str]:
    return set(sa.inspect(engine_for(url)).get_table_names())


def member_count(url: str) -> int:
    with session_factory(url).begin() as session:
        return int(session.execute(sa.select(sa.func.count()).select_from(Member)).scalar_one())


def test_an_empty_database_is_upgraded_to_head(db_url):
    assert current_revision(db_url) is None
    assert tables(db_url) == set()
    upgrade(db_url)
    assert current_revision(db_url) == head_revision() == "0008"
    assert tables(db_url) == APP_TABLES | {"alembic_version"}


def test_upgrading_twice_changes_nothing(db_url):
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    assert tables(db_url) == APP_TABLES | {"alembic_version"}


def test_the_models_and_the_migrations_agree(migrated_url):
    with engine_for(migrated_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_downgrade_to_base_removes_everything_and_upgrade_restores_it(migrated_url):
    downgrade(migrated_url, "base")
    assert tables(migrated_url) == {"alembic_version"}
    upgrade(migrated_url)
    assert tables(migrated_url) == APP_TABLES | {"alembic_version"}


def test_the_migrations_ship_inside_the_package():
    assert MIGRATIONS_DIR.is_relative_to(ROOT / "bot" / "db")
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("0001_*.py"))
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert '"bot.db" = ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"]' in (
        pyproject
    )


def test_the_cli_upgrades_and_loads_the_demo_in_a_fresh_process(db_url, secret, tmp_path):
    env = {**os.environ, "DATABASE_URL": db_url, "PRIVACY_BOT_VAR_DIR": str(tmp_path / "var")}
    command = [sys.executable, "-m", "bot.db", "upgrade", "--demo"]
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "demo members added: 5" in first.stdout
    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert "demo members added: 0" in second.stdout
    assert current_revision(db_url) == head_revision()
    assert member_count(db_url) == 5


def test_generate_adds_reproducible_members_once(db_url, capsys):
    assert main(["--url", db_url, "upgrade", "--demo", "--generate", "1000"]) == 0
    assert "generated members added: 1000" in capsys.readouterr().out
    assert member_count(db_url) == 1005
    with session_factory(db_url).begin() as session:
        rows = session.execute(
            sa.select(Member)
            .where(Member.symbol.not_in(["1001", ""]))
            .order_by(Member.symbol, Member.id)
        ).scalars()
        stored = [{column: getattr(row, column) for column in generated_member(0)} for row in rows]
    assert len(stored) == 1000
    assert sorted(stored, key=lambda r: (r["symbol"], int(r["number"]))) == [
        generated_member(index) for index in range(1000)
    ]
    # Same N again: nothing new. A larger N: only the missing ones.
    assert main(["--url", db_url, "upgrade", "--generate", "1000"]) == 0
    assert member_count(db_url) == 1005
    assert main(["--url", db_url, "upgrade", "--generate", "1500"]) == 0
    assert "generated members added: 500" in capsys.readouterr().out
    assert member_count(db_url) == 1505


def test_generated_members_are_a_pure_function_of_their_index():
    assert generated_member(42) == generated_member(42)
    assert generated_member(42) != generated_member(43)
    first = generated_member(0)
    assert (first["symbol"], first["number"]) == ("5000", "1")
    assert (generated_member(1999)["symbol"], generated_member(1999)["number"]) == ("5001", "1000")
    assert first["phone"].startswith("+8190") and len(first["phone"]) == 13
