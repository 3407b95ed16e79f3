"""
The demo's proxy under ``twistd realtime --workers 2``: its calls reach either worker.

Each call here opens a new TCP connection, so the kernel hands it to either worker
(SO_REUSEPORT).  The proxy rewrites a call to the app's own path with its secret before
the API's root sees it, so a call for a session the other worker made is forwarded to
that worker like any client's (realtime/cluster/forward.py).  Had the proxy answered
by calling the route handlers itself, past the forwarding, about half of these calls
would be 404 (checked: wrapping the API's Klein resource instead of the site root).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.conftest import require_tool
from tests.interop.realtime_server import Server, free_port

pytestmark = pytest.mark.interop

CALLS = 20


def request(port: int, method: str, path: str) -> tuple[int, dict]:
    """Send one call to the demo proxy on a new connection; return (status, JSON body)."""
    call = urllib.request.Request(f"http://127.0.0.1:{port}/demo/api{path}", method=method,
                                  data=None if method == "GET" else b"")
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_demo_calls_reach_the_sessions_worker(tmp_path) -> None:
    require_tool("redis-server")
    port = free_port()
    server = Server(tmp_path / "state", "--workers", "2",
                    "--api", f"tcp:{port}:interface=127.0.0.1")
    try:
        server.wait_workers(2, timeout=60)
        status, made = request(port, "POST", "/sessions/new")
        assert status == 201, made
        session = made["sessionId"]
        answers = [request(port, "GET", f"/sessions/{session}") for _ in range(CALLS)]
    finally:
        server.stop()
    assert [status for status, _ in answers] == [200] * CALLS, answers
    forwarded = [int(n) for n in re.findall(r"forwarded (\d+) API calls", server.output())]
    print("forwarded per worker:", forwarded)
    assert sum(forwarded) > 0, server.output()[-3000:]
