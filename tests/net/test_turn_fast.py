"""
The ChannelData fast path (realtime/net/turn_fast.py) against the reference machine.

Two worlds get the same input, batch by batch, on the same clock: one TURN
host with the fast path, one without (every packet through
``TurnServer``).  After every step every byte written on every socket, every
drop counter and every allocation's usage counters must be equal -- through
relaying, rate limiting, refused peers, unbound channels, malformed lengths,
permission and channel expiry, revocation and deletion.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.net.turn_port import TurnHost, TurnUdpPort
from realtime.net.turn_relay import BoundRelayPorts, RelaySink
from realtime.stun.attributes import (
    IPV4, ChannelNumber, Data, Lifetime, Nonce, RequestedTransport, XorPeerAddress,
)
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message
from realtime.turn.allocation import Limits, RelayPortPool
from realtime.turn.channel_data import frame_channel_data
from realtime.turn.credentials import StaticUsers
from realtime.turn.policy import PeerPolicy
from realtime.turn.server import TurnConfig, TurnServer
from tests.net.test_turn_adapter import FakeReactor, FakeUdp
from tests.turn.client import Client, code

CLIENT = ("192.0.2.1", 4000)
OTHER = ("192.0.2.2", 4001)
PEER_A = ("9.9.9.9", 7000)     # bound to channel 0x4000
PEER_B = ("9.9.9.10", 7001)    # permission only (Data indications)
PEER_C = ("9.9.9.11", 7002)    # nothing: refused


class World:
    def __init__(self, fast: bool) -> None:
        self.reactor = FakeReactor()
        self.reactor.advance(1000)
        pool = RelayPortPool({IPV4: "127.0.0.1"}, 50000, 50003, choice=lambda seq: seq[0])
        sink = RelaySink()
        self.relays = BoundRelayPorts(pool, self.reactor, sink)
        counter = itertools.count(1)
        self.server = TurnServer(
            StaticUsers({"alice": "wonderland"}), self.relays,
            config=TurnConfig(realm="example.org", limits=Limits(packets_per_second=40)),
            policy=PeerPolicy(), random=lambda n: next(counter).to_bytes(n, "big"))
        self.host = TurnHost(self.reactor, self.server, sink, fast=fast)
        self.udp = TurnUdpPort(self.host, self.reactor, "udp")
        self.udp.makeConnection(FakeUdp(3478, "127.0.0.1"))

    def state(self):
        written = {"udp": list(self.udp.transport.written)}
        for port, transport in self.reactor.udp.items():
            written[port] = list(transport.written)
        usage = sorted((repr(route), a.ingress, a.egress, a.dropped)
                       for route, a in self.server.allocations.items())
        return written, dict(self.server.drops), dict(self.host.drops), usage


class Twins:
    """Feed both worlds; a Client signs requests with the nonce both servers issue."""

    def __init__(self) -> None:
        self.fast, self.slow = World(True), World(False)
        self.client = Client(self.fast.server, ("udp", CLIENT))

    def clients(self, datagrams, addr=CLIENT) -> None:
        for world in (self.fast, self.slow):
            world.udp.datagramsReceived([(d, addr) for d in datagrams])
        self.check()

    def peers(self, datagrams, relay=50000) -> None:
        sockets = [world.relays.sockets.get(("127.0.0.1", relay))
                   for world in (self.fast, self.slow)]
        assert (sockets[0] is None) == (sockets[1] is None)
        for socket in sockets:
            if socket is not None:  # None: the allocation has gone, and its relay socket
                socket.datagramsReceived(datagrams)
        self.check()

    def request(self, method, attributes=(), sign=True) -> StunMessage:
        self.clients([self.client.raw(method, attributes, sign=sign)])
        answer = StunMessage.decode(self.fast.udp.transport.written[-1][0])
        nonce = answer.find(Nonce)
        if nonce is not None:
            self.client.nonce = nonce.value
            if code(answer) == 438:                        # stale nonce: once more
                return self.request(method, attributes, sign)
        return answer

    def advance(self, seconds: float) -> None:
        for world in (self.fast, self.slow):
            world.reactor.advance(seconds)
        self.check()

    def check(self) -> None:
        assert self.fast.state() == self.slow.state()


def send_indication(peer, payload: bytes) -> bytes:
    return encode_message(StunMethod.SEND, StunClass.INDICATION, bytes(12),
                          [XorPeerAddress.of(*peer), Data(payload)])


def allocate(twins: Twins) -> None:
    assert code(twins.request(StunMethod.ALLOCATE, [RequestedTransport(17)], sign=False)) == 401
    assert code(twins.request(StunMethod.ALLOCATE, [RequestedTransport(17)])) == "success"
    assert code(twins.request(StunMethod.CHANNEL_BIND,
                              [ChannelNumber(0x4000), XorPeerAddress.of(*PEER_A)])) == "success"
    assert code(twins.request(StunMethod.CREATE_PERMISSION,
                              [XorPeerAddress.of(*PEER_B)])) == "success"


def test_fast_path_writes_the_same_bytes_as_the_machine() -> None:
    twins = Twins()
    allocate(twins)
    data = [frame_channel_data(0x4000, bytes([i]) * (i + 1)) for i in range(10)]
    twins.clients(data)                                   # learns, then relays fast
    assert twins.fast.udp.channels, "the fast path learned no entry"
    twins.clients(data + [frame_channel_data(0x4000, b"padded") + b"\0\0"])
    twins.peers([(b"pong-%d" % i, PEER_A) for i in range(10)])
    assert twins.fast.relays.sockets[("127.0.0.1", 50000)].peers
    twins.peers([(b"pong", PEER_A)] * 5)                  # fast both ways now
    twins.peers([(b"to-b", PEER_B), (b"refused", PEER_C), (b"a-again", PEER_A)])
    twins.clients([send_indication(PEER_B, b"via-send"), send_indication(PEER_C, b"no")] + data)
    twins.clients([frame_channel_data(0x4001, b"unbound"), b"\x40\x00\x00\x20short",
                   b"\x40\x00", data[0]])
    twins.clients(data, addr=OTHER)                        # no allocation from there
    twins.clients(data * 4)                                # 40 packets/s: the bucket runs dry
    twins.peers([(b"flood", PEER_A)] * 30)
    twins.advance(1.0)                                     # refilled
    twins.clients(data)
    twins.peers([(b"x", PEER_A)])


def test_expiry_of_permissions_and_channels_moves_packets_off_the_fast_path() -> None:
    twins = Twins()
    allocate(twins)
    ping = frame_channel_data(0x4000, b"ping")
    twins.clients([ping] * 3)
    twins.peers([(b"pong", PEER_A)] * 3)
    # Keep the allocation alive but let the permission (300 s) lapse; the channel (600 s) lives.
    twins.advance(200.0)
    assert code(twins.request(StunMethod.REFRESH, [Lifetime(600)])) == "success"
    twins.advance(99.0)
    twins.clients([ping])
    twins.peers([(b"pong", PEER_A)])                       # learned at 299 s
    twins.advance(2.0)                                     # permission gone at 300 s
    twins.clients([ping])
    twins.peers([(b"late", PEER_A)])
    twins.advance(300.0)                                   # channel gone at 600 s
    twins.clients([ping])
    twins.peers([(b"later", PEER_A)])
    # A new ChannelBind brings both back, and the fast path relearns.
    assert code(twins.request(StunMethod.CHANNEL_BIND,
                              [ChannelNumber(0x4000), XorPeerAddress.of(*PEER_A)])) == "success"
    twins.clients([ping] * 3)
    twins.peers([(b"back", PEER_A)] * 3)


def test_revocation_and_deletion_stop_the_fast_path_at_once() -> None:
    twins = Twins()
    allocate(twins)
    ping = frame_channel_data(0x4000, b"ping")
    twins.clients([ping] * 3)
    twins.peers([(b"pong", PEER_A)] * 3)
    for world in (twins.fast, twins.slow):
        world.server.revoke("alice", world.reactor.seconds())
    twins.clients([ping] * 2)
    twins.peers([(b"pong", PEER_A)] * 2)
    twins.advance(2000.0)                                  # grace over: deleted by the sweep
    twins.clients([ping])

    twins = Twins()
    allocate(twins)
    twins.clients([ping] * 3)
    twins.peers([(b"pong", PEER_A)] * 3)
    refresh = twins.client.raw(StunMethod.REFRESH, [Lifetime(0)])
    twins.clients([ping, refresh, ping, ping])             # deleted mid-batch
    assert not twins.fast.udp.channels
    assert code(twins.request(StunMethod.ALLOCATE, [RequestedTransport(17)])) == "success"
    twins.clients([ping])                                  # a new allocation has no channel


_channel_like = st.builds(
    lambda channel, length, body: channel.to_bytes(2, "big") + length.to_bytes(2, "big") + body,
    st.sampled_from([0x4000, 0x4001, 0x7FFF, 0x3FFF, 0x8000]),
    st.integers(0, 40), st.binary(max_size=40))


@settings(max_examples=150, deadline=None)
@given(client=st.lists(st.lists(st.one_of(_channel_like, st.binary(max_size=30)), max_size=6),
                       max_size=5),
       peer=st.lists(st.lists(st.tuples(st.binary(max_size=30),
                                        st.sampled_from([PEER_A, PEER_B, PEER_C])), max_size=6),
                     max_size=5),
       gaps=st.lists(st.sampled_from([0.0, 0.01, 1.0, 150.0, 320.0]), min_size=5, max_size=5))
def test_hostile_bytes_give_the_same_output_on_both_paths(client, peer, gaps) -> None:
    twins = Twins()
    allocate(twins)
    for step in range(5):
        if step < len(client):
            twins.clients(client[step])
        if step < len(peer):
            twins.peers(peer[step])
        twins.advance(gaps[step])


# -- Send indications ------------------------------------------------------------------

def send_with_fingerprint(peer, payload: bytes) -> bytes:
    return encode_message(StunMethod.SEND, StunClass.INDICATION, bytes(range(12)),
                          [XorPeerAddress.of(*peer), Data(payload)], fingerprint=True)


def test_send_indications_take_the_fast_path_with_the_machines_bytes() -> None:
    twins = Twins()
    allocate(twins)
    sends = [send_indication(PEER_B, bytes([i]) * (i + 1)) for i in range(10)]
    twins.clients(sends)                                   # learns, then relays fast
    assert twins.fast.udp.sends, "the fast path learned no Send entry"
    twins.clients(sends + [send_with_fingerprint(PEER_B, b"fp"), send_with_fingerprint(PEER_A, b"")])
    ping = frame_channel_data(0x4000, b"ping")
    twins.clients([ping, ping])
    channels = dict(twins.fast.udp.channels)
    twins.clients([send_indication(PEER_B, b"mixed"), ping])
    assert twins.fast.udp.channels == channels, "a Send indication made the host forget entries"
    twins.clients([send_indication(PEER_C, b"no permission"), send_indication(PEER_A, b"a")])
    twins.clients(sends * 4)                                # 40 packets/s: the bucket runs dry
    twins.advance(1.0)
    twins.clients(sends)
    twins.advance(299.5)                                    # PEER_B's permission lapses at 300 s
    twins.clients(sends[:2])
    assert code(twins.request(StunMethod.CREATE_PERMISSION,
                              [XorPeerAddress.of(*PEER_B)])) == "success"
    twins.clients(sends)                                   # relearned
    for world in (twins.fast, twins.slow):
        world.server.revoke("alice", world.reactor.seconds())
    twins.clients(sends[:3])


def test_send_indications_outside_the_plain_layout_go_to_the_machine() -> None:
    """Other layouts, lengths and families: the reference decides, identically on both sides."""
    twins = Twins()
    allocate(twins)
    good = send_indication(PEER_B, b"payload!")
    twins.clients([good])
    data_first = encode_message(StunMethod.SEND, StunClass.INDICATION, bytes(12),
                                [Data(b"x"), XorPeerAddress.of(*PEER_B)])
    ipv6 = encode_message(StunMethod.SEND, StunClass.INDICATION, bytes(12),
                          [XorPeerAddress.of("2001:db8::1", 9), Data(b"x")])
    no_data = encode_message(StunMethod.SEND, StunClass.INDICATION, bytes(12),
                             [XorPeerAddress.of(*PEER_B)])
    variants = [data_first, ipv6, no_data, good[:-1], good + b"\0\0\0\0",
                good[:2] + bytes([good[2], good[3] + 4]) + good[4:] + b"\0\0\0\0",
                good[:4] + b"\0\0\0\0" + good[8:],                        # no magic cookie
                good[:34] + b"\x00\x20" + good[36:],                      # DATA overruns
                good[:34] + b"\x00\x01" + good[36:],                      # DATA shorter
                good[:24] + b"\x01" + good[25:],                          # reserved octet
                good + b"\x80\x28\x00\x04\0\0\0\0",                        # length not updated
                ]
    twins.clients(variants + [good])
    twins.clients([good[:2] + bytes([0, len(good) - 20 + 8]) + good[4:] + b"\x80\x29\x00\x04abcd"])


_send_like = st.builds(
    lambda peer, payload, cut, fingerprint: (
        send_with_fingerprint if fingerprint else send_indication)(peer, payload)[:cut],
    st.sampled_from([PEER_A, PEER_B, PEER_C]), st.binary(max_size=30),
    st.integers(20, 100), st.booleans())


@settings(max_examples=100, deadline=None)
@given(client=st.lists(st.lists(st.one_of(_send_like, _channel_like), max_size=6), max_size=5),
       flips=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)), max_size=3),
       gaps=st.lists(st.sampled_from([0.0, 0.01, 1.0, 150.0, 320.0]), min_size=5, max_size=5))
def test_hostile_send_indications_give_the_same_output_on_both_paths(client, flips, gaps) -> None:
    twins = Twins()
    allocate(twins)
    for step, batch in enumerate(client):
        mangled = []
        for data in batch:
            data = bytearray(data)
            for where, value in flips:
                if where < len(data) and step % 2:
                    data[where] = value
            mangled.append(bytes(data))
        twins.clients(mangled)
        twins.advance(gaps[step])
