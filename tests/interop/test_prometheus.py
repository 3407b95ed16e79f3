"""
Issue 17: Debian's ``prometheus`` scrapes ``twistd realtime --metrics`` during a real call.

The server runs with ``--metrics tcp:PORT:interface=127.0.0.1``; a Prometheus
server of its own (loopback ports only, its own temporary storage, a 1 s
scrape interval) scrapes it; an aiortc publisher pushes audio and video and
an aiortc subscriber pulls both (tests/interop/test_sfu_aiortc.py).  One
garbage datagram to the media port makes sure a drop reason exists.  Then
the series are read back through Prometheus' HTTP API (``/api/v1/query``),
as a dashboard would: packets forwarded > 0, drops by reason present, the
API latency histogram populated, the process collector there.  The server
runs with ``--log-format json`` too: its stdout must be JSON lines whose
session and track events carry the ids as fields.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import require_module, require_tool
from tests.interop.aiortc_frames import assert_rates
from tests.interop.realtime_server import APP_ID, Server, free_port, stop_process
from tests.interop.test_sfu_aiortc import publish, subscribe

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")

#: seconds Prometheus has to show a series after the call (1 s scrapes, margin for load)
SERIES_TIMEOUT = 30.0


class Prometheus:
    """Debian's ``prometheus`` on loopback, scraping one target every second."""

    def __init__(self, binary: str, directory: Path, target: str) -> None:
        self.port = free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: realtime\n    static_configs:\n"
            f"      - targets: ['{target}']\n")
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def query(self, expression: str) -> list[dict]:
        """Return the result vector of an instant query."""
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expression}))
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait(self, expression: str, check, timeout: float = SERIES_TIMEOUT) -> list[dict]:
        """Query until ``check(result)`` holds; return that result (fail with the last one)."""
        deadline = time.monotonic() + timeout
        result: list[dict] = []
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("prometheus exited: " + (self.process.stderr.read() or ""))
            try:
                result = self.query(expression)
            except OSError:
                result = []   # not listening yet
            if check(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expression}: {result}")

    def stop(self) -> None:
        stop_process(self.process)


class JsonLogServer(Server):
    """The server with ``--log-format json``: the banner is read from the events' fields."""

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def api_url(self) -> str:
        for event in self.events():
            if event.get("log_format") == "realtime API listening on {url}":
                return event["url"]
        raise KeyError("url")


def values(result: list[dict]) -> list[float]:
    return [float(sample["value"][1]) for sample in result]


async def one_call(server: Server) -> None:
    pc, publisher, names = await publish(server)
    try:
        result = await subscribe(server, publisher, names, seconds=6.0)
    finally:
        await pc.close()
    assert_rates(result["rates"], result)


