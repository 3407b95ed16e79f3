"""
RTCP termination wired into sessions: upstream NACKs and RTX repair, RR + REMB to
publishers, SRs to subscribers, RTT-spaced retries, and the one folded timer.

No sockets, no real time: sessions are driven with explicit ``now`` values and
their deadlines (``get_timer()``); the PeerHost test runs on ``task.Clock``.
"""

from __future__ import annotations

import struct

import pytest
from twisted.internet import task

from realtime.demux import PacketKind
from realtime.rtcp.feedback import GenericNack, PictureLossIndication, ReceiverEstimatedMaxBitrate
from realtime.rtcp.packet import decode_compound
from realtime.rtcp.reports import ReceiverReport, SenderReport
from realtime.rtcp.sdes import SourceDescription
from realtime.sdp.codecs import VP8, Codec
from realtime.sfu.rtcp_legs import DEFAULT_MAX_BITRATE, RtcpLegs, feedback_flags
from tests.sfu.client import VP8_DELTA, VP8_KEY, rtp
from tests.sfu.test_session import CAM, CAM_RTX, MIC, board, header, publisher, subscriber  # noqa: F401


def rtcp_of(session, kind):
    """Return every RTCP packet of type ``kind`` the SFU sent to ``session``."""
    return [p for data in session.connection.rtcp for p in decode_compound(data)
            if isinstance(p, kind)]


def video_call(board):
    """A publishes cam; B receives it from key frame seq 100 at t=1."""
    a = publisher(board)
    b = subscriber(board, a, names=("cam",))
    a.receive_media(PacketKind.RTP, rtp(CAM, 100, 96, VP8_KEY, ts=9000), 1.0)
    a.receive_media(PacketKind.RTP, rtp(CAM, 101, 96, VP8_DELTA, ts=12000), 1.03)
    return a, b


def run_timers(session, until):
    """Fire ``session``'s timer at each deadline up to ``until`` (like the reactor would)."""
    while (deadline := session.get_timer()) is not None and deadline <= until:
        session.handle_timer(deadline)


# -- publisher leg: NACK upstream, RTX repair -----------------------------------------


def test_publisher_gap_is_nacked_upstream_and_repaired_by_rtx(board) -> None:
    a, b = video_call(board)
    a.receive_media(PacketKind.RTP, rtp(CAM, 103, 96, VP8_DELTA, ts=15000), 1.06)
    assert rtcp_of(a, GenericNack) == []              # reorder delay first (5 ms)
    assert a.get_timer() == pytest.approx(1.065)
    a.handle_timer(1.065)
    (nack,) = rtcp_of(a, GenericNack)
    assert (nack.sender_ssrc, nack.media_ssrc) == (a.rtcp_ssrc, CAM)
    assert nack.lost_sequence_numbers() == [102]
    out = [header(p)[2] for p in b.connection.rtp]
    assert (out[2] - out[1]) & 0xFFFF == 2            # the gap is passed on as a gap
    # the publisher answers on its RTX SSRC: PT 97, its own seq, OSN 102 first
    rtx = struct.pack("!BBHII", 0x80, 97, 7, 14000, CAM_RTX) + struct.pack("!H", 102) + VP8_DELTA
    a.receive_media(PacketKind.RTP, rtx, 1.08)
    repaired = b.connection.rtp[-1]
    assert header(repaired)[2] == (out[1] + 1) & 0xFFFF  # fills the subscriber's hole
    assert header(repaired)[1] & 0x7F == 96 and repaired.endswith(VP8_DELTA)
    assert header(repaired)[4] == b.transceiver("0").send.ssrc
    run_timers(a, 3.0)
    assert len(rtcp_of(a, GenericNack)) == 1          # recovered: never asked again
    assert a.rtcp.counters()["nacksSentUpstream"] == 1
    cam = board.find("app", a.session_id, "cam")
    assert cam.streams[CAM].buffer.get(102) is not None  # subscribers' NACKs can have it too


def test_rtx_probe_without_osn_is_dropped(board) -> None:
    a, b = video_call(board)
    sent = len(b.connection.rtp)
    probe = struct.pack("!BBHII", 0xA0, 97, 8, 14000, CAM_RTX) + bytes(223) + b"\xe0"
    a.receive_media(PacketKind.RTP, probe, 1.1)      # P bit, 224 bytes of padding only
    assert len(b.connection.rtp) == sent
    assert a.media.routes[CAM_RTX][0].probes == 1 and a.counters["rtp-malformed"] == 0


def test_lost_for_good_means_retries_then_a_keyframe_request(board) -> None:
    a, b = video_call(board)
    plis_before = len(rtcp_of(a, PictureLossIndication))
    a.receive_media(PacketKind.RTP, rtp(CAM, 103, 96, VP8_DELTA), 1.06)
    run_timers(a, 1.9)
    times = [n for n in rtcp_of(a, GenericNack)]
    # first after 5 ms, then every max(20 ms, 1.2 x RTT = 120 ms) until 1 s old
    assert 5 <= len(times) <= 10
    run_timers(a, 2.2)
    assert len(rtcp_of(a, PictureLossIndication)) == plis_before + 1  # given up: refresh


