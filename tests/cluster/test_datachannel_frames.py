"""DataChannel messages between nodes: payload codec, fragments, order and gaps (pure)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.datachannel_frames import (
    MAX_MESSAGE, SEQUENCE_SPACE, TARGET_DATAGRAM, DataChannelFragment, FeedReceiver, FeedSender,
    FRAME_OVERHEAD,
)
from realtime.errors import DecodeError

SESSION = "0123456789abcdef0123456789abcdef"


def test_a_reply_carries_its_flag() -> None:
    reply = DataChannelFragment("ab", "chat", 1, 0, 1, True, b"", reply=True)
    assert reply.encode()[0] == 0x03          # binary | reply
    assert DataChannelFragment.decode(reply.encode()) == reply


def test_annotated_bytes() -> None:
    fragment = DataChannelFragment("ab", "chat", 7, 0, 1, False, b"hi")
    assert fragment.encode() == bytes([
        0x00,                    # flags: string (bit 0 clear)
        0, 0, 0, 7,              # sequence 7
        0, 0,                    # fragment index 0
        0, 1,                    # of 1
        2, *b"ab",               # publisher session id, length 2
        0, 4, *b"chat",          # channel name, length 4
        *b"hi",                  # the message
    ])
    assert DataChannelFragment.decode(fragment.encode()) == fragment


@pytest.mark.parametrize("data, message", [
    (b"\x00" * 8, "too short"),
    (b"\x08" + struct.pack("!IHHB", 0, 0, 1, 1) + b"s\x00\x01n", "flags 0x08 unknown"),
    (b"\x00" + struct.pack("!IHHB", 0, 1, 1, 1) + b"s\x00\x01n", "fragment 1/1 out of range"),
    (b"\x00" + struct.pack("!IHHB", 0, 0, 0, 1) + b"s\x00\x01n", "fragment 0/0 out of range"),
    (b"\x00" + struct.pack("!IHHB", 0, 0, 1, 0) + b"\x00\x01n", "session id truncated"),
    (b"\x00" + struct.pack("!IHHB", 0, 0, 1, 5) + b"s\x00\x01n", "session id truncated"),
    (b"\x00" + struct.pack("!IHHB", 0, 0, 1, 1) + b"s\x00\x05n", "name truncated"),
    (b"\x00" + struct.pack("!IHHB", 0, 0, 1, 1) + b"s\x00\x00", "name truncated"),
    (b"\x00" + struct.pack("!IHHB", 0, 0, 1, 1) + b"\xff\x00\x01n", "not UTF-8"),
])
def test_malformed_payloads(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        DataChannelFragment.decode(data)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_hostile_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        fragment = DataChannelFragment.decode(data)
    except DecodeError:
        return
    assert DataChannelFragment.decode(fragment.encode()) == fragment


def relay(sender: FeedSender, receiver: FeedReceiver, data, keep=lambda i, frame: True):
    """Send one message through the pair; return the last message the receiver delivers (or
    None)."""
    for i, payload in enumerate(sender.fragments(data)):
        if keep(i, payload):
            receiver.receive(DataChannelFragment.decode(payload))
    ready = receiver.take()
    return ready[-1] if ready else None


@pytest.mark.parametrize("message", ["", b"", "héllo", b"\x00\xff" * 10,
                                     b"x" * 65536, "y" * 5000, b"z" * MAX_MESSAGE])
def test_types_and_sizes_survive(message) -> None:
    sender, receiver = FeedSender(SESSION, "chat"), FeedReceiver()
    assert relay(sender, receiver, message) == message
    assert type(relay(sender, receiver, message)) is type(message)
    assert receiver.counters["lost"] == 0 and receiver.counters["messages"] == 2


def test_fragments_keep_each_datagram_within_the_target() -> None:
    sender = FeedSender(SESSION, "chat")
    payloads = sender.fragments(b"q" * 65536)
    assert len(payloads) == -(-65536 // sender.piece) > 1
    assert max(len(p) for p in payloads) + FRAME_OVERHEAD <= TARGET_DATAGRAM
    assert {DataChannelFragment.decode(p).sequence for p in payloads} == {0}   # one message


def test_a_message_over_the_limit_is_dropped_and_counted() -> None:
    sender = FeedSender(SESSION, "chat")
    assert sender.fragments(b"x" * (MAX_MESSAGE + 1)) == []
    assert sender.dropped["too-large"] == 1 and sender.sequence == 0


def test_an_unreliable_feed_counts_gaps_and_keeps_order_without_holding() -> None:
    sender, receiver = FeedSender(SESSION, "chat", unreliable=True), FeedReceiver()
    payloads = [sender.fragments(str(i))[0] for i in range(10)]
    got = []
    for i in (0, 1, 4, 2, 5, 9, 3, 8):          # 6, 7 lost; 2, 3, 8 arrive late
        receiver.receive(DataChannelFragment.decode(payloads[i]))
        got += receiver.take()
        assert receiver.nack_at is None          # never asks
    assert got == ["0", "1", "4", "5", "9"]      # in order, with holes
    assert receiver.counters["lost"] == 5 and receiver.counters["late"] == 3  # 2 3 6 7 8 lost


def test_a_missing_fragment_loses_that_message_only_when_unreliable() -> None:
    sender, receiver = FeedSender(SESSION, "chat", unreliable=True), FeedReceiver()
    assert relay(sender, receiver, "first") == "first"
    assert relay(sender, receiver, b"a" * 5000, keep=lambda i, _: i != 2) is None
    assert relay(sender, receiver, b"b" * 5000) == b"b" * 5000
    assert receiver.counters["incomplete"] == 1 and receiver.counters["lost"] == 1


def test_sequence_numbers_wrap() -> None:
    sender, receiver = FeedSender(SESSION, "chat"), FeedReceiver()
    sender.sequence = SEQUENCE_SPACE - 2
    assert [relay(sender, receiver, str(i)) for i in range(4)] == ["0", "1", "2", "3"]
    assert receiver.counters["lost"] == 0 and receiver.counters["late"] == 0


def test_fragments_that_disagree_on_their_count_are_dropped() -> None:
    receiver = FeedReceiver()
    parts = [DataChannelFragment(SESSION, "chat", 0, 0, 2, True, b"a"),
             DataChannelFragment(SESSION, "chat", 0, 1, 3, True, b"b"),
             DataChannelFragment(SESSION, "chat", 0, 2, 3, True, b"c")]
    assert [receiver.receive(p) for p in parts] == [True, False, False]
    assert receiver.counters["mismatched"] == 2 and receiver.counters["messages"] == 0
    assert not receiver.take()
