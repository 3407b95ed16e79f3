"""
Firefox ESR as an interop peer, and pages run in two browsers at once.

* :func:`run_firefox` -- open a page in Debian's headless ``/usr/bin/firefox-esr``
  through puppeteer-core over WebDriver BiDi (``run_browser.js``) and return
  its ``window.__result``; the Firefox twin of :func:`tests.interop.conftest.run_page`.
* :class:`PageRun` -- the same in the background, for either browser, so a
  test can wait for a line the page logs (``console.log("PUBLISHED {...}")``)
  and open a second page, in the other browser, that uses it.  Chromium runs
  through puppeteer-core too (CDP), with run_page.js's flags but its fake
  camera at 30 fps (the default 20 is below the playback checks' 20 fps).

Under ``REALTIME_INTEROP=required`` a missing firefox-esr, node or
puppeteer-core fails the test instead of skipping it.  Neither script ever
downloads a browser.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import require, require_tool

HERE = Path(__file__).resolve().parent
FIREFOX = "/usr/bin/firefox-esr"


def _command(browser: str, url: str, timeout: float) -> tuple[list[str], dict[str, str]]:
    node = require_tool("node")
    if browser == "firefox":
        require_tool("firefox-esr", FIREFOX)
        require((HERE / "node_modules" / "puppeteer-core").is_dir(),
                "puppeteer-core is not installed (scripts/install-interop-tools)")
        env = {"FIREFOX": shutil.which("firefox-esr") or FIREFOX}
    else:
        require_tool("chromium", "/usr/bin/chromium")
        require((HERE / "node_modules" / "puppeteer-core").is_dir(),
                "puppeteer-core is not installed (scripts/install-interop-tools)")
        env = {"CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium"}
    return ([node, str(HERE / "run_browser.js"), browser, url, str(int(timeout * 1000))],
            {**os.environ, **env})


def _result(lines: list[str], stderr: str = "") -> dict:
    for line in lines:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError("page gave no result:\n" + "\n".join(lines) + stderr)


def run_firefox(url: str, timeout: float = 30.0) -> dict:
    """Open ``url`` in headless Firefox ESR; return the page's ``window.__result``."""
    command, env = _command("firefox", url, timeout)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 90,
                          cwd=HERE, env=env)
    return _result(done.stdout.splitlines(), done.stderr)


class PageRun:
    """A page running in ``browser`` ("firefox" or "chromium") in the background.

    :meth:`wait_for` returns the JSON after a console line's prefix;
    :meth:`result` waits for ``window.__result``.  Always :meth:`close`
    (a context manager): the runner is stopped if it is still going.
    """

    def __init__(self, browser: str, url: str, timeout: float) -> None:
        command, env = _command(browser, url, timeout)
        self.timeout = timeout
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, cwd=HERE, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next(self, deadline: float) -> str | None:
        try:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("page timed out:\n" + "\n".join(self.lines)) from None
        if line is not None:
            self.lines.append(line)
        return line

    def wait_for(self, prefix: str, timeout: float = 60.0) -> dict:
        """Return the JSON the page logged after ``prefix`` (``CONSOLE <prefix> {...}``)."""
        marker = f"CONSOLE {prefix} "
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline)) is not None:
            if line.startswith(marker):
                return json.loads(line[len(marker):])
            if line.startswith(("RESULT ", "ERROR ")):
                break
        raise AssertionError(f"page never logged {prefix}:\n" + "\n".join(self.lines))

    def result(self) -> dict:
        """Wait for the page's ``window.__result``."""
        deadline = time.monotonic() + self.timeout + 90
        while self._next(deadline) is not None:
            pass
        self.process.wait(timeout=30)
        return _result(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> PageRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
