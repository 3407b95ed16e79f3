"""RTP back into codec units (RFC 7587, 7741, 6184), and the two adapter machines without I/O."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from realtime.adapters.egress import EgressTap
from realtime.adapters.frames import FrameAssembler
from realtime.adapters.ingest import PcmIngest
from realtime.adapters.packet import Packet
from realtime.rtp.packet import RtpPacket


def rtp(seq: int, ts: int, payload: bytes, marker: bool = False, pt: int = 96) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts, 1234, marker=marker, payload=payload).encode()


# VP8 descriptors (RFC 7741 §4.2): X=1, S=1, PID=0; I=1 with a 15-bit PictureID
VP8_START = bytes([0x90, 0x80, 0x81, 0x23])
VP8_MORE = bytes([0x80, 0x80, 0x81, 0x23])       # S=0: a continuation
KEY_DATA = bytes([0x10, 0x02, 0x00])              # frame tag bit 0 clear: key frame
DELTA_DATA = bytes([0x11, 0x02, 0x00])


def test_vp8_frame_from_three_packets_in_any_order() -> None:
    assembler = FrameAssembler("vp8")
    packets = [rtp(65535, 9000, VP8_START + KEY_DATA), rtp(0, 9000, VP8_MORE + b"mid"),
               rtp(1, 9000, VP8_MORE + b"end", marker=True)]
    assert assembler.push(packets[1]) is None
    assert assembler.push(packets[0]) is None
    assert assembler.push(packets[2]) == (9000, KEY_DATA + b"midend", True)
    assert assembler.push(packets[1]) is None          # late: that frame is done
    assert assembler.drops["late"] == 1


def test_vp8_frame_with_a_hole_is_dropped() -> None:
    assembler = FrameAssembler("vp8")
    assert assembler.push(rtp(10, 3000, VP8_START + DELTA_DATA)) is None
    assert assembler.push(rtp(12, 3000, VP8_MORE + b"x", marker=True)) is None
    assert assembler.drops["incomplete"] == 1
    assert assembler.push(rtp(13, 6000, VP8_START + DELTA_DATA, marker=True)) == \
        (6000, DELTA_DATA, False)


def test_h264_single_stap_a_and_fu_a_become_annex_b() -> None:
    assembler = FrameAssembler("h264")
    sps, pps = bytes([0x67, 1, 2]), bytes([0x68, 3])
    stap = bytes([0x18, 0, len(sps)]) + sps + bytes([0, len(pps)]) + pps
    idr = bytes([0x65]) + b"I" * 6
    fu_start = bytes([0x7C, 0x80 | 5]) + idr[1:4]      # FU indicator NRI=3, type 28; S, type 5
    fu_end = bytes([0x7C, 0x40 | 5]) + idr[4:]
    assert assembler.push(rtp(1, 90, stap)) is None
    assert assembler.push(rtp(2, 90, fu_start)) is None
    frame = assembler.push(rtp(3, 90, fu_end, marker=True))
    start = b"\x00\x00\x00\x01"
    assert frame == (90, start + sps + start + pps + start + idr, True)
    single = bytes([0x41, 9, 9])
    assert assembler.push(rtp(4, 180, single, marker=True)) == (180, start + single, False)


def test_opus_packets_pass_as_they_are() -> None:
    assembler = FrameAssembler("opus")
    assert assembler.push(rtp(1, 960, b"opus", pt=111)) == (960, b"opus", False)


@given(st.sampled_from(["vp8", "h264", "opus"]), st.lists(st.binary(max_size=40), max_size=20))
def test_hostile_packets_are_counted_never_raised(codec: str, packets: list[bytes]) -> None:
    assembler = FrameAssembler(codec)
    for packet in packets:
        assembler.push(packet)
        assembler.push(rtp(len(packet), 1, packet, marker=True))


class Track:
    kind = "video"

    def __init__(self) -> None:
        self.keyframe_requests = 0
        self.detached = False

    def request_keyframe(self, rid, now) -> None:
        self.keyframe_requests += 1

    def detach(self, subscription) -> None:
        self.detached = True


class Stream:
    ssrc = 1234


def test_a_slow_decoder_drops_video_until_the_next_key_frame() -> None:
    track, woken = Track(), []
    tap = EgressTap(track, "vp8", lambda: woken.append(1), limit=2)
    send = lambda seq, data: tap.send_rtp(tap.forward(  # noqa: E731
        rtp(seq, seq * 3000, VP8_START + data, marker=True), Stream(), False, 1.0))
    send(1, DELTA_DATA)                                # no key frame yet: dropped
    assert tap.drops["awaiting-keyframe"] == 1 and not tap.pending
    send(2, KEY_DATA)
    send(3, DELTA_DATA)
    send(4, DELTA_DATA)                                # the queue (2) is full
    assert tap.drops["queue-full"] == 3                # this one and the two queued
    assert not tap.pending and tap.awaiting_keyframe and track.keyframe_requests == 1
    send(5, DELTA_DATA)
    send(6, KEY_DATA)
    assert [unit[0] for unit in tap.take_work()] == [18000]
    tap.close()
    assert track.detached and not tap.can_send_media


def test_ingest_plays_out_in_real_time_and_bounds_its_buffer() -> None:
    ingest = PcmIngest(limit=3840 * 3, rtp_start=1000)
    ingest.receive_message(Packet(1, 0, b"\x01" * 3840 * 2).encode(), now=9.94)
    assert ingest.get_timer() == 10.0                   # after the 60 ms jitter buffer
    assert ingest.handle_timer(9.99) == []
    assert ingest.handle_timer(10.0) == [(1000, b"\x01" * 3840)]
    assert ingest.handle_timer(10.01) == []             # the next is due at 10.02
    assert [t for t, _ in ingest.handle_timer(10.02)] == [1960]
    ingest.receive_message(Packet(2, 0, b"\x02" * 3840 * 4).encode(), now=10.03)
    assert ingest.drops["buffer-full"] == 1             # 4 frames > 3 allowed
    ingest.receive_message(b"\x2a\x05ab", now=10.03)
    assert ingest.drops["malformed"] == 1
    assert ingest.handle_timer(10.04) == [] and ingest.get_timer() is None   # dry
    ingest.receive_message(Packet(3, 0, b"\x03" * 3840 * 3).encode(), now=11.04)
    assert ingest.get_timer() == 11.10
    # 1.06 s of silence later the RTP clock has moved on by 53 frames (+ the 2 sent)
    assert ingest.handle_timer(11.10) == [(1000 + 960 * 55, b"\x03" * 3840)]
