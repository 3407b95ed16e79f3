"""
transport-cc with publishers: negotiated when offered, arrivals reported back
(draft-holmer-rmcat-transport-wide-cc-extensions-01 §2, §3.1, §4), and not at
all with ``--no-transport-cc`` (the publisher then follows our REMB).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from realtime.demux import PacketKind
from realtime.rtcp.feedback import ReceiverEstimatedMaxBitrate
from realtime.rtcp.packet import decode_compound
from realtime.rtcp.transport_cc import TransportFeedback
from realtime.sdp import SessionDescription
from realtime.sdp.negotiation import TRANSPORT_CC
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import VP8_DELTA, VP8_KEY, Wire, certificate

OFFER = "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp"


def publish(shared: Path, transport_cc: bool):
    sdp = (shared / OFFER).read_text()
    offer = SessionDescription.parse(sdp)
    video = next(m for m in offer.media if m.kind == "video")
    board = Switchboard(transport_cc=transport_cc)
    a = board.create_session("app", 0.0, certificate=certificate(), address="127.0.0.1",
                             port=40000)
    answer = a.answer_offer(sdp, 0.0, publish={video.mid: "cam"})
    a.connection = Wire()
    ids = {e.uri: e.id for e in video.extensions}
    vp8 = next(c.payload_type for c in video.codecs if c.name == "VP8")

    def packet(seq: int, twcc: int, payload: bytes = VP8_DELTA) -> bytes:
        ext = bytes([ids["urn:ietf:params:rtp-hdrext:sdes:mid"] << 4 | len(video.mid) - 1])
        ext += video.mid.encode()
        ext += bytes([ids["urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"] << 4]) + b"f"
        ext += bytes([ids[TRANSPORT_CC] << 4 | 1]) + struct.pack("!H", twcc & 0xFFFF)
        ext += bytes(-len(ext) % 4)
        head = struct.pack("!BBHIIHH", 0x90, vp8, seq, 0, 51, 0xBEDE, len(ext) // 4)
        return head + ext + payload

    return a, answer, packet


def sent_feedback(session) -> list[TransportFeedback]:
    return [p for data in session.connection.rtcp for p in decode_compound(data)
            if isinstance(p, TransportFeedback)]


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_answer_keeps_transport_cc_when_offered(shared: Path, kind: str) -> None:
    _, answer, _ = publish(shared, transport_cc=True)
    media = next(m for m in answer.media if m.kind == kind)
    assert TRANSPORT_CC in {e.uri for e in media.extensions}
    assert all(("transport-cc", None) in c.feedback for c in media.codecs if not c.is_rtx)
    assert "transport-cc" in answer.serialize()


def test_no_transport_cc_option_refuses_it(shared: Path) -> None:
    a, answer, packet = publish(shared, transport_cc=False)
    assert "transport-cc" not in answer.serialize()
    assert "transport-wide-cc" not in answer.serialize()
    for i in range(20):
        a.receive_media(PacketKind.RTP, packet(i, 100 + i, VP8_KEY if i == 0 else VP8_DELTA),
                        1.0 + i * 0.01)
    a.handle_timer(3.0)
    assert sent_feedback(a) == []
    remb = [p for data in a.connection.rtcp for p in decode_compound(data)
            if isinstance(p, ReceiverEstimatedMaxBitrate)]
    assert remb  # the publisher's only estimate input from us


def test_arrivals_are_reported_every_100_ms(shared: Path) -> None:
    a, _, packet = publish(shared, transport_cc=True)
    assert a.get_timer() is None
    lost = {7, 8}
    for i in range(30):
        if i not in lost:
            a.receive_media(PacketKind.RTP, packet(i, 65520 + i, VP8_KEY if i == 0 else VP8_DELTA),
                            10.0 + i * 0.002)
    assert a.get_timer() <= 10.1
    a.handle_timer(10.1)
    (feedback,) = sent_feedback(a)
    assert feedback.sender_ssrc == a.rtcp_ssrc and feedback.media_ssrc == 51
    results = feedback.packet_results()
    assert [seq for seq, _ in results] == [(65520 + i) & 0xFFFF for i in range(30)]
    assert [i for i, (_, at) in enumerate(results) if at is None] == [7, 8]
    received = [at for _, at in results if at is not None]
    assert received[1] - received[0] == 2000  # µs between arrivals 2 ms apart
    a.handle_timer(10.3)
    assert len(sent_feedback(a)) == 1  # nothing new arrived: nothing more sent


def test_hostile_transport_cc_values_are_ignored(shared: Path) -> None:
    a, _, packet = publish(shared, transport_cc=True)
    good = packet(1, 5, VP8_KEY)
    bad = bytearray(good)
    bad[14] = 0xFF  # extension block length larger than the packet
    a.receive_media(PacketKind.RTP, bytes(bad), 1.0)
    a.receive_media(PacketKind.RTP, good, 1.0)
    a.handle_timer(2.0)
    assert [p.packet_status_count for p in sent_feedback(a)] == [1]


def _pcap(datagrams: list[bytes]) -> bytes:
    """A classic pcap (LINKTYPE_RAW IPv4) of UDP datagrams 127.0.0.1:9 -> 127.0.0.1:5004."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    for i, payload in enumerate(datagrams):
        udp = struct.pack("!HHHH", 9, 5004, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        out += struct.pack("<IIII", i, 0, len(ip), len(ip)) + ip
    return bytes(out)


def test_tshark_dissects_our_feedback(tmp_path: Path) -> None:
    """Wireshark's transport-cc dissector (an independent reader) agrees with every field."""
    import random
    import subprocess

    from realtime.sfu.twcc import TransportFeedbackSender
    from tests.conftest import require_tool

    rng = random.Random(15)
    twcc = TransportFeedbackSender(0xABCD)
    now, packets = 1_765_000_000.0, []
    for seq in range(3000):
        now += rng.choice([0.0002, 0.001, 0.004, 0.1 if seq % 500 == 0 else 0.002])
        if rng.random() > 0.05:  # 5 % lost
            twcc.receive((60000 + seq) & 0xFFFF, now)
        if seq % 97 == 0:
            packets += twcc.feedback_due(now + 1)
    packets += twcc.flush()
    path = tmp_path / "twcc.pcap"
    path.write_bytes(_pcap([p.encode() for p in packets]))
    result = subprocess.run(
        [require_tool("tshark"), "-r", str(path), "-d", "udp.port==5004,rtcp", "-T", "fields",
         "-E", "separator=,", "-e", "rtcp.rtpfb.fmt", "-e", "rtcp.rtpfb.transportcc.baseseq",
         "-e", "rtcp.rtpfb.transportcc.statuscount", "-e", "rtcp.rtpfb.transportcc.pktcount",
         "-e", "_ws.malformed", "-e", "rtcp.rtpfb.transportcc_bad"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert len(rows) == len(packets) > 30
    for row, packet in zip(rows, packets):
        assert row == (f"15,{packet.base_sequence_number},{packet.packet_status_count},"
                       f"{packet.feedback_packet_count},,"), row
