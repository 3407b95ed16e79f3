"""
SFU usage accounting: the meter's minute buckets, and the counting hooks it reads.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.demux import PacketKind
from realtime.ice.lite import IceLiteAgent
from realtime.peer.connection import PeerConnection
from realtime.sfu.switchboard import Switchboard
from realtime.sfu.usage import SESSION, UsageMeter, summarize
from tests.sfu.client import Wire, certificate, rtp
from tests.sfu.test_session import MIC, counting_random, publisher, subscriber

M = 1_800_000_000 // 60 * 60  # a minute boundary


class Fake:
    """A stand-in with the given attributes, hashed by identity like the real objects."""

    def __init__(self, **attributes) -> None:
        self.__dict__.update(attributes)


def connection(received=0, sent=0, packets_in=0, packets_out=0):
    return Fake(bytes_received=received, bytes_sent=sent, packets_received=packets_in,
                packets_sent=packets_out)


def track(name, ingress=0, egress=0, packets_in=0, packets_out=0):
    return Fake(name=name, bytes=ingress, egress_bytes=egress, packets=packets_in,
                egress_packets=packets_out)


def session(session_id="s1", app_id="app", tracks=(), conn=None):
    return Fake(app_id=app_id, session_id=session_id, connection=conn,
                transceivers=[Fake(track=t) for t in tracks], closed=False)


# -- the meter -----------------------------------------------------------------------------


def test_drain_folds_growth_into_the_minute_of_now() -> None:
    mic = track("mic", 100, 300, 1, 3)
    s = session(tracks=[mic, None], conn=connection(1000, 2000, 10, 20))
    meter = UsageMeter()
    meter.observe(s)
    meter.observe(s)                                   # observing twice changes nothing
    meter.drain(M + 5)
    meter.drain(M + 15)                                # no growth: nothing new
    assert sorted(meter.rows()) == [
        ("app", "s1", SESSION, M, 1000, 2000, 10, 20),
        ("app", "s1", "mic", M, 100, 300, 1, 3),
    ]
    assert meter.rows() == []                          # taken
    s.connection.bytes_sent += 500
    s.connection.packets_sent += 5
    meter.drain(M + 59.999)
    mic.bytes += 7
    mic.packets += 1
    meter.drain(M + 60)                                # the next minute
    assert sorted(meter.rows()) == [
        ("app", "s1", SESSION, M, 0, 500, 0, 5),
        ("app", "s1", "mic", M + 60, 7, 0, 1, 0),
    ]


def test_session_row_starts_when_the_connection_exists() -> None:
    s = session(conn=None)
    meter = UsageMeter()
    meter.observe(s)
    meter.drain(M)
    assert meter.rows() == []
    s.connection = connection(40, 60, 1, 1)
    meter.drain(M)
    assert meter.rows() == [("app", "s1", SESSION, M, 40, 60, 1, 1)]


def test_closed_session_is_read_once_more_then_forgotten() -> None:
    mic = track("mic")
    s = session(tracks=[mic], conn=connection())
    meter = UsageMeter()
    meter.observe(s)
    meter.drain(M)
    assert len(meter) == 1
    s.connection.bytes_received, mic.egress_bytes = 99, 77   # the last seconds
    s.closed = True
    meter.drain(M + 10)
    assert len(meter) == 0
    assert sorted(meter.rows()) == [("app", "s1", SESSION, M, 99, 0, 0, 0),
                                    ("app", "s1", "mic", M, 0, 77, 0, 0)]
    s.connection.bytes_received = 1000
    meter.drain(M + 20)
    assert meter.rows() == []                          # forgotten


def test_a_track_in_two_transceivers_counts_once_and_names_stay_per_session() -> None:
    cam = track("cam", 10, 20, 1, 2)
    a = session("a", tracks=[cam, cam])
    b = session("b", app_id="other", tracks=[track("cam", 1, 1, 1, 1)])
    meter = UsageMeter()
    meter.observe(a)
    meter.observe(b)
    meter.drain(M)
    assert sorted(meter.rows()) == [("app", "a", "cam", M, 10, 20, 1, 2),
                                    ("other", "b", "cam", M, 1, 1, 1, 1)]


def test_restore_merges_rows_the_store_refused() -> None:
    s = session(conn=connection(5, 5, 1, 1))
    meter = UsageMeter()
    meter.observe(s)
    meter.drain(M)
    taken = meter.rows()
    s.connection.bytes_received = 8
    meter.drain(M)
    meter.restore(taken)
    meter.restore([("app", "s2", "", M, 1, 2, 3, 4)])
    assert sorted(meter.rows()) == [("app", "s1", SESSION, M, 8, 5, 1, 1),
                                    ("app", "s2", "", M, 1, 2, 3, 4)]


def test_summarize_gives_totals_and_iso_minutes() -> None:
    assert summarize([(M, 1, 2, 3, 4), (M + 60, 10, 20, 30, 40)]) == {
        "ingressBytes": 11, "egressBytes": 22, "ingressPackets": 33, "egressPackets": 44,
        "series": [
            {"minute": "2027-01-15T08:00:00Z", "ingressBytes": 1, "egressBytes": 2,
             "ingressPackets": 3, "egressPackets": 4},
            {"minute": "2027-01-15T08:01:00Z", "ingressBytes": 10, "egressBytes": 20,
             "ingressPackets": 30, "egressPackets": 40},
        ],
    }
    assert summarize([]) == {"ingressBytes": 0, "egressBytes": 0, "ingressPackets": 0,
                             "egressPackets": 0, "series": []}


steps = st.lists(st.tuples(st.sampled_from(["conn", "mic", "drain", "close"]),
                           st.integers(0, 5000), st.floats(0, 200)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_every_counted_byte_lands_in_exactly_one_row(script) -> None:
    mic = track("mic")
    s = session(tracks=[mic], conn=connection())
    meter = UsageMeter()
    meter.observe(s)
    now, rows = float(M), []
    for action, amount, later in script:
        if s.closed:
            break                                      # a closed session sends nothing
        if action == "conn":
            s.connection.bytes_received += amount
            s.connection.bytes_sent += 2 * amount
        elif action == "mic":
            mic.bytes += amount
            mic.egress_bytes += 3 * amount
        elif action == "drain":
            now += later
            meter.drain(now)
            batch = meter.rows()
            assert len({r[:4] for r in batch}) == len(batch)   # one row per key per batch
            rows += batch
        else:
            s.closed = True
    meter.drain(now + 1)
    rows += meter.rows()
    for name, counted in ((SESSION, (s.connection.bytes_received, s.connection.bytes_sent)),
                          ("mic", (mic.bytes, mic.egress_bytes))):
        mine = [r for r in rows if r[2] == name]
        assert (sum(r[4] for r in mine), sum(r[5] for r in mine)) == counted
        assert all(r[3] % 60 == 0 and (r[4] or r[5]) for r in mine)


# -- the hooks it reads ---------------------------------------------------------------------


class CountingWire(Wire):
    """A connected stand-in that also carries the wire counters."""

    bytes_received = bytes_sent = packets_received = packets_sent = 0


def test_switchboard_observers_and_track_counters_through_the_sfu() -> None:
    board = Switchboard(random=counting_random())
    meter = UsageMeter()
    board.observers.append(meter.observe)
    a = publisher(board)
    b = subscriber(board, a)
    c = subscriber(board, a, names=("mic",))
    assert len(meter) == 3
    for wire in (a, b, c):
        wire.connection = CountingWire()
    for seq in range(5):
        a.receive_media(PacketKind.RTP, rtp(MIC, seq, payload=b"o" * 30), 1.0 + seq / 50)
    meter.drain(M)
    rows = {(r[1], r[2]): r[4:] for r in meter.rows()}
    forwarded = sum(len(p) for p in b.connection.rtp + c.connection.rtp)
    assert len(b.connection.rtp) == len(c.connection.rtp) == 5
    assert rows[(a.session_id, "mic")] == (5 * 42, forwarded, 5, 10)
    assert (a.session_id, "cam") not in rows           # nothing sent: no row
    board.close_session(b)
    meter.drain(M)
    assert len(meter) == 2


def test_peer_connection_counts_every_datagram_in_and_out() -> None:
    ice = IceLiteAgent("ufrag", "password0password0password", tiebreaker=1)
    pc = PeerConnection(ice, certificate(), "server", [])
    pc.receive_classified(PacketKind.RTP, b"\x80" * 40, ("192.0.2.1", 5000), 1.0)   # no keys yet
    pc.receive_classified(PacketKind.RTCP, b"\x80\xc8" + b"\x00" * 30, ("192.0.2.1", 5000), 1.0)
    pc.receive_classified(PacketKind.DTLS, b"\x16" * 25, ("192.0.2.1", 5000), 1.0)  # unchecked
    pc.receive_classified(PacketKind.UNKNOWN, b"\xff" * 7, ("192.0.2.1", 5000), 1.0)
    pc.receive_stun(b"\x00\x01" + b"\x00" * 18, ("192.0.2.1", 5000), 1.0, b"r" * 60, True)
    assert (pc.bytes_received, pc.packets_received) == (40 + 32 + 25 + 7 + 20, 5)
    assert pc.drops["srtp-before-keys"] == 2 and pc.drops["unknown"] == 1
    assert pc.datagrams_to_send(1.0) == [(b"r" * 60, ("192.0.2.1", 5000))]
    assert pc.datagrams_to_send(1.0) == []
    assert (pc.bytes_sent, pc.packets_sent) == (60, 1)
