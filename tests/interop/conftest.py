"""
Fixtures of the interop tests: the real service, a static page server and
headless Chromium.

* ``realtime_server`` -- ``twistd -n realtime`` on free ports with a known app
  and a DTLS key log (module scope).
* ``pages`` -- base URL of ``tests/interop/pages`` served on 127.0.0.1
  (``http://127.0.0.1`` is a secure context, so getUserMedia works).
* :func:`run_page` -- open a page in Debian's Chromium through
  playwright-core (``run_page.js``) and return what it reported.
* :func:`assert_plays` -- what a viewer needs from a page's ``playback``
  report (pages/playback.js): >= 20 decoded frames/s over >= 5 s, no new
  freeze after the first 3 s, <= 5 % of audio samples concealed.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import require, require_tool
from tests.interop.realtime_server import Server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def realtime_server(tmp_path_factory):
    """A running ``twistd -n realtime`` with app ``APP_ID``/``APP_SECRET``."""
    state = tmp_path_factory.mktemp("realtime") / "state"
    server = Server(state, "--dtls-keylog", str(state.parent / "dtls.keylog"), app=True)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="session")
def pages():
    """Serve tests/interop/pages on 127.0.0.1; yield the base URL."""
    handler = functools.partial(_Quiet, directory=str(HERE / "pages"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_page(url: str, timeout: float = 30.0) -> dict:
    """Open ``url`` in headless Chromium; return the page's ``window.__result``.

    Fails (or skips, unless interop is required) when chromium, node or
    playwright-core is missing.
    """
    require_tool("chromium", "/usr/bin/chromium")
    node = require_tool("node")
    require((HERE / "node_modules" / "playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    result = subprocess.run(
        [node, str(HERE / "run_page.js"), url, str(int(timeout * 1000))],
        capture_output=True, text=True, timeout=timeout + 30, cwd=HERE,
        env={**os.environ, "CHROMIUM": shutil.which("chromium") or "/usr/bin/chromium"},
    )
    lines = result.stdout.splitlines()
    for line in lines:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError("page gave no result:\n" + result.stdout + result.stderr)


MIN_FPS = 20.0            # decoded frames per second a viewer needs (fake camera: 30)
MIN_SECONDS = 5.0         # the measured window (after a 3 s warm-up)
MAX_CONCEALMENT = 0.05    # share of audio samples the receiver had to invent


def assert_plays(playback: dict, audio: bool = True, width: int | None = None) -> None:
    """Assert that ``playback`` (pages/playback.js ``watchPlayback``) is what a viewer needs.

    Video: at least :data:`MIN_FPS` decoded frames per second over at least
    :data:`MIN_SECONDS`, and Chromium's ``freezeCount`` the same at the end
    as after the warm-up.  Audio (when ``audio``): samples were received and
    at most :data:`MAX_CONCEALMENT` of them concealed during the window.
    """
    assert "error" not in playback, playback
    assert playback["seconds"] >= MIN_SECONDS, playback
    assert playback["fps"] >= MIN_FPS, playback
    assert playback["freezeCount"] == playback["freezeCountAfterWarmup"], playback
    if width is not None:
        assert playback["frameWidth"] == width, playback
    if audio:
        assert playback["totalSamplesReceived"] > 0, playback
        assert playback["concealment"] <= MAX_CONCEALMENT, playback
        assert playback["concealmentSinceStart"] <= MAX_CONCEALMENT, playback
