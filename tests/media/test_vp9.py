"""realtime/media/vp9.py: the VP9 payload descriptor (RFC 9628 §4.2), hand-made and as
Chromium sends it (tests/media/vp9_chromium_l1t3.txt), and hostile bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from realtime.errors import DecodeError, Truncated
from realtime.media.keyframes import vp9_keyframe
from realtime.media.vp9 import (
    MALFORMED,
    PictureGroupEntry,
    Scalability,
    Vp9Descriptor,
    temporal_fields,
    temporal_layer,
)
from realtime.rtp.packet import payload_offset

CAPTURE = Path(__file__).with_name("vp9_chromium_l1t3.txt")


def rtp(payload: bytes, pt: int = 98) -> bytes:
    """A 12-octet RTP header without extensions, then ``payload``."""
    return bytes([0x80, pt, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7]) + payload


def test_flexible_mode_with_references() -> None:
    # I P L F B . . . | M PictureID 0x1234 | TID 1 U SID 0 | P_DIFF 2 N=1 | P_DIFF 3 N=0
    d = Vp9Descriptor.decode(bytes([0xF8, 0x80 | 0x12, 0x34, 0x30, 0x05, 0x06]) + b"frame")
    assert (d.inter_predicted, d.flexible, d.start, d.end) == (True, True, True, False)
    assert (d.picture_id, d.picture_id_bits) == (0x1234, 15)
    assert (d.temporal_id, d.switching_up, d.spatial_id, d.inter_layer) == (1, True, 0, False)
    assert d.tl0_picture_index == -1 and d.reference_diffs == (2, 3) and d.length == 6
    assert temporal_fields(bytes([0xF8, 0x92, 0x34, 0x30, 0x05, 0x06]), 0) == (1, True, 0x1234, True)


def test_non_flexible_mode_with_tl0picidx_and_a_7_bit_picture_id() -> None:
    # I . L . . E . Z | M=0 PictureID 5 | TID 2 U=0 SID 1 D | TL0PICIDX 200
    d = Vp9Descriptor.decode(bytes([0xA5, 0x05, 0x43, 200]))
    assert (d.picture_id, d.picture_id_bits, d.tl0_picture_index) == (5, 7, 200)
    assert (d.temporal_id, d.switching_up, d.spatial_id, d.inter_layer) == (2, False, 1, True)
    assert (d.start, d.end, d.not_upper_reference, d.flexible) == (False, True, True, False)
    assert d.length == 4 and temporal_fields(bytes([0xA5, 0x05, 0x43, 200]), 0) == (2, False, 5, False)


def test_scalability_structure() -> None:
    # I . L . B . V . | 15-bit PID | L | TL0 | SS: N_S=1 (two layers) Y G, sizes, N_G=2:
    # (TID 0, U, R=1: P_DIFF 4), (TID 1, U=0, R=1: P_DIFF 1)
    ss = bytes([0x38, 0x01, 0x40, 0x00, 0xB4, 0x02, 0x80, 0x01, 0x68,
                2, 0x14, 4, 0x24, 1])
    d = Vp9Descriptor.decode(bytes([0xAA, 0x80, 0x01, 0x00, 7]) + ss)
    assert d.scalability == Scalability(2, ((320, 180), (640, 360)), (
        PictureGroupEntry(0, True, (4,)), PictureGroupEntry(1, False, (1,))))
    assert d.length == 5 + len(ss)


def test_no_layer_indices_no_temporal_information() -> None:
    assert temporal_fields(bytes([0x88, 0x05]), 0) is None
    assert temporal_layer(rtp(bytes([0x88, 0x05]))) == -1
    assert Vp9Descriptor.decode(bytes([0x88, 0x05])).temporal_id == -1


@pytest.mark.parametrize("data", [b"", bytes([0x80]), bytes([0x80, 0x81]), bytes([0xA0, 0x01]),
                                  bytes([0x30]), bytes([0xA0, 0x01, 0x00]),  # no TL0PICIDX
                                  bytes([0x70, 0x20, 0x03]),  # P_DIFF says another follows
                                  bytes([0x02, 0x18, 0x01])])  # SS sizes cut short
def test_truncated(data: bytes) -> None:
    with pytest.raises(Truncated):
        Vp9Descriptor.decode(data)


def test_truncated_in_the_per_packet_readers() -> None:
    assert temporal_fields(bytes([0xA0, 0x81]), 0) is None
    assert temporal_layer(rtp(bytes([0xA0, 0x81]))) == MALFORMED
    assert temporal_layer(rtp(b"")) == MALFORMED
    assert temporal_layer(b"\x80\x62") == MALFORMED


@given(st.binary(max_size=40))
def test_hostile_bytes(data: bytes) -> None:
    """Never an exception but Truncated; the fast readers agree with the decoder."""
    try:
        d = Vp9Descriptor.decode(data)
    except DecodeError:
        d = None
    fields = temporal_fields(data, 0)
    if d is not None and d.temporal_id >= 0:
        assert fields == (d.temporal_id, d.switching_up, d.picture_id, d.start)
    tid = temporal_layer(rtp(data))
    if fields is not None:
        assert tid == fields[0]
    else:
        assert tid in (-1, MALFORMED)


def captured() -> list[tuple[bool, bytes]]:
    out = []
    for line in CAPTURE.read_text().splitlines():
        if line.startswith("#"):
            continue
        _, key, packet = line.split()
        out.append((key == "1", bytes.fromhex(packet)))
    return out


def test_chromium_l1t3_capture() -> None:
    """Chromium's VP9 L1T3 (one encoding): flexible mode, 15-bit PictureIDs, U on every
    frame, TIDs 0 2 1 2 with P_DIFF 4 / 1 / 2 / 1, an SS with 1280x720 on the key frame."""
    frames = []
    for key, packet in captured():
        d = Vp9Descriptor.decode(packet[payload_offset(packet):])
        assert d.flexible and d.picture_id_bits == 15 and d.switching_up
        assert temporal_layer(packet) == d.temporal_id
        if d.start:
            frames.append(d)
        assert key == vp9_keyframe(packet[payload_offset(packet):])
    first = frames[0]
    assert not first.inter_predicted and first.temporal_id == 0 and first.reference_diffs == ()
    assert first.scalability == Scalability(1, ((1280, 720),), None)
    assert len(frames) >= 40
    pictures = [f.picture_id for f in frames]
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pictures, pictures[1:]))
    tids = [f.temporal_id for f in frames[1:]]
    assert tids[:8] == [2, 1, 2, 0, 2, 1, 2, 0]
    diffs = {0: (4,), 1: (2,), 2: (1,)}
    assert all(f.reference_diffs == diffs[f.temporal_id] for f in frames[1:])
