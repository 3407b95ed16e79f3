"""
The RTP data packet (RFC 3550 §5.1), decoded byte-exactly, plus in-place hot-path accessors.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                       (CC entries) ....                       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  defined by profile (X=1)     |      length (32-bit words)    |
    |                 header extension (§5.3.1) ...                 |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      payload ...                              |
    |                               +-------------------------------+
    |                               | padding (P=1) ... | pad count |
    +-------------------------------+-------------------------------+

With P set, the last octet counts the padding octets including itself
(§5.1); a count of zero or one larger than what follows the header is
malformed.

:class:`RtpPacket` is the value form: ``decode(encode(p)) == p`` and, for any
well-formed datagram, ``encode(decode(b)) == b`` (the extension block and
non-zero padding octets are kept raw).  The SFU forwards every packet to
every subscriber, so the functions at the bottom work on the bytes directly:
:func:`read_header_fields`, :func:`rewrite_header`, :func:`find_extension`
and :func:`rewrite_extension_ids` allocate nothing but their result; all three
walk the RFC 8285 block with :func:`extension_elements`.

Deliberate deviation: the decoder checks the structure RFC 3550 defines, not
the application rules of §A.1 (payload type known, SSRC expected); those
belong to the session.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import ClassVar, Iterator, Mapping

from realtime.errors import DecodeError, LocalProtocolError, Truncated
from realtime.rtp.extensions import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    HeaderExtension,
    decode_extensions,
    encode_extensions,
)

_FIXED = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_PROFILE_LEN = struct.Struct("!HH")
_CSRC = [struct.Struct(f"!{n}I") for n in range(16)]


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """An RTP packet; ``padding`` and ``extension`` (the P and X bits) follow from the fields.

    :ivar extension_profile: the 16-bit "defined by profile" value, or None
        when the X bit is clear.
    :ivar extension_data: the extension block after profile and length (a
        multiple of 4 bytes), raw; :attr:`header_extensions` parses it.
    :ivar padding_size: the pad count octet (0 = no padding).
    :ivar padding_data: the ``padding_size - 1`` filler octets before the
        count, or ``b""`` when they are all zero.
    """

    VERSION: ClassVar[int] = 2

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_data: bytes = b""
    payload: bytes = b""
    padding_size: int = 0
    padding_data: bytes = b""

    @property
    def version(self) -> int:
        """Return the RTP version, always 2 (the decoder rejects others)."""
        return 2

    @property
    def padding(self) -> bool:
        """Return the P bit: True when padding octets follow the payload."""
        return self.padding_size > 0

    @property
    def extension(self) -> bool:
        """Return the X bit: True when a header extension block is present."""
        return self.extension_profile is not None

    @property
    def header_extensions(self) -> tuple[HeaderExtension, ...]:
        """Parse the RFC 8285 elements of the extension block (empty for other profiles)."""
        if self.extension_profile is None:
            return ()
        return decode_extensions(self.extension_profile, self.extension_data)

    def extension_value(self, ext_id: int) -> bytes | None:
        """Return the data of the first element with id ``ext_id``, or None."""
        for element in self.header_extensions:
            if element.id == ext_id:
                return element.value
        return None

    def with_extensions(
        self, extensions: tuple[HeaderExtension, ...] | list[HeaderExtension], two_byte: bool | None = None
    ) -> "RtpPacket":
        """Return a copy carrying ``extensions`` (no extension block when empty)."""
        if not extensions:
            return replace(self, extension_profile=None, extension_data=b"")
        profile, data = encode_extensions(extensions, two_byte)
        return replace(self, extension_profile=profile, extension_data=data)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> "RtpPacket":
        """Parse one RTP packet; malformed bytes raise :class:`DecodeError`."""
        n = len(data)
        if n < 12:
            raise Truncated(f"RTP header truncated: need 12 bytes, have {n}")
        b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
        if b0 >> 6 != 2:
            raise DecodeError(f"RTP version must be 2, got {b0 >> 6}")
        cc = b0 & 0x0F
        pos = 12 + 4 * cc
        if pos > n:
            raise Truncated(f"RTP CSRC list truncated: {cc} CSRCs need {pos} bytes, have {n}")
        csrc = _CSRC[cc].unpack_from(data, 12) if cc else ()
        profile = None
        ext_data = b""
        if b0 & 0x10:
            if pos + 4 > n:
                raise Truncated("RTP header extension truncated: no profile and length")
            profile, words = _PROFILE_LEN.unpack_from(data, pos)
            ext_end = pos + 4 + 4 * words
            if ext_end > n:
                raise Truncated(f"RTP header extension overruns the packet: {words} words")
            ext_data = bytes(data[pos + 4 : ext_end])
            pos = ext_end
        end = n
        pad = 0
        filler = b""
        if b0 & 0x20:
            if end == pos:
                raise DecodeError("RTP padding bit set but nothing follows the header")
            pad = data[end - 1]
            if pad == 0:
                raise DecodeError("RTP padding count is zero")
            if pad > end - pos:
                raise DecodeError(f"RTP padding count {pad} exceeds the {end - pos} bytes after the header")
            end -= pad
            if pad > 1:
                filler = bytes(data[end : n - 1])
                if not any(filler):
                    filler = b""
        return cls(
            b1 & 0x7F,
            seq,
            ts,
            ssrc,
            bool(b1 & 0x80),
            csrc,
            profile,
            ext_data,
            bytes(data[pos:end]),
            pad,
            filler,
        )

    def encode(self) -> bytes:
        """Serialize the packet; impossible field values raise :class:`LocalProtocolError`."""
        cc = len(self.csrc)
        if cc > 15:
            raise LocalProtocolError("at most 15 CSRCs")
        if not 0 <= self.padding_size <= 255:
            raise LocalProtocolError("padding_size is 0..255")
        if self.padding_data and len(self.padding_data) != self.padding_size - 1:
            raise LocalProtocolError("padding_data must hold padding_size - 1 octets")
        b0 = 0x80 | cc
        if self.padding_size:
            b0 |= 0x20
        out = bytearray()
        if self.extension_profile is not None:
            b0 |= 0x10
        out += _FIXED.pack(
            b0,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
        )
        if cc:
            out += _CSRC[cc].pack(*self.csrc)
        if self.extension_profile is not None:
            words, rest = divmod(len(self.extension_data), 4)
            if rest or words > 0xFFFF:
                raise LocalProtocolError("extension_data must be whole 32-bit words (< 2^16)")
            out += _PROFILE_LEN.pack(self.extension_profile, words)
            out += self.extension_data
        out += self.payload
        if self.padding_size:
            out += self.padding_data or bytes(self.padding_size - 1)
            out.append(self.padding_size)
        return bytes(out)


# --- hot path: work on the datagram itself -----------------------------------------------


def read_header_fields(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int, bool]:
    """Return ``(payload_type, sequence_number, timestamp, ssrc, marker)`` without decoding."""
    if len(data) < 12:
        raise Truncated(f"RTP header truncated: need 12 bytes, have {len(data)}")
    _, b1, seq, ts, ssrc = _FIXED.unpack_from(data)
    return b1 & 0x7F, seq, ts, ssrc, b1 > 0x7F


def rewrite_header(
    buf: bytearray, ssrc: int, sequence_number: int, timestamp: int, payload_type: int | None = None
) -> None:
    """Overwrite SSRC, sequence number, timestamp (and payload type) of ``buf`` in place."""
    _SEQ_TS_SSRC.pack_into(buf, 2, sequence_number, timestamp, ssrc)
    if payload_type is not None:
        buf[1] = (buf[1] & 0x80) | payload_type


def _extension_block(data: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """Return ``(profile, start, end)`` of the extension data, or None without X bit."""
    n = len(data)
    if n < 12:
        raise Truncated(f"RTP header truncated: need 12 bytes, have {n}")
    b0 = data[0]
    if not b0 & 0x10:
        return None
    pos = 12 + 4 * (b0 & 0x0F)
    if pos + 4 > n:
        raise Truncated("RTP header extension truncated: no profile and length")
    profile, words = _PROFILE_LEN.unpack_from(data, pos)
    end = pos + 4 + 4 * words
    if end > n:
        raise Truncated(f"RTP header extension overruns the packet: {words} words")
    return profile, pos + 4, end


def payload_offset(data: bytes | bytearray | memoryview) -> int:
    """Return the offset of the payload (after CSRCs and the extension block)."""
    block = _extension_block(data)
    if block is not None:
        return block[2]
    offset = 12 + 4 * (data[0] & 0x0F)
    if offset > len(data):
        raise Truncated("RTP CSRC list truncated")
    return offset


def extension_elements(
    data: bytes | bytearray | memoryview, profile: int, pos: int, end: int
) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(id, header_offset, value_offset, size)`` of each RFC 8285 element.

    ``data[pos:end]`` is the block's element data and ``profile`` its form
    (0xBEDE one-byte, 0x100x two-byte; others yield nothing).  Padding bytes
    are skipped; a one-byte id 15 ends the walk (RFC 8285 §4.2).  The one
    walk behind :func:`find_extension`, :func:`rewrite_extension_ids` and the
    SFU's extension rewriting; it reads offsets only, no values are copied.

    :raises DecodeError: when an element runs past ``end``.
    """
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            byte = data[pos]
            if byte == 0:
                pos += 1
                continue
            if byte >> 4 == 15:
                return
            size = (byte & 0x0F) + 1
            if pos + 1 + size > end:
                raise DecodeError(f"one-byte header extension {byte >> 4} overruns the block")
            yield byte >> 4, pos, pos + 1, size
            pos += 1 + size
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while pos < end:
            this_id = data[pos]
            if this_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise DecodeError(f"two-byte header extension {this_id} has no length")
            size = data[pos + 1]
            if pos + 2 + size > end:
                raise DecodeError(f"two-byte header extension {this_id} overruns the block")
            yield this_id, pos, pos + 2, size
            pos += 2 + size


