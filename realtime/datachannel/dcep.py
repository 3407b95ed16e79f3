"""
The Data Channel Establishment Protocol (DCEP, RFC 8832).

A DataChannel that is not negotiated out of band is opened in band: the
opener picks a stream id (even if it is the DTLS client, odd if the server,
§6) and sends DATA_CHANNEL_OPEN on that stream with PPID 50; the peer
answers DATA_CHANNEL_ACK on the same stream.  Both travel ordered and
reliably.  DATA_CHANNEL_OPEN (§5.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Message Type |  Channel Type |            Priority           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Reliability Parameter                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Label Length          |       Protocol Length         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    \\                 Label (UTF-8), then Protocol (UTF-8)           \\
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Message types: 0x03 DATA_CHANNEL_OPEN, 0x02 DATA_CHANNEL_ACK (one byte,
§5.2).  The channel type combines ordering (0x80 bit = unordered) with the
reliability policy, whose parameter means retransmissions or milliseconds::

    0x00 RELIABLE                    0x80 RELIABLE_UNORDERED
    0x01 PARTIAL_RELIABLE_REXMIT     0x81 ..._REXMIT_UNORDERED  (max retransmits)
    0x02 PARTIAL_RELIABLE_TIMED      0x82 ..._TIMED_UNORDERED   (lifetime in ms)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Union

from realtime.errors import DecodeError, LocalProtocolError
from realtime.wire import Reader


class MessageType(IntEnum):
    """DCEP message types (RFC 8832 §8.2.1)."""

    DATA_CHANNEL_ACK = 0x02
    DATA_CHANNEL_OPEN = 0x03


class ChannelType(IntEnum):
    """DCEP channel types (RFC 8832 §8.2.2)."""

    RELIABLE = 0x00
    PARTIAL_RELIABLE_REXMIT = 0x01
    PARTIAL_RELIABLE_TIMED = 0x02
    RELIABLE_UNORDERED = 0x80
    PARTIAL_RELIABLE_REXMIT_UNORDERED = 0x81
    PARTIAL_RELIABLE_TIMED_UNORDERED = 0x82


UNORDERED_BIT = 0x80
_OPEN = struct.Struct("!BBHIHH")


@dataclass(frozen=True, slots=True)
class DataChannelOpen:
    """Ask the peer to open a channel on this stream (RFC 8832 §5.1)."""

    channel_type: int
    priority: int
    reliability: int
    label: str
    protocol: str

    @classmethod
    def for_channel(cls, label: str, protocol: str = "", *, ordered: bool = True,
                    max_retransmits: int | None = None,
                    max_packet_life_time: int | None = None, priority: int = 0
                    ) -> "DataChannelOpen":
        """Build the OPEN for a channel's options (W3C RTCDataChannelInit names).

        :raises LocalProtocolError: if both reliability limits are given.
        """
        if max_retransmits is not None and max_packet_life_time is not None:
            raise LocalProtocolError("maxRetransmits and maxPacketLifeTime are exclusive")
        if max_retransmits is not None:
            kind, reliability = ChannelType.PARTIAL_RELIABLE_REXMIT, max_retransmits
        elif max_packet_life_time is not None:
            kind, reliability = ChannelType.PARTIAL_RELIABLE_TIMED, max_packet_life_time
        else:
            kind, reliability = ChannelType.RELIABLE, 0
        return cls(kind | (0 if ordered else UNORDERED_BIT), priority, reliability, label, protocol)

    @property
    def ordered(self) -> bool:
        """True unless the channel type has the unordered bit."""
        return not self.channel_type & UNORDERED_BIT

    @property
    def max_retransmits(self) -> int | None:
        """The retransmission limit of a PARTIAL_RELIABLE_REXMIT channel, else None."""
        return self.reliability if self.channel_type & 0x7F == 0x01 else None

    @property
    def max_packet_life_time(self) -> int | None:
        """The lifetime in ms of a PARTIAL_RELIABLE_TIMED channel, else None."""
        return self.reliability if self.channel_type & 0x7F == 0x02 else None

    def encode(self) -> bytes:
        """Return the message bytes."""
        label, protocol = self.label.encode(), self.protocol.encode()
        return _OPEN.pack(MessageType.DATA_CHANNEL_OPEN, self.channel_type, self.priority,
                          self.reliability, len(label), len(protocol)) + label + protocol

    @classmethod
    def decode(cls, data: bytes) -> "DataChannelOpen":
        """Decode a DATA_CHANNEL_OPEN.

        :raises DecodeError: on a wrong type, truncation, trailing bytes or bad UTF-8.
        """
        reader = Reader(data, "DATA_CHANNEL_OPEN")
        if reader.u8() != MessageType.DATA_CHANNEL_OPEN:
            raise DecodeError("DCEP message is not a DATA_CHANNEL_OPEN")
        channel_type, priority, reliability = reader.u8(), reader.u16(), reader.u32()
        label_length, protocol_length = reader.u16(), reader.u16()
        label, protocol = reader.bytes(label_length), reader.bytes(protocol_length)
        reader.expect_end()
        if channel_type & 0x7F > 0x02:
            raise DecodeError(f"DATA_CHANNEL_OPEN has unknown channel type 0x{channel_type:02x}")
        try:
            return cls(channel_type, priority, reliability, label.decode(), protocol.decode())
        except UnicodeDecodeError:
            raise DecodeError("DATA_CHANNEL_OPEN label or protocol is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class DataChannelAck:
    """Confirm a DATA_CHANNEL_OPEN (RFC 8832 §5.2)."""

    def encode(self) -> bytes:
        """Return the single message-type byte."""
        return bytes([MessageType.DATA_CHANNEL_ACK])

    @classmethod
    def decode(cls, data: bytes) -> "DataChannelAck":
        """Decode a DATA_CHANNEL_ACK (exactly one byte).

        :raises DecodeError: on a wrong type or length.
        """
        if len(data) != 1 or data[0] != MessageType.DATA_CHANNEL_ACK:
            raise DecodeError(
                f"DATA_CHANNEL_ACK must be the single byte 0x02, got {data[:8].hex()}")
        return cls()


DcepMessage = Union[DataChannelOpen, DataChannelAck]


def decode_dcep(data: bytes) -> DcepMessage:
    """Decode a DCEP message by its first byte.

    :raises DecodeError: ``"empty DCEP message"``, ``"unknown DCEP message type 0x.."``
        or the message's own errors.
    """
    if not data:
        raise DecodeError("empty DCEP message")
    if data[0] == MessageType.DATA_CHANNEL_OPEN:
        return DataChannelOpen.decode(data)
    if data[0] == MessageType.DATA_CHANNEL_ACK:
        return DataChannelAck.decode(data)
    raise DecodeError(f"unknown DCEP message type 0x{data[0]:02x}")
