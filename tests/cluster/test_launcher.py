"""The private redis-server of ``--workers``: socket only, no persistence, explained when absent."""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from realtime.cluster.launcher import (
    RedisDidNotStart, RedisNotInstalled, ping, start_private_redis,
)
from tests.cluster.conftest import RedisUnderTest
from tests.conftest import require_tool


@pytest.fixture
def run_dir():
    path = Path(tempfile.mkdtemp(prefix="rt-launch-"))
    yield path / "redis"
    shutil.rmtree(path, ignore_errors=True)


def test_private_redis_listens_only_on_a_private_socket(run_dir) -> None:
    binary = require_tool("redis-server")
    server = start_private_redis(run_dir, binary=binary)
    try:
        assert server.url == f"unix://{run_dir}/redis.sock"
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o700
        probe = RedisUnderTest.__new__(RedisUnderTest)
        probe.server = server
        assert probe.command("CONFIG", "GET", "port") == [b"port", b"0"]      # no TCP
        assert probe.command("CONFIG", "GET", "save") == [b"save", b""]       # no snapshots
        assert probe.command("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]
    finally:
        server.stop()
    assert server.process.poll() is not None
    assert not server.socket_path.exists() and not ping(server.socket_path)


def test_missing_binary_says_what_to_install(run_dir) -> None:
    with pytest.raises(RedisNotInstalled) as caught:
        start_private_redis(run_dir, binary="/nonexistent/redis-server")
    message = str(caught.value)
    assert "apt-get install redis-server" in message and "--cluster redis://" in message


def test_a_server_that_exits_is_reported_with_its_log(run_dir) -> None:
    with pytest.raises(RedisDidNotStart, match="redis-server exited with status 1"):
        start_private_redis(run_dir, binary=shutil.which("false"))
