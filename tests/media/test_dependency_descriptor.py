"""The Dependency Descriptor reader (AV1 RTP spec, Appendix A) against descriptors written
bit by bit here from the spec's syntax tables, and against hostile bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.media.dependency_descriptor import (
    DISCARDABLE, NOT_PRESENT, REQUIRED, SWITCH, DescriptorReader, _Bits, parse)
from realtime.rtp.extensions import HeaderExtension, encode_extensions
from realtime.rtp.packet import RtpPacket
from realtime.sfu.dependency import DescriptorFields


class Writer:
    """f(n) and ns(n) written most significant bit first, as §A.8.2 reads them."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def f(self, n: int, value: int) -> "Writer":
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ns(self, n: int, value: int) -> "Writer":
        w = n.bit_length()
        m = (1 << w) - n
        if value < m:
            return self.f(w - 1, value)
        extra = value + m
        return self.f(w - 1, extra >> 1).f(1, extra & 1)

    def octets(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)  # zero_padding
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


OFFSET = 10
# L1T3: three decode targets (T0, T<=1, T<=2), one chain protecting all three
TEMPLATES = [  # (temporal id, dtis, fdiffs, chain fdiff)
    (0, (SWITCH, SWITCH, SWITCH), (), 0),                         # the key frame
    (0, (SWITCH, SWITCH, SWITCH), (4,), 4),                       # T0 -> the T0 before
    (1, (NOT_PRESENT, DISCARDABLE, REQUIRED), (2,), 2),           # T1 -> T0
    (2, (NOT_PRESENT, NOT_PRESENT, DISCARDABLE), (1,), 1),        # T2 -> the frame before
]


def key_frame_descriptor(frame_number: int = 1000) -> bytes:
    w = Writer().f(1, 1).f(1, 0).f(6, OFFSET).f(16, frame_number)   # mandatory: S, E, id, n
    w.f(1, 1).f(1, 0).f(1, 0).f(1, 0).f(1, 0)  # structure present, no active mask, no custom
    w.f(6, OFFSET).f(5, 3 - 1)                  # template_id_offset, dt_cnt_minus_one
    for i, (tid, *_rest) in enumerate(TEMPLATES):                  # template_layers()
        last = i == len(TEMPLATES) - 1
        w.f(2, 3 if last else (1 if TEMPLATES[i + 1][0] > tid else 0))
    for _, dtis, _, _ in TEMPLATES:                                 # template_dtis()
        for dti in dtis:
            w.f(2, dti)
    for _, _, fdiffs, _ in TEMPLATES:                               # template_fdiffs()
        for diff in fdiffs:
            w.f(1, 1).f(4, diff - 1)
        w.f(1, 0)
    w.ns(3 + 1, 1)                                                  # chain_cnt = 1
    for _ in range(3):
        w.ns(1, 0)                                                  # protected by chain 0
    for *_, chain in TEMPLATES:
        w.f(4, chain)
    w.f(1, 1).f(16, 640 - 1).f(16, 360 - 1)                         # render_resolutions()
    return w.octets()


def frame_descriptor(index: int, frame_number: int) -> bytes:
    return Writer().f(1, 1).f(1, 1).f(6, (index + OFFSET) % 64).f(16, frame_number).octets()


def test_ns_reads_every_value_the_spec_writes() -> None:
    for n in range(1, 34):
        for value in range(n):
            assert _Bits(Writer().ns(n, value).octets()).ns(n) == value, (n, value)


def test_a_key_frame_attaches_the_structure_and_later_frames_use_it() -> None:
    reader = DescriptorReader()
    key = reader.read(key_frame_descriptor())
    assert key is not None and key.structure is not None
    structure = key.structure
    assert (key.start_of_frame, key.end_of_frame, key.frame_number) == (True, False, 1000)
    assert structure.template_id_offset == OFFSET and structure.decode_target_count == 3
    assert [(t.spatial_id, t.temporal_id) for t in structure.templates] == [
        (0, 0), (0, 0), (0, 1), (0, 2)]
    assert [t.dtis for t in structure.templates] == [d for _, d, _, _ in TEMPLATES]
    assert [t.fdiffs for t in structure.templates] == [(), (4,), (2,), (1,)]
    assert structure.chain_count == 1 and structure.protected_by == (0, 0, 0)
    assert [t.chain_fdiffs for t in structure.templates] == [(0,), (4,), (2,), (1,)]
    assert structure.decode_target_layers == ((0, 0), (0, 1), (0, 2))
    assert structure.resolutions == ((640, 360),)
    assert key.active_decode_targets == 0b111 and key.temporal_id == 0
    # the next frames: T2, T1, T2, T0 by template only (3 octets each)
    tids = [reader.read(frame_descriptor(i, 1001 + n)) for n, i in enumerate([3, 2, 3, 1])]
    assert [(d.temporal_id, d.dtis, d.fdiffs) for d in tids if d] == [
        (2, TEMPLATES[3][1], (1,)), (1, TEMPLATES[2][1], (2,)),
        (2, TEMPLATES[3][1], (1,)), (0, TEMPLATES[1][1], (4,))]
    assert tids[-1] is not None and tids[-1].frame_number == 1004


