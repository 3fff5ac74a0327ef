"""bot.core depends on nothing of the project and nothing outside the standard library.

Every feature imports bot.core; if bot.core imported a feature back, the features
would import each other through it again (the cycles bot.core exists to break).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter without site-packages (-S): a third-party import fails
# there, and whatever bot.core pulls in of the project shows in sys.modules.
_SCRIPT = """
import importlib, json, pkgutil, sys
import bot.core
names = sorted(
    info.name for info in pkgutil.walk_packages(bot.core.__path__, "bot.core.")
)
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def _in_fresh_interpreter() -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-S", "-c", _SCRIPT],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr  # e.g. a third-party import failed
    return json.loads(result.stdout)


def test_core_imports_no_other_project_module_and_no_third_party_one():
    found = _in_fresh_interpreter()
    assert {"bot.core.conversation", "bot.core.japan_time", "bot.core.text"} <= set(
        found["imported"]
    )
    project = [name for name in found["loaded"] if name == "bot" or name.startswith("bot.")]
    strangers = [
        name
        for name in project
        if name not in ("bot", "bot.core") and not name.startswith("bot.core.")
    ]
    assert strangers == []
    outside = {
        name.partition(".")[0]
        for name in found["loaded"]
        if name.partition(".")[0] not in sys.stdlib_module_names
    }
    assert outside <= {"bot", "__main__"}
