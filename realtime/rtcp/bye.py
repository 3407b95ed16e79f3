"""
Goodbye packets (RFC 3550 §6.6): sources leaving the session, with an optional reason.

::

           0                   1                   2                   3
           0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
          +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
          |V=2|P|    SC   |   PT=BYE=203  |             length            |
          +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
          |                           SSRC/CSRC                           |
          +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
          :                              ...                              :
          +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    (opt) |     length    |               reason for leaving            ...
          +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The reason is followed by null octets up to the next 32-bit boundary.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtcp.packet import RtcpPacket, RtcpPacketType
from realtime.wire import Reader, padding_length


@dataclass(frozen=True, slots=True)
class Goodbye(RtcpPacket):
    """A BYE: ``sources`` stop sending; ``reason`` is None when absent."""

    packet_type = RtcpPacketType.BYE

    sources: tuple[int, ...] = ()
    reason: bytes | None = None
    padding: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "Goodbye":
        reader = Reader(body, "BYE")
        sources = tuple(reader.u32() for _ in range(count))
        reason = None
        if reader.remaining:
            reader.what = "BYE reason"
            reason = reader.bytes(reader.u8())
            tail = reader.rest()
            if len(tail) != padding_length(1 + len(reason)) or any(tail):
                raise DecodeError(f"BYE reason is followed by {len(tail)} bytes that are not its padding")
        return cls(sources, reason, padding)

    def _body(self) -> tuple[int, bytes]:
        out = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise LocalProtocolError("BYE reason is at most 255 bytes")
            out += bytes((len(self.reason),)) + self.reason
            out += bytes(padding_length(1 + len(self.reason)))
        return len(self.sources), out
