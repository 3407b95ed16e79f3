"""
PeerHost's fan-out: output leaves at once, the touched sessions' timers are re-armed later.

An SFU publisher's packet queues one datagram on every subscriber's
connection.  Re-arming each subscriber's timer after every packet cost a
``get_timer()`` of its connection and session per forwarded packet; now the
host re-arms all sessions a fan-out touched together, ``REARM_DELAY`` later
(realtime/net/peers.py).  What must hold: every datagram is sent when the
fan-out happens, in order; a deadline the fan-out moved earlier fires at
most ``REARM_DELAY`` late; a session removed meanwhile is left alone.
"""

from __future__ import annotations

import pytest
from twisted.internet import task

from realtime.dtls.certificate import Certificate
from realtime.ice.lite import IceLiteAgent
from realtime.net.peers import REARM_DELAY, PeerHost
from realtime.net.router import BindingRouter


class Connection:
    """The part of a PeerConnection PeerHost drives; counts how often its deadline is read."""

    state = "connected"

    def __init__(self) -> None:
        self.outgoing: list = []
        self.deadline: float | None = None
        self.timer_reads = 0
        self.fired: list[float] = []

    def start(self, now: float) -> None:
        pass

    def next_event(self):
        return None

    def datagrams_to_send(self, now: float) -> list:
        out, self.outgoing = self.outgoing, []
        return out

    def get_timer(self) -> float | None:
        self.timer_reads += 1
        return self.deadline

    def handle_timer(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self.fired.append(now)
            self.deadline = None

    def close(self) -> None:
        pass


class Session:
    """A hosted session (net.peers.HostedSession) whose input touches ``subscribers``."""

    def __init__(self, number: int) -> None:
        self.session_id = f"{number:032d}"
        self.ice = IceLiteAgent(f"ufrag{number}", "p" * 22, tiebreaker=number)
        self.connection = Connection()
        self.subscribers: list[Session] = []
        self.touched: list[Session] = []

    def handle_event(self, event, now) -> None:
        pass

    def get_timer(self):
        return None

    def handle_timer(self, now) -> None:
        pass

    def take_touched(self):
        touched, self.touched = self.touched, []
        return touched

    def forward(self, packet: bytes) -> None:
        """What the SFU does with a publisher's packet: queue it on every subscriber."""
        for n, subscriber in enumerate(self.subscribers):
            subscriber.connection.outgoing.append((packet + bytes([n]), ("127.0.0.1", 9000 + n)))
            self.touched.append(subscriber)


class Port:
    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.sent: list = []

    def send(self, data: bytes, addr) -> None:
        self.sent.append((self.clock.seconds(), data, addr))


class ListPort(Port):
    """A port with MediaPort.send_list: the host hands it each subscriber's queue whole."""

    def __init__(self, clock: task.Clock) -> None:
        super().__init__(clock)
        self.lists = 0

    def send_list(self, datagrams: list) -> None:
        self.lists += 1
        for data, addr in datagrams:
            self.send(data, addr)


@pytest.fixture(params=[Port, ListPort])
def port_class(request):
    return request.param


def world(subscribers: int = 10, port_class: type = Port):
    clock = task.Clock()
    clock.advance(100.0)
    host = PeerHost(clock, BindingRouter(), certificate=Certificate.generate(0.0))
    port = port_class(clock)
    host.attach(port)
    publisher = Session(0)
    publisher.subscribers = [Session(n + 1) for n in range(subscribers)]
    for session in (publisher, *publisher.subscribers):
        host.add(session)
    for subscriber in publisher.subscribers:
        subscriber.connection.timer_reads = 0
    return clock, host, port, publisher


def publish(clock, host, publisher, packet: bytes) -> None:
    publisher.forward(packet)
    host._after_input(publisher)  # what PeerRouter calls after the publisher's datagram


def test_fan_out_is_sent_at_once_and_timers_are_read_once_per_rearm_delay(port_class) -> None:
    clock, host, port, publisher = world(10, port_class)
    for i in range(100):  # 100 packets within one REARM_DELAY
        publish(clock, host, publisher, b"rtp%03d" % i)
        clock.advance(REARM_DELAY / 200)
    assert len(port.sent) == 100 * 10
    assert [data for _, data, _ in port.sent[:3]] == [b"rtp000\x00", b"rtp000\x01", b"rtp000\x02"]
    # every datagram left in the same instant as its fan-out
    assert port.sent[-1][0] == pytest.approx(100.0 + 99 * REARM_DELAY / 200)
    reads = [s.connection.timer_reads for s in publisher.subscribers]
    assert reads == [0] * 10, "re-armed per packet"
    clock.advance(REARM_DELAY)
    reads = [s.connection.timer_reads for s in publisher.subscribers]
    assert reads == [1] * 10, "each touched session's deadline is read once per REARM_DELAY"
    if port_class is ListPort:
        assert port.lists == 100 * 10  # one list per subscriber per fan-out, none per datagram


def test_a_deadline_the_fan_out_moved_earlier_fires_at_most_rearm_delay_late() -> None:
    clock, host, port, publisher = world(3)
    late = publisher.subscribers[1]
    late.connection.deadline = clock.seconds() + 30.0
    host.flush(late)  # armed for +30 s
    start = clock.seconds()
    late.connection.deadline = start + 0.001  # say, an SCTP timer a DataChannel message started
    publish(clock, host, publisher, b"dc")
    clock.advance(REARM_DELAY)
    assert late.connection.fired and late.connection.fired[0] <= start + REARM_DELAY


def test_a_session_removed_before_the_rearm_is_left_alone() -> None:
    clock, host, port, publisher = world(2)
    gone = publisher.subscribers[0]
    publish(clock, host, publisher, b"x")
    host.remove(gone)
    gone.connection.deadline = clock.seconds() + 0.001
    clock.advance(REARM_DELAY)
    clock.advance(1.0)
    assert gone.connection.fired == []
    assert gone not in host._drivers


def test_a_paced_subscriber_spreads_a_burst_from_its_own_timer(port_class) -> None:
    """A subscriber's pacer (realtime/sfu/pacer.py) in the host's drain: the fan-out's
    burst leaves at the pacing rate, the first held packet without waiting for
    REARM_DELAY (the host arms a timer the fan-out made necessary at once)."""
    import struct

    from realtime.sfu.pacer import Pacer

    clock, host, port, publisher = world(2, port_class)
    paced, plain = publisher.subscribers
    pacer = Pacer()
    pacer.video = frozenset({0x1234})
    pacer.set_rate(400_000)  # 1 Mbit/s: a 1200-byte packet every 9.6 ms
    paced.pacer = pacer
    host.remove(paced)
    host.add(paced)  # the host looks the pacer up when the session is added
    start = clock.seconds()
    for seq in range(20):  # a key frame: one burst
        publish(clock, host, publisher, struct.pack("!BBHII", 0x80, 96, seq, 0, 0x1234)
                + bytes(1187))
    for _ in range(400):
        clock.advance(0.001)
    to = {addr: [t for t, _, a in port.sent if a == addr] for addr in {a for _, _, a in port.sent}}
    fast, slow = to[("127.0.0.1", 9001)], to[("127.0.0.1", 9000)]
    assert len(fast) == len(slow) == 20
    assert fast == [start] * 20  # the subscriber without a pacer: at once
    assert slow[1] - start < REARM_DELAY / 2, slow[:3]
    assert slow[-1] - start >= 0.15  # 24 kB at 1 Mbit/s
