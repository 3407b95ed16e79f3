"""
Relay sockets: one UDP socket per relayed transport address of a TURN allocation.

The TURN machine (:class:`~realtime.turn.server.TurnServer`) asks a
:class:`~realtime.turn.allocation.RelayAllocator` for relayed addresses.
:class:`BoundRelayPorts` is the real one: it lets a pure
:class:`~realtime.turn.allocation.RelayPortPool` pick port numbers from
``--relay-ports`` and binds a UDP socket on each, skipping ports some other
program holds::

    TurnServer ── open(family, even, pair) ──> BoundRelayPorts
                                                  │ pool.open(...) -> (host, port)[, (host, port+1)]
                                                  │ reactor.listenUDP(port, RelaySocket, host)
                                                  │   CannotListenError -> port stays marked
                                                  │   used, try another (8 attempts)
                                                  v
    peer ──datagrams──> RelaySocket.datagramsReceived(batch)      (one recvmmsg)
                          └─> deliver_batch(socket, batch)           (TurnHost.receive_batch:
                                fast path or TurnServer, corked)
    TurnServer output (data, (relay address, peer)) ──> RelaySocket.queued
                          └─> write_many(queued)                     (one sendmmsg)

Each socket carries exactly one allocation (or one EVEN-PORT reservation),
so a relay's bytes never mix.  Closing stops listening and returns the port
to the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.error import CannotListenError, MessageLengthError
from twisted.internet.protocol import DatagramProtocol

from realtime.addresses import Address
from realtime.turn.allocation import RelayPortPool

Deliver = Callable[[bytes, tuple[Address, Address]], None]
DeliverBatch = Callable[["RelaySocket", Sequence[tuple[bytes, Address]]], None]


class RelaySocket(DatagramProtocol):
    """Hand every datagram a relayed address receives to the TURN host, and send for it.

    :param address: the relayed transport address (the socket's key in the host's table).
    :param deliver: ``deliver(data, (relay address, peer))`` for one datagram.
    :param deliver_batch: ``deliver_batch(socket, [(data, peer), ...])`` for a
        ``recvmmsg`` batch (:meth:`~realtime.net.turn_port.TurnHost.receive_batch`);
        without it each datagram goes to ``deliver``.
    """

    def __init__(self, address: Address, deliver: Deliver,
                 deliver_batch: DeliverBatch | None = None) -> None:
        self.address = address
        self.key = address
        self.deliver = deliver
        self.deliver_batch = deliver_batch
        self.port = None
        #: datagrams queued while the host is corked
        self.queued: list = []
        #: the fast path's entries: peer address -> PeerEntry
        self.peers: dict = {}

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        """Deliver ``data`` from peer ``addr`` as ``(relay address, peer)``."""
        if self.deliver_batch is not None:
            self.deliver_batch(self, ((data, (addr[0], addr[1])),))
        else:
            self.deliver(data, (self.address, (addr[0], addr[1])))

    def datagramsReceived(self, batch: Sequence[tuple[bytes, Address]]) -> None:
        """Deliver a ``recvmmsg`` batch."""
        if self.deliver_batch is not None:
            self.deliver_batch(self, batch)
        else:
            for data, addr in batch:
                self.deliver(data, (self.address, addr))

    def receive_fast(self, host: Any, fast: Any, batch: Sequence[tuple[bytes, Address]],
                     now: float) -> None:
        """Relay what the fast path can, hand the rest to the machine (and learn from it)."""
        table, relay, receive = self.peers, self.address, host.receive
        for data, peer in batch:
            entry = table.get(peer)
            if entry is not None and fast.from_peer(entry, data, now):
                continue
            receive(data, (relay, peer), now)
            fast.learn_peer(table, relay, peer, now)

    def write_to(self, data: bytes, addr: Address) -> None:
        """Send ``data`` to peer ``addr``; socket errors (ICMP, size) are swallowed."""
        transport = self.transport
        if transport is not None:
            try:
                transport.write(data, addr)
            except (OSError, MessageLengthError):
                pass

    def write_many(self, datagrams: list) -> None:
        """Send datagrams to peers (one ``sendmmsg`` on a batched port); errors swallowed."""
        write_many = getattr(self.transport, "write_many", None)
        if write_many is None:
            for data, addr in datagrams:
                self.write_to(data, addr)
        else:
            write_many(datagrams)


class RelaySink:
    """Where relay sockets hand what they receive: the TURN host, bound exactly once.

    The pieces are built in one order, each taking what it needs::

        sink = RelaySink()
        relays = BoundRelayPorts(pool, reactor, sink)      # the machine's RelayAllocator
        server = TurnServer(credentials, relays, ...)      # the machine
        host = TurnHost(reactor, server, sink)             # drives it; binds the sink

    The machine needs its relay allocator, and the relay sockets deliver to
    the host that drives the machine: the sink breaks that cycle without a
    machine set on the host after construction.  It also holds the socket
    table (key -> socket) the host sends through and the relays register in.
    A socket reads the bound callables when it is created (an allocation is
    made by the machine, so after the host exists): no indirection per packet.
    """

    def __init__(self) -> None:
        #: socket key (listener name, connection key or relayed address) -> socket
        self.sockets: dict[Any, Any] = {}
        self.deliver: Deliver | None = None
        self.deliver_batch: DeliverBatch | None = None

    def bind(self, deliver: Deliver, deliver_batch: DeliverBatch | None = None) -> None:
        """Deliver to ``deliver`` (one datagram) and ``deliver_batch`` (a batch); once only."""
        if self.deliver is not None:
            raise RuntimeError("this RelaySink is bound already")
        self.deliver, self.deliver_batch = deliver, deliver_batch


class BoundRelayPorts:
    """A :class:`~realtime.turn.allocation.RelayAllocator` that binds real UDP sockets.

    :param pool: picks the port numbers (``--relay-ports LOW-HIGH``, one host per family).
    :param reactor: an ``IReactorUDP``.
    :param sink: where sockets deliver (the TURN host's ``receive`` and
        ``receive_batch`` once it is built) and the socket table they register in,
        keyed by address; pass a :class:`~realtime.net.mmsg.BatchedUDP` reactor to
        get ``recvmmsg`` batches.
    :param bind_interface: the interface to bind for relays of its family (default: the
        relayed address's host, which differs when ``--public-ip`` is a NAT's address);
        relays of the other family bind their own host.
    """

    ATTEMPTS = 8

    def __init__(self, pool: RelayPortPool, reactor: Any, sink: RelaySink,
                 bind_interface: str | None = None) -> None:
        self.pool = pool
        self.reactor = reactor
        self.sink = sink
        #: relayed address -> its socket (the sink's table, shared with the TURN host)
        self.sockets = sink.sockets
        self.bind_interface = bind_interface
        #: ports found held by another program (left marked used in the pool)
        self.busy = 0

    def supports(self, family: int) -> bool:
        """Return True if the pool has a host of ``family``."""
        return self.pool.supports(family)

    def open(self, family: int, *, even: bool = False,
             pair: bool = False) -> tuple[Address, ...] | None:
        """Pick address(es) and bind a socket on each; ``None`` if nothing could be bound."""
        for _ in range(self.ATTEMPTS):
            chosen = self.pool.open(family, even=even, pair=pair)
            if chosen is None:
                return None
            bound = []
            for address in chosen:
                if self._bind(address):
                    bound.append(address)
                else:
                    break
            if len(bound) == len(chosen):
                return chosen
            for address in bound:
                self.close(address)
            for address in chosen[len(bound) + 1:]:
                self.pool.close(address)
            self.busy += 1  # the port that failed stays "in use" in the pool
        return None

    def _bind(self, address: Address) -> bool:
        sink = self.sink
        if sink.deliver is None:
            raise RuntimeError("a relay opened before its RelaySink was bound to a TURN host")
        socket = RelaySocket(address, sink.deliver, sink.deliver_batch)
        try:
            socket.port = self.reactor.listenUDP(address[1], socket,
                                                 interface=self._interface(address[0]))
        except CannotListenError:
            return False
        self.sockets[address] = socket
        return True

    def _interface(self, host: str) -> str:
        """The interface to bind for relayed ``host``: ``bind_interface`` if of its family."""
        interface = self.bind_interface
        if interface is None or (":" in interface) != (":" in host):
            return host
        return interface

    def close(self, address: Address) -> None:
        """Stop listening on ``address`` and give it back to the pool."""
        socket = self.sockets.pop(address, None)
        if socket is not None and socket.port is not None:
            socket.port.stopListening()
        self.pool.close(address)
