"""What the browser tests share: finding node and Debian's chromium, running a spec.

The specs (``web/tests/*.spec.mjs``) drive chromium with playwright-core from
``web/node_modules``; no browser is downloaded. Without chromium, node or the npm
packages the tests skip with the reason, unless ``PRIVACY_BOT_REQUIRE_BROWSER`` is 1
(``.ci/run``): then they fail.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT


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
    if not (ROOT / "web" / "node_modules" / "playwright-core").is_dir():
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
