"""Tests for the reader/writer helpers, serial arithmetic and RFC 7983 demux."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError, Truncated
from realtime.serial import Unwrapper, serial_diff, serial_le, serial_lt, seq_lt, tsn_lt
from realtime.wire import Reader, Writer, padding_length


def test_reader_fields() -> None:
    r = Reader(bytes.fromhex("01 0203 040506 0708090a 0b0c0d0e0f101112 ffff"), "test")
    assert r.u8() == 0x01
    assert r.u16() == 0x0203
    assert r.u24() == 0x040506
    assert r.u32() == 0x0708090A
    assert r.u64() == 0x0B0C0D0E0F101112
    assert r.remaining == 2
    assert r.bytes(2) == b"\xff\xff"
    r.expect_end()


@pytest.mark.parametrize(
    "data, read, message",
    [
        (b"", lambda r: r.u8(), "test truncated: need 1 bytes at offset 0, have 0"),
        (b"\x01", lambda r: r.u16(), "test truncated: need 2 bytes at offset 0, have 1"),
        (b"\x01\x02", lambda r: (r.u8(), r.u32()), "test truncated: need 4 bytes at offset 1, have 1"),
        (b"abc", lambda r: r.bytes(4), "test truncated: need 4 bytes at offset 0, have 3"),
        (b"abc", lambda r: r.bytes(-1), "test truncated: need -1 bytes at offset 0, have 3"),
    ],
)
def test_reader_truncation(data, read, message) -> None:
    with pytest.raises(Truncated) as info:
        read(Reader(data, "test"))
    assert str(info.value) == message
    assert isinstance(info.value, DecodeError)


def test_reader_trailing_bytes() -> None:
    r = Reader(b"\x00\x01", "thing")
    r.u8()
    with pytest.raises(DecodeError, match="thing has 1 trailing bytes"):
        r.expect_end()


def test_sub_reader_is_bounded() -> None:
    r = Reader(b"\x00\x01\x02\x03", "outer")
    inner = r.sub(2, "inner")
    assert inner.u16() == 1
    with pytest.raises(Truncated, match="inner truncated"):
        inner.u8()
    assert r.u16() == 0x0203


def test_writer_and_padding() -> None:
    w = Writer().u8(1).u16(2).u24(3).u32(4).bytes(b"x").pad(4)
    assert w.getvalue() == bytes.fromhex("01 0002 000003 00000004 78 00")
    assert len(w) == 12
    assert [padding_length(n) for n in range(6)] == [0, 3, 2, 1, 0, 3]


@given(st.lists(st.integers(0, 0xFFFFFFFF), max_size=20))
def test_writer_reader_round_trip(values) -> None:
    w = Writer()
    for v in values:
        w.u32(v)
    r = Reader(w.getvalue())
    assert [r.u32() for _ in values] == values
    r.expect_end()


def test_serial_arithmetic() -> None:
    assert seq_lt(65535, 0)
    assert not seq_lt(0, 65535)
    assert seq_lt(1, 2) and not seq_lt(2, 2)
    assert serial_le(2, 2, 16)
    assert tsn_lt(0xFFFFFFF0, 5)
    assert serial_diff(2, 65534, 16) == 4
    assert serial_diff(65534, 2, 16) == -4
    # RFC 1982 §3.2: values exactly half the space apart are incomparable: neither is less.
    assert not serial_lt(0, 32768, 16) and not serial_lt(32768, 0, 16)


def test_unwrapper_handles_wrap_and_reorder() -> None:
    u = Unwrapper(16)
    assert [u.unwrap(v) for v in (65534, 65535, 0, 1, 65535, 2)] == [
        65534, 65535, 65536, 65537, 65535, 65538,
    ]
    early = Unwrapper(16)
    assert [early.unwrap(v) for v in (1, 65535)] == [1, 65535]  # before 0: a new cycle below is not negative


@given(st.integers(0, 2**20), st.lists(st.integers(-1000, 1000), max_size=200))
def test_unwrapper_matches_true_counter(start, steps) -> None:
    """Unwrapped values track the true counter while it moves < 2^15 per step."""
    u = Unwrapper(16)
    base = start - (start & 0xFFFF)
    true = start
    assert u.unwrap(true & 0xFFFF) == true - base
    for step in steps:
        true = max(true + step, start)
        assert u.unwrap(true & 0xFFFF) == true - base


@pytest.mark.parametrize(
    "first, second, kind",
    [
        (0x00, 0x01, PacketKind.STUN),
        (0x03, 0x00, PacketKind.STUN),
        (0x10, 0x00, PacketKind.ZRTP),
        (0x16, 0xFE, PacketKind.DTLS),  # handshake record
        (0x17, 0xFE, PacketKind.DTLS),  # application data
        (0x40, 0x00, PacketKind.CHANNEL_DATA),
        (0x4F, 0xFF, PacketKind.CHANNEL_DATA),
        (0x80, 0x60, PacketKind.RTP),  # PT 96
        (0x80, 0xE0, PacketKind.RTP),  # PT 96 with marker
        (0x80, 0xC8, PacketKind.RTCP),  # SR 200
        (0x81, 0xCD, PacketKind.RTCP),  # RTPFB 205
        (0x80, 0xDF, PacketKind.RTCP),  # 223: last RTCP type in the RFC 5761 range
        (0x80, 0xE0 | 0x20, PacketKind.RTP),
        (0x04, 0x00, PacketKind.UNKNOWN),
        (0xC0, 0x00, PacketKind.UNKNOWN),
        (0x50, 0x00, PacketKind.UNKNOWN),
    ],
)
def test_classify(first, second, kind) -> None:
    assert classify(bytes([first, second])) is kind


def test_classify_empty_and_one_byte() -> None:
    assert classify(b"") is PacketKind.UNKNOWN
    assert classify(b"\x80") is PacketKind.RTP
