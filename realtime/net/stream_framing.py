"""
Cutting a TCP or TLS byte stream into STUN messages and ChannelData frames.

Over a stream transport STUN has no datagram boundaries: messages are sent
back to back and the receiver finds each one's end from its header (RFC 8489
§6.2.2).  A TURN client may interleave ChannelData messages, which on a
stream are padded to a multiple of four bytes (RFC 8656 §12.5).  The first
two bits tell the two apart (RFC 8656 §12, RFC 7983 §7)::

    STUN message (RFC 8489 §5)               ChannelData (RFC 8656 §12.4)
     0                   1                    0                   1
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 ...      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 ...
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |0 0|     STUN Message Type     |        |0 1|   Channel Number (0x4000-   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Message Length (multiple 4)  |        |            Length             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Magic Cookie, Transaction ID |        |  Application Data (Length)    |
    |  (16 bytes), then attributes  |        |  + 0-3 padding bytes on TCP   |
    +-------------------------------+        +-------------------------------+
    frame = 20 + Message Length              frame = 4 + Length + pad(Length)

:class:`StreamFramer` is pure (no Twisted): feed it bytes as they arrive and
it returns the complete frames, STUN messages as sent and ChannelData with
its stream padding removed.  Anything else -- a first byte from 0x50 (channel numbers
0x5000-0xFFFF are reserved, RFC 8656 §12), a STUN
length that is not a multiple of four, a frame longer than the limit -- is
a :class:`FramingError`; the caller closes the connection, since a stream
that lost its framing cannot resynchronise.  The buffer never holds more
than one frame, so its size is bounded by ``max_frame_size``.
"""

from __future__ import annotations

from realtime.errors import DecodeError
from realtime.wire import padding_length

#: Default bound on one frame (STUN message or padded ChannelData), in bytes.
DEFAULT_MAX_FRAME_SIZE = 16 * 1024

STUN_HEADER_SIZE = 20
CHANNEL_DATA_HEADER_SIZE = 4


class FramingError(DecodeError):
    """Raised when a stream's bytes cannot be cut into STUN/ChannelData frames."""


class StreamFramer:
    """Split a STUN/ChannelData byte stream into frames (RFC 8489 §6.2.2, RFC 8656 §12.5).

    :param max_frame_size: frames longer than this raise :class:`FramingError`.
    """

    __slots__ = ("_buffer", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self.max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Return how many bytes of an incomplete frame are waiting."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return every frame it completes, in order.

        Raises :class:`FramingError` for bytes that start no valid frame or a
        frame over the limit; the framer is then unusable (close the stream),
        and frames completed earlier in the same ``data`` are discarded too.
        """
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        while len(buffer) - start >= CHANNEL_DATA_HEADER_SIZE:
            size, payload = self._frame_size(buffer, start)
            if len(buffer) - start < size:
                break
            frames.append(bytes(buffer[start : start + payload]))
            start += size
        del buffer[:start]
        return frames

    def _frame_size(self, buffer: bytearray, start: int) -> tuple[int, int]:
        """Return (bytes the frame takes on the stream, bytes to deliver)."""
        first = buffer[start]
        length = (buffer[start + 2] << 8) | buffer[start + 3]
        if first < 0x40:
            if length % 4:
                raise FramingError(f"STUN message length {length} is not a multiple of 4")
            size = payload = STUN_HEADER_SIZE + length
        elif first < 0x50:
            payload = CHANNEL_DATA_HEADER_SIZE + length
            size = payload + padding_length(length)
        else:
            raise FramingError(f"stream byte 0x{first:02x} starts neither STUN nor ChannelData")
        if size > self.max_frame_size:
            raise FramingError(f"frame of {size} bytes exceeds the {self.max_frame_size}-byte limit")
        return size, payload
