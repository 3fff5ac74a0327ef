"""What the browser tests share: finding node and Debian's chromium, running a spec,
checking pages with axe-core.

The specs (``web/tests/*.spec.mjs``) drive chromium with playwright-core from
``web/node_modules``; no browser is downloaded. :func:`assert_accessible` runs axe-core
(the npm package, ``web/tests/axe.mjs``) on pages, signed in to the console where a
page needs it: a page is added to the check with one :class:`AxePage` line. Without
chromium, node or the npm packages the tests skip with the reason, unless
``PRIVACY_BOT_REQUIRE_BROWSER`` is 1 (``.ci/run``): then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

# What the specs import from web/node_modules (web/package.json).
NPM_PACKAGES = ("playwright-core", "axe-core")
AXE_SPEC = ROOT / "web" / "tests" / "accessibility.spec.mjs"


def _chromium() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


def find_browser_tools() -> tuple[str, str]:
    """(node, chromium); else skip, naming what is missing (fail under REQUIRE_BROWSER)."""
    node, chromium = shutil.which("node"), _chromium()
    missing = []
    if not chromium:
        missing.append("chromium (as root: apt-get install chromium)")
    if not node:
        missing.append("node")
    if not all((ROOT / "web" / "node_modules" / name).is_dir() for name in NPM_PACKAGES):
        missing.append("web/node_modules (make install)")
    if missing:
        reason = "browser tests need " + ", ".join(missing)
        if os.environ.get("PRIVACY_BOT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason} (PRIVACY_BOT_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    assert node and chromium
    return node, chromium


def run_node_spec(
    spec: Path, tools: tuple[str, str], env: dict[str, str], *args: str, on_failure: str = ""
) -> str:
    """Run ``node spec args`` with ``env`` (and CHROMIUM) added; its output, or fail.

    Args:
        spec: the spec file.
        tools: (node, chromium) from :func:`find_browser_tools`.
        env: the spec's settings (URLs, artifact dir...).
        args: the spec's arguments (scenario...).
        on_failure: appended to the failure message (e.g. the servers' errors).
    """
    node, chromium = tools
    result = subprocess.run(
        [node, str(spec), *args],
        cwd=ROOT,
        env={**os.environ, **env, "CHROMIUM": chromium},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(result.stdout)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}{on_failure}"
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of the PNG file ``path``."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@dataclass(frozen=True)
class AxePage:
    """A page for :func:`assert_accessible`.

    Attributes:
        label: how failures name it (``queue``, ``chat``...).
        url: the page's full URL; it must answer 2xx without redirecting.
        account: (name, password) of a console account to sign in with first, through
            the console's form at ``/login`` of the page's origin; None: not signed in.
        ready: a CSS selector to wait for before checking (content the page's script
            adds), if any.
    """

    label: str
    url: str
    account: tuple[str, str] | None = None
    ready: str | None = None


def assert_accessible(
    tools: tuple[str, str], pages: Sequence[AxePage], on_failure: str = ""
) -> None:
    """Fail unless axe-core finds no violation (of any impact) on any of ``pages``.

    Each page is checked in Debian's chromium as it is served, its
    Content-Security-Policy in force (``web/tests/accessibility.spec.mjs``); a failure
    lists every violation of every page: rule, impact, help and the elements.

    Args:
        tools: (node, chromium) from :func:`find_browser_tools`.
        pages: the pages.
        on_failure: appended to the failure message (e.g. the servers' errors).
    """
    env = {"AXE_PAGES": json.dumps([asdict(page) for page in pages], ensure_ascii=False)}
    output = run_node_spec(AXE_SPEC, tools, env, on_failure=on_failure)
    assert f"accessibility: {len(pages)} pages, no violations" in output
