"""
The TURN ports: UDP and TCP on ``--turn-port``, TLS on ``--turns-port``, and the TURN adapter.

A TURN server (RFC 8656) listens on 3478 for UDP and TCP and on 5349 for
TLS (§3.1).  :class:`TurnHost` runs the sans-I/O
:class:`~realtime.turn.server.TurnServer` behind them (see the diagram
above :class:`TurnHost`): :class:`TurnUdpPort` for UDP listeners,
:class:`TurnConnectionFactory` / :class:`TurnConnection` for TCP and TLS,
relay sockets in :mod:`realtime.net.turn_relay`.  On TCP and TLS the bytes
are cut into frames first (:class:`~realtime.stun.stream.StreamFramer`)::

     TCP/TLS bytes ──dataReceived──> StreamFramer.feed ──frames──┐
                                        │ FramingError            │
                                        v                         v
                         drops["framing"], abortConnection   TurnHost.receive(frame, (key, peer))

A stream that breaks framing (garbage, a STUN length not a multiple of 4, a
frame over the limit) cannot resynchronise, so the connection is aborted.
:class:`TurnConnection` is admitted by a
:class:`~realtime.net.stream_gate.ConnectionGate` shared by every TCP/TLS
listener (global and per-address caps, shedding the oldest unauthenticated
connection first) and closed past its TLS-handshake, authentication or idle
deadline.  Counters live on the factory, shared by its connections, and
each drop reason is logged once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence, cast

from twisted.internet.interfaces import (
    IAddress, IDelayedCall, IHandshakeListener, IProtocolNegotiationFactory, IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from realtime.addresses import Address
from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.net.media_port import MediaPort
from realtime.net.driver import MachineDriver
from realtime.net.stream_gate import ConnectionGate, StreamLimits
from realtime.net.turn_fast import SEND_INDICATION, FastPath, split_send_indication
from realtime.net.turn_relay import RelaySink
from realtime.stun.stream import StreamFramer
from realtime.turn.allocation import Route
from realtime.turn.events import AllocationDeleted
from realtime.turn.server import TurnServer

#: Default bound on one frame (STUN message or padded ChannelData), in bytes.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024

__all__ = ["MediaPort", "TurnConnection", "TurnConnectionFactory", "TurnHost", "TurnUdpPort"]


# -- the TURN server adapter ----------------------------------------------------
#
#   TurnUdpPort("udp") ──datagram──┐                                  ┌─> TurnUdpPort
#   TurnConnection("tcp#7") ─frame─┼─> TurnHost.receive ─> TurnServer ─> send ─┼─> TurnConnection
#   RelaySocket((ip, port)) ─data──┘    (then pump; one timer)  sockets[key]  └─> RelaySocket
#
# Every socket the TURN machine may name in a route registers itself in
# ``TurnHost.sockets`` under its key (listener name, connection key or relay
# address), so sending is one dict lookup.


class TurnHost:
    """Run one :class:`~realtime.turn.server.TurnServer`: feed it, send its output, keep its timer.

    UDP sockets (listeners and relays) hand over whole ``recvmmsg`` batches
    (:meth:`receive_batch`): while a batch is delivered the host is *corked*,
    every datagram for a UDP socket is queued on that socket, and each socket
    writes its queue with one ``sendmmsg`` at the end.  ChannelData takes the
    :class:`~realtime.net.turn_fast.FastPath` when it can.

    :param reactor: the clock and UDP reactor.
    :param server: the machine to drive; its relay allocator was built on ``sink``.
    :param sink: the :class:`~realtime.net.turn_relay.RelaySink` the relays
        deliver through: this host binds it to :meth:`receive` and
        :meth:`receive_batch`, and sends through its socket table.
    :param fast: use the ChannelData fast path (``False``: every packet goes
        through the machine, the reference behaviour).
    """

    log = Logger()

    def __init__(self, reactor: IReactorTime, server: TurnServer, sink: RelaySink,
                 fast: bool = True) -> None:
        self.reactor = reactor
        #: the machine and its driver (one timer)
        self.server = server
        self.driver: MachineDriver[Route] = MachineDriver(server, self.send, reactor)
        #: socket key -> object with ``write_to(data, addr)`` (UDP ones: ``queued``, ``write_many``)
        self.sockets: dict[Any, Any] = sink.sockets
        self.drops: Counter[str] = Counter()
        self._logged: set[str] = set()
        self.fast = FastPath(self) if fast else None
        #: while corked: the UDP sockets with queued datagrams, else ``None``
        self.dirty: list | None = None
        self._unlogged: list = []
        sink.bind(self.receive, self.receive_batch)

    def pump(self) -> None:
        """Send what the machine queued outside :meth:`receive` (a revocation) and re-arm."""
        self.driver.pump()

    def receive(self, data: bytes, route: Route, now: float | None = None) -> None:
        """Give one packet to the machine, then send its output and re-arm its timer."""
        server, driver = self.server, self.driver
        if now is None:
            now = self.reactor.seconds()
        fast = self.fast
        if fast is not None and data and data[0] < 0x40 and type(route[0]) is not tuple \
                and data[0:2] != SEND_INDICATION:
            fast.forget(route)  # a STUN message may change what the entries promise
        try:
            server.receive_datagram(data, route, now)
        except DecodeError as error:
            self.drop("malformed", route, str(error))
        except Exception:
            self.drops["internal-error"] += 1
            self.log.failure("TURN machine failed on a packet from {route}", route=route)
        driver.pump()
        if server._events:
            self._take_events()
            if self.dirty is None:
                self._log_events()

    def receive_batch(self, socket: Any, batch: Sequence[tuple[bytes, Address]]) -> None:
        """Deliver one ``recvmmsg`` batch from UDP ``socket`` (a listener or a relay), corked."""
        now = self.reactor.seconds()
        fast = self.fast
        outer = self.dirty
        if outer is None:
            self.dirty = []
        try:
            if fast is None:
                key, receive = socket.key, self.receive
                for data, addr in batch:
                    receive(data, (key, addr), now)
            else:
                socket.receive_fast(self, fast, batch, now)
        finally:
            if outer is None:
                self.flush()

    def flush(self) -> None:
        """Uncork: every UDP socket writes what was queued on it (one ``write_many`` each).

        Events are logged after the writes: a log line costs more than a
        datagram, and the client waiting for its Allocate answer should not
        wait for it.
        """
        dirty, self.dirty = self.dirty, None
        for target in dirty or ():
            queued, target.queued = target.queued, []
            target.write_many(queued)
        if self._unlogged:
            self._log_events()

    def _take_events(self) -> None:
        """Take the machine's events: forget fast-path entries of deleted allocations now."""
        fast, server = self.fast, self.server
        for event in iter(server.next_event, None):
            if fast is not None and type(event) is AllocationDeleted:
                fast.forget(event.client)
            self._unlogged.append(event)

    def _log_events(self) -> None:
        self._take_events()
        unlogged, self._unlogged = self._unlogged, []
        for event in unlogged:
            self.log.info("TURN {event}", event=event)

    def send(self, data: bytes, route: Route) -> None:
        """Write ``data`` on the socket the route names (dropped if it has gone); queue if corked."""
        target = self.sockets.get(route[0])
        if target is None:
            self.drops["socket-gone"] += 1
            return
        dirty = self.dirty
        if dirty is not None:
            queued = getattr(target, "queued", None)
            if queued is not None:
                if not queued:
                    dirty.append(target)
                queued.append((data, route[1]))
                return
        target.write_to(data, route[1])

    def close_client(self, route: Route) -> None:
        """Tell the machine a client connection closed (its allocation goes)."""
        if self.fast is not None:
            self.fast.forget(route)
        self.server.close_client(route, self.reactor.seconds())
        self.pump()
        self._log_events()

    def stop(self) -> None:
        """Cancel the timer."""
        self.driver.stop()

    def drop(self, reason: str, route: Route, detail: str) -> None:
        """Count a dropped packet; log the first of each reason."""
        self.drops[reason] += 1
        if reason not in self._logged:
            self._logged.add(reason)
            self.log.warn("TURN: dropped a packet from {route} ({reason}: {detail});"
                          " further {reason} drops are only counted",
                          route=route, reason=reason, detail=detail)