def find_extension(data: bytes | bytearray | memoryview, ext_id: int) -> bytes | None:
    """Return the data of element ``ext_id`` of the RFC 8285 block, or None; no objects built."""
    block = _extension_block(data)
    if block is None:
        return None
    for this_id, _, start, size in extension_elements(data, *block):
        if this_id == ext_id:
            return bytes(data[start : start + size])
    return None


def rewrite_extension_ids(buf: bytearray, mapping: Mapping[int, int]) -> None:
    """Renumber the RFC 8285 elements of ``buf`` in place: id ``k`` becomes ``mapping[k]``.

    Ids missing from ``mapping`` are left alone.  A new id that does not fit
    the block's form raises :class:`LocalProtocolError`.
    """
    block = _extension_block(buf)
    if block is None:
        return
    one_byte = block[0] == ONE_BYTE_PROFILE
    for this_id, header, _, _ in extension_elements(buf, *block):
        new = mapping.get(this_id)
        if new is None:
            continue
        if one_byte:
            if not 1 <= new <= 14:
                raise LocalProtocolError(f"id {new} does not fit the one-byte form")
            buf[header] = new << 4 | (buf[header] & 0x0F)
        else:
            if not 1 <= new <= 255:
                raise LocalProtocolError(f"id {new} does not fit the two-byte form")
            buf[header] = new
