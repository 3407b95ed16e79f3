"""RTP packet codec and hot-path accessors (RFC 3550 §5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtp.extensions import HeaderExtension
from realtime.rtp.packet import (
    CSRC_COUNT_MASK,
    EXTENSION_BIT,
    MARKER_BIT,
    PADDING_BIT,
    PAYLOAD_TYPE_MASK,
    SEQUENCE_NUMBER_OFFSET,
    SSRC_OFFSET,
    TIMESTAMP_OFFSET,
    VERSION_SHIFT,
    RtpPacket,
    find_extension,
    header_length,
    padding_size,
    payload_offset,
    read_header_fields,
    rewrite_extension_ids,
    rewrite_header,
    sequence_number,
    sequence_number_and_timestamp,
    timestamp,
)

# An annotated packet: three CSRCs, a one-byte extension block, padding.
ANNOTATED = bytes.fromhex(
    "b3"  # 0b10_1_1_0011: V=2, P=1, X=1, CC=3
    "e0"  # M=1, PT=96
    "1234"  # sequence number 0x1234
    "000003e8"  # timestamp 1000
    "deadbeef"  # SSRC
    "00000001"  # CSRC 1
    "00000002"  # CSRC 2
    "00000003"  # CSRC 3
    "bede0001"  # profile 0xBEDE, length 1 word
    "40"  # element id 4, L=0 (1 byte)
    "41"  # data "A"
    "0000"  # two padding octets of the block
    "cafe"  # payload
    "0002"  # padding: one filler octet, count 2
)


def test_annotated_packet_fields() -> None:
    packet = RtpPacket.decode(ANNOTATED)
    assert packet.version == 2
    assert packet.padding and packet.extension and packet.marker
    assert packet.payload_type == 96
    assert packet.sequence_number == 0x1234
    assert packet.timestamp == 1000
    assert packet.ssrc == 0xDEADBEEF
    assert packet.csrc == (1, 2, 3)
    assert packet.extension_profile == 0xBEDE
    assert packet.header_extensions == (HeaderExtension(4, b"A"),)
    assert packet.extension_value(4) == b"A"
    assert packet.extension_value(5) is None
    assert packet.payload == b"\xca\xfe"
    assert packet.padding_size == 2 and packet.padding_data == b""
    assert packet.encode() == ANNOTATED


def test_hot_path_matches_decoder() -> None:
    assert read_header_fields(ANNOTATED) == (96, 0x1234, 1000, 0xDEADBEEF, True)
    assert payload_offset(ANNOTATED) == 12 + 12 + 8
    assert find_extension(ANNOTATED, 4) == b"A"
    assert find_extension(ANNOTATED, 7) is None


def test_named_offsets_and_masks_read_the_annotated_packet() -> None:
    b0, b1 = ANNOTATED[0], ANNOTATED[1]
    assert b0 >> VERSION_SHIFT == 2
    assert b0 & PADDING_BIT and b0 & EXTENSION_BIT and b0 & CSRC_COUNT_MASK == 3
    assert b1 & MARKER_BIT and b1 & PAYLOAD_TYPE_MASK == 96
    assert ANNOTATED[SEQUENCE_NUMBER_OFFSET : SEQUENCE_NUMBER_OFFSET + 2] == b"\x12\x34"
    assert ANNOTATED[TIMESTAMP_OFFSET : TIMESTAMP_OFFSET + 4] == (1000).to_bytes(4, "big")
    assert ANNOTATED[SSRC_OFFSET : SSRC_OFFSET + 4] == b"\xde\xad\xbe\xef"
    assert sequence_number(ANNOTATED) == 0x1234
    assert timestamp(ANNOTATED) == 1000
    assert sequence_number_and_timestamp(ANNOTATED) == (0x1234, 1000)
    assert header_length(ANNOTATED) == payload_offset(ANNOTATED) == 32
    assert padding_size(ANNOTATED) == 2
    plain = RtpPacket(0, 1, 2, 3, payload=b"x").encode()
    assert header_length(plain) == 12 and padding_size(plain) == 0


def test_find_extension_without_x_bit() -> None:
    plain = RtpPacket(0, 1, 2, 3, payload=b"x").encode()
    assert find_extension(plain, 1) is None
    assert payload_offset(plain) == 12


def test_rewrite_header_in_place() -> None:
    buf = bytearray(ANNOTATED)
    rewrite_header(buf, ssrc=0x01020304, sequence_number=7, timestamp=99, payload_type=100)
    packet = RtpPacket.decode(buf)
    assert (packet.ssrc, packet.sequence_number, packet.timestamp) == (0x01020304, 7, 99)
    assert packet.payload_type == 100 and packet.marker  # marker survives the PT rewrite
    assert buf[12:] == ANNOTATED[12:]
    rewrite_header(buf, 5, 6, 7)  # payload type untouched
    assert read_header_fields(buf) == (100, 6, 7, 5, True)


def test_rewrite_extension_ids() -> None:
    buf = bytearray(ANNOTATED)
    rewrite_extension_ids(buf, {4: 9})
    assert find_extension(buf, 9) == b"A" and find_extension(buf, 4) is None
    with pytest.raises(LocalProtocolError):
        rewrite_extension_ids(buf, {9: 15})
    two = RtpPacket(96, 1, 2, 3).with_extensions([HeaderExtension(200, b"xy")], two_byte=True)
    buf = bytearray(two.encode())
    rewrite_extension_ids(buf, {200: 17})
    assert find_extension(buf, 17) == b"xy"


def test_non_zero_padding_kept() -> None:
    data = RtpPacket(96, 1, 2, 3, payload=b"p", padding_size=4, padding_data=b"abc").encode()
    assert data[-4:] == b"abc\x04"
    assert RtpPacket.decode(data).padding_data == b"abc"


@pytest.mark.parametrize(
    ("hexdata", "message"),
    [
        ("8000", "RTP header truncated: need 12 bytes, have 2"),
        ("c000000000000000000000", "RTP header truncated: need 12 bytes, have 11"),
        ("c0000000000000000000000000", "RTP version must be 2, got 3"),
        ("81000000000000000000000000", "RTP CSRC list truncated: 1 CSRCs need 16 bytes, have 13"),
        ("90000000000000000000000000", "RTP header extension truncated: no profile and length"),
        ("900000000000000000000000bede0001", "RTP header extension overruns the packet: 1 words"),
        ("a0000000000000000000000000", "RTP padding count is zero"),
        ("a00000000000000000000000", "RTP padding bit set but nothing follows the header"),
        ("a0000000000000000000000005", "RTP padding count 5 exceeds the 1 bytes after the header"),
    ],
)
def test_malformed(hexdata: str, message: str) -> None:
    with pytest.raises(DecodeError) as info:
        RtpPacket.decode(bytes.fromhex(hexdata))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("hexdata", "message"),
    [
        ("900000000000000000000000bede000133000000", "one-byte header extension 3 overruns the block"),
        ("900000000000000000000000100000010a050000", "two-byte header extension 10 overruns the block"),
        ("900000000000000000000000100000010000000a", "two-byte header extension 10 has no length"),
    ],
)
def test_malformed_extension_block(hexdata: str, message: str) -> None:
    data = bytes.fromhex(hexdata)
    packet = RtpPacket.decode(data)  # the block itself is framed correctly
    for parse in (lambda: packet.header_extensions, lambda: find_extension(data, 99)):
        with pytest.raises(DecodeError) as info:
            parse()
        assert str(info.value) == message


def test_encode_rejects_impossible() -> None:
    with pytest.raises(LocalProtocolError):
        RtpPacket(0, 0, 0, 0, csrc=tuple(range(16))).encode()
    with pytest.raises(LocalProtocolError):
        RtpPacket(0, 0, 0, 0, extension_profile=0xBEDE, extension_data=b"abc").encode()
    with pytest.raises(LocalProtocolError):
        RtpPacket(0, 0, 0, 0, padding_size=3, padding_data=b"a").encode()


def test_extension_removed_when_empty() -> None:
    packet = RtpPacket.decode(ANNOTATED).with_extensions([])
    assert not packet.extension and RtpPacket.decode(packet.encode()) == packet


u32 = st.integers(0, 0xFFFFFFFF)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=u32,
    ssrc=u32,
    marker=st.booleans(),
    csrc=st.lists(u32, max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension_data=st.integers(0, 6).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    payload=st.binary(max_size=64),
    padding_size=st.integers(0, 255),
).map(lambda p: p if p.extension_profile is not None else RtpPacket(
    p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.marker, p.csrc,
    payload=p.payload, padding_size=p.padding_size))


@settings(max_examples=200)
@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = packet.encode()
    assert RtpPacket.decode(data) == packet
    assert RtpPacket.decode(data).encode() == data
    assert read_header_fields(data) == (
        packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc, packet.marker
    )


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_hostile_bytes_raise_only_decode_error(data: bytes) -> None:
    data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:] if data else data
    try:
        packet = RtpPacket.decode(data)
    except DecodeError:
        return
    assert packet.encode() == data
    for action in (lambda: packet.header_extensions, lambda: find_extension(data, 1),
                   lambda: rewrite_extension_ids(bytearray(data), {1: 2})):
        try:
            action()
        except DecodeError:
            pass