class _NoRouter:
    """The router of a :class:`TurnUdpPort`: it hands datagrams to the TURN host instead."""

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float) -> None:
        return None


class TurnUdpPort(MediaPort):
    """A UDP TURN listener: every datagram goes to the :class:`TurnHost` as ``(name, addr)``.

    :param host: the TURN host.
    :param reactor: the clock.
    :param name: the listener key; must start with ``udp`` (``"udp"``, ``"udp-alt-53"``).
    """

    def __init__(self, host: TurnHost, reactor: IReactorTime, name: str = "udp") -> None:
        super().__init__(_NoRouter(), reactor, name)
        self.host = host
        self.key = name
        #: datagrams queued while the host is corked
        self.queued: list[tuple[bytes, Address]] = []
        #: the fast path's entries: (client address, channel number) -> RelayEntry
        self.channels: dict[tuple[Address, int], Any] = {}
        #: (client address, XOR-PEER-ADDRESS value) -> RelayEntry (Send indications)
        self.sends: dict[tuple[Address, bytes], Any] = {}
        host.sockets[name] = self

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        """Hand the datagram to the TURN host."""
        self.host.receive_batch(self, ((data, (addr[0], addr[1])),))

    def datagramsReceived(self, batch: Sequence[tuple[bytes, Address]]) -> None:
        """Hand a ``recvmmsg`` batch to the TURN host."""
        self.host.receive_batch(self, batch)

    def receive_fast(self, host: TurnHost, fast: FastPath, batch: Sequence[tuple[bytes, Address]],
                     now: float) -> None:
        """Relay what the fast path can, hand the rest to the machine (and learn from it)."""
        table, name, receive = self.channels, self.name, host.receive
        for data, addr in batch:
            if len(data) >= 4 and 0x40 <= data[0] < 0x80:
                channel = (data[0] << 8) | data[1]
                entry = table.get((addr, channel))
                if entry is not None and fast.channel_data(entry, data, now):
                    continue
                route = (name, addr)
                receive(data, route, now)
                fast.learn_channel(table, route, channel, now)
            elif data[0:2] == SEND_INDICATION and (send := split_send_indication(data)):
                value, start, end = send
                entry = self.sends.get((addr, value))
                if entry is not None and fast.send_indication(entry, data, start, end, now):
                    continue
                route = (name, addr)
                receive(data, route, now)
                fast.learn_send(self.sends, route, value, now)
            else:
                receive(data, (name, addr), now)

    def write_to(self, data: bytes, addr: Address) -> None:
        """Send one datagram to a client."""
        self.send(data, addr)

    def write_many(self, datagrams: list[tuple[bytes, Address]]) -> None:
        """Send datagrams to clients (one ``sendmmsg`` on a batched port)."""
        self.send_many(datagrams)


