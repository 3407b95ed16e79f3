"""
``twistd realtime --cluster`` as a subprocess: it exits naming the URL when Redis is not
there, and with Redis it registers itself, heartbeats, and leaves on stop.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from realtime.cluster.options import SECRET_VARIABLE
from tests.interop.realtime_server import Server

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_unreachable_at_start_exits_naming_the_url(tmp_path) -> None:
    port = closed_port()
    server = Server(tmp_path / "state", "--cluster", f"redis://:hunter2secret@127.0.0.1:{port}/2")
    try:
        status = server.process.wait(30)
    finally:
        if server.process.poll() is None:
            server.process.kill()
    time.sleep(0.2)           # let the reader thread collect the last lines
    output = server.output()
    assert status != 0
    assert (f"realtime: cannot reach the cluster directory at redis://:***@127.0.0.1:{port}/2"
            in output), output
    assert "hunter2secret" not in output
    assert "Traceback" not in output


def test_a_node_registers_heartbeats_and_leaves(tmp_path, redis_server) -> None:
    server = Server(tmp_path / "state", "--cluster", redis_server.url, "--node-id", "node-a",
                    "--relay-address", "127.0.0.1:0")
    try:
        server.wait_ready()
        deadline = time.monotonic() + 10
        while (value := redis_server.command("GET", "rt:node:node-a")) is None:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        record = json.loads(value)
        host, port = record["relay_address"].split(":")
        assert host == "127.0.0.1" and int(port) > 0          # the port actually bound
        assert record["media_address"] == f"127.0.0.1:{server.media}"
        assert 0 < redis_server.command("PTTL", "rt:node:node-a") <= 10_000
        assert redis_server.command("PUBSUB", "NUMSUB", "rt:control:node-a")[1] == 1
        assert "cluster: node node-a in directory unix://" in server.output()
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(30)
    assert redis_server.command("GET", "rt:node:node-a") is None      # left at once
    assert redis_server.command("SMEMBERS", "rt:nodes") == []


@pytest.mark.slow
def test_a_killed_node_leaves_the_registry_within_10_seconds(tmp_path, redis_server) -> None:
    """SIGKILL: no orderly leave; the default heartbeat TTL alone removes the node."""
    server = Server(tmp_path / "state", "--cluster", redis_server.url, "--node-id", "node-k")
    try:
        server.wait_ready()
        deadline = time.monotonic() + 10
        while redis_server.command("GET", "rt:node:node-k") is None:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
    finally:
        server.process.kill()
        server.process.wait(30)
    killed = time.monotonic()
    while redis_server.command("EXISTS", "rt:node:node-k"):
        assert time.monotonic() - killed < 11, "still registered 11 s after the kill"
        time.sleep(0.1)
    gone = time.monotonic() - killed
    assert gone <= 10.5, f"left after {gone:.1f} s"   # TTL 10 s + polling and load margin
    print(f"node left the registry {gone:.1f} s after SIGKILL")
