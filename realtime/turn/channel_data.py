"""
The ChannelData message: relayed data with a 4-byte header instead of STUN's 36.

Once a client has bound a channel number to a peer (ChannelBind, RFC 8656
§12.2), data to and from that peer travels as (§12.4)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Channel Number        |            Length             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    /                       Application Data                        /
    /                                                               /
    |                                                               |
    |                               +-------------------------------+
    |                               |   padding to 4 (TCP/TLS only) |
    +-------------------------------+-------------------------------+

The first two bits are 01, which is how a receiver tells it from STUN (00).
Over TCP and TLS the message is padded to a multiple of four (§12.5); over
UDP padding is optional and a receiver ignores bytes past ``Length``.

**Channel numbers.**  RFC 8656 §12 allows 0x4000-0x4FFF and reserves
0x5000-0x7FFF; RFC 5766 (its predecessor) allowed 0x4000-0x7FFF, and
coturn's clients still pick numbers up to 0x7FFF (0x6a21, 0x7fc9 in the
captures).  Deliberate deviation: this server accepts the RFC 5766 range
(:data:`CHANNEL_MIN`-:data:`CHANNEL_MAX`) so those clients work.

**Fast path.**  On UDP the server's adapter does not call these functions
for every packet: :mod:`realtime.net.turn_fast` keeps, per (client, channel)
and per (relay, peer), the result of the lookups this module's callers make
and frames/unframes inline (the same four header bytes).  These functions
stay the reference; ``tests/net/test_turn_fast.py`` checks both give the
same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import DecodeError, Truncated

CHANNEL_MIN = 0x4000
"""Lowest channel number (RFC 8656 §12)."""
CHANNEL_MAX = 0x7FFF
"""Highest channel number accepted (RFC 5766 §11; RFC 8656 stops at 0x4FFF)."""

_PADS = (b"", b"\0\0\0", b"\0\0", b"\0")


def split_channel_data(data: bytes) -> tuple[int, bytes]:
    """Return ``(channel, application data)`` of a ChannelData message; padding ignored.

    The per-packet fast path of :meth:`ChannelData.decode`.
    """
    size = len(data)
    if size < 4:
        raise Truncated(f"ChannelData header truncated: need 4 bytes, have {size}")
    length = (data[2] << 8) | data[3]
    if length > size - 4:
        raise Truncated(
            f"ChannelData length {length} exceeds the {size - 4} bytes after the header")
    channel = (data[0] << 8) | data[1]
    if not CHANNEL_MIN <= channel <= CHANNEL_MAX:
        raise DecodeError(f"ChannelData channel number 0x{channel:04x} is outside 0x4000-0x7fff")
    return channel, data[4 : 4 + length]


def frame_channel_data(channel: int, payload: bytes, stream: bool = False) -> bytes:
    """Return the ChannelData message carrying ``payload``, padded to 4 if ``stream``."""
    length = len(payload)
    header = bytes((channel >> 8, channel & 0xFF, length >> 8, length & 0xFF))
    if stream:
        return header + payload + _PADS[length & 3]
    return header + payload


@dataclass(frozen=True, slots=True)
class ChannelData:
    """A ChannelData message (RFC 8656 §12.4); ``padding`` keeps trailing bytes for round trips.

    :ivar channel: the channel number, 0x4000-0x7FFF.
    :ivar data: the application data.
    :ivar padding: bytes after ``data`` (zero padding on streams).
    """

    channel: int
    data: bytes
    padding: bytes = b""

    @classmethod
    def decode(cls, data: bytes) -> "ChannelData":
        """Return the message in ``data`` (raises :class:`DecodeError` subclasses only)."""
        channel, payload = split_channel_data(bytes(data))
        return cls(channel, bytes(payload), bytes(data[4 + len(payload):]))

    def encode(self) -> bytes:
        """Return the wire bytes, padding as stored."""
        return frame_channel_data(self.channel, self.data) + self.padding