@implementer(IHandshakeListener)
class TurnConnection(Protocol):
    """One TCP or TLS client connection: frames go to the TURN host as ``(key, peer)``.

    Admission, deadlines and idle closing follow
    :mod:`realtime.net.stream_gate`: one timer per connection, armed for the
    TLS handshake, then the first authenticated Allocate (seen as the
    allocation appearing under this connection's route), then idleness.
    Once authenticated, receiving costs one float store per segment.

    Framing accepts channel numbers up to 0x7FFF (RFC 5766 clients such as
    coturn's use them; see :mod:`realtime.turn.channel_data`).
    """

    def __init__(self, factory: TurnConnectionFactory) -> None:
        self.factory = factory
        self.framer = StreamFramer(factory.max_frame_size)
        self.peer: Address = ("", 0)
        self._counted = False
        factory.serial += 1
        self.key = f"{factory.name}#{factory.serial}"
        self.route = (self.key, self.peer)
        self.handshaken = not factory.tls
        self.authenticated = False
        self.accepted = self.last_received = 0.0
        self._timer: IDelayedCall | None = None

    @property
    def stream(self) -> ITCPTransport:
        """The connection's transport (TCP, or TLS over TCP), set before ``connectionMade``."""
        return cast(ITCPTransport, self.transport)

    def connectionMade(self) -> None:
        """Ask the gate for a slot (it may shed an older connection); arm the first deadline."""
        factory = self.factory
        address = self.stream.getPeer()
        self.peer = (getattr(address, "host", ""), getattr(address, "port", 0))
        self.route = (self.key, self.peer)
        refused = factory.gate.admit(self, self.peer[0])
        if refused is not None:
            factory.drop(refused, self.peer, "too many connections")
            self.stream.abortConnection()
            return
        self._counted = True
        factory.connections += 1
        factory.host.sockets[self.key] = self
        self.accepted = self.last_received = factory.reactor.seconds()
        limits = factory.gate.limits
        first = limits.auth_timeout if self.handshaken else limits.handshake_timeout
        self._timer = factory.reactor.callLater(min(first, limits.auth_timeout), self._deadline)

    def handshakeCompleted(self) -> None:
        """The TLS handshake is done: the deadline becomes the authentication one."""
        self.handshaken = True
        if self._timer is not None and self._timer.active() and not self.authenticated:
            remaining = self.accepted + self.factory.gate.limits.auth_timeout
            self._timer.reset(max(0.0, remaining - self.factory.reactor.seconds()))

    def dataReceived(self, data: bytes) -> None:
        """Cut frames and hand each to the TURN host; bad framing aborts the connection."""
        try:
            frames = self.framer.feed(data)
        except DecodeError as error:
            self.factory.drop("framing", self.peer, str(error))
            self.stream.abortConnection()
            return
        host, route = self.factory.host, self.route
        for frame in frames:
            host.receive(frame, route)
        self.last_received = self.factory.reactor.seconds()
        if not self.authenticated and route in host.server.allocations:
            self._authenticated()

    def _authenticated(self) -> None:
        self.authenticated = self.handshaken = True
        factory = self.factory
        factory.gate.authenticated(self)
        if self._timer is not None and self._timer.active():
            self._timer.reset(factory.gate.limits.idle_timeout)

    def _deadline(self) -> None:
        """The one timer: handshake, authentication or idle deadline, by state."""
        self._timer = None
        factory = self.factory
        if not self._counted:
            return
        if not self.authenticated:
            reason = "auth-timeout" if self.handshaken else "handshake-timeout"
            self.shed(reason)
            return
        idle = factory.gate.limits.idle_timeout
        silent = factory.reactor.seconds() - self.last_received
        if silent < idle:
            wait = idle - silent
        elif self.route in factory.host.server.allocations:
            wait = idle  # the allocation's lifetime governs; look again later
        else:
            self.shed("idle-timeout")
            return
        self._timer = factory.reactor.callLater(wait, self._deadline)

    def shed(self, reason: str) -> None:
        """Close the connection now, counting ``reason`` (the gate has let it go)."""
        self.factory.drop(reason, self.peer, "connection closed")
        self.factory.gate.release(self)
        self.stream.abortConnection()

    def connectionLost(self, reason: object = None) -> None:
        """Release the slot, forget the connection and delete its allocation."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._counted:
            return
        self._counted = False
        factory = self.factory
        factory.connections -= 1
        factory.gate.release(self)
        factory.host.sockets.pop(self.key, None)
        factory.host.close_client(self.route)

    def write_to(self, data: bytes, addr: Address) -> None:
        """Write one framed message on the connection."""
        self.stream.write(data)


@implementer(IProtocolNegotiationFactory)
class TurnConnectionFactory(Factory):
    """Build :class:`TurnConnection` for a TCP (``name="tcp"``) or TLS (``"tls"``) listener.

    Over TLS it offers the ALPN protocol ``stun.turn`` (RFC 7443): clients
    such as coturn's send ALPN, and a TLS server with no ALPN answer to
    give fails their handshake.  Counters live here, shared by the
    listener's connections; each drop reason is logged once.

    :param host: the :class:`TurnHost` frames go to.
    :param reactor: the clock.
    :param name: the listener key and log name (``"tcp"``, ``"tls"``, ``"tls-alt-443"``); a
        name starting with ``tls`` arms the TLS handshake deadline.
    :param gate: the :class:`~realtime.net.stream_gate.ConnectionGate` shared by every
        stream listener (default: a gate of its own with the default limits).
    :param max_frame_size: the framer's bound on one frame.
    """

    log = Logger()

    def __init__(self, host: TurnHost, reactor: IReactorTime, name: str = "tcp",
                 gate: ConnectionGate | None = None,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.host = host
        self.reactor = reactor
        self.name = name
        self.gate = gate if gate is not None else ConnectionGate(StreamLimits())
        self.max_connections = self.gate.limits.max_connections
        self.tls = name.startswith("tls")
        self.max_frame_size = max_frame_size
        self.serial = 0
        #: open connections of this listener (all listeners together: ``gate.total``)
        self.connections = 0
        #: dropped frames and connections per reason, e.g. ``drops["framing"]``
        self.drops: Counter[str] = Counter()
        self._logged: set[str] = set()

    def acceptableProtocols(self) -> list[bytes]:
        """Return the ALPN protocols of TURN over TLS (RFC 7443 §5)."""
        return [b"stun.turn", b"stun.nat-discovery"]

    def buildProtocol(self, addr: IAddress | None) -> TurnConnection:
        """Return a new client connection."""
        return TurnConnection(self)

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
