"""The TURN adapter on a fake reactor: listeners, relay sockets, one timer, connections."""

from __future__ import annotations

import pytest

from twisted.internet.address import IPv4Address
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.logger import Logger

from realtime.net.stream_gate import ConnectionGate, StreamLimits
from realtime.net.turn_port import TurnConnectionFactory, TurnHost, TurnUdpPort
from realtime.net.turn_relay import BoundRelayPorts, RelaySink
from realtime.stun.attributes import IPV4, ChannelNumber, RequestedTransport, XorPeerAddress
from realtime.stun.message import StunClass, StunMessage, StunMethod
from realtime.turn.allocation import RelayPortPool
from realtime.turn.channel_data import frame_channel_data
from realtime.turn.credentials import StaticUsers
from realtime.turn.policy import PeerPolicy
from realtime.turn.server import TurnConfig, TurnServer
from tests.turn.client import Client, code

PEER = ("9.9.9.9", 7000)


class FakeUdp:
    def __init__(self, port, interface):
        self.port, self.interface, self.written, self.stopped = port, interface, [], False

    def write(self, data, addr):
        self.written.append((data, addr))

    def stopListening(self):
        self.stopped = True

    def getHost(self):
        return IPv4Address("UDP", self.interface, self.port)


class FakeReactor(Clock):
    def __init__(self, busy=()):
        super().__init__()
        self.busy = set(busy)
        self.udp = {}

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        if port in self.busy:
            raise CannotListenError(interface, port, OSError("in use"))
        transport = FakeUdp(port, interface)
        self.udp[port] = transport
        protocol.makeConnection(transport)
        return transport


class ClientShim:
    """Lets tests.turn.client.Client talk through the TurnUdpPort."""

    def __init__(self, port, reactor, addr):
        self.port, self.reactor, self.addr = port, reactor, addr

    def receive_datagram(self, data, route, now):
        self.port.datagramReceived(data, self.addr)

    def datagrams_to_send(self, now):
        out = [(d, ("udp", a)) for d, a in self.port.transport.written]
        self.port.transport.written.clear()
        return out


def build(busy=()):
    reactor = FakeReactor(busy)
    reactor.advance(1000)
    pool = RelayPortPool({IPV4: "127.0.0.1"}, 50000, 50003, choice=lambda seq: seq[0])
    sink = RelaySink()
    relays = BoundRelayPorts(pool, reactor, sink)
    server = TurnServer(StaticUsers({"alice": "wonderland"}), relays,
                        config=TurnConfig(realm="example.org"), policy=PeerPolicy())
    host = TurnHost(reactor, server, sink)
    udp = TurnUdpPort(host, reactor, "udp")
    udp.makeConnection(FakeUdp(3478, "127.0.0.1"))
    return reactor, host, server, udp, relays


def test_udp_allocation_relays_through_a_bound_socket_and_one_timer():
    reactor, host, server, udp, relays = build(busy={50000})
    client = Client(ClientShim(udp, reactor, ("192.0.2.1", 4000)), ("udp", ("192.0.2.1", 4000)))
    assert code(client.allocate(now=reactor.seconds())) == "success"
    assert relays.busy == 1 and set(reactor.udp) == {50001}     # 50000 was taken
    assert len(reactor.getDelayedCalls()) == 1                   # one timer for the machine
    client.request(StunMethod.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress.of(*PEER)])
    udp.datagramReceived(frame_channel_data(0x4000, b"ping"), ("192.0.2.1", 4000))
    assert reactor.udp[50001].written == [(b"ping", PEER)]
    relays.sockets[("127.0.0.1", 50001)].datagramReceived(b"pong", PEER)
    assert udp.transport.written[-1] == (frame_channel_data(0x4000, b"pong"), ("192.0.2.1", 4000))
    reactor.advance(700)                                         # lifetime 600 s passes
    assert server.allocations == {} and reactor.udp[50001].stopped
    assert ("127.0.0.1", 50001) not in host.sockets


def test_malformed_datagrams_are_counted_not_raised():
    reactor, host, server, udp, _ = build()
    udp.datagramReceived(b"\x00\x01\x00\x03abc", ("192.0.2.1", 1))
    udp.datagramReceived(b"\x40\x00\x00\x09ab", ("192.0.2.1", 1))
    assert host.drops["malformed"] == 1 and server.drops["no-allocation"] == 1


class FakeTcp:
    def __init__(self):
        self.written, self.aborted = [], False

    def getPeer(self):
        return IPv4Address("TCP", "192.0.2.5", 5555)

    def write(self, data):
        self.written.append(data)

    def abortConnection(self):
        self.aborted = True


