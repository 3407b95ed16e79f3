"""
Drive the service's demo page in headless Chromium (``run_demo.js``); shared by
``test_demo_chromium.py`` and ``scripts/demo-screenshot``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.conftest import require, require_tool

HERE = Path(__file__).resolve().parent


def run_demo(url: str, timeout: float = 90.0, screenshot: Path | None = None) -> dict:
    """Open the demo page at ``url``, click through it; return what ``run_demo.js`` saw.

    Fails (or skips, unless interop is required) when chromium, node or
    playwright-core is missing; raises AssertionError with the page's output when
    a step did not happen.
    """
    require_tool("chromium", "/usr/bin/chromium")
    node = require_tool("node")
    require((HERE / "node_modules" / "playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    command = [node, str(HERE / "run_demo.js"), url, str(int(timeout * 1000))]
    if screenshot is not None:
        command.append(str(screenshot))
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout * 2 + 30, cwd=HERE,
        env={**os.environ, "CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium"},
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError("the demo page did not get through:\n" + result.stdout + result.stderr)
