"""RFC 4588 retransmission packets."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.rtp.extensions import HeaderExtension
from realtime.rtp.packet import RtpPacket
from realtime.rtp.rtx import (
    decapsulate_rtx,
    encapsulate_rtx,
    is_padding_only,
    original_sequence_number,
    unwrap_rtx,
    wrap_rtx,
)

ORIGINAL = RtpPacket(96, 0xFFFE, 1234, 0x11111111, marker=True, payload=b"frame").with_extensions(
    [HeaderExtension(4, b"1")]
)


def test_encapsulate_layout() -> None:
    rtx = encapsulate_rtx(ORIGINAL, rtx_payload_type=97, rtx_ssrc=0x22222222, rtx_sequence_number=5)
    data = rtx.encode()
    assert data[1] == 0x80 | 97  # marker kept, RTX payload type
    assert data[2:4] == b"\x00\x05"  # RTX sequence number
    assert data[4:8] == (1234).to_bytes(4, "big")  # original timestamp
    assert data[8:12] == b"\x22\x22\x22\x22"  # RTX SSRC
    assert rtx.payload == b"\xff\xfe" + b"frame"  # OSN then the original payload
    assert original_sequence_number(rtx) == 0xFFFE
    assert rtx.header_extensions == ORIGINAL.header_extensions


def test_decapsulate_restores_original_and_drops_padding() -> None:
    rtx = encapsulate_rtx(ORIGINAL, 97, 0x22222222, 5)
    padded = RtpPacket.decode(replace(rtx, padding_size=4).encode())
    assert padded.padding
    assert decapsulate_rtx(padded, 96, 0x11111111) == ORIGINAL


def test_padding_only_probe() -> None:
    probe = RtpPacket(97, 9, 0, 0x22222222, padding_size=255)
    assert is_padding_only(RtpPacket.decode(probe.encode()))
    assert not is_padding_only(encapsulate_rtx(ORIGINAL, 97, 1, 1))
    with pytest.raises(DecodeError) as info:
        decapsulate_rtx(probe, 96, 1)
    assert str(info.value) == "RTX payload has no original sequence number"


@settings(max_examples=100)
@given(st.integers(0, 0xFFFF), st.binary(max_size=32), st.integers(0, 0xFFFF))
def test_round_trip(seq: int, payload: bytes, rtx_seq: int) -> None:
    original = RtpPacket(100, seq, 7, 8, payload=payload)
    rtx = RtpPacket.decode(encapsulate_rtx(original, 101, 9, rtx_seq).encode())
    assert decapsulate_rtx(rtx, 100, 8) == original


def test_wrap_rtx_on_bytes_matches_encapsulate() -> None:
    data = bytearray(ORIGINAL.encode())
    wrap_rtx(data, 97, 0x22222222, 5)
    assert bytes(data) == encapsulate_rtx(ORIGINAL, 97, 0x22222222, 5).encode()


def test_unwrap_rtx_on_bytes_restores_original_and_drops_padding() -> None:
    rtx = encapsulate_rtx(ORIGINAL, 97, 0x22222222, 5)
    padded = replace(rtx, padding_size=4).encode()
    assert bytes(unwrap_rtx(padded, {97: 96}, 0x11111111) or b"") == ORIGINAL.encode()


def test_unwrap_rtx_nothing_to_repair() -> None:
    probe = RtpPacket(97, 9, 0, 0x22222222, padding_size=255).encode()
    assert unwrap_rtx(probe, {97: 96}, 1) is None  # padding-only probe: no OSN
    rtx = encapsulate_rtx(ORIGINAL, 97, 0x22222222, 5).encode()
    assert unwrap_rtx(rtx, {98: 96}, 1) is None  # not an RTX payload type
    with pytest.raises(DecodeError):
        unwrap_rtx(rtx[:14], {97: 96}, 1)  # extension block cut off


@settings(max_examples=100)
@given(st.integers(0, 0xFFFF), st.binary(max_size=32), st.integers(0, 0xFFFF), st.booleans())
def test_byte_level_round_trip(seq: int, payload: bytes, rtx_seq: int, marker: bool) -> None:
    original = RtpPacket(100, seq, 7, 8, marker=marker, payload=payload).encode()
    data = bytearray(original)
    wrap_rtx(data, 101, 9, rtx_seq)
    assert RtpPacket.decode(data) == encapsulate_rtx(RtpPacket.decode(original), 101, 9, rtx_seq)
    assert unwrap_rtx(data, {101: 100}, 8) == original


@given(st.binary(max_size=64))
def test_unwrap_rtx_hostile_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        unwrap_rtx(data, {97: 96}, 1)
    except DecodeError:
        pass