def test_nack_spacing_follows_the_round_trip_the_subscriber_leg_measured() -> None:
    class Session:
        subscriptions: dict = {}

        def __init__(self):
            self.rtcp = []

        def send_rtcp(self, packet):
            self.rtcp.append(packet)

        def send_rtp(self, packet):
            raise AssertionError("nothing to retransmit")

    session = Session()
    legs = RtcpLegs(session, 0x5F, "sfu", random=lambda n: b"\x80" * n)
    legs.add_source(CAM, 90000, (VP8,))
    legs.receive_rtp(CAM, 1, 0, True, 0.0)
    legs.receive_rtp(CAM, 3, 0, False, 0.01)
    legs.subscriber.rtt = 0.5                          # as if measured from an RR's LSR/DLSR
    legs.handle_timer(0.015)
    assert legs.publisher.rtt == 0.5
    assert legs.get_timer() == pytest.approx(0.015 + 0.6)  # next NACK after 1.2 x RTT


def test_feedback_flags_prefer_pli_over_fir() -> None:
    both = Codec(96, "VP8", 90000, feedback=(("nack", None), ("nack", "pli"), ("ccm", "fir")))
    fir_only = Codec(96, "VP8", 90000, feedback=(("ccm", "fir"),))
    assert feedback_flags((both,)) == (True, False)
    assert feedback_flags((fir_only,)) == (False, True)
    assert feedback_flags(()) == (False, False)


# -- reports ------------------------------------------------------------------------------


def test_publisher_gets_receiver_reports_with_loss_and_a_remb(board) -> None:
    a, b = video_call(board)
    a.receive_media(PacketKind.RTP, rtp(CAM, 104, 96, VP8_DELTA), 1.09)  # 102, 103 lost
    run_timers(a, 2.6)                                 # first report within 0.5 .. 1.5 s
    (report, *_) = rtcp_of(a, ReceiverReport)
    (block,) = report.reports
    assert report.ssrc == a.rtcp_ssrc and block.ssrc == CAM
    assert block.highest_sequence == 104
    # RFC 3550 A.1: 100 is the probation packet; 101..104 expected, 101 and 104 received
    assert block.cumulative_lost == 2 and block.fraction_lost == 256 // 2
    (remb, *_) = rtcp_of(a, ReceiverEstimatedMaxBitrate)
    assert remb.bitrate == pytest.approx(DEFAULT_MAX_BITRATE, rel=1e-4)
    assert remb.ssrcs == (MIC, CAM)                    # every source the leg receives
    assert any(c.ssrc == a.rtcp_ssrc for s in rtcp_of(a, SourceDescription) for c in s.chunks)


def test_subscriber_gets_sender_reports_of_what_was_forwarded(board) -> None:
    a, b = video_call(board)
    run_timers(b, 2.6)
    (report, *_) = rtcp_of(b, SenderReport)
    assert report.ssrc == b.transceiver("0").send.ssrc
    assert report.packet_count == 2 and report.octet_count == len(VP8_KEY) + len(VP8_DELTA)
    assert rtcp_of(b, ReceiverReport) == []            # b publishes nothing: no RR
    assert b.get_timer() is not None                  # reports keep coming


def test_ended_track_stops_reports_on_both_legs(board) -> None:
    a, b = video_call(board)
    cam = board.find("app", a.session_id, "cam")
    cam.end()
    assert CAM not in a.rtcp.publisher.sources
    assert b.rtcp.subscriber.forwarders == {}


# -- the folded timer ---------------------------------------------------------------------


class _Connection:
    state = "connected"

    def __init__(self):
        self.fired = []

    def handle_timer(self, now):
        self.fired.append(now)

    def get_timer(self):
        return 50.0

    def datagrams_to_send(self, now):
        return []

    def next_event(self):
        return None

    def start(self, now):
        pass


class _Ice:
    local_ufrag = "ufrag"
    selected_address = None


class _Session:
    session_id = "s" * 32

    def __init__(self):
        self.ice = _Ice()
        self.connection = _Connection()
        self.deadline = 2.0
        self.fired = []

    def get_timer(self):
        return self.deadline

    def handle_timer(self, now):
        self.fired.append(now)
        self.deadline = now + 1.0

    def handle_event(self, event, now):
        pass

    def take_touched(self):
        return ()


def test_peer_host_folds_the_session_timer_into_the_connection_timer() -> None:
    from realtime.net.peers import PeerHost

    clock = task.Clock()
    host = PeerHost(clock, fallback=lambda *args: None, certificate=object(),
                    unconnected_timeout=1000.0)
    session = _Session()
    host.add(session)
    host.flush(session)
    assert len(clock.getDelayedCalls()) == 2          # the reaper + ONE timer for both
    clock.advance(2.0)
    assert session.fired == [2.0] and session.connection.fired == [2.0]
    clock.advance(1.0)
    assert session.fired == [2.0, 3.0]
    assert len(clock.getDelayedCalls()) == 2
    session.deadline = None                           # nothing due: the connection's 50 s
    host.flush(session)
    clock.advance(10.0)
    assert session.fired == [2.0, 3.0] and session.connection.fired == [2.0, 3.0]


def test_a_nack_deadline_is_always_consumed_when_reached() -> None:
    """Regression: 1.09 + 1.0 - 1.09 < 1.0 in floats once made the timer fire forever."""
    from realtime.media.nack import NackGenerator

    nacks = NackGenerator()
    nacks.receive(1, 1.09)
    nacks.receive(3, 1.09)
    while (deadline := nacks.get_timer()) is not None and deadline < 10:
        nacks.nacks_due(deadline)
    assert deadline is None and nacks.missing == [] and nacks.abandoned == 1
