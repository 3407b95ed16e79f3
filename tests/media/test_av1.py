"""realtime/media/av1.py: the AV1 Dependency Descriptor (AV1 RTP specification, Appendix A),
from descriptors written bit by bit here, and hostile bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from realtime.errors import DecodeError, Truncated
from realtime.media.av1 import (
    DISCARDABLE,
    NOT_PRESENT,
    REQUIRED,
    SWITCH,
    DependencyDescriptor,
    parse_structure,
)


def pack(fields: list[tuple[int, int]]) -> bytes:
    """(value, bits) fields, most significant bit first, zero-padded to whole octets."""
    value, n = 0, 0
    for v, bits in fields:
        assert 0 <= v < 1 << bits or bits == 0
        value, n = value << bits | v, n + bits
    pad = -n % 8
    return (value << pad).to_bytes((n + pad) // 8, "big")


OFFSET = 5
# L1T3: five templates -- key (T0), T0, T1, T2, T2 -- three decode targets (T<=0, <=1, <=2)
LAYER_IDC = [0, 1, 1, 0, 3]  # same layer, next temporal id, next, same, end
DTIS = [(SWITCH, SWITCH, SWITCH), (SWITCH, SWITCH, SWITCH), (NOT_PRESENT, DISCARDABLE, REQUIRED),
        (NOT_PRESENT, NOT_PRESENT, DISCARDABLE), (NOT_PRESENT, NOT_PRESENT, DISCARDABLE)]
FDIFFS = [(), (4,), (2,), (1,), (1,)]


def structure_bits() -> list[tuple[int, int]]:
    bits = [(OFFSET, 6), (3 - 1, 5)]
    bits += [(idc, 2) for idc in LAYER_IDC]
    bits += [(dti, 2) for row in DTIS for dti in row]
    for diffs in FDIFFS:
        bits += [f for d in diffs for f in ((1, 1), (d - 1, 4))] + [(0, 1)]
    bits += [(1, 2)]  # chain_cnt = 1 in ns(4): two bits, below m = 4
    # decode_target_protected_by: ns(1) reads no bits; one chain fdiff per template
    bits += [(0, 4)] * 5
    bits += [(1, 1), (1280 - 1, 16), (720 - 1, 16)]  # render resolution
    return bits


def key_descriptor(frame: int) -> bytes:
    mandatory = [(1, 1), (0, 1), (OFFSET + 0, 6), (frame, 16)]
    return pack(mandatory + [(1, 1), (0, 1), (0, 1), (0, 1), (0, 1)] + structure_bits())


def descriptor(template: int, frame: int, start: bool = True) -> bytes:
    return pack([(int(start), 1), (0, 1), ((OFFSET + template) % 64, 6), (frame, 16)])


def test_structure_and_each_frames_temporal_id() -> None:
    structure = parse_structure(key_descriptor(1000))
    assert structure is not None
    assert structure.temporal_ids == (0, 0, 1, 2, 2) and structure.spatial_ids == (0,) * 5
    assert structure.dtis == tuple(DTIS) and structure.fdiffs == tuple(FDIFFS)
    assert structure.decode_targets == 3 and structure.chains == 1
    assert structure.resolutions == ((1280, 720),) and structure.max_temporal_id == 2
    key = DependencyDescriptor.decode(key_descriptor(1000))
    assert (key.start_of_frame, key.end_of_frame, key.frame_number, key.temporal_id) == (
        True, False, 1000, 0)
    # then L1T3's pattern: T0 T2 T1 T2 ..., mandatory fields only
    tids = [DependencyDescriptor.decode(descriptor(t, 1001 + i), structure).temporal_id
            for i, t in enumerate([3, 2, 4, 1, 3, 2, 4])]
    assert tids == [2, 1, 2, 0, 2, 1, 2]
    frame = DependencyDescriptor.decode(descriptor(2, 7, start=False), structure)
    assert frame.dtis == (NOT_PRESENT, DISCARDABLE, REQUIRED) and not frame.start_of_frame


def test_custom_dtis_override_the_template() -> None:
    structure = parse_structure(key_descriptor(1))
    data = pack([(1, 1), (1, 1), (OFFSET + 3, 6), (9, 16), (0, 1), (0, 1), (1, 1), (0, 1),
                 (0, 1), (0, 2), (0, 2), (REQUIRED, 2)])
    d = DependencyDescriptor.decode(data, structure)
    assert d.temporal_id == 2 and d.dtis == (NOT_PRESENT, NOT_PRESENT, REQUIRED)
    assert parse_structure(data) is None


def test_without_a_structure_or_with_an_unknown_template() -> None:
    with pytest.raises(DecodeError):
        DependencyDescriptor.decode(descriptor(1, 5))
    structure = parse_structure(key_descriptor(1))
    with pytest.raises(DecodeError):
        DependencyDescriptor.decode(descriptor(20, 5), structure)


@pytest.mark.parametrize("cut", [0, 1, 2, 4, 6, 9])
def test_truncated(cut: int) -> None:
    data = key_descriptor(1)[:cut]
    with pytest.raises(Truncated):
        DependencyDescriptor.decode(data)
    if cut < 3:
        with pytest.raises(Truncated):
            parse_structure(data)


@given(st.binary(max_size=40))
def test_hostile_bytes(data: bytes) -> None:
    structure = parse_structure(key_descriptor(1))
    for known in (None, structure):
        try:
            d = DependencyDescriptor.decode(data, known)
        except DecodeError:
            continue
        assert d.temporal_id >= 0 and 0 <= d.frame_number < 1 << 16
    try:
        parse_structure(data)
    except DecodeError:
        pass
