"""
MediaPort fed by hand: fake transports, ``task.Clock``, no sockets.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import Logger

from realtime.demux import PacketKind
from realtime.errors import DecodeError
from realtime.net.media_port import MediaPort
from realtime.net.router import BindingRouter
from realtime.stun.message import StunClass, StunMessage

# A Binding request without attributes (RFC 8489 §5).
BINDING = bytes.fromhex(
    "0001"  # type: Binding request
    "0000"  # message length 0
    "2112a442"  # magic cookie
    "b7e7a701bc34d686fa87dfae"  # transaction id
)
# A Binding indication (ICE keepalive, RFC 8489 §6.3.2): answered with nothing.
INDICATION = bytes.fromhex("0011" "0000" "2112a442" "b7e7a701bc34d686fa87dfae")
# A STUN header whose length promises 8 bytes that never come.
TRUNCATED = bytes.fromhex("0001" "0008" "2112a442" "b7e7a701bc34d686fa87dfae")
# The first bytes of a DTLS 1.2 ClientHello record (RFC 6347 §4.1).
DTLS = bytes.fromhex("16" "fefd" "0000" "000000000000" "0010") + bytes(16)
# An RTP header (RFC 3550 §5.1), payload type 96.
RTP = bytes.fromhex("80" "60" "0001" "00000001" "deadbeef") + bytes(20)

SOURCE = ("192.0.2.7", 50123)


class FakeUdpTransport:
    """Record what a DatagramProtocol writes; fail on demand."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.fail = fail

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.fail is not None:
            raise self.fail
        self.written.append((data, addr))

    def getHost(self):
        return IPv4Address("UDP", "127.0.0.1", 10000)


def make_port(router=None, fail=None):
    clock = Clock()
    clock.advance(1000.5)
    port = MediaPort(router or BindingRouter(), clock)
    events: list[dict] = []
    port.log = Logger(observer=events.append)
    port.makeConnection(FakeUdpTransport(fail))
    return port, events


def test_binding_request_is_answered_with_the_source_address() -> None:
    port, _ = make_port()
    port.datagramReceived(BINDING, SOURCE)
    [(data, addr)] = port.transport.written
    assert addr == SOURCE
    response = StunMessage.decode(data)
    assert response.message_class == StunClass.SUCCESS
    assert response.transaction_id == BINDING[8:20]
    mapped = response.find(0x0020)  # XOR-MAPPED-ADDRESS
    assert (mapped.address, mapped.port) == SOURCE
    assert port.drops == {}
    assert port.port == 10000


def test_binding_request_from_ipv6() -> None:
    port, _ = make_port()
    port.datagramReceived(BINDING, ("2001:db8::1", 4444))
    [(data, _)] = port.transport.written
    mapped = StunMessage.decode(data).find(0x0020)
    assert (mapped.address, mapped.port) == ("2001:db8::1", 4444)


def test_indication_gets_no_answer_and_is_no_drop() -> None:
    port, _ = make_port()
    port.datagramReceived(INDICATION, SOURCE)
    assert port.transport.written == [] and port.drops == {}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (TRUNCATED, "malformed-stun"),
        (BINDING[:10], "malformed-stun"),
        (DTLS, "unrouted-dtls"),
        (RTP, "unrouted-rtp"),
        (bytes.fromhex("80c8") + bytes(26), "unrouted-rtcp"),
        (bytes.fromhex("4000000400000000"), "unrouted-channel-data"),
        (b"", "unrouted-unknown"),
        (b"\xff" * 30, "unrouted-unknown"),
    ],
)
def test_drops_are_counted_by_reason_and_logged_once(data: bytes, reason: str) -> None:
    port, events = make_port()
    for _ in range(3):
        port.datagramReceived(data, SOURCE)
    assert port.transport.written == []
    assert port.drops == {reason: 3}
    assert len(events) == 1
    assert events[0]["reason"] == reason and events[0]["addr"] == SOURCE


def test_router_gets_kind_and_clock_time() -> None:
    seen = []

    class Recorder:
        def route(self, kind, data, addr, now):
            seen.append((kind, data, addr, now))
            return [(b"one", addr), (b"two", ("198.51.100.1", 9))]

    port, _ = make_port(Recorder())
    port.datagramReceived(DTLS, SOURCE)
    assert seen == [(PacketKind.DTLS, DTLS, SOURCE, 1000.5)]
    assert port.transport.written == [(b"one", SOURCE), (b"two", ("198.51.100.1", 9))]


def test_router_bug_is_counted_and_logged_not_raised() -> None:
    class Broken:
        def route(self, kind, data, addr, now):
            raise RuntimeError("bug")

    port, events = make_port(Broken())
    port.datagramReceived(BINDING, SOURCE)
    assert port.drops == {"internal-error": 1}
    assert events[0]["log_failure"].check(RuntimeError)