def test_prometheus_reads_a_calls_series(tmp_path) -> None:
    binary = require_tool("prometheus")
    metrics_port = free_port()
    server = JsonLogServer(tmp_path / "state", "--metrics",
                           f"tcp:{metrics_port}:interface=127.0.0.1", "--log-format", "json",
                           app=True)
    prometheus = Prometheus(binary, tmp_path, f"127.0.0.1:{metrics_port}")
    try:
        server.wait_ready()
        prometheus.wait('up{job="realtime"}', lambda r: values(r) == [1.0])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as garbage:  # malformed STUN
            garbage.sendto(b"\x00\x01\x00\x04\x21\x12", ("127.0.0.1", server.media))
        asyncio.run(one_call(server))
        # RTP forwarded to the subscriber, per kind
        forwarded = prometheus.wait(
            'sum by (kind) (realtime_rtp_packets_total{direction="out"})',
            lambda r: len(r) == 2 and min(values(r)) > 0)
        assert {s["metric"]["kind"] for s in forwarded} == {"audio", "video"}
        prometheus.wait('realtime_rtp_packets_total{direction="in",kind="video"}',
                        lambda r: values(r) and values(r)[0] > 0)
        # drops by reason: at least the garbage datagram, labelled with its reason
        drops = prometheus.wait('realtime_port_drops_total{port="media"}',
                                lambda r: any(s["metric"].get("reason") == "malformed-stun"
                                              for s in r))
        assert all("reason" in s["metric"] for s in drops)
        # the API latency histogram of sessions/new, per route template
        histogram = prometheus.wait(
            'realtime_api_request_duration_seconds_count{route="/v1/apps/<app_id>/sessions/new"}',
            lambda r: values(r) and values(r)[0] >= 2)        # publisher + subscriber
        assert histogram[0]["metric"]["method"] == "POST"
        prometheus.wait('histogram_quantile(0.99, sum by (le) '
                        '(rate(realtime_api_request_duration_seconds_bucket[1m])))',
                        lambda r: bool(r))
        prometheus.wait('realtime_api_requests_total{status="201"}', lambda r: bool(r))
        prometheus.wait("realtime_peer_bytes_total", lambda r: min(values(r) or [0]) > 0)
        prometheus.wait("process_resident_memory_bytes", lambda r: values(r)[0] > 1e6)
        prometheus.wait("realtime_reactor_lag_seconds_count", lambda r: values(r)[0] > 0)
        # no label carries a session id: every label value is short and id-free
        everything = prometheus.query('{__name__=~"realtime_.*"}')
        for sample in everything:
            for name, value in sample["metric"].items():
                assert len(value) < 64 and not _looks_like_an_id(value), (name, value)
    finally:
        prometheus.stop()
        server.stop()
    # --log-format json: one object per line, the ids as fields
    events = server.events()
    assert not [line for line in server.output().splitlines()
                if "realtime API listening on" in line and not line.startswith("{")]
    created = [e for e in events if e.get("log_format") == "session {session_id} created"]
    assert len(created) == 2 and all(len(e["session_id"]) == 32 for e in created), created
    assert {e["app_id"] for e in created} == {APP_ID}
    tracks = [e for e in events if "track_name" in e]
    assert {e["track_name"] for e in tracks} == {"aiortc-audio", "aiortc-video"}, tracks
    assert {e["session_id"] for e in tracks} == {e["session_id"] for e in created}
    assert any(e.get("log_format") == "session {session_id} connected" for e in events)


def test_prometheus_reads_turn_series(tmp_path) -> None:
    """coturn's turnutils_uclient relays through our TURN server (UDP, channels) while
    Prometheus scrapes: allocations, relayed bytes by transport and the 401s show."""
    binary = require_tool("prometheus")
    uclient = require_tool("turnutils_uclient")
    peer_tool = require_tool("turnutils_peer")
    metrics_port, peer_port = free_port(), free_port()
    key, token = "metrics", "metrics-token-0123456789"
    server = Server(tmp_path / "state", "--metrics", f"tcp:{metrics_port}:interface=127.0.0.1",
                    "--allow-loopback-peers", "--turn-key", f"{key}:{token}",
                    "--relay-ports", "46000-46999", app=True)
    peer = subprocess.Popen([peer_tool, "-L", "127.0.0.1", "-p", str(peer_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prometheus = Prometheus(binary, tmp_path, f"127.0.0.1:{metrics_port}")
    try:
        server.wait_ready()
        prometheus.wait('up{job="realtime"}', lambda r: values(r) == [1.0])
        request = urllib.request.Request(
            f"{server.api_url()}/v1/turn/keys/{key}/credentials/generate-ice-servers",
            data=json.dumps({"ttl": 600}).encode(), method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            relay = json.loads(response.read())["iceServers"][1]
        base = [uclient, "-c", "-n", "150", "-e", "127.0.0.1", "-r", str(peer_port),
                "-p", str(server.turn), "-u", relay["username"]]
        result = subprocess.run([*base, "-w", relay["credential"], "127.0.0.1"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        subprocess.run([*base, "-w", "not-the-password", "127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
        relayed = prometheus.wait('realtime_turn_relayed_bytes_total{transport="udp"}',
                                  lambda r: len(r) == 2 and min(values(r)) > 0)
        assert {s["metric"]["direction"] for s in relayed} == {"in", "out"}
        prometheus.wait('max_over_time(realtime_turn_allocations{transport="udp"}[5m])',
                        lambda r: values(r) and values(r)[0] >= 1)
        unauthorized = prometheus.wait(
            "realtime_turn_unauthorized_total",
            lambda r: {s["metric"]["cause"] for s in r} == {"challenge", "integrity"})
        assert min(values(unauthorized)) >= 1
        prometheus.wait('realtime_api_requests_total{route="/v1/turn/keys/<key_id>/credentials'
                        '/generate-ice-servers",status="201"}', lambda r: values(r) == [1.0])
    finally:
        prometheus.stop()
        stop_process(peer)
        server.stop()


def _looks_like_an_id(value: str) -> bool:
    """Return whether ``value`` is a 32-hex session id (what a label must never hold)."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
