"""Hypothesis: RTCP values round-trip, hostile datagrams raise only DecodeError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.rtcp import (
    FirEntry,
    FullIntraRequest,
    GenericNack,
    Goodbye,
    NackItem,
    PictureLossIndication,
    RawRtcpPacket,
    ReceiverEstimatedMaxBitrate,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    TransportFeedback,
    decode_compound,
    encode_compound,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
words = st.integers(0, 3).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
blocks = st.builds(ReportBlock, u32, u8, st.integers(-(1 << 23), (1 << 23) - 1), u32, u32, u32, u32)
report_list = st.lists(blocks, max_size=3).map(tuple)
text = st.binary(max_size=20)

rtcp_packets = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32, report_list, words),
    st.builds(ReceiverReport, u32, report_list, words),
    st.builds(SourceDescription, st.lists(st.builds(
        SdesChunk, u32, st.lists(st.builds(SdesItem, st.integers(1, 255), text), max_size=3).map(tuple)
    ), max_size=3).map(tuple)),
    st.builds(Goodbye, st.lists(u32, max_size=4).map(tuple), st.none() | text),
    st.builds(GenericNack, u32, u32, st.lists(st.builds(NackItem, u16, u16), max_size=4).map(tuple)),
    st.builds(PictureLossIndication, u32, u32),
    st.builds(FullIntraRequest, u32, u32, st.lists(st.builds(FirEntry, u32, u8), max_size=3).map(tuple)),
    st.builds(ReceiverEstimatedMaxBitrate, u32, st.integers(0, 63), st.integers(0, 0x3FFFF),
              st.lists(u32, max_size=4).map(tuple)),
    st.builds(TransportFeedback.build, u32, u32, u16, st.integers(-(1 << 23), (1 << 23) - 1), u8,
              st.lists(st.none() | st.integers(-300, 300), max_size=30)),
    st.builds(RawRtcpPacket, st.sampled_from([195, 204, 207, 210]), st.integers(0, 31), words),
)


@settings(max_examples=200)
@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_round_trip(packets) -> None:
    data = encode_compound(packets)
    decoded = decode_compound(data)
    assert decoded == tuple(packets)
    assert encode_compound(decoded) == data


@settings(max_examples=100)
@given(rtcp_packets, st.integers(1, 8))
def test_round_trip_with_padding(packet, words_of_padding: int) -> None:
    from dataclasses import replace

    size = 4 * words_of_padding
    padded = replace(packet, padding=bytes(size - 1) + bytes((size,)))
    assert decode_compound(padded.encode()) == (padded,)


def _rtcp_shaped(data: bytes) -> bytes:
    if not data:
        return data
    return bytes([0x80 | (data[0] & 0x3F)]) + data[1:]


@settings(max_examples=400)
@given(st.binary(max_size=96).map(_rtcp_shaped))
def test_hostile_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        packets = decode_compound(data)
    except DecodeError:
        return
    assert encode_compound(packets) == data


@settings(max_examples=300)
@given(
    st.sampled_from([200, 201, 202, 203, 205, 206]),
    st.integers(0, 31),
    st.binary(max_size=64) | st.binary(max_size=24).map(lambda b: b[:8].ljust(8, b"\0") + b"REMB" + b[8:]),
)
def test_framed_hostile_bodies(packet_type: int, count: int, body: bytes) -> None:
    """Well-framed headers with random bodies reach every body decoder."""
    body += bytes(-len(body) % 4)
    data = bytes([0x80 | count, packet_type]) + (len(body) // 4).to_bytes(2, "big") + body
    try:
        packets = decode_compound(data)
    except DecodeError:
        return
    assert encode_compound(packets) == data