def test_tcp_connection_frames_and_deletes_its_allocation_on_close():
    reactor, host, server, _, _ = build()
    factory = TurnConnectionFactory(host, reactor, "tcp")
    assert b"stun.turn" in factory.acceptableProtocols()
    connection = factory.buildProtocol(None)
    connection.makeConnection(FakeTcp())
    route = (connection.key, ("192.0.2.5", 5555))
    client = Client(server, route)
    client.request(StunMethod.ALLOCATE, [RequestedTransport(17)], reactor.seconds(), sign=False)
    data = client.raw(StunMethod.ALLOCATE, [RequestedTransport(17)])
    connection.dataReceived(data[:7])
    connection.dataReceived(data[7:])                            # split across segments
    assert code(StunMessage.decode(connection.transport.written[-1])) == "success"
    assert len(server.allocations) == 1
    connection.connectionLost(None)
    assert server.allocations == {} and connection.key not in host.sockets
    other = factory.buildProtocol(None)
    other.makeConnection(FakeTcp())
    other.dataReceived(b"\xff" * 8)
    assert other.transport.aborted and factory.drops["framing"] == 1


# -- framing on TCP/TLS (RFC 8489 §6.2.2, RFC 8656 §12.5) -----------------------

# A Binding request without attributes (RFC 8489 §5), answered statelessly.
BINDING = bytes.fromhex("0001" "0000" "2112a442" "b7e7a701bc34d686fa87dfae")
# A Binding indication (a keepalive): answered with nothing.
INDICATION = bytes.fromhex("0011" "0000" "2112a442" "b7e7a701bc34d686fa87dfae")


def connect(factory):
    connection = factory.buildProtocol(None)
    connection.makeConnection(FakeTcp())
    return connection


def make_stream(**limits):
    reactor, host, server, _, _ = build()
    factory = TurnConnectionFactory(host, reactor, "tcp", **limits)
    events: list[dict] = []
    factory.log = Logger(observer=events.append)
    return factory, connect(factory), events


def answers(connection) -> list[StunMessage]:
    return [StunMessage.decode(frame) for frame in connection.transport.written]


def test_stream_split_and_coalesced_requests_are_answered():
    _, connection, _ = make_stream()
    stream = BINDING + INDICATION + BINDING
    connection.dataReceived(stream[:7])
    assert connection.transport.written == []
    connection.dataReceived(stream[7:])
    assert [a.message_class for a in answers(connection)] == [StunClass.SUCCESS] * 2
    mapped = answers(connection)[0].find(0x0020)
    assert (mapped.address, mapped.port) == ("192.0.2.5", 5555)


def test_stream_garbage_aborts_the_connection():
    factory, connection, events = make_stream()
    connection.dataReceived(BINDING)
    connection.dataReceived(b"\x80garbage" + BINDING)
    assert len(answers(connection)) == 1                         # nothing after the garbage
    assert connection.transport.aborted and factory.drops == {"framing": 1}
    assert events[0]["detail"] == "stream byte 0x80 starts neither STUN nor ChannelData"


def test_stream_huge_length_aborts_the_connection():
    factory, connection, _ = make_stream(max_frame_size=1024)
    connection.dataReceived(bytes.fromhex("0001" "fffc"))
    assert connection.transport.aborted and factory.drops == {"framing": 1}


def test_stream_malformed_stun_is_dropped_connection_kept():
    factory, connection, _ = make_stream()
    bad = bytes.fromhex("0001" "0004" "2112a442") + bytes(12) + bytes.fromhex("0001" "0008")
    connection.dataReceived(bad + BINDING)
    assert factory.host.drops["malformed"] == 1
    assert not connection.transport.aborted and len(answers(connection)) == 1


# -- admission, deadlines, shedding (issue 10 item 1) ----------------------------------------


class PeerTcp(FakeTcp):
    """A fake transport from ``host``; aborting calls connectionLost later, as Twisted does."""

    def __init__(self, reactor, host, port=5555):
        super().__init__()
        self.reactor, self.host, self.port = reactor, host, port

    def getPeer(self):
        return IPv4Address("TCP", self.host, self.port)

    def abortConnection(self):
        if not self.aborted:
            self.aborted = True
            self.reactor.callLater(0, self.protocol.connectionLost, None)


def gated(limits):
    reactor, host, server, _, _ = build()
    gate = ConnectionGate(limits)
    tcp = TurnConnectionFactory(host, reactor, "tcp", gate)
    tls = TurnConnectionFactory(host, reactor, "tls", gate)

    def connect(factory, address, port=5555):
        connection = factory.buildProtocol(None)
        transport = PeerTcp(reactor, address, port)
        transport.protocol = connection
        connection.makeConnection(transport)
        return connection

    return reactor, server, gate, tcp, tls, connect


def allocate(connection, server, reactor):
    client = Client(server, connection.route)
    client.request(StunMethod.ALLOCATE, [RequestedTransport(17)], reactor.seconds(), sign=False)
    connection.dataReceived(client.raw(StunMethod.ALLOCATE, [RequestedTransport(17)]))
    assert code(StunMessage.decode(connection.transport.written[-1])) == "success"


