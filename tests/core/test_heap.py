"""bot.core.heap: start-up objects out of full collections, the collector still on.

Each case runs in a fresh interpreter: freezing the test process's own heap would
change every test that runs after it.
"""

from __future__ import annotations

import subprocess
import sys

from bot.settings import PROJECT_ROOT


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_a_full_collection_walks_only_what_was_made_after_start_up():
    out = run_python(
        "import gc\n"
        "from bot.core.heap import freeze_startup_objects\n"
        "startup = [[i] for i in range(50_000)]\n"
        "frozen = freeze_startup_objects()\n"
        "print(frozen >= 50_000, gc.get_freeze_count() == frozen, len(gc.get_objects()) < 1000)\n"
    )
    assert out == "True True True"


def test_garbage_made_after_start_up_is_still_collected():
    out = run_python(
        "import gc, weakref\n"
        "from bot.core.heap import freeze_startup_objects\n"
        "class Node: pass\n"
        "freeze_startup_objects()\n"
        "a, b = Node(), Node()\n"
        "a.other, b.other = b, a\n"
        "alive = weakref.ref(a)\n"
        "del a, b\n"
        "gc.collect()\n"
        "print(gc.isenabled(), alive() is None)\n"
    )
    assert out == "True True"


def test_the_start_ups_own_garbage_is_freed_before_the_freeze():
    # A cycle dropped during start-up would otherwise stay for the process's life.
    out = run_python(
        "import gc, weakref\n"
        "from bot.core.heap import freeze_startup_objects\n"
        "gc.disable()\n"
        "class Node: pass\n"
        "a, b = Node(), Node()\n"
        "a.other, b.other = b, a\n"
        "alive = weakref.ref(a)\n"
        "del a, b\n"
        "freeze_startup_objects()\n"
        "print(alive() is None)\n"
    )
    assert out == "True"
