"""One writer for each record: only its own module makes an audit row, an escalation or
an outbound message, so the rules that module applies cannot be bypassed.

Read from the source (the syntax tree of every module under ``bot/``): a call of the
model class, or an ``insert()`` of it, anywhere else fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

BOT = ROOT / "bot"
# Each record, and the one module (relative to bot/) that may make it.
WRITERS = {
    "AuditLog": "db/audit.py",
    "Escalation": "handoff/escalations.py",
    "OutboundMessage": "outbound/sender.py",
}


def _name(node: ast.expr) -> str | None:
    """``Model`` of ``Model`` or ``models.Model``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def made_in(path: Path) -> set[str]:
    """The records a module makes: model calls and ``insert(Model)`` calls."""
    made: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        called = _name(node.func)
        if called in WRITERS:
            made.add(called)
        elif called == "insert" and node.args and _name(node.args[0]) in WRITERS:
            made.add(str(_name(node.args[0])))
    return made


def writers_of(record: str) -> list[str]:
    return sorted(
        str(path.relative_to(BOT))
        for path in BOT.rglob("*.py")
        if "migrations" not in path.parts and record in made_in(path)
    )


@pytest.mark.parametrize("record", sorted(WRITERS))
def test_only_its_own_module_makes_the_record(record):
    assert writers_of(record) == [WRITERS[record]]


def test_the_check_sees_every_way_of_making_one(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "from bot.db import models\n"
        "from sqlalchemy import insert\n"
        "session.add(AuditLog(at=now))\n"
        "models.Escalation(reason='x')\n"
        "session.execute(insert(OutboundMessage).values(to=''))\n"
        "class AuditLog(Base): pass\n",
        "utf-8",
    )
    assert made_in(module) == {"AuditLog", "Escalation", "OutboundMessage"}
