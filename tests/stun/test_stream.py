"""Tests for STUN/ChannelData stream framing (realtime.stun.stream)."""

from __future__ import annotations

import pytest

from realtime.errors import DecodeError
from realtime.stun.attributes import Software
from realtime.stun.message import StunClass, encode_message
from realtime.stun.stream import StreamFramer, frame_length, split_stream

STUN = encode_message(1, StunClass.REQUEST, bytes(12), [Software("abcde")])  # 20 + 12 bytes
CHANNEL = bytes.fromhex(
    "4001"     # channel 0x4001
    "0005"     # 5 bytes of data
    "6865" "6c6c6f"  # "hello"
    "000000"   # padding to 4: mandatory on TCP (RFC 8656 §11.5)
)


@pytest.mark.parametrize("head, expected", [
    (b"", None), (STUN[:3], None), (STUN[:4], 32), (CHANNEL[:4], 12), (b"\x7f\xff\x00\x00", 4),
])
def test_frame_length(head, expected):
    assert frame_length(head) == expected


def test_frame_length_rejects_other_protocols():
    with pytest.raises(DecodeError) as info:
        frame_length(b"\x80\x00\x00\x00")
    assert str(info.value) == "stream byte 0x80 starts neither STUN nor ChannelData"


def test_framer_byte_by_byte():
    stream = STUN + CHANNEL + STUN
    framer = StreamFramer()
    frames = []
    for i in range(len(stream)):
        frames += framer.feed(stream[i : i + 1])
    assert frames == [STUN, CHANNEL, STUN]
    assert framer.pending == 0


def test_framer_out_of_sync_raises_and_keeps_bytes():
    framer = StreamFramer()
    assert framer.feed(STUN + STUN[:10]) == [STUN]
    assert framer.pending == 10
    with pytest.raises(DecodeError):
        StreamFramer().feed(b"\x80\x60\x00\x01" + bytes(8))


def test_split_stream_stops_at_garbage_and_truncation():
    assert split_stream(STUN + CHANNEL + b"\x99garbage") == ([STUN, CHANNEL], len(STUN) + len(CHANNEL))
    assert split_stream(STUN + STUN[:-1]) == ([STUN], len(STUN))
    assert split_stream(b"") == ([], 0)


def test_frame_limit_bounds_the_buffer():
    """A frame announcing more than the limit is refused before it is buffered."""
    framer = StreamFramer(max_frame_size=64)
    header = bytes.fromhex("0001 0100 2112a442") + bytes(12)  # Binding request, length 256
    with pytest.raises(DecodeError, match="frame of 276 bytes exceeds the 64-byte limit"):
        framer.feed(header)


def test_stun_length_must_be_a_multiple_of_four():
    with pytest.raises(DecodeError, match="STUN message length 5 is not a multiple of 4"):
        frame_length(bytes.fromhex("0001 0005"))
