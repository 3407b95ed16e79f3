"""
Ports several worker processes bind at once: ``SO_REUSEPORT`` (Linux ``socket(7)``).

With ``--workers N`` every worker binds the same media, TURN and API ports.
The kernel then spreads UDP datagrams over the workers by a hash of the
4-tuple, so one peer's flow (source address and port) always reaches the same
worker, and spreads new TCP connections likewise.  A flow that lands on a
worker that did not make its session is taken over just in time
(:mod:`realtime.cluster.jit`).

Twisted's ``listenUDP``/``listenTCP`` do not set the option, so these are
its ``udp.Port``/``tcp.Port`` with the option set on the socket before
``bind``; :class:`ReusePortUDPServer` is the ``UDPServer`` service that uses
it and :class:`ReusePortEndpoint` the stream endpoint (TLS when given a
context factory, as ``listenSSL`` does).
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet import tcp, udp
from twisted.internet.defer import Deferred, fail, succeed
from twisted.protocols.tls import TLSMemoryBIOFactory


def _reuse(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class ReusePortUDP(udp.Port):
    """A UDP port whose socket has ``SO_REUSEPORT`` set before ``bind``."""

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted name)
        return _reuse(super().createInternetSocket())


class ReusePortTCP(tcp.Port):
    """A TCP listening port whose socket has ``SO_REUSEPORT`` set before ``bind``."""

    def createInternetSocket(self) -> socket.socket:  # noqa: N802 (Twisted name)
        return _reuse(super().createInternetSocket())  # type: ignore[no-untyped-call]


class ReusePortUDPServer(Service):
    """Like ``internet.UDPServer``: listen on ``port`` with ``SO_REUSEPORT`` while running."""

    def __init__(self, port: int, protocol: Any, interface: str, reactor: Any) -> None:
        self.port_number = port
        self.protocol = protocol
        self.interface = interface
        self.reactor = reactor
        self.listening: ReusePortUDP | None = None

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted name)
        """Bind now (a port in use raises ``CannotListenError`` at once)."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        self.listening = ReusePortUDP(  # type: ignore[no-untyped-call]
            self.port_number, self.protocol, self.interface, reactor=self.reactor)
        self.listening.startListening()  # type: ignore[no-untyped-call]

    def stopService(self) -> Deferred:  # noqa: N802 (Twisted name)
        """Stop listening."""
        super().stopService()  # type: ignore[no-untyped-call]
        listening, self.listening = self.listening, None
        if listening is None:
            return succeed(None)
        return Deferred.fromCoroutine(_stopped(listening))


async def _stopped(port: Any) -> None:
    await port.stopListening()


class ReusePortEndpoint:
    """A stream server endpoint on ``interface:port`` with ``SO_REUSEPORT`` (TLS if asked)."""

    def __init__(self, reactor: Any, port: int, interface: str = "",
                 context_factory: Any = None, backlog: int = 50) -> None:
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.context_factory = context_factory
        self.backlog = backlog

    def listen(self, factory: Any) -> Deferred:
        """Listen with ``factory`` (wrapped in TLS when a context factory was given)."""
        if self.context_factory is not None:
            factory = TLSMemoryBIOFactory(self.context_factory, False, factory)
        port = ReusePortTCP(self.port, factory, self.backlog, self.interface, self.reactor)
        try:
            port.startListening()
        except Exception as error:
            return fail(error)
        return succeed(port)


def reuse_port_endpoint(reactor: Any, endpoint: Any) -> ReusePortEndpoint:
    """Return the ``SO_REUSEPORT`` twin of a parsed ``tcp:``/``tcp6:``/``ssl:`` server endpoint.

    :raises ValueError: for any other kind of endpoint (it cannot be shared by workers).
    """
    from twisted.internet.endpoints import (
        SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint,
    )
    # Twisted keeps an endpoint's address in private attributes; these three are stable.
    if isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
        return ReusePortEndpoint(reactor, endpoint._port, endpoint._interface,
                                 backlog=endpoint._backlog)
    if isinstance(endpoint, SSL4ServerEndpoint):
        return ReusePortEndpoint(reactor, endpoint._port, endpoint._interface,
                                 endpoint._sslContextFactory, endpoint._backlog)
    raise ValueError(f"{type(endpoint).__name__} cannot be shared by workers "
                     "(use a tcp:, tcp6: or ssl: endpoint)")
