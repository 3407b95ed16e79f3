"""
The ``Packet`` message of Cloudflare's WebSocket adapters, a three-field protobuf.

Every WebSocket binary message between the SFU and an adapter endpoint is one
Protocol Buffers (proto3) message::

    message Packet {
      uint32 sequenceNumber = 1;
      uint32 timestamp = 2;
      bytes payload = 5;       // PCM: 48 kHz, 16-bit, stereo; or one JPEG image
    }

Protobuf's wire format (protobuf.dev, "Encoding") is a sequence of *records*,
each a key then a value; the key is the varint ``field_number << 3 | wire_type``::

    08 <varint>           field 1, wire type 0 (VARINT): sequenceNumber
    10 <varint>           field 2, wire type 0: timestamp
    2a <varint n> <n B>   field 5, wire type 2 (LEN): payload

A varint is little-endian base-128: seven bits per octet, the high bit set on
every octet but the last (at most 10 octets for 64 bits).  A ``uint32``
decoded from a longer varint keeps its low 32 bits, as protobuf's own parsers
do.  proto3 leaves a field at its default (0, empty) off the wire, so an
encoder writes only the fields that are set, in field order; a decoder takes
the fields in any order, the last occurrence winning, and skips the fields
it does not know by their wire type (0 VARINT, 1 I64, 2 LEN, 5 I32).  The
deprecated group wire types (3, 4) and the unused 6 and 7 are errors here.

This module is a pure codec (docs/design.md §1): hostile bytes raise only
:class:`~realtime.errors.DecodeError`, which the adapter counts and drops.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import DecodeError, Truncated

__all__ = ["Packet", "decode_varint", "encode_varint"]

#: wire types (protobuf.dev "Encoding", "Message Structure")
VARINT, I64, LEN, I32 = 0, 1, 2, 5

#: keys of our three fields: field_number << 3 | wire_type
SEQUENCE_NUMBER_KEY = 1 << 3 | VARINT     # 0x08
TIMESTAMP_KEY = 2 << 3 | VARINT           # 0x10
PAYLOAD_KEY = 5 << 3 | LEN                # 0x2a

MAX_VARINT_LENGTH = 10
UINT32 = 0xFFFFFFFF


def encode_varint(value: int) -> bytes:
    """Return ``value`` (0 <= value < 2**64) as a protobuf base-128 varint."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return ``(value, position after it)`` of the varint at ``data[pos]``.

    :raises DecodeError: it runs past the end, or past 10 octets.
    """
    value = shift = 0
    end = len(data)
    for i in range(pos, min(pos + MAX_VARINT_LENGTH, end)):
        octet = data[i]
        value |= (octet & 0x7F) << shift
        if not octet & 0x80:
            return value & ((1 << 64) - 1), i + 1
        shift += 7
    if end - pos < MAX_VARINT_LENGTH:
        raise Truncated(f"varint at offset {pos} runs past the end")
    raise DecodeError(f"varint at offset {pos} is longer than 10 octets")


@dataclass(frozen=True, slots=True)
class Packet:
    """One WebSocket adapter message: a sequence number, a timestamp and a payload.

    :ivar sequence_number: counts the messages of one adapter (``uint32``).
    :ivar timestamp: the media time of the payload (``uint32``; RTP units
        for audio, 48 kHz here).
    :ivar payload: PCM samples or a JPEG image.
    """

    sequence_number: int = 0
    timestamp: int = 0
    payload: bytes = b""

    def encode(self) -> bytes:
        """Return the protobuf encoding: the set fields, in field order."""
        out = bytearray()
        if self.sequence_number:
            out.append(SEQUENCE_NUMBER_KEY)
            out += encode_varint(self.sequence_number & UINT32)
        if self.timestamp:
            out.append(TIMESTAMP_KEY)
            out += encode_varint(self.timestamp & UINT32)
        if self.payload:
            out.append(PAYLOAD_KEY)
            out += encode_varint(len(self.payload))
            out += self.payload
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Packet:
        """Parse one message; unknown fields are skipped.

        :raises DecodeError: a truncated or malformed record, a field of ours
            with the wrong wire type, a group or reserved wire type.
        """
        view = memoryview(data)
        end = len(view)
        pos = 0
        sequence_number = timestamp = 0
        payload: bytes | memoryview = b""
        while pos < end:
            key, pos = decode_varint(view, pos)
            field, wire_type = key >> 3, key & 7
            if field == 0:
                raise DecodeError("field number 0 is not allowed")
            if field == 5 and wire_type != LEN:
                raise DecodeError(f"field 5 has wire type {wire_type}")
            if wire_type == VARINT:
                value, pos = decode_varint(view, pos)
                if field == 1:
                    sequence_number = value & UINT32
                elif field == 2:
                    timestamp = value & UINT32
                continue
            if field in (1, 2):
                raise DecodeError(f"field {field} has wire type {wire_type}")
            if wire_type == LEN:
                length, pos = decode_varint(view, pos)
                if length > end - pos:
                    raise Truncated(f"field {field} needs {length} octets, {end - pos} remain")
                if field == 5:
                    payload = view[pos:pos + length]
                pos += length
            elif wire_type in (I64, I32):
                size = 8 if wire_type == I64 else 4
                if size > end - pos:
                    raise Truncated(f"field {field} needs {size} octets, {end - pos} remain")
                pos += size
            else:
                raise DecodeError(f"wire type {wire_type} is not supported")
        return cls(sequence_number, timestamp, bytes(payload))
