"""
The SCTP packet: common header, CRC-32C and bundled chunks (RFC 9260 §3.1).

In WebRTC an SCTP packet is the payload of one DTLS record (RFC 8261 §4):
no IP header, ports 5000 by convention (RFC 8841 sctp-port)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Source Port Number        |     Destination Port Number   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      Verification Tag                         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Checksum (CRC-32C, little-endian)             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Chunk #1 (padded to 4 bytes)  ...  Chunk #n                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

:meth:`SctpPacket.decode` checks the checksum first (RFC 9260 §6.8: a
packet with a bad checksum is silently discarded; here it raises
:class:`ChecksumMismatch`, which the association counts and drops).  Packets
of RFC 2960, which used Adler-32, fail this check like any corrupted packet.
:meth:`SctpPacket.encode` writes the chunks with zero padding and computes
the checksum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from realtime.errors import DecodeError
from realtime.sctp.chunks import Chunk, decode_chunk
from realtime.sctp.crc32c import crc32c
from realtime.wire import Reader, padding_length

HEADER_LENGTH = 12
"""Bytes in the common header."""

_COMMON = struct.Struct("!HHI")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


class ChecksumMismatch(DecodeError):
    """Raised when the CRC-32C in the common header does not match the packet."""


@dataclass(frozen=True, slots=True)
class SctpPacket:
    """One SCTP packet: ports, verification tag and its chunks, in order."""

    source_port: int
    destination_port: int
    verification_tag: int
    chunks: tuple[Chunk, ...]

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview, verify_checksum: bool = True
               ) -> "SctpPacket":
        """Decode a packet, checking its CRC-32C unless ``verify_checksum`` is False.

        :raises ChecksumMismatch: if the checksum is wrong.
        :raises DecodeError: if the header or a chunk is malformed.
        """
        data = bytes(data)
        if len(data) < HEADER_LENGTH:
            raise DecodeError(f"SCTP packet of {len(data)} bytes is shorter than its "
                              f"{HEADER_LENGTH}-byte common header")
        if verify_checksum:
            stored = data[8:12]
            computed = crc32c(data[12:], crc32c(data[:8] + b"\0\0\0\0"))
            if int.from_bytes(stored, "little") != computed:
                raise ChecksumMismatch(
                    f"SCTP CRC-32C checksum mismatch: packet says {stored.hex()}, "
                    f"computed {computed.to_bytes(4, 'little').hex()}")
        source, destination, tag = _COMMON.unpack_from(data)
        return cls(source, destination, tag, decode_chunks(data, HEADER_LENGTH))

    def encode(self) -> bytes:
        """Return the packet bytes with padding and the CRC-32C filled in."""
        return encode_packet(self.source_port, self.destination_port, self.verification_tag,
                             [chunk.encode() for chunk in self.chunks])


def encode_packet(source_port: int, destination_port: int, verification_tag: int,
                  chunks: list[bytes]) -> bytes:
    """Return a packet of already-encoded ``chunks`` with padding and CRC-32C.

    This is :meth:`SctpPacket.encode` for callers that hold chunk bytes (the
    association measures each chunk before bundling it).
    """
    body = bytearray(_COMMON.pack(source_port, destination_port, verification_tag))
    body += b"\0\0\0\0"
    for raw in chunks:
        body += raw
        body += _PADDING[len(raw) & 3]
    body[8:12] = crc32c(body).to_bytes(4, "little")
    return bytes(body)


def decode_chunks(data: bytes, offset: int = 0) -> tuple[Chunk, ...]:
    """Decode the chunks of ``data`` from ``offset`` to the end.

    The padding after the last chunk may be missing.

    :raises DecodeError: ``"SCTP packet has no chunks"`` or a chunk-level error.
    """
    reader = Reader(memoryview(data)[offset:], "SCTP chunk")
    chunks = []
    while reader.remaining:
        type_ = reader.u8()
        flags = reader.u8()
        length = reader.u16()
        if length < 4:
            raise DecodeError(f"SCTP chunk length {length} is shorter than its 4-byte header")
        chunks.append(decode_chunk(type_, flags, reader.bytes(length - 4)))
        reader.skip(min(padding_length(length), reader.remaining))
    if not chunks:
        raise DecodeError("SCTP packet has no chunks")
    return tuple(chunks)
