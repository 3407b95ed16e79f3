"""
The STUN/ChannelData stream framer (RFC 8489 §6.2.2, RFC 8656 §12.5): pure, no sockets.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError
from realtime.net.stream_framing import FramingError, StreamFramer

# A Binding request with no attributes (RFC 8489 §5).
BINDING = bytes.fromhex(
    "0001"  # type: Binding request
    "0000"  # message length: 0 bytes of attributes
    "2112a442"  # magic cookie
    "000102030405060708090a0b"  # transaction id
)

# A Binding request carrying one SOFTWARE attribute of 4 bytes.
BINDING_SOFTWARE = bytes.fromhex(
    "0001"  # type: Binding request
    "0008"  # message length: one 8-byte attribute
    "2112a442"  # magic cookie
    "0c0b0a090807060504030201"  # transaction id
    "8022"  # attribute type: SOFTWARE
    "0004"  # attribute length 4
    "74657374"  # "test"
)

# ChannelData on channel 0x4000 with 5 bytes of data, padded to 8 on a stream.
CHANNEL_DATA_PADDED = bytes.fromhex(
    "4000"  # channel number 0x4000
    "0005"  # length: 5 bytes of application data
    "68656c6c6f"  # "hello"
    "000000"  # 3 bytes of stream padding (RFC 8656 §12.5)
)
CHANNEL_DATA = CHANNEL_DATA_PADDED[:9]

# ChannelData of exactly 4 bytes: no padding.
CHANNEL_DATA_ALIGNED = bytes.fromhex("4001" "0004" "deadbeef")


def test_one_message_in_one_chunk() -> None:
    assert StreamFramer().feed(BINDING) == [BINDING]


def test_coalesced_messages() -> None:
    stream = BINDING + CHANNEL_DATA_PADDED + BINDING_SOFTWARE + CHANNEL_DATA_ALIGNED
    assert StreamFramer().feed(stream) == [
        BINDING, CHANNEL_DATA, BINDING_SOFTWARE, CHANNEL_DATA_ALIGNED,
    ]


@pytest.mark.parametrize("split", range(1, len(BINDING_SOFTWARE)))
def test_message_split_anywhere(split: int) -> None:
    framer = StreamFramer()
    assert framer.feed(BINDING_SOFTWARE[:split]) == []
    assert framer.buffered == split
    assert framer.feed(BINDING_SOFTWARE[split:] + BINDING[:3]) == [BINDING_SOFTWARE]
    assert framer.buffered == 3


def test_padding_split_across_chunks() -> None:
    framer = StreamFramer()
    # The data is complete but its padding is not: nothing is delivered yet,
    # otherwise the padding would be read as the start of the next frame.
    assert framer.feed(CHANNEL_DATA_PADDED[:10]) == []
    assert framer.feed(CHANNEL_DATA_PADDED[10:] + BINDING) == [CHANNEL_DATA, BINDING]
    assert framer.buffered == 0


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    out = []
    for byte in BINDING + CHANNEL_DATA_PADDED:
        out += framer.feed(bytes([byte]))
    assert out == [BINDING, CHANNEL_DATA]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00\x00", "stream byte 0x80 starts neither STUN nor ChannelData"),
        # reserved channel numbers 0x5000-0x7FFF (RFC 8656 §12)
        (b"\x50\x00\x00\x04", "stream byte 0x50 starts neither STUN nor ChannelData"),
        # HTTP on the TURN port: "GE" reads as channel 0x4745, "T " as length 21536
        (b"GET / HTTP/1.1\r\n", "frame of 21540 bytes exceeds the 16384-byte limit"),
        # a TLS ClientHello on the plain TCP port: 0x16 looks like STUN, its
        # "length" bytes 0x0102 do not
        (b"\x16\x03\x01\x02\x00", "STUN message length 258 is not a multiple of 4"),
        (b"\x00\x01\x00\x05", "STUN message length 5 is not a multiple of 4"),
        (b"\x00\x01\xff\xfc", "frame of 65552 bytes exceeds the 16384-byte limit"),
        (b"\x40\x00\xff\xff", "frame of 65540 bytes exceeds the 16384-byte limit"),
        (BINDING + b"\xff\x00\x00\x00", "stream byte 0xff starts neither STUN nor ChannelData"),
    ],
)
def test_garbage_is_a_framing_error(data: bytes, message: str) -> None:
    with pytest.raises(FramingError) as raised:
        StreamFramer().feed(data)
    assert str(raised.value) == message
    assert isinstance(raised.value, DecodeError)


def test_limit_is_configurable() -> None:
    framer = StreamFramer(max_frame_size=len(BINDING))
    assert framer.feed(BINDING) == [BINDING]
    with pytest.raises(FramingError, match="frame of 28 bytes exceeds the 20-byte limit"):
        framer.feed(BINDING_SOFTWARE)


frames = st.one_of(
    st.binary(max_size=64).map(
        lambda body: bytes([0, 1]) + (len(body) // 4 * 4).to_bytes(2, "big")
        + b"\x21\x12\xa4\x42" + bytes(12) + body[: len(body) // 4 * 4]
    ),
    st.tuples(st.integers(0x4000, 0x4FFF), st.binary(max_size=40)).map(
        lambda cd: cd[0].to_bytes(2, "big") + len(cd[1]).to_bytes(2, "big") + cd[1]
    ),
)


def on_stream(frame: bytes) -> bytes:
    """Return ``frame`` as sent on a stream (ChannelData padded to 4)."""
    return frame + bytes(-len(frame) % 4) if frame[0] >= 0x40 else frame


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, max_size=8), st.lists(st.integers(1, 50), max_size=20))
def test_any_chunking_gives_the_frames_back(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(on_stream(m) for m in messages)
    framer, out, position = StreamFramer(), [], 0
    for cut in cuts + [len(stream)]:
        out += framer.feed(stream[position : position + cut])
        position += cut
    out += framer.feed(stream[position:])
    assert out == messages
    assert framer.buffered == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_garbage_raises_only_framing_error(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_frame_size=256)
    try:
        for chunk in chunks:
            framer.feed(chunk)
            assert framer.buffered < 256
    except FramingError:
        pass
