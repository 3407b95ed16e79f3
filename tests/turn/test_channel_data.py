"""ChannelData codec: annotated bytes, malformed table, Hypothesis round trips and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.errors import DecodeError
from realtime.turn.channel_data import ChannelData, frame_channel_data, split_channel_data

ANNOTATED = bytes([
    0x40, 0x01,              # channel number 0x4001
    0x00, 0x05,              # length 5
    0x68, 0x65, 0x6C, 0x6C, 0x6F,  # "hello"
    0x00, 0x00, 0x00,        # padding to 4 (TCP/TLS)
])


def test_annotated_bytes():
    message = ChannelData.decode(ANNOTATED)
    assert message == ChannelData(0x4001, b"hello", b"\0\0\0")
    assert message.encode() == ANNOTATED
    assert frame_channel_data(0x4001, b"hello", stream=True) == ANNOTATED
    assert frame_channel_data(0x4001, b"hello") == ANNOTATED[:9]


@pytest.mark.parametrize("data, message", [
    (b"", "ChannelData header truncated: need 4 bytes, have 0"),
    (b"\x40\x00\x00", "ChannelData header truncated: need 4 bytes, have 3"),
    (b"\x40\x00\x00\x05abc", "ChannelData length 5 exceeds the 3 bytes after the header"),
    (b"\x3f\xff\x00\x00", "ChannelData channel number 0x3fff is outside 0x4000-0x7fff"),
    (b"\x80\x00\x00\x00", "ChannelData channel number 0x8000 is outside 0x4000-0x7fff"),
])
def test_malformed(data, message):
    with pytest.raises(DecodeError) as raised:
        ChannelData.decode(data)
    assert str(raised.value) == message


@given(st.integers(0x4000, 0x7FFF), st.binary(max_size=300), st.booleans())
def test_round_trip(channel, payload, stream):
    data = frame_channel_data(channel, payload, stream)
    assert len(data) % 4 == 0 or not stream
    assert split_channel_data(data) == (channel, payload)
    message = ChannelData.decode(data)
    assert message.encode() == data and ChannelData.decode(message.encode()) == message


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_only_decode_errors(data):
    try:
        ChannelData.decode(data)
    except DecodeError:
        pass