def test_idle_connections_are_closed_at_the_auth_deadline_but_an_allocation_stays():
    reactor, server, gate, tcp, _, connect = gated(StreamLimits(auth_timeout=10, idle_timeout=120))
    idle, silent_binding, client = (connect(tcp, "192.0.2.7", p) for p in (1, 2, 3))
    silent_binding.dataReceived(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12))  # Binding only
    allocate(client, server, reactor)
    reactor.advance(9.9)
    assert not idle.transport.aborted
    reactor.advance(0.2)
    assert idle.transport.aborted and silent_binding.transport.aborted
    assert not client.transport.aborted and tcp.drops["auth-timeout"] == 2
    assert gate.total == 1 and len(server.allocations) == 1
    reactor.advance(500)                      # silent, but its allocation (600 s) lives
    assert not client.transport.aborted
    reactor.advance(300)                      # allocation expired at 600 s; idle 120 s after
    assert client.transport.aborted and tcp.drops["idle-timeout"] == 1 and gate.total == 0


def test_tls_handshake_deadline_then_auth_deadline_from_accept():
    reactor, server, gate, _, tls, connect = gated(
        StreamLimits(handshake_timeout=2, auth_timeout=10))
    never, slow = connect(tls, "192.0.2.8", 1), connect(tls, "192.0.2.8", 2)
    reactor.advance(1)
    slow.handshakeCompleted()
    reactor.advance(1.1)
    assert never.transport.aborted and tls.drops["handshake-timeout"] == 1
    assert not slow.transport.aborted
    reactor.advance(7.9)                      # 10 s after accept, not after the handshake
    assert slow.transport.aborted and tls.drops["auth-timeout"] == 1


def test_full_gate_sheds_the_oldest_unauthenticated_connection_never_an_allocated_one():
    reactor, server, gate, tcp, tls, connect = gated(StreamLimits(max_connections=4,
                                                                  per_address=64))
    legit = connect(tls, "192.0.2.1")
    allocate(legit, server, reactor)
    flood = [connect(tcp if i % 2 else tls, f"198.51.100.{i}") for i in range(10)]
    reactor.advance(0)
    assert not legit.transport.aborted and gate.total == 4
    assert [c.transport.aborted for c in flood] == [True] * 7 + [False] * 3   # oldest went first
    assert tcp.drops["shed-global"] + tls.drops["shed-global"] == 7
    late = connect(tcp, "192.0.2.2")                    # a new legitimate client still gets in
    allocate(late, server, reactor)
    assert not late.transport.aborted and len(server.allocations) == 2


def test_per_address_cap_sheds_that_address_only_and_refuses_when_all_authenticated():
    reactor, server, gate, tcp, _, connect = gated(StreamLimits(max_connections=100,
                                                                per_address=2))
    other = connect(tcp, "192.0.2.99")
    first, second = connect(tcp, "192.0.2.3", 1), connect(tcp, "192.0.2.3", 2)
    third = connect(tcp, "192.0.2.3", 3)
    assert first.transport.aborted and not second.transport.aborted
    assert not other.transport.aborted and tcp.drops["shed-per-address"] == 1
    reactor.advance(0)
    allocate(second, server, reactor)
    allocate(third, server, reactor)
    fourth = connect(tcp, "192.0.2.3", 4)     # both slots authenticated: refused
    assert fourth.transport.aborted and tcp.drops["per-address-limit"] == 1
    assert not second.transport.aborted and not third.transport.aborted
    reactor.advance(0)
    assert gate.per_address["192.0.2.3"] == 2 and gate.total == 3


def test_the_relay_sink_is_bound_once_and_relays_wait_for_it() -> None:
    """The relays deliver through a RelaySink the TurnHost binds when it is built.

    A relay opened before any host is bound fails loudly (it would have no one
    to deliver to), and a second host cannot take over the first one's sink.
    """
    reactor = FakeReactor(())
    pool = RelayPortPool({IPV4: "127.0.0.1"}, 50000, 50003, choice=lambda seq: seq[0])
    sink = RelaySink()
    relays = BoundRelayPorts(pool, reactor, sink)
    with pytest.raises(RuntimeError):
        relays.open(IPV4)
    server = TurnServer(StaticUsers({"alice": "wonderland"}), relays,
                        config=TurnConfig(realm="example.org"), policy=PeerPolicy())
    host = TurnHost(reactor, server, sink)
    assert sink.deliver == host.receive and sink.deliver_batch == host.receive_batch
    assert host.sockets is sink.sockets is relays.sockets
    with pytest.raises(RuntimeError):
        TurnHost(reactor, server, sink)
    assert relays.open(IPV4) is not None
