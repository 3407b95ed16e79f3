"""The adapters' protobuf ``Packet``: annotated bytes, malformed input, Hypothesis round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.adapters.packet import Packet, decode_varint, encode_varint
from realtime.errors import DecodeError

EXAMPLE = bytes([
    0x08, 0x96, 0x01,          # key: field 1 (sequenceNumber), VARINT; 150 = 0x96 0x01
    0x10, 0xC0, 0x07,          # key: field 2 (timestamp), VARINT; 960 = 0xc0 0x07
    0x2A, 0x04,                # key: field 5 (payload), LEN; length 4
    0x01, 0x00, 0xFF, 0xFF,    # payload: one stereo s16le sample frame (L=1, R=-1)
])


def test_annotated_example_decodes_and_encodes_back() -> None:
    packet = Packet.decode(EXAMPLE)
    assert packet == Packet(150, 960, b"\x01\x00\xff\xff")
    assert packet.encode() == EXAMPLE


def test_default_fields_are_left_off_the_wire() -> None:
    assert Packet().encode() == b""
    assert Packet(payload=b"x").encode() == b"\x2a\x01x"
    assert Packet.decode(b"") == Packet()


def test_fields_in_any_order_last_wins_unknown_skipped() -> None:
    data = bytes([
        0x2A, 0x01, 0x41,                      # payload "A"
        0x18, 0x05,                            # field 3, VARINT: unknown, skipped
        0x21, *b"12345678",                    # field 4, I64: unknown, skipped
        0x35, *b"1234",                        # field 6, I32: unknown, skipped
        0x3A, 0x02, 0x00, 0x00,                # field 7, LEN: unknown, skipped
        0x08, 0x02, 0x08, 0x03,                # sequenceNumber twice: 3 wins
        0x2A, 0x01, 0x42,                      # payload "B" wins
    ])
    assert Packet.decode(data) == Packet(3, 0, b"B")


def test_a_longer_varint_keeps_its_low_32_bits() -> None:
    # -1 as an int32 is sent as a 10-octet varint; as uint32 it reads 0xffffffff
    data = b"\x08" + b"\xff" * 9 + b"\x01"
    assert Packet.decode(data).sequence_number == 0xFFFFFFFF


@pytest.mark.parametrize("data, message", [
    (b"\x08", "varint at offset 1 runs past the end"),
    (b"\x08\x80", "varint at offset 1 runs past the end"),
    (b"\x08" + b"\x80" * 10 + b"\x01", "varint at offset 1 is longer than 10 octets"),
    (b"\x2a\x05abc", "field 5 needs 5 octets, 3 remain"),
    (b"\x0a\x01x", "field 1 has wire type 2"),
    (b"\x15abcd", "field 2 has wire type 5"),
    (b"\x28\x01", "field 5 has wire type 0"),
    (b"\x1b", "wire type 3 is not supported"),
    (b"\x1c", "wire type 4 is not supported"),
    (b"\x1e", "wire type 6 is not supported"),
    (b"\x00\x01", "field number 0 is not allowed"),
    (b"\x21abc", "field 4 needs 8 octets, 3 remain"),
    (b"\x25ab", "field 4 needs 4 octets, 2 remain"),
])
def test_malformed_input_is_a_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as caught:
        Packet.decode(data)
    assert str(caught.value) == message


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=4096))
def test_round_trip(sequence_number: int, timestamp: int, payload: bytes) -> None:
    packet = Packet(sequence_number, timestamp, payload)
    assert Packet.decode(packet.encode()) == packet


@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded, 0) == (value, len(encoded))
    assert len(encoded) <= 10


@given(st.binary(max_size=256))
def test_hostile_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        packet = Packet.decode(data)
    except DecodeError:
        return
    assert Packet.decode(packet.encode()) == packet
