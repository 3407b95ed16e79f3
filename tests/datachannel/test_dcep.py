"""DCEP codec: annotated OPEN/ACK, channel types, malformed table, Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.datachannel.dcep import (
    ChannelType, DataChannelAck, DataChannelOpen, decode_dcep,
)
from realtime.errors import DecodeError, LocalProtocolError

OPEN = bytes.fromhex(
    "03"        # message type: DATA_CHANNEL_OPEN
    "81"        # channel type: PARTIAL_RELIABLE_REXMIT_UNORDERED
    "0100"      # priority 256
    "00000000"  # reliability parameter: 0 retransmissions
    "0004"      # label length 4
    "0003"      # protocol length 3
    "63686174"  # label "chat"
    "6a736f"    # protocol "jso"
)


def test_annotated_open():
    message = decode_dcep(OPEN)
    assert message == DataChannelOpen(0x81, 256, 0, "chat", "jso")
    assert (message.ordered, message.max_retransmits, message.max_packet_life_time) == (
        False, 0, None)
    assert message.encode() == OPEN


def test_ack_is_one_byte():
    assert decode_dcep(b"\x02") == DataChannelAck()
    assert DataChannelAck().encode() == b"\x02"


@pytest.mark.parametrize("options, channel_type, reliability", [
    ({}, ChannelType.RELIABLE, 0),
    ({"ordered": False}, ChannelType.RELIABLE_UNORDERED, 0),
    ({"max_retransmits": 3}, ChannelType.PARTIAL_RELIABLE_REXMIT, 3),
    ({"max_packet_life_time": 150, "ordered": False},
     ChannelType.PARTIAL_RELIABLE_TIMED_UNORDERED, 150),
])
def test_for_channel(options, channel_type, reliability):
    message = DataChannelOpen.for_channel("x", **options)
    assert (message.channel_type, message.reliability) == (channel_type, reliability)
    assert message.max_packet_life_time == options.get("max_packet_life_time")
    assert message.max_retransmits == options.get("max_retransmits")


def test_both_limits_are_refused():
    with pytest.raises(LocalProtocolError):
        DataChannelOpen.for_channel("x", max_retransmits=1, max_packet_life_time=1)


MALFORMED = [
    (b"", "empty DCEP message"),
    (b"\x04", "unknown DCEP message type 0x04"),
    (b"\x02\x00", "DATA_CHANNEL_ACK must be the single byte 0x02, got 0200"),
    (bytes.fromhex("0300000000000000"),
     "DATA_CHANNEL_OPEN truncated: need 2 bytes at offset 8, have 0"),
    (bytes.fromhex("030000000000000000020000" "61"),
     "DATA_CHANNEL_OPEN truncated: need 2 bytes at offset 12, have 1"),
    (bytes.fromhex("030000000000000000000000" "00"), "DATA_CHANNEL_OPEN has 1 trailing bytes"),
    (bytes.fromhex("030300000000000000000000"),
     "DATA_CHANNEL_OPEN has unknown channel type 0x03"),
    (bytes.fromhex("030000000000000000010000" "ff"),
     "DATA_CHANNEL_OPEN label or protocol is not UTF-8"),
]


@pytest.mark.parametrize("data, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed(data, message):
    with pytest.raises(DecodeError) as info:
        decode_dcep(data)
    assert str(info.value) == message


opens = st.builds(
    DataChannelOpen, st.sampled_from(list(ChannelType)), st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF), st.text(max_size=20), st.text(max_size=20))


@settings(max_examples=200)
@given(opens)
def test_round_trip(message):
    assert decode_dcep(message.encode()) == message


@settings(max_examples=300)
@given(st.binary(max_size=60))
def test_hostile_bytes_raise_only_decode_error(data):
    try:
        decode_dcep(data)
    except DecodeError:
        pass
