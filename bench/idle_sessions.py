"""
bench/idle_sessions.py: memory per idle SFU session, and 10,000 of them in one process.

Run: ``.venv/bin/python bench/idle_sessions.py [--sessions 10000]`` (about half a minute).

One ``twistd realtime`` (``tests/interop/realtime_server.Server``, one app, the per-app
``sessions/new`` limit lifted as an operator would for a load test) gets ``--sessions``
sessions through its Cloudflare-compatible API, each as an application makes it before
its browser connects: ``sessions/new``, then ``tracks/new`` with an offer pushing one
audio and one video track (``tests/sfu/client.push_offer``; each session's own track
names).  Nothing connects, so every session stays idle: a PeerConnection waiting for its
first check, two published tracks, their forwarders and feedback state.

Printed: the server's resident set (``VmRSS`` of ``/proc/PID/status``) before and after,
and the difference per session; the issue's goal is <= 25 KB per idle session (it was
~56 KB).  Writes ``bench/results/idle_sessions.json`` through ``bench/record.py``.
Loopback only; it stops by itself.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from record import Record  # noqa: E402
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server  # noqa: E402
from tests.sfu.client import audio, push_offer, video  # noqa: E402


def resident_kib(pid: int) -> int:
    """Return ``VmRSS`` of process ``pid`` in KiB (proc(5))."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Client:
    """One keep-alive HTTP connection to the API."""

    def __init__(self, api_url: str) -> None:
        host, port = api_url.split("//", 1)[1].rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Bearer {APP_SECRET}"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        self.connection.request(method, f"/v1/apps/{APP_ID}{path}", headers=self.headers,
                                body=None if body is None else json.dumps(body))
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000, help="idle sessions to create")
    options = parser.parse_args()
    record = Record("idle_sessions", {"sessions": options.sessions})
    work = Path(tempfile.mkdtemp(prefix="rt-idle-"))
    server = Server(work / "state", "--session-rate", "100000", "--session-burst", "100000",
                    app=True)
    offer = push_offer(audio("0", 1111), video("1", 2222))
    try:
        server.wait_ready()
        client = Client(server.api_url())
        client.call("POST", "/sessions/new")  # the first request's one-time costs
        time.sleep(1.0)
        before = resident_kib(server.process.pid)
        started = time.monotonic()
        for n in range(options.sessions):
            status, body = client.call("POST", "/sessions/new")
            assert status == 201, body
            status, body = client.call("POST", f"/sessions/{body['sessionId']}/tracks/new", {
                "sessionDescription": {"type": "offer", "sdp": offer},
                "tracks": [{"location": "local", "mid": "0", "trackName": f"mic-{n}"},
                           {"location": "local", "mid": "1", "trackName": f"cam-{n}"}]})
            assert status == 200, body
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        after = resident_kib(server.process.pid)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    per_session = (after - before) / options.sessions
    with record.capture():
        print(f"{options.sessions} idle sessions (sessions/new + tracks/new pushing audio+video,"
              f" never connected), made in {elapsed:.1f} s through the API")
        print(f"  server RSS before {before / 1024:7.1f} MiB, after {after / 1024:7.1f} MiB")
        print(f"  per idle session  {per_session:7.1f} KiB  (goal <= 25 KB = 24.4 KiB)")
    record.save({"sessions": options.sessions, "rss_before_kib": before,
                 "rss_after_kib": after, "kib_per_session": per_session,
                 "seconds_to_create": elapsed})


if __name__ == "__main__":
    main()
