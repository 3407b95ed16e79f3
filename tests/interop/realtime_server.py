"""
The real service for interop tests: ``twistd -n realtime`` as a subprocess.

Every port is chosen free, the app is given on the command line (so tests
know its secret), and readiness is the start-up banner plus an answered
Binding request on the media port.  Test modules share it through the
``realtime_server`` fixture in ``tests/interop/conftest.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).with_name("twistd")
APP_ID = "interop0app0interop0app000000000"
APP_SECRET = "interop-secret-0123456789abcdef"


def free_port() -> int:
    """Return a port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``process`` (SIGTERM), then kill it if it is still there after ``grace`` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Server:
    """A running ``twistd -n realtime`` and what it printed."""

    def __init__(self, state: Path, *extra: str, app: bool = False,
                 program: list[str] | None = None) -> None:
        """``program``: what runs instead of ``twistd`` (e.g. a test's wrapper of it)."""
        self.state = state
        self.media, self.turn, self.turns = free_port(), free_port(), free_port()
        self.lines: list[str] = []
        self.keylog = state.parent / "dtls.keylog"
        self.media_host = "127.0.0.1"
        if "--media-interface" in extra:
            self.media_host = extra[extra.index("--media-interface") + 1]
        command = [*(program or [str(TWISTD)]), "-n", "--pidfile=", "realtime", "--state-dir", str(state),
                   "--api", "tcp:0:interface=127.0.0.1", "--media-port", str(self.media),
                   "--turn-port", str(self.turn), "--turns-port", str(self.turns), *extra]
        if app:
            command += ["--app", f"{APP_ID}:{APP_SECRET}"]
        self.process = subprocess.Popen(
            command, cwd=state.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("twistd exited:\n" + self.output())
            banner = "realtime API listening on" in self.output()
            if banner and binding_over_udp(self.media, 0.2, self.media_host):
                return
            time.sleep(0.1)
        raise RuntimeError("twistd did not become ready:\n" + self.output())

    def wait_workers(self, count: int = 2, timeout: float = 30.0) -> None:
        """With ``--workers``: wait until ``count`` workers announce their API (``wait_ready``
        returns at the first banner; until the others listen, the kernel hands every
        connection to the first and nothing crosses workers)."""
        self.wait_ready(timeout)
        deadline = time.monotonic() + timeout
        while self.output().count("realtime API listening on") < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"fewer than {count} workers listening:\n"
                                   + self.output()[-3000:])
            time.sleep(0.1)

    def value(self, prefix: str) -> str:
        for line in self.output().splitlines():
            if prefix in line:
                return line.split(prefix, 1)[1].strip()
        raise KeyError(prefix)

    def stop(self) -> None:
        stop_process(self.process)

    def api_url(self) -> str:
        """Return the API base URL the banner announced."""
        return self.value("realtime API listening on")

    def get(self, path: str, secret: str = APP_SECRET) -> tuple[int, dict]:
        """GET ``{api}/v1/apps/{APP_ID}{path}``; return (status, body)."""
        return self.call("GET", path, None, secret)

    def post(self, path: str, body: dict, secret: str = APP_SECRET) -> tuple[int, dict]:
        """POST JSON to ``{api}/v1/apps/{APP_ID}{path}``; return (status, body)."""
        return self.call("POST", path, body, secret)

    def put(self, path: str, body: dict, secret: str = APP_SECRET) -> tuple[int, dict]:
        """PUT JSON to ``{api}/v1/apps/{APP_ID}{path}``; return (status, body)."""
        return self.call("PUT", path, body, secret)

    def call(self, method: str, path: str, body: dict | None,
             secret: str = APP_SECRET) -> tuple[int, dict]:
        """``method`` ``{api}/v1/apps/{APP_ID}{path}`` with a JSON ``body``; (status, body)."""
        request = urllib.request.Request(
            f"{self.api_url()}/v1/apps/{APP_ID}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {secret}"}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def binding_over_udp(port: int, timeout: float, host: str = "127.0.0.1") -> tuple[str, int] | None:
    """Send a Binding request to host:port; return who answered, or None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as udp:
        udp.settimeout(timeout)
        udp.sendto(bytes.fromhex("000100002112a442") + bytes(12), (host, port))
        try:
            return udp.recvfrom(2048)[1]
        except OSError:
            return None
