"""
Framing STUN and TURN ChannelData on a byte stream (TCP or TLS).

Over UDP every datagram is one message.  Over TCP the receiver must find the
boundaries itself, and both formats carry their own length (RFC 8489 §6.2.2,
RFC 8656 §11.5)::

    STUN message (first two bits 00):
    |0 0|  Message Type (14)    |      Message Length (16)      |  + Length bytes
    |            20-byte header ...                             |

    ChannelData (first two bits 01, channel 0x4000-0x7FFF):
    |     Channel Number (16)       |          Length (16)          |
    |  Application Data (Length bytes), padded to 4 on TCP/TLS  ... |

So the frame size is ``20 + Length`` for STUN and ``4 + Length`` rounded up
to 4 for ChannelData.  Anything starting with ``1x`` is neither and the
stream is out of sync (or carries another protocol, like the raw relayed
data of an RFC 6062 data connection after ConnectionBind).

:func:`frame_length` answers "how long is the frame at the head of this
buffer?" and :class:`StreamFramer` feeds arbitrary chunks and returns whole
frames -- a sans-I/O piece for the TURN-over-TCP adapter and the capture
tools.
"""

from __future__ import annotations

from realtime.errors import DecodeError

MAX_FRAME = 20 + 0xFFFF
"""Largest possible frame (a STUN message with a 65535-byte body)."""


def frame_length(buffer: bytes | bytearray | memoryview) -> int | None:
    """Return the size of the frame at the head of ``buffer``, None if under 4 bytes.

    Raises :class:`DecodeError` when the first byte starts neither a STUN
    message nor ChannelData.
    """
    if len(buffer) < 4:
        return None
    first = buffer[0]
    length = (buffer[2] << 8) | buffer[3]
    if first < 0x40:
        if length & 3:
            raise DecodeError(f"STUN message length {length} is not a multiple of 4")
        return 20 + length
    if first < 0x80:
        return 4 + length + (-length & 3)
    raise DecodeError(f"stream byte 0x{first:02x} starts neither STUN nor ChannelData")


class StreamFramer:
    """Split a STUN/ChannelData byte stream into frames, fed in any chunks.

    :param max_frame_size: frames announcing more bytes than this are a
        :class:`DecodeError` (the connection should be closed), so a peer
        cannot make us buffer more than one bounded frame.
    """

    __slots__ = ("_buffer", "max_frame_size")

    def __init__(self, max_frame_size: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self.max_frame_size = max_frame_size

    @property
    def pending(self) -> int:
        """Number of buffered bytes that do not form a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data`` and return the frames now complete, in order.

        Raises :class:`DecodeError` if the stream is out of sync; the
        offending bytes stay buffered (the connection should be closed).
        """
        self._buffer += data
        frames = []
        offset = 0
        while True:
            size = frame_length(memoryview(self._buffer)[offset:])
            if size is not None and size > self.max_frame_size:
                raise DecodeError(
                    f"frame of {size} bytes exceeds the {self.max_frame_size}-byte limit")
            if size is None or offset + size > len(self._buffer):
                break
            frames.append(bytes(self._buffer[offset : offset + size]))
            offset += size
        del self._buffer[:offset]
        return frames


def split_stream(data: bytes) -> tuple[list[bytes], int]:
    """Return the whole frames at the start of ``data`` and where framing stopped.

    Framing stops at the end, at a truncated last frame, or at a byte that
    starts neither format; ``data[stopped:]`` is the unframed rest.
    """
    frames = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        try:
            size = frame_length(view[offset:])
        except DecodeError:
            break
        if size is None or offset + size > len(data):
            break
        frames.append(data[offset : offset + size])
        offset += size
    return frames, offset