def test_custom_fields_and_the_active_decode_targets() -> None:
    structure = parse(key_frame_descriptor(), None).structure
    w = Writer().f(1, 1).f(1, 1).f(6, (2 + OFFSET) % 64).f(16, 7)
    w.f(1, 0).f(1, 1).f(1, 1).f(1, 1).f(1, 1)   # active mask, custom dtis, fdiffs, chains
    w.f(3, 0b011)                                # T2 switched off
    for dti in (NOT_PRESENT, SWITCH, REQUIRED):
        w.f(2, dti)
    w.f(2, 1).f(4, 2 - 1).f(2, 3).f(12, 300 - 1).f(2, 0)  # fdiffs 2 and 300
    w.f(8, 6)                                             # the chain's difference
    descriptor = parse(w.octets(), structure)
    assert descriptor.active_decode_targets == 0b011 and descriptor.structure is None
    assert descriptor.temporal_id == 1
    assert descriptor.dtis == (NOT_PRESENT, SWITCH, REQUIRED)
    assert descriptor.fdiffs == (2, 300) and descriptor.chain_fdiffs == (6,)


def test_without_a_structure_only_the_mandatory_fields_are_known() -> None:
    descriptor = DescriptorReader().read(frame_descriptor(2, 5))
    assert descriptor is not None and descriptor.temporal_id is None
    assert (descriptor.frame_number, descriptor.end_of_frame) == (5, True)


def test_hostile_descriptors_are_counted_not_raised() -> None:
    reader = DescriptorReader()
    key = key_frame_descriptor()
    for cut in range(len(key)):
        reader.read(key[:cut])
    assert reader.malformed >= 3  # at least the three shorter than the mandatory octets
    assert reader.read(key) is not None
    assert reader.read(frame_descriptor(9, 1)) is None  # template index past the structure
    with pytest.raises(DecodeError):
        parse(frame_descriptor(9, 1), reader.structure)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_decode_error(data: bytes) -> None:
    reader = DescriptorReader()
    reader.read(key_frame_descriptor())
    for structure in (None, reader.structure):
        try:
            parse(data, structure)
        except DecodeError:
            pass


def rtp(ssrc: int, seq: int, descriptor: bytes | None, ext_id: int = 12) -> bytes:
    """An RTP packet with the descriptor as element ``ext_id`` (the two-byte form when it
    is over 16 octets, as a key frame's is) and a mid element beside it."""
    elements = [HeaderExtension(4, b"0")]
    if descriptor is not None:
        elements.append(HeaderExtension(ext_id, descriptor))
    profile, data = encode_extensions(elements)
    return RtpPacket(payload_type=45, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc,
                     extension_profile=profile, extension_data=data,
                     payload=b"\x00" * 20).encode()


def test_the_track_reader_keeps_a_structure_per_stream_and_answers_the_filters() -> None:
    """What realtime/sfu/temporal.py's filter asks per packet, read once per packet."""
    fields = DescriptorFields(12)
    key = rtp(1111, 1, key_frame_descriptor())
    assert fields.observe(key) == 0
    assert fields(key, 12) == (0, True, 1000, True)    # answered from the observation
    # T2, T1, T0 frames of the same stream; the T1 frame is no switch point for DT1 here
    expected = {3: (2, False), 2: (1, False), 1: (0, True)}
    for n, index in enumerate([3, 2, 1]):
        packet = rtp(1111, 2 + n, frame_descriptor(index, 1001 + n))
        assert fields.observe(packet) == expected[index][0]
        tid, switch, frame_number, start = fields(packet, 12)
        assert (tid, switch, frame_number, start) == (*expected[index], 1001 + n, True)
        assert fields(bytearray(packet), 12) == (tid, switch, frame_number, start)  # a copy
    # another stream (a simulcast layer) has no structure yet: nothing known, forwarded whole
    other = rtp(2222, 1, frame_descriptor(2, 1))
    assert fields.observe(other) == -1 and fields(other, 12) is None
    assert fields.observe(rtp(1111, 9, None)) == -1           # no descriptor in it
    assert fields.observe(rtp(1111, 10, b"\x80")) == -1       # malformed: counted
    assert fields.readers[1111].malformed == 1


def test_a_temporal_filter_thins_an_av1_stream_by_its_descriptor() -> None:
    """AV1 carries no TID of its own: the filter drops T2 frames by the descriptor, renumbers
    the rest, and moves back up only at a switch point (realtime/sfu/temporal.py)."""
    from realtime.sfu.temporal import TemporalFilter

    fields = DescriptorFields(12, frozenset({45}))
    keep = TemporalFilter(payload_types={45}, fields=fields)
    keep.set_target(1)
    # frames in the L1T3 order T0 T2 T1 T2 T0 ..., the first a key frame with the structure
    order = [0, 3, 2, 3, 1, 3, 2, 3, 1]  # template indexes: 0 key, 1 T0, 2 T1, 3 T2
    sent = []
    for n, index in enumerate(order):
        descriptor = key_frame_descriptor(1000) if n == 0 else frame_descriptor(index, 1000 + n)
        packet = rtp(1111, 500 + n, descriptor)
        fields.observe(packet)
        out = keep.accept(packet, 12, 500 + n)
        if out >= 0:
            sent.append((n, out))
    assert sent == [(0, 500), (2, 501), (4, 502), (6, 503), (8, 504)]  # T2 gone, no holes
    assert keep.dropped_pictures == 4
    keep.set_target(0xFF)
    # up again: not at a T2 frame (a T2 frame refers to the T1 or T0 before it, forwarded,
    # but its own indication for DT2 is D, not S), at the next T0 (S for every target)
    t2 = rtp(1111, 509, frame_descriptor(3, 1009))
    fields.observe(t2)
    assert keep.accept(t2, 12, 509) == -1
    t0 = rtp(1111, 510, frame_descriptor(1, 1010))
    fields.observe(t0)
    assert keep.accept(t0, 12, 510) == 510 - 5 and keep.target == 0xFF
    # a packet without the descriptor, no fallback: forwarded unjudged
    bare = rtp(1111, 511, None)
    fields.observe(bare)
    assert keep.accept(bare, 12, 511) == 511 - 5
