"""
The TURN ports: UDP and TCP on ``--turn-port``, TLS on ``--turns-port``.

A TURN server (RFC 8656) listens on 3478 for UDP and TCP and on 5349 for
TLS (§3.1, §18).  Until the TURN machine lands these ports answer STUN
Binding requests, as ``turn.cloudflare.com`` does (CALLS-API.md §1.5).

* **UDP** is the same adapter as the media port (:class:`MediaPort`, named
  ``"turn"``): each datagram is one STUN message or ChannelData message.
* **TCP and TLS** carry the same messages on a byte stream (RFC 8489
  §6.2.2, RFC 8656 §12.5).  :class:`TurnStreamProtocol` feeds every chunk to
  a pure :class:`~realtime.net.stream_framing.StreamFramer` and routes each
  complete frame like a datagram; replies go back on the same connection::

     TCP/TLS bytes ──dataReceived──> StreamFramer.feed ──frames──┐
                                        │ FramingError            │ classify
                                        v                         v
                         drops["framing"], abortConnection   router.route(kind, frame, peer, now)
                                                                  │ replies
     connection <──────transport.write(reply) ────────────────────┘

A stream that breaks framing (garbage, a STUN length not a multiple of 4, a
frame over the limit) cannot resynchronise, so the connection is aborted.
The number of simultaneous connections is bounded by the factory
(``max_connections``); counters live on the factory, shared by its
connections, and each drop reason is logged once.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from realtime.demux import classify
from realtime.errors import DecodeError
from realtime.net.media_port import MALFORMED, UNROUTED, MediaPort
from realtime.net.router import Address, DatagramRouter
from realtime.net.stream_framing import DEFAULT_MAX_FRAME_SIZE, StreamFramer

__all__ = ["MediaPort", "TurnStreamFactory", "TurnStreamProtocol"]


class TurnStreamProtocol(Protocol):
    """Frame one TCP/TLS connection's bytes and route each STUN/ChannelData frame."""

    def __init__(self, factory: TurnStreamFactory) -> None:
        self.factory = factory
        self.framer = StreamFramer(factory.max_frame_size)
        self.peer: Address = ("", 0)
        self._counted = False

    def connectionMade(self) -> None:
        """Note the peer address; refuse the connection past the factory's limit."""
        address = self.transport.getPeer()
        self.peer = (getattr(address, "host", ""), getattr(address, "port", 0))
        if self.factory.connections >= self.factory.max_connections:
            self.factory.drop("connection-limit", self.peer, "too many connections")
            self.transport.abortConnection()
            return
        self.factory.connections += 1
        self._counted = True

    def connectionLost(self, reason=None) -> None:
        """Release the connection's slot."""
        if self._counted:
            self._counted = False
            self.factory.connections -= 1

    def dataReceived(self, data: bytes) -> None:
        """Feed ``data`` to the framer and route each complete frame."""
        factory = self.factory
        try:
            frames = self.framer.feed(data)
        except DecodeError as error:
            factory.drop("framing", self.peer, str(error))
            self.transport.abortConnection()
            return
        now = factory.reactor.seconds()
        for frame in frames:
            kind = classify(frame)
            try:
                replies = factory.router.route(kind, frame, self.peer, now)
            except DecodeError as error:
                factory.drop(MALFORMED[kind], self.peer, str(error))
                continue
            except Exception:
                factory.drops["internal-error"] += 1
                factory.log.failure("{port}: router failed on a {kind} frame from {addr}",
                                    port=factory.name, kind=kind.name, addr=self.peer)
                continue
            if replies is None:
                factory.drop(UNROUTED[kind], self.peer, "no handler for this frame")
                continue
            for payload, _destination in replies:
                self.transport.write(payload)


class TurnStreamFactory(Factory):
    """Build :class:`TurnStreamProtocol` connections sharing one router and counters.

    :param router: the :class:`~realtime.net.router.DatagramRouter` frames go to.
    :param reactor: the clock that stamps ``now``.
    :param name: how log lines name this listener (``"turn-tcp"``, ``"turn-tls"``).
    :param max_frame_size: the framer's bound on one frame.
    :param max_connections: connections beyond this are aborted at once.
    """

    log = Logger()

    def __init__(
        self,
        router: DatagramRouter,
        reactor: IReactorTime,
        name: str = "turn-tcp",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_connections: int = 1024,
    ) -> None:
        self.router = router
        self.reactor = reactor
        self.name = name
        self.max_frame_size = max_frame_size
        self.max_connections = max_connections
        self.connections = 0
        #: dropped frames and connections per reason, e.g. ``drops["framing"]``
        self.drops: Counter[str] = Counter()
        self._logged: set[str] = set()

    def buildProtocol(self, addr: IAddress) -> TurnStreamProtocol:
        """Return a new connection protocol bound to this factory."""
        return TurnStreamProtocol(self)

    def drop(self, reason: str, addr: Address, detail: str) -> None:
        """Count a drop under ``reason``; log the first one of each reason."""
        self.drops[reason] += 1
        if reason not in self._logged:
            self._logged.add(reason)
            self.log.warn(
                "{port}: dropped input from {addr} ({reason}: {detail});"
                " further {reason} drops are only counted",
                port=self.name, addr=addr, reason=reason, detail=detail,
            )
