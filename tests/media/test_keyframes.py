"""Keyframe detection per payload format, and PLI/FIR aggregation per published stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError, Truncated
from realtime.media.keyframes import (
    KeyframeRequester,
    av1_keyframe,
    h264_keyframe,
    keyframe_detector,
    packet_starts_keyframe,
    vp8_keyframe,
    vp9_keyframe,
)
from realtime.rtp.packet import RtpPacket, payload_offset, read_header_fields
from realtime.testing.captures import read_capture

# --- VP8 (RFC 7741) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, expected",
    [
        # S=1 PID=0, payload header 0x50: Size0=2 H=1 VER=0 P=0 -> key frame
        (bytes([0x10, 0x50]), True),
        # same, payload header 0x51: P=1 -> interframe
        (bytes([0x10, 0x51]), False),
        # S=0: a continuation packet, never a key frame start
        (bytes([0x00, 0x50]), False),
        # S=1 but PID=1: a later partition
        (bytes([0x11, 0x50]), False),
        # X=1; ext 0xE0: I L T; PictureID 0x81 0x23 (M=1); TL0PICIDX 0x05; TID/Y/KEYIDX 0x40;
        # then payload header 0x10 (P=0)
        (bytes([0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x10]), True),
        # X=1; ext 0x80: I only; PictureID 0x12 (M=0, 7 bits); payload header 0x01 (P=1)
        (bytes([0x90, 0x80, 0x12, 0x01]), False),
        # X=1; ext 0x10: K only; TID/Y/KEYIDX byte 0x00; payload header 0x00 (P=0)
        (bytes([0x90, 0x10, 0x00, 0x00]), True),
    ],
)
def test_vp8(payload: bytes, expected: bool) -> None:
    assert vp8_keyframe(payload) is expected


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "VP8 payload descriptor is empty"),
        (bytes([0x90]), "VP8 extension byte missing"),
        (bytes([0x90, 0x80]), "VP8 PictureID missing"),
        (bytes([0x10]), "VP8 payload header missing"),
        (bytes([0x90, 0xC0, 0x81, 0x23, 0x05]), "VP8 payload header missing"),
    ],
)
def test_vp8_truncated(payload: bytes, message: str) -> None:
    with pytest.raises(Truncated) as info:
        vp8_keyframe(payload)
    assert str(info.value) == message


# --- VP9 (RFC 9628) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, expected",
    [
        # I=1 P=0 L=0 F=0 B=1 E=1 V=1 Z=1 (the first packet of str0m/vp9.pcap), PictureID 0xE6 0xFB
        (bytes([0x8F, 0xE6, 0xFB]), True),
        # I=1 P=1 ... B=1: predicted frame
        (bytes([0xCD, 0xE6, 0xFC]), False),
        # P=0 but B=0: not the first packet of the frame
        (bytes([0x84]), False),
        # I=0 P=0 L=1 F=0 B=1: layer byte TID=0 U=0 SID=0 D=0, TL0PICIDX 0x07
        (bytes([0x28, 0x00, 0x07]), True),
        # same with SID=1 (layer byte 0b000_0_001_0): an upper spatial layer is not a start point
        (bytes([0x28, 0x02, 0x07]), False),
        # I=1 with a 15-bit PictureID (M=1) then L byte SID=0
        (bytes([0xA8, 0x80, 0x01, 0x00, 0x00]), True),
    ],
)
def test_vp9(payload: bytes, expected: bool) -> None:
    assert vp9_keyframe(payload) is expected


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "VP9 payload descriptor is empty"),
        (bytes([0xA8]), "VP9 PictureID missing"),
        (bytes([0x28]), "VP9 layer indices missing"),
        (bytes([0xA8, 0x80, 0x01]), "VP9 layer indices missing"),
    ],
)
def test_vp9_truncated(payload: bytes, message: str) -> None:
    with pytest.raises(Truncated) as info:
        vp9_keyframe(payload)
    assert str(info.value) == message


# --- H.264 (RFC 6184) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, expected",
    [
        (bytes([0x65, 0x88]), True),  # single NAL, F=0 NRI=3 type 5 (IDR slice)
        (bytes([0x67, 0x42]), True),  # single NAL, type 7 (SPS)
        (bytes([0x41, 0x9A]), False),  # single NAL, type 1 (non-IDR slice)
        (bytes([0x68, 0xCE]), False),  # single NAL, type 8 (PPS) alone
        # STAP-A (24): size 2, NAL 0x68 0xCE (PPS); size 2, NAL 0x65 0x88 (IDR)
        (bytes([0x78, 0x00, 0x02, 0x68, 0xCE, 0x00, 0x02, 0x65, 0x88]), True),
        # STAP-A: size 1, NAL 0x06 (SEI); size 2, NAL 0x41 0x9A (non-IDR)
        (bytes([0x78, 0x00, 0x01, 0x06, 0x00, 0x02, 0x41, 0x9A]), False),
        # STAP-B (25): DON 0x0001, size 1, NAL 0x67 (SPS)
        (bytes([0x79, 0x00, 0x01, 0x00, 0x01, 0x67]), True),
        # MTAP16 (26): DONB 0x0000; size 4: DOND 0x00, TS offset 0x0000, NAL 0x65
        (bytes([0x7A, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x65]), True),
        # MTAP24 (27): DONB; size 5: DOND, TS offset 3 bytes, NAL 0x41
        (bytes([0x7B, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x41]), False),
        # FU-A (28): indicator 0x7C, FU header S=1 E=0 type 5 -> start of an IDR
        (bytes([0x7C, 0x85, 0xB8]), True),
        # FU-A middle fragment of an IDR (S=0)
        (bytes([0x7C, 0x05, 0xB8]), False),
        # FU-A start of a non-IDR slice
        (bytes([0x7C, 0x81, 0x9A]), False),
        # FU-B (29): indicator, FU header S=1 type 5, DON
        (bytes([0x7D, 0x85, 0x00, 0x01]), True),
        (bytes([0x60]), False),  # type 0: unspecified
        (bytes([0x7E]), False),  # type 30: reserved
    ],
)
def test_h264(payload: bytes, expected: bool) -> None:
    assert h264_keyframe(payload) is expected


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "H.264 payload is empty"),
        (bytes([0x78, 0x00]), "H.264 STAP-A unit size truncated"),
        (bytes([0x78, 0x00, 0x05, 0x41]), "H.264 STAP-A unit overruns the packet"),
        (bytes([0x78, 0x00, 0x00]), "H.264 STAP-A unit overruns the packet"),  # size 0 is not a NAL
        (bytes([0x79, 0x00, 0x01, 0x00]), "H.264 STAP-B unit size truncated"),
        (
            bytes([0x7A, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]),
            "H.264 MTAP16 unit overruns the packet",
        ),
        (bytes([0x7B, 0x00, 0x00, 0x00, 0x09, 0x00]), "H.264 MTAP24 unit overruns the packet"),
        (bytes([0x7C]), "H.264 FU header missing"),
    ],
)
def test_h264_truncated(payload: bytes, message: str) -> None:
    with pytest.raises(Truncated) as info:
        h264_keyframe(payload)
    assert str(info.value) == message


# --- AV1 ----------------------------------------------------------------------------------


def test_av1() -> None:
    assert av1_keyframe(bytes([0x18]))  # Z=0 Y=0 W=1 N=1
    assert not av1_keyframe(bytes([0x10]))  # W=1 N=0
    with pytest.raises(Truncated, match="AV1 aggregation header missing"):
        av1_keyframe(b"")


def test_detector_lookup_and_padding() -> None:
    assert keyframe_detector("vp8") is vp8_keyframe
    assert keyframe_detector("H264") is h264_keyframe
    assert keyframe_detector("opus") is None
    # An RTP packet whose payload is IDR, followed by 3 padding octets (P=1, count 3)
    packet = RtpPacket(96, 1, 2, 3, payload=bytes([0x65, 0x88]), padding_size=3).encode()
    assert packet_starts_keyframe(packet, h264_keyframe, payload_offset(packet))
    # A padding-only probe has no payload at all: never a key frame
    probe = RtpPacket(96, 1, 2, 3, padding_size=4).encode()
    assert not packet_starts_keyframe(probe, h264_keyframe, payload_offset(probe))


@settings(max_examples=300)
@given(
    st.binary(max_size=40),
    st.sampled_from([vp8_keyframe, vp9_keyframe, h264_keyframe, av1_keyframe]),
)
def test_detectors_raise_only_decode_error(payload: bytes, detector) -> None:
    try:
        assert detector(payload) in (True, False)
    except DecodeError:
        pass


# --- real captures (str0m, plaintext RTP) -------------------------------------------------


def keyframe_packets(path: Path, detector) -> tuple[int, list[tuple[int, int]]]:
    """Return (RTP packet count, [(seq, timestamp)] of packets starting a key frame)."""
    count, keys = 0, []
    for record in read_capture(path):
        data = record.payload
        _, seq, ts, _, _ = read_header_fields(data)
        count += 1
        if packet_starts_keyframe(data, detector, payload_offset(data)):
            keys.append((seq, ts))
    return count, keys


def test_vp8_capture_matches_tshark(shared: Path) -> None:
    count, keys = keyframe_packets(shared / "pcaps/str0m/vp8.pcap", vp8_keyframe)
    text = (shared / "pcaps/str0m/vp8.txt").read_text()
    expected = [
        int(line.split("Seq=")[1].split(",")[0]) for line in text.splitlines() if "Keyframe" in line
    ]
    assert count == 104
    assert [seq for seq, _ in keys] == expected == [14260, 14262, 14265]


def test_vp9_capture_has_one_keyframe(shared: Path) -> None:
    # tshark has no VP9 dissector; the first packet's descriptor 0x8F is I|B|E|V|Z with P=0,
    # every other first byte has P=1 or B=0.
    count, keys = keyframe_packets(shared / "pcaps/str0m/vp9.pcap", vp9_keyframe)
    assert count == 316
    assert keys == [(19357, 3665622181)]


def test_h264_capture_matches_tshark(shared: Path) -> None:
    count, keys = keyframe_packets(shared / "pcaps/str0m/h264.pcap", h264_keyframe)
    text = (shared / "pcaps/str0m/h264.txt").read_text()
    idr_timestamps = {
        int(line.split("Time=")[1].split(",")[0].split()[0])
        for line in text.splitlines()
        if "IDR-Slice" in line.replace("non-IDR-Slice", "")
    }
    assert count == 298 and len(idr_timestamps) == 7
    # Every IDR frame is found: 4 as STAP-A (SPS PPS IDR), 3 as STAP-A (SPS PPS) then FU-A start.
    assert {ts for _, ts in keys} - {2856127226} == idr_timestamps
    assert len(keys) == 4 + 3 * 2 + 1
    # ... plus seq 19388, an STAP-A whose SPS parses before the unit tshark calls "Bad NAL Length".
    assert (19388, 2856127226) in keys


# --- KeyframeRequester --------------------------------------------------------------------


def test_requests_are_aggregated_and_debounced() -> None:
    requester = KeyframeRequester(min_interval=0.3, retry_interval=1.0)
    assert requester.get_timer() is None and not requester.due(0.0)
    for _ in range(5):  # five subscribers' PLIs at once
        requester.request(1.0)
    assert requester.get_timer() == 1.0
    assert requester.due(1.0) and requester.fir_sequence_number == 1
    assert not requester.due(1.0)  # one upstream request for all five
    requester.request(1.1)  # another PLI while the key frame is on its way
    assert requester.get_timer() == pytest.approx(2.0)  # outstanding: only a retry after 1 s
    requester.keyframe_received(1.2)
    assert requester.get_timer() is None
    requester.request(1.25)  # a new wish right after a key frame: debounce to 1.0 + 0.3
    assert not requester.due(1.29)
    assert requester.due(1.3) and requester.fir_sequence_number == 2
    assert not requester.due(1.9)
    assert requester.due(2.3) and requester.fir_sequence_number == 2  # a repeat keeps the FIR seq
    assert (requester.requests, requester.sent, requester.keyframes) == (7, 3, 1)


def test_request_long_after_the_last_one_goes_out_at_once() -> None:
    requester = KeyframeRequester(min_interval=0.3)
    requester.request(0.0)
    assert requester.due(0.0)
    requester.keyframe_received(0.1)
    requester.request(5.0)
    assert requester.get_timer() == 5.0 and requester.due(5.0)
