"""
What each directory fault does, against a real redis-server that the test kills and restarts.

* unreachable at start: ``start()`` fails with ``DirectoryUnavailable`` naming the URL,
  never the password;
* lost mid-run: every call fails at once with ``DirectoryUnavailable`` (the API's 503);
* back: the connection returns by itself, subscriptions included, well within 5 s;
* hung (SIGSTOP): a command times out instead of waiting forever.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from realtime.cluster.address import parse_redis_url
from realtime.cluster.client import DirectoryUnavailable, RedisConnection
from realtime.cluster.directory import Directory
from realtime.cluster.keys import Keys
from realtime.cluster.records import ControlMessage


def sleep(seconds: float) -> Deferred:
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def until(condition, timeout: float) -> float:
    """Poll ``condition`` every 20 ms; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await sleep(0.02)
    return time.monotonic() - start


@pytest_twisted.ensureDeferred
async def test_unreachable_at_start_names_the_url_not_the_password(tmp_path) -> None:
    # A TCP port nothing listens on: bind one, note it, close it.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = parse_redis_url(f"redis://:hunter2secret@127.0.0.1:{port}/3")
    connection = RedisConnection(reactor, address)
    with pytest.raises(DirectoryUnavailable) as caught:
        await connection.start()
    message = str(caught.value)
    assert f"redis://:***@127.0.0.1:{port}/3" in message
    assert "hunter2secret" not in message
    assert "refused" in message.lower()
    await connection.stop()


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_an_error_without_the_password(redis_server) -> None:
    address = parse_redis_url(f"unix://:hunter2secret@{redis_server.server.socket_path}")
    connection = RedisConnection(reactor, address)
    with pytest.raises(DirectoryUnavailable) as caught:
        await connection.start()
    assert "hunter2secret" not in str(caught.value)
    assert str(redis_server.server.socket_path) in str(caught.value)
    await connection.stop()


@pytest_twisted.ensureDeferred
async def test_lost_then_back_by_itself(redis_server) -> None:
    directory = Directory(reactor, redis_server.address, Keys("f"))
    await directory.start()
    received = []
    await directory.listen_control("me", received.append)
    try:
        assert await directory.redis.execute("PING") == "PONG"
        redis_server.kill()
        await until(lambda: not directory.available, 2.0)
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable) as caught:
            await directory.get_session("x")
        assert time.monotonic() - started < 0.5      # fails fast, never waits (margin for CI)
        assert redis_server.url.removeprefix("unix://") in str(caught.value)
        assert caught.value.status == 503
        body = caught.value.json_body()
        assert body["errorCode"] == "directory_unavailable"
        assert body["errorDescription"].startswith(
            f"cluster directory {redis_server.url} is unavailable: connection lost (")
        await sleep(1.5)                                  # let back-off reach its cap
        redis_server.restart()
        took = await until(lambda: directory.available and directory.subscriber.ready, 5.0)
        assert took < 4.0, f"reconnected after {took:.2f} s"   # issue 12: within 5 s
        assert directory.redis.reconnections == 1
        assert await directory.get_session("x") is None   # works again
        # The subscription was restored on the new connection.
        message = ControlMessage("close", "other", "s", "", 1.0)
        assert await directory.send_control("me", message) == 1
        await until(lambda: received == [message], 2.0)
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_a_hung_directory_times_out(redis_server) -> None:
    connection = RedisConnection(reactor, redis_server.address, command_timeout=0.3)
    await connection.start()
    pid = redis_server.server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match="did not answer GET within 0.3 s"):
            await connection.execute("GET", "k")
        assert time.monotonic() - started < 1.0
        assert not connection.ready
    finally:
        os.kill(pid, signal.SIGCONT)
    await until(lambda: connection.ready, 5.0)
    assert await connection.execute("GET", "k") is None
    await connection.stop()
