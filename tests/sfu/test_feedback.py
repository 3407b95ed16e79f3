"""The SFU's own RTCP: RR/NACK/PLI/FIR upstream, SR and local NACK answers downstream."""

from __future__ import annotations

import random as stdlib_random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.media.nack import NackGenerator
from realtime.rtcp import (
    FirEntry,
    FullIntraRequest,
    GenericNack,
    Goodbye,
    PictureLossIndication,
    ReceiverEstimatedMaxBitrate,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceDescription,
    decode_compound,
    encode_compound,
)
from realtime.rtp.extensions import HeaderExtension
from realtime.rtp.packet import RtpPacket
from realtime.rtp.statistics import ntp_middle32, ntp_timestamp
from realtime.sfu.feedback import (
    BitrateEstimated,
    KeyframeRequested,
    PublisherFeedback,
    SourceEnded,
    SubscriberFeedback,
)
from realtime.sfu.forwarder import Forwarder, PublishedStream

SFU = 0x5F0
PUB = 0xAAAA0001
T0 = 1_700_000_000.0  # a Unix time, so NTP timestamps are realistic


def half(n: int) -> bytes:
    """An RNG whose report interval factor is exactly 1.0 (0x8000 / 65536 = 0.5)."""
    return b"\x80" + bytes(n - 1)


def test_upstream_gaps_produce_nacks_with_the_right_pid_blp() -> None:
    leg = PublisherFeedback(SFU, random=half)
    leg.add_source(PUB, 90000)
    for seq in (1000, 1001, 1003, 1004, 1007, 1030):
        leg.receive_rtp(PUB, seq, 0, False, T0)
    assert leg.get_timer() == pytest.approx(T0 + 0.005)  # reorder delay
    leg.handle_timer(T0 + 0.005)
    (datagram,) = leg.rtcp_to_send()
    assert datagram[:4] == bytes.fromhex(
        "81"  # V=2 P=0 FMT=1 (Generic NACK)
        "cd"  # PT=205 RTPFB
        "0004"  # length: 4 words after the header (2 SSRCs + 2 FCI entries)
    )
    assert datagram[4:12] == SFU.to_bytes(4, "big") + PUB.to_bytes(4, "big")  # sender, media source
    assert datagram[12:16] == bytes.fromhex(
        "03ea"  # PID 1002
        "ffec"  # BLP: bits 2, 3 -> 1005, 1006; bits 5..15 -> 1008..1018
    )
    assert datagram[16:20] == bytes.fromhex(
        "03fb"  # PID 1019
        "03ff"  # BLP: bits 0..9 -> 1020..1029
    )
    nack = GenericNack.decode(datagram)
    assert nack.lost_sequence_numbers() == [1002, 1005, 1006] + list(range(1008, 1030))


def test_nacks_repeat_by_rtt_and_stop_when_the_packet_arrives() -> None:
    leg = PublisherFeedback(SFU, random=half)
    leg.add_source(PUB, 90000)
    leg.set_rtt(0.2)
    for seq in (1, 3):
        leg.receive_rtp(PUB, seq, 0, False, T0)
    leg.handle_timer(T0 + 0.01)
    assert len(leg.rtcp_to_send()) == 1
    leg.handle_timer(T0 + 0.1)
    assert leg.rtcp_to_send() == []  # not before 1.2 x RTT
    leg.handle_timer(T0 + 0.26)
    assert [GenericNack.decode(d).lost_sequence_numbers() for d in leg.rtcp_to_send()] == [[2]]
    leg.receive_rtp(PUB, 2, 0, False, T0 + 0.3, retransmission=True)  # recovered through RTX
    leg.handle_timer(T0 + 0.9)
    assert leg.rtcp_to_send() == [] and leg.nacks_sent == 2


def test_keyframe_requests_are_aggregated_into_one_pli() -> None:
    leg = PublisherFeedback(SFU, random=half)
    leg.add_source(PUB, 90000)
    for _ in range(4):
        leg.request_keyframe(PUB, T0)
    assert leg.get_timer() == T0
    leg.handle_timer(T0)
    (datagram,) = leg.rtcp_to_send()
    assert datagram == bytes.fromhex(
        "81"  # V=2 FMT=1 (PLI)
        "ce"  # PT=206 PSFB
        "0002"  # two words: sender and media SSRC
    ) + SFU.to_bytes(4, "big") + PUB.to_bytes(4, "big")
    leg.request_keyframe(PUB, T0 + 0.1)
    leg.handle_timer(T0 + 0.2)
    assert leg.rtcp_to_send() == []  # the key frame is on its way
    leg.receive_rtp(PUB, 1, 0, True, T0 + 0.25)
    leg.request_keyframe(PUB, T0 + 0.26)
    leg.handle_timer(T0 + 0.26)
    assert leg.rtcp_to_send() == []  # debounce: 300 ms since the last PLI
    leg.handle_timer(T0 + 0.3)
    assert len(leg.rtcp_to_send()) == 1 and leg.keyframe_requests_sent == 2
    leg.request_keyframe(0xDEAD, T0)  # unknown SSRC: ignored