def test_send_error_is_counted() -> None:
    port, events = make_port(fail=OSError(101, "Network is unreachable"))
    port.datagramReceived(BINDING, SOURCE)
    assert port.drops == {"send-error": 1}
    assert "unreachable" in events[0]["detail"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_any_datagram_is_answered_or_counted(data: bytes) -> None:
    port, _ = make_port()
    port.datagramReceived(data, SOURCE)
    assert len(port.transport.written) + sum(port.drops.values()) <= 1
    assert "internal-error" not in port.drops


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_mutated_binding_requests_never_escape(tail: bytes) -> None:
    port, _ = make_port()
    port.datagramReceived(BINDING[:2] + len(tail).to_bytes(2, "big") + BINDING[4:] + tail, SOURCE)
    assert "internal-error" not in port.drops


def test_router_decode_error_type() -> None:
    """BindingRouter raises DecodeError (not anything else) for malformed STUN."""
    with pytest.raises(DecodeError):
        BindingRouter().route(PacketKind.STUN, TRUNCATED, SOURCE, 0.0)
    assert BindingRouter().route(PacketKind.RTP, RTP, SOURCE, 0.0) is None


class BatchTransport(FakeUdpTransport):
    """A transport with ``write_many`` (as realtime.net.mmsg.BatchedPort has)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list] = []

    def write_many(self, datagrams):
        self.calls.append(list(datagrams))
        return [(("192.0.2.99", 1), 111)] if any(a[0] == "192.0.2.99" for _, a in datagrams) else []


class FanOutRouter:
    """Routes every datagram as an SFU would: sends to each subscriber through the port."""

    def __init__(self, subscribers) -> None:
        self.subscribers = subscribers
        self.port = None

    def route(self, kind, data, addr, now):
        for subscriber in self.subscribers:
            self.port.send(data + b"@" + subscriber[0].encode(), subscriber)
        return [(b"reply:" + data, addr)]


def test_one_packets_fan_out_leaves_in_one_write_many_call() -> None:
    subscribers = [("192.0.2.%d" % i, 5000 + i) for i in range(1, 4)]
    router = FanOutRouter(subscribers)
    port = MediaPort(router, Clock())
    router.port = port
    port.makeConnection(BatchTransport())
    port.datagramsReceived([(RTP, SOURCE), (RTP + b"2", SOURCE)])
    calls = port.transport.calls
    assert len(calls) == 2                                       # one per received packet
    assert calls[0] == [(RTP + b"@" + s[0].encode(), s) for s in subscribers] + [
        (b"reply:" + RTP, SOURCE)]
    assert port.transport.written == []                         # nothing went one by one
    port.send(b"timer", SOURCE)                                  # outside a batch: at once
    assert port.transport.written == [(b"timer", SOURCE)]


def test_failures_of_a_batched_write_are_counted() -> None:
    router = FanOutRouter([("192.0.2.99", 1), ("192.0.2.1", 2)])
    port = MediaPort(router, Clock())
    router.port = port
    port.makeConnection(BatchTransport())
    port.datagramReceived(RTP, SOURCE)
    assert port.drops["send-error"] == 1


def test_a_port_that_is_not_listening_counts_what_it_cannot_send() -> None:
    """Sending before ``listenUDP`` gave the port a socket is a counted drop, not a crash."""
    port = MediaPort(BindingRouter(), Clock())
    port.send(b"x", SOURCE)
    port.send_many([(b"y", SOURCE), (b"z", SOURCE)])
    assert port.drops["not-listening"] == 3


class ListFanOutRouter(FanOutRouter):
    """The same fan-out handed over as lists (what PeerHost does with each connection's queue)."""

    def route(self, kind, data, addr, now):
        self.port.send(data + b"#first", addr)
        for subscriber in self.subscribers:
            self.port.send_list([(data + b"@" + subscriber[0].encode(), subscriber),
                                 (data + b"+" + subscriber[0].encode(), subscriber)])
        return [(b"reply:" + data, addr)]


def test_send_list_queues_in_order_while_corked_and_sends_at_once_otherwise() -> None:
    subscribers = [("192.0.2.%d" % i, 5000 + i) for i in range(1, 3)]
    router = ListFanOutRouter(subscribers)
    port = MediaPort(router, Clock())
    router.port = port
    port.makeConnection(BatchTransport())
    port.datagramReceived(RTP, SOURCE)
    assert port.transport.calls == [[(RTP + b"#first", SOURCE)] + [
        (RTP + mark + s[0].encode(), s) for s in subscribers for mark in (b"@", b"+")] + [
        (b"reply:" + RTP, SOURCE)]]
    assert port.transport.written == []
    port.send_list([(b"one", SOURCE)])                          # outside a batch: at once
    assert port.transport.written == [(b"one", SOURCE)]
    port.send_list([(b"two", SOURCE), (b"three", SOURCE)])      # several: one write_many
    assert port.transport.calls[-1] == [(b"two", SOURCE), (b"three", SOURCE)]
