"""
A real ``redis-server`` per test: Unix socket in a fresh temporary directory,
no TCP port, no persistence, stopped at the end.

Outside ``REALTIME_INTEROP=required`` the tests that use it skip when
``redis-server`` is absent; in required mode (CI) they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from realtime.cluster.address import parse_redis_url
from realtime.cluster.launcher import PrivateRedis, start_private_redis
from realtime.cluster.resp import NEED_MORE, RespReader, encode_command
from realtime.cluster.options import SECRET_VARIABLE
from tests.cluster.netns import NETWORKS, cluster_certificate
from tests.conftest import require, require_module, require_tool


class RedisUnderTest:
    """A redis-server the test may stop and start again on the same socket."""

    def __init__(self, binary: str, run_dir: Path) -> None:
        self.binary = binary
        self.run_dir = run_dir
        self.server: PrivateRedis = start_private_redis(run_dir, binary=binary)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def address(self):
        return parse_redis_url(self.url)

    def command(self, *args):
        """Run one command over a blocking socket (outside the reactor) and return its reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.server.socket_path))
            s.sendall(encode_command(*args))
            reader = RespReader()
            while (reply := reader.next_reply()) is NEED_MORE:
                reader.feed(s.recv(65536))
            return reply

    def kill(self) -> None:
        """SIGKILL the server (an abrupt loss, as a crash or a partition would be)."""
        self.server.process.kill()
        self.server.process.wait(5)

    def restart(self) -> None:
        self.server = start_private_redis(self.run_dir, binary=self.binary)

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def redis_server():
    binary = require_tool("redis-server")
    run_dir = Path(tempfile.mkdtemp(prefix="rt-redis-"))
    server = RedisUnderTest(binary, run_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def certificate_file(tmp_path):
    """The cluster's DTLS certificate: one PEM file (certificate + key) every node is given."""
    return cluster_certificate(tmp_path)


@pytest.fixture
def namespaces(monkeypatch, traffic_guard) -> None:
    """What every network-namespace test of the cluster needs: root, ``ip``, aiortc for its
    peers, the namespaces' addresses allowed by the traffic guard (nothing else), and the
    cluster secret in the environment the nodes inherit."""
    require_tool("ip")
    require_module("aiortc")
    require(os.geteuid() == 0, "network namespaces need root (CI runs as root)")
    traffic_guard.allow(*NETWORKS)   # the namespaces the test builds (and removes)
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")