def test_fir_when_negotiated() -> None:
    leg = PublisherFeedback(SFU, random=half)
    leg.add_source(PUB, 90000, fir=True)
    leg.request_keyframe(PUB, T0)
    leg.handle_timer(T0)
    (datagram,) = leg.rtcp_to_send()
    assert FullIntraRequest.decode(datagram) == FullIntraRequest(SFU, 0, (FirEntry(PUB, 1),))


def test_packet_given_up_asks_for_a_keyframe() -> None:
    leg = PublisherFeedback(SFU, random=half)
    leg.add_source(PUB, 90000)
    leg.set_rtt(0.01)  # NACK spacing: the 20 ms floor
    leg.receive_rtp(PUB, 1, 0, False, T0)
    leg.receive_rtp(PUB, 3, 0, False, T0)
    t = T0
    kinds = []
    while t < T0 + 1.5:
        leg.handle_timer(t)
        kinds += [type(p).__name__ for d in leg.rtcp_to_send() for p in decode_compound(d)]
        t += 0.05
    assert kinds.count("GenericNack") == 10  # max_retries
    assert "PictureLossIndication" in kinds
    assert kinds.index("PictureLossIndication") > kinds.index("GenericNack")


def test_receiver_report_carries_loss_and_lsr() -> None:
    leg = PublisherFeedback(SFU, cname="sfu", random=half)
    leg.add_source(PUB, 90000)
    sr_ntp = ntp_timestamp(T0)
    leg.receive_rtcp(SenderReport(PUB, sr_ntp, 0, 0, 0).encode(), T0)
    for seq in list(range(100, 110)) + list(range(111, 120)):
        leg.receive_rtp(PUB, seq, seq * 3000, False, T0 + 0.01 * (seq - 100))
    assert leg.get_timer() == pytest.approx(T0 + 0.005)  # the NACK for 110 comes first
    leg.handle_timer(T0 + 1.0)
    datagrams = leg.rtcp_to_send()
    rr, sdes = decode_compound(datagrams[-1])
    assert isinstance(rr, ReceiverReport) and rr.ssrc == SFU
    (block,) = rr.reports
    assert block.ssrc == PUB and block.highest_sequence == 119
    assert block.cumulative_lost == 1 and block.fraction_lost == (1 << 8) // 19
    assert block.lsr == ntp_middle32(sr_ntp) and block.dlsr == 65536
    assert sdes == SourceDescription.with_cname(SFU, "sfu")
    assert leg.get_timer() is not None and leg.get_timer() > T0 + 1.0


def test_bye_ends_the_source() -> None:
    leg = PublisherFeedback(SFU)
    leg.add_source(PUB, 48000)
    leg.receive_rtcp(Goodbye((PUB, 77)).encode(), T0)
    assert leg.next_event() == SourceEnded(PUB) and leg.next_event() is None
    leg.remove_source(PUB)
    assert leg.get_timer() is None


def subscriber_setup(rtx: bool = False):
    source = PublishedStream(PUB, 90000)
    forwarder = Forwarder(
        0xB0B,
        90000,
        rtx_ssrc=0xB0C if rtx else None,
        rtx_payload_types={96: 97} if rtx else None,
        random=bytes,
    )
    leg = SubscriberFeedback(random=half)
    leg.add(forwarder, T0)
    return source, forwarder, leg


def test_subscriber_pli_fir_remb_become_events() -> None:
    source, forwarder, leg = subscriber_setup()
    data = RtpPacket(96, 1, 0, PUB, payload=b"k").encode()
    source.receive(data)
    forwarder.forward(data, source, True, T0)
    leg.receive_rtcp(
        encode_compound(
            [
                PictureLossIndication(0x5B, 0xB0B),
                FullIntraRequest(0x5B, 0, (FirEntry(0xB0B, 3), FirEntry(0x999, 1))),
                ReceiverEstimatedMaxBitrate.from_bitrate(0x5B, 750_000, [0xB0B]),
                PictureLossIndication(0x5B, 0x999),  # not ours: ignored
            ]
        ),
        T0,
    )
    events = []
    while (event := leg.next_event()) is not None:
        events.append(event)
    assert events == [
        KeyframeRequested(PUB, 0xB0B), KeyframeRequested(PUB, 0xB0B), BitrateEstimated(750_000)]


