"""The console's handlers stay thin: no database query is written in ``bot/console``.

Every read and write of the app database is a function of the feature service that owns
the record (:mod:`bot.handoff.queue`, :mod:`bot.handoff.detail`, :mod:`bot.cases.staff`,
:mod:`bot.db.audit_log`, :mod:`bot.staff.accounts`, ...), called inside the console's
unit of work (:meth:`bot.console.context.Console.unit`); transcripts are read through
:meth:`~bot.console.context.Console.tracker`. Those two helpers are the only place the
console opens a session or a connection.
"""

from __future__ import annotations

import ast
import enum
import importlib
import re
from pathlib import Path

import pytest

from bot.cases.staff import MASKED_FIELDS
from bot.console.cases import MASKED_FIELDS as MASKED_FIELD_LABELS

CONSOLE = Path(__file__).resolve().parents[2] / "bot" / "console"
MODULES = sorted(CONSOLE.rglob("*.py"))

# What a query looks like, written with SQLAlchemy or through a session.
QUERY = re.compile(
    r"\bselect\(|\bsa\.|\binsert\(|\bdelete\(|\.query\(|\bfunc\."
    r"|\bsession\.(execute|get|scalar|scalars|add|add_all|delete|merge|flush|query)\b"
    r"|\.connect\(|\.begin\("
)
# The unit-of-work helpers: the one place a session or a tracker connection is opened.
ALLOWED = {
    ("context.py", "with self.sessions.begin() as session:"),
    ("context.py", "with self.tracker_engine.connect() as connection:"),
}
# SQLAlchemy names a handler may mention: types and the error it turns into a 503.
SQLALCHEMY_NAMES = {"Session", "sessionmaker", "Engine", "SQLAlchemyError"}


def queries_in(name: str, text: str) -> list[str]:
    """The lines of a module that look like a query, but for the allowed helpers."""
    return [
        f"{name}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if QUERY.search(line.split("#", 1)[0]) and (name, line.strip()) not in ALLOWED
    ]


def test_the_console_has_modules_to_check():
    names = {path.name for path in MODULES}
    assert {"escalations.py", "cases.py", "audit_log.py", "accounts.py", "auth.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_no_query_is_written_in_a_console_module(path):
    assert queries_in(path.name, path.read_text("utf-8")) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_console_modules_import_no_query_building_blocks(path):
    """From SQLAlchemy only types; from the models only enums (roles, statuses)."""
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not any(alias.name.split(".")[0] == "sqlalchemy" for alias in node.names)
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        names = {alias.name for alias in node.names}
        if node.module.split(".")[0] == "sqlalchemy":
            assert names <= SQLALCHEMY_NAMES, (path.name, node.module, names)
        if node.module == "bot.db.models":
            models = importlib.import_module("bot.db.models")
            for name in names:
                value = getattr(models, name)
                assert isinstance(value, type) and issubclass(value, enum.Enum), name


def test_the_check_finds_a_query_and_allows_only_the_helpers():
    assert queries_in("context.py", "        with self.sessions.begin() as session:") == []
    assert queries_in("cases.py", "        with self.sessions.begin() as session:") != []
    assert queries_in("context.py", "    with engine.connect() as connection:") != []
    assert QUERY.search("rows = session.execute(select(Member.name))")
    assert QUERY.search("session.get(Escalation, 1)")
    assert QUERY.search("sa.select(AuditLog)")
    assert QUERY.search("session.query(Member)")
    assert not QUERY.search("page = request.query.get('page')")
    assert not QUERY.search("values.update(changes)")


def test_the_case_page_masks_exactly_the_fields_the_service_reveals():
    assert set(MASKED_FIELD_LABELS) == set(MASKED_FIELDS)
