"""
A Redis client on the Twisted reactor: RESP over one TCP or Unix connection.

Pieces, bottom up:

* :class:`RespProtocol` -- a Twisted ``Protocol`` over :class:`~realtime.cluster.resp.RespReader`.
  Commands are *pipelined*: each ``execute`` writes at once and queues a
  ``Deferred``; Redis answers in order, so the oldest ``Deferred`` gets the
  next reply.  In subscriber mode (after ``SUBSCRIBE``) the server also
  *pushes* ``["message", channel, payload]`` arrays, handed to ``on_message``.
* :class:`RedisConnection` -- keeps one :class:`RespProtocol` connected:
  ``AUTH`` and ``SELECT`` on every (re)connection, re-``SUBSCRIBE``, a
  timeout per command, and reconnection with capped exponential back-off
  when Redis goes away.  While it is down, :meth:`RedisConnection.execute`
  fails at once with :class:`DirectoryUnavailable` (the API maps it to a JSON
  503), never waits.

Nothing here blocks the reactor: writes are buffered by the transport, replies
arrive in ``dataReceived``.  Media code never calls this module (DESIGN.md §6):
the directory is consulted at the edges only.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, cast

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from realtime.cluster.address import RedisAddress
from realtime.cluster.resp import RespDecodeError, RespError, RespReader, encode_command

log = Logger()

#: Seconds a command may wait for its reply before the connection is deemed lost.
COMMAND_TIMEOUT = 2.0
#: Seconds to wait for a TCP/Unix connection to Redis.
CONNECT_TIMEOUT = 2.0
#: Reconnection back-off: first delay, growth factor, cap (seconds).  The cap
#: keeps "Redis is back" -> "node works again" well under 5 s.
RETRY_FIRST, RETRY_FACTOR, RETRY_MAX = 0.05, 2.0, 1.0

MessageCallback = Callable[[bytes, bytes], None]


class DirectoryUnavailable(Exception):
    """Raised when the cluster directory (Redis) cannot answer now.

    The message names the (redacted) URL and the cause; the API turns it into
    ``503 {"errorCode": "directory_unavailable", "errorDescription": str(error)}``.
    """

    #: The HTTP status and ``errorCode`` the API answers with.
    status = 503
    error_code = "directory_unavailable"

    def json_body(self) -> dict[str, str]:
        """Return the API's JSON error body (Cloudflare's shape, CALLS-API.md §3.1)."""
        return {"errorCode": self.error_code, "errorDescription": str(self)}


class RedisCommandError(Exception):
    """Raised when Redis answers a command with an error reply (``-ERR ...``)."""

    def __init__(self, reply: RespError) -> None:
        super().__init__(reply.message)
        self.reply = reply


class RespProtocol(Protocol):
    """Send pipelined commands and match replies to them in order.

    :param on_message: called with ``(channel, payload)`` for every pub/sub
        message pushed on this connection.
    """

    def __init__(self, on_message: MessageCallback | None = None) -> None:
        self._reader = RespReader()
        self._waiting: deque[Deferred] = deque()
        self._on_message = on_message
        self.connected_deferred: Deferred = Deferred()
        #: Fires with the reason's message when the connection is lost.
        self.lost_deferred: Deferred = Deferred()
        self.lost_reason: Failure | None = None

    def connectionMade(self) -> None:  # noqa: N802 (Twisted name)
        self.connected_deferred.callback(self)

    def execute(self, *args: bytes | str | int) -> Deferred:
        """Send one command; return a ``Deferred`` firing with its reply value.

        An error reply fails it with :class:`RedisCommandError`.
        """
        waiter: Deferred = Deferred()
        self._waiting.append(waiter)
        _transport(self).write(encode_command(*args))
        return waiter

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted name)
        self._reader.feed(data)
        try:
            replies = self._reader.replies()
        except RespDecodeError as error:
            log.error("cluster directory sent malformed RESP: {error}", error=str(error))
            _transport(self).abortConnection()
            return
        for reply in replies:
            self._deliver(reply)

    def _deliver(self, reply: object) -> None:
        if (self._on_message is not None and isinstance(reply, list) and len(reply) == 3
                and reply[0] == b"message"):
            self._on_message(reply[1], reply[2])
            return
        if not self._waiting:
            log.warn("cluster directory sent a reply nobody asked for; dropping the connection")
            _transport(self).abortConnection()
            return
        waiter = self._waiting.popleft()
        if isinstance(reply, RespError):
            waiter.errback(RedisCommandError(reply))
        else:
            waiter.callback(reply)

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            waiter.errback(DirectoryUnavailable(f"connection lost: {reason.getErrorMessage()}"))
        self.lost_reason = reason
        self.lost_deferred.callback(reason.getErrorMessage())


class RedisConnection:
    """Keep one connection to Redis, re-established by itself when lost.

    :param reactor: provides ``IReactorTime`` and TCP/Unix connections.
    :param address: where Redis is (the password is sent with ``AUTH``, never logged).
    :param on_message: when given, this is a *subscriber* connection: pushed
        messages go there and :meth:`subscribe` channels are restored on reconnect.
    """

    def __init__(self, reactor, address: RedisAddress, *,
                 on_message: MessageCallback | None = None,
                 command_timeout: float = COMMAND_TIMEOUT) -> None:
        self.reactor = reactor
        self.address = address
        self.url = address.redacted()
        self.command_timeout = command_timeout
        self._on_message = on_message
        self._channels: list[bytes] = []
        self._protocol: RespProtocol | None = None
        self._ready = False
        self._stopping = False
        self._retry_call = None
        self._delay = RETRY_FIRST
        self._last_error = "not connected yet"
        #: Times the connection came back after a loss (tests and metrics).
        self.reconnections = 0

    @property
    def ready(self) -> bool:
        """True while commands can be sent (connected, authenticated, database selected)."""
        return self._ready

    def start(self) -> Deferred:
        """Connect once; fire when ready, or fail with :class:`DirectoryUnavailable` naming the URL.

        After a successful start, losses are repaired in the background.
        """
        self._stopping = False
        d = self._connect()

        def failed(failure: Failure) -> None:
            raise DirectoryUnavailable(
                f"cannot reach the cluster directory at {self.url}: {_cause(failure)}")

        return d.addErrback(failed)

    def stop(self) -> Deferred:
        """Stop reconnecting and close the connection; fire when it is closed."""
        self._stopping = True
        self._ready = False
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        protocol, self._protocol = self._protocol, None
        if protocol is None or protocol.transport is None:
            return succeed(None)
        done = protocol.lost_deferred
        _transport(protocol).loseConnection()
        return done.addBoth(lambda _: None)

    def unavailable(self) -> DirectoryUnavailable | None:
        """Return the error a command would fail with now, or ``None`` while Redis is ready."""
        if self._ready:
            return None
        return DirectoryUnavailable(
            f"cluster directory {self.url} is unavailable: {self._last_error}")

    def execute(self, *args: bytes | str | int) -> Deferred:
        """Send a command; fail at once with :class:`DirectoryUnavailable` while Redis is away."""
        error, protocol = self.unavailable(), self._protocol
        if error is not None or protocol is None:
            return fail(error or DirectoryUnavailable(f"cluster directory {self.url} is unavailable"))
        return self._send(protocol, *args)

    def subscribe(self, channel: bytes | str) -> Deferred:
        """Subscribe this (subscriber) connection to ``channel``; kept across reconnections."""
        if self._on_message is None:
            raise TypeError("subscribe() needs a connection made with on_message")
        name = channel.encode() if isinstance(channel, str) else channel
        if name not in self._channels:
            self._channels.append(name)
        return self.execute("SUBSCRIBE", name)

    def _send(self, protocol: RespProtocol, *args) -> Deferred:
        d = protocol.execute(*args)
        d.addTimeout(self.command_timeout, self.reactor)

        def timed_out(failure: Failure) -> Failure:
            if isinstance(failure.value, (DeferredTimeout, CancelledError)):
                error = DirectoryUnavailable(
                    f"cluster directory {self.url} did not answer {args[0]!s} "
                    f"within {self.command_timeout:g} s")
                if protocol is self._protocol:
                    # Later replies would be out of step: drop the connection now;
                    # _lost (called once the transport is gone) reconnects.
                    self._ready = False
                    self._last_error = str(error)
                if protocol.transport is not None:
                    _transport(protocol).abortConnection()
                raise error
            return failure

        return d.addErrback(timed_out)

    def _endpoint(self) -> Any:
        if self.address.unix_path is not None:
            return UNIXClientEndpoint(
                self.reactor, self.address.unix_path, timeout=CONNECT_TIMEOUT)
        return HostnameEndpoint(self.reactor, self.address.host or "localhost",
                                self.address.port, timeout=CONNECT_TIMEOUT)

    def _connect(self) -> Deferred:
        protocol = RespProtocol(self._on_message)
        d = connectProtocol(self._endpoint(), protocol)
        d.addCallback(lambda _: Deferred.fromCoroutine(self._handshake(protocol)))
        return d

    async def _handshake(self, protocol: RespProtocol) -> None:
        address = self.address
        try:
            if address.password is not None:
                if address.username:
                    await self._send(protocol, "AUTH", address.username, address.password)
                else:
                    await self._send(protocol, "AUTH", address.password)
            if address.db:
                await self._send(protocol, "SELECT", address.db)
            for channel in self._channels:
                await self._send(protocol, "SUBSCRIBE", channel)
        except BaseException:
            if protocol.transport is not None:
                _transport(protocol).abortConnection()
            raise
        if self._stopping:
            _transport(protocol).loseConnection()
            return
        self._protocol = protocol
        self._ready = True
        self._delay = RETRY_FIRST
        protocol.lost_deferred.addCallback(self._lost, protocol)

    def _lost(self, cause: str, protocol: RespProtocol) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        self._ready = False
        self._last_error = f"connection lost ({cause})"
        if not self._stopping:
            log.warn("cluster directory {url} lost: {cause}; reconnecting",
                     url=self.url, cause=cause)
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay, self._delay = self._delay, min(self._delay * RETRY_FACTOR, RETRY_MAX)
        self._retry_call = self.reactor.callLater(delay, self._retry)

    def _retry(self) -> None:
        self._retry_call = None
        if self._stopping:
            return

        def connected(_: object) -> None:
            self.reconnections += 1
            log.info("cluster directory {url} is back", url=self.url)

        def failed(failure: Failure) -> None:
            self._last_error = f"reconnecting ({_cause(failure)})"
            if not self._stopping:
                self._schedule_retry()

        self._connect().addCallbacks(connected, failed)


def _cause(failure: Failure) -> str:
    """Return a short reason for ``failure`` with no secret in it."""
    if isinstance(failure.value, RedisCommandError):
        return f"Redis refused: {failure.value.reply.kind}"
    return failure.getErrorMessage()


def _transport(protocol: Protocol) -> Any:
    """Return ``protocol``'s transport (Twisted's interface stubs lack ``self``, so: Any)."""
    return protocol.transport