def test_sender_reports_and_rtt() -> None:
    source, forwarder, leg = subscriber_setup()
    assert leg.sender_reports(T0) == b""  # nothing sent yet
    for i in range(10):
        packet = RtpPacket(96, i, 3000 * i, PUB, payload=bytes(100), padding_size=4)
        data = packet.with_extensions([HeaderExtension(1, b"x")]).encode()  # octets: payload only
        source.receive(data)
        forwarder.forward(data, source, True, T0 + i / 30)
    assert leg.get_timer() == pytest.approx(T0 + 1.0)
    leg.handle_timer(T0 + 1.0)
    (datagram,) = leg.rtcp_to_send()
    sr, sdes = decode_compound(datagram)
    assert isinstance(sr, SenderReport) and sr.ssrc == 0xB0B
    assert sdes == SourceDescription.with_cname(0xB0B, "realtime-sfu")
    assert (sr.packet_count, sr.octet_count) == (10, 1000)
    assert sr.ntp_timestamp == ntp_timestamp(T0 + 1.0)
    assert sr.rtp_timestamp == 27000 + round((1.0 - 9 / 30) * 90000)
    # the subscriber answers 50 ms later, having held the SR 20 ms: RTT 30 ms
    block = ReportBlock(0xB0B, 0, 0, 9, 0, ntp_middle32(sr.ntp_timestamp), int(0.02 * 65536))
    leg.receive_rtcp(ReceiverReport(0x5B, (block,)).encode(), T0 + 1.05)
    assert leg.rtt == pytest.approx(0.03, abs=1e-3)


@pytest.mark.parametrize("rtx", [False, True])
def test_ten_percent_loss_towards_a_subscriber_is_repaired_locally(rtx: bool) -> None:
    """Every NACKed packet comes from the SFU's buffer; the publisher never hears of it."""
    rnd = stdlib_random.Random(10)
    source, forwarder, leg = subscriber_setup(rtx)
    upstream = PublisherFeedback(SFU, random=half)
    upstream.add_source(PUB, 90000)
    receiver = NackGenerator(reorder_delay=0.0)  # the subscriber's own NACK logic
    delivered: set[int] = set()
    nacked: set[int] = set()
    upstream_rtcp = []
    resent: set[int] = set()
    now = T0
    for i in range(1000):
        now = T0 + i / 100
        data = RtpPacket(96, (65000 + i) & 0xFFFF, 900 * i, PUB, payload=bytes(50)).encode()
        key = source.receive(data)
        upstream.receive_rtp(PUB, (65000 + i) & 0xFFFF, 900 * i, key, now)
        outgoing = [bytes(forwarder.forward(data, source, key, now))]
        leg.handle_timer(now)
        upstream.handle_timer(now)
        upstream_rtcp += upstream.rtcp_to_send()
        repairs = [RtpPacket.decode(bytes(p)) for p in leg.rtp_to_send()]
        resent.update(
            (p.payload[0] << 8 | p.payload[1]) if rtx else p.sequence_number for p in repairs
        )
        assert all((p.ssrc == 0xB0C) is rtx for p in repairs)
        outgoing += [p.encode() for p in repairs]
        for packet in outgoing:
            if rnd.random() < 0.1:
                continue  # lost on the way to the subscriber
            parsed = RtpPacket.decode(packet)
            seq = parsed.sequence_number
            if rtx and parsed.ssrc == 0xB0C:
                seq = parsed.payload[0] << 8 | parsed.payload[1]  # OSN
            delivered.add(seq)
            receiver.receive(seq, now)
        lost = receiver.nacks_due(now)
        if lost:
            nacked.update(lost)
            leg.receive_rtcp(GenericNack.from_lost(0x5B, 0xB0B, lost).encode(), now)
    first = forwarder.segments[0].start & 0xFFFF
    assert len(nacked) > 80
    assert forwarder.unanswered == 0
    assert leg.retransmissions == forwarder.retransmitted
    assert resent == nacked  # every NACKed packet went out again, and nothing else
    missing = {(first + i) & 0xFFFF for i in range(990)} - delivered
    assert not missing  # everything but the tail was repaired
    kinds = {type(p).__name__ for d in upstream_rtcp for p in decode_compound(d)}
    assert kinds <= {"ReceiverReport", "SourceDescription"}  # no NACK, no PLI upstream


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_hostile_rtcp_raises_only_decode_error(data: bytes) -> None:
    _, _, leg = subscriber_setup()
    upstream = PublisherFeedback(SFU)
    upstream.add_source(PUB, 90000)
    for receive in (leg.receive_rtcp, upstream.receive_rtcp):
        try:
            receive(data, T0)
        except DecodeError:
            pass
