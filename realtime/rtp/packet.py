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

# --- the byte layout of the fixed header (RFC 3550 §5.1), by name ---------------------------

HEADER_LENGTH = 12
"""Octets of the fixed header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC."""
VERSION_SHIFT = 6
"""Octet 0, bits 0-1: the version, 2 (``octet0 >> VERSION_SHIFT``)."""
PADDING_BIT = 0x20
"""Octet 0, bit 2 (P): the last octet of the datagram counts padding octets, itself included."""
EXTENSION_BIT = 0x10
"""Octet 0, bit 3 (X): one header extension block follows the CSRC list (§5.3.1)."""
CSRC_COUNT_MASK = 0x0F
"""Octet 0, bits 4-7 (CC): how many 4-octet CSRC identifiers follow the fixed header."""
MARKER_BIT = 0x80
"""Octet 1, bit 0 (M): profile-defined; for video, the last packet of a frame."""
PAYLOAD_TYPE_MASK = 0x7F
"""Octet 1, bits 1-7 (PT): the payload format, bound by SDP ``a=rtpmap``."""
SEQUENCE_NUMBER_OFFSET = 2
"""Octets 2-3: the sequence number, +1 per packet, random start."""
TIMESTAMP_OFFSET = 4
"""Octets 4-7: the sampling instant of the first payload octet, in clock-rate units."""
SSRC_OFFSET = 8
"""Octets 8-11: the synchronization source identifier."""
CSRC_OFFSET = 12
"""The first CSRC (if CC > 0) and, after the CSRCs, the extension block (if X)."""
CSRC_LENGTH = 4
"""Octets per CSRC identifier."""
EXTENSION_HEADER_LENGTH = 4
"""Octets of the extension block's own header: 16-bit profile, 16-bit length in 32-bit words."""

_FIXED = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_PROFILE_LEN = struct.Struct("!HH")
_CSRC = [struct.Struct(f"!{n}I") for n in range(16)]
_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from
_SEQ_TS = struct.Struct("!HI").unpack_from
_READ_FIXED = _FIXED.unpack_from
_READ_PROFILE_LEN = _PROFILE_LEN.unpack_from
_WRITE_SEQ_TS_SSRC = _SEQ_TS_SSRC.pack_into


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
        if n < HEADER_LENGTH:
            raise Truncated(f"RTP header truncated: need 12 bytes, have {n}")
        b0, b1, seq, ts, ssrc = _READ_FIXED(data)
        if b0 >> VERSION_SHIFT != 2:
            raise DecodeError(f"RTP version must be 2, got {b0 >> VERSION_SHIFT}")
        cc = b0 & CSRC_COUNT_MASK
        pos = CSRC_OFFSET + CSRC_LENGTH * cc
        if pos > n:
            raise Truncated(f"RTP CSRC list truncated: {cc} CSRCs need {pos} bytes, have {n}")
        csrc = _CSRC[cc].unpack_from(data, CSRC_OFFSET) if cc else ()
        profile = None
        ext_data = b""
        if b0 & EXTENSION_BIT:
            start = pos + EXTENSION_HEADER_LENGTH
            if start > n:
                raise Truncated("RTP header extension truncated: no profile and length")
            profile, words = _READ_PROFILE_LEN(data, pos)
            ext_end = start + 4 * words
            if ext_end > n:
                raise Truncated(f"RTP header extension overruns the packet: {words} words")
            ext_data = bytes(data[start:ext_end])
            pos = ext_end
        end = n
        pad = 0
        filler = b""
        if b0 & PADDING_BIT:
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
            b1 & PAYLOAD_TYPE_MASK,
            seq,
            ts,
            ssrc,
            bool(b1 & MARKER_BIT),
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
        b0 = 2 << VERSION_SHIFT | cc
        if self.padding_size:
            b0 |= PADDING_BIT
        out = bytearray()
        if self.extension_profile is not None:
            b0 |= EXTENSION_BIT
        out += _FIXED.pack(
            b0,
            (MARKER_BIT if self.marker else 0) | self.payload_type,
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
#
# The SFU handles every packet once per subscriber, so these read and write the
# octets in place at the named offsets above instead of decoding an RtpPacket.
# A fixed-width field is one ``struct`` call (cheaper in CPython than assembling
# it from single octets); flags are tested inline with the masks above.


def read_header_fields(data: bytes | bytearray | memoryview) -> tuple[int, int, int, int, bool]:
    """Return ``(payload_type, sequence_number, timestamp, ssrc, marker)`` without decoding."""
    try:
        _, b1, seq, ts, ssrc = _READ_FIXED(data)
    except struct.error:
        raise Truncated(f"RTP header truncated: need 12 bytes, have {len(data)}") from None
    return b1 & PAYLOAD_TYPE_MASK, seq, ts, ssrc, b1 >= MARKER_BIT


def sequence_number(data: bytes | bytearray | memoryview) -> int:
    """Return octets 2-3, the sequence number; the caller has checked ``len(data) >= 12``."""
    return _U16(data, SEQUENCE_NUMBER_OFFSET)[0]


def timestamp(data: bytes | bytearray | memoryview) -> int:
    """Return octets 4-7, the RTP timestamp; the caller has checked ``len(data) >= 12``."""
    return _U32(data, TIMESTAMP_OFFSET)[0]


def sequence_number_and_timestamp(data: bytes | bytearray | memoryview) -> tuple[int, int]:
    """Return ``(sequence_number, timestamp)`` of octets 2-7 in one read (length checked by the caller)."""
    return _SEQ_TS(data, SEQUENCE_NUMBER_OFFSET)


def rewrite_header(
    buf: bytearray, ssrc: int, sequence_number: int, timestamp: int, payload_type: int | None = None
) -> None:
    """Overwrite SSRC, sequence number, timestamp (and payload type) of ``buf`` in place."""
    _WRITE_SEQ_TS_SSRC(buf, SEQUENCE_NUMBER_OFFSET, sequence_number, timestamp, ssrc)
    if payload_type is not None:
        buf[1] = (buf[1] & MARKER_BIT) | payload_type


def _extension_block(data: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """Return ``(profile, start, end)`` of the extension data, or None without X bit."""
    n = len(data)
    if n < HEADER_LENGTH:
        raise Truncated(f"RTP header truncated: need 12 bytes, have {n}")
    b0 = data[0]
    if not b0 & EXTENSION_BIT:
        return None
    pos = CSRC_OFFSET + CSRC_LENGTH * (b0 & CSRC_COUNT_MASK)
    start = pos + EXTENSION_HEADER_LENGTH
    if start > n:
        raise Truncated("RTP header extension truncated: no profile and length")
    profile, words = _READ_PROFILE_LEN(data, pos)
    end = start + 4 * words
    if end > n:
        raise Truncated(f"RTP header extension overruns the packet: {words} words")
    return profile, start, end


def payload_offset(data: bytes | bytearray | memoryview) -> int:
    """Return the offset of the payload (after CSRCs and the extension block).

    :raises DecodeError: the header, CSRC list or extension block is truncated.
    """
    n = len(data)
    if n < HEADER_LENGTH:
        raise Truncated(f"RTP header truncated: need 12 bytes, have {n}")
    b0 = data[0]
    pos = CSRC_OFFSET + CSRC_LENGTH * (b0 & CSRC_COUNT_MASK)
    if b0 & EXTENSION_BIT:
        if pos + EXTENSION_HEADER_LENGTH > n:
            raise Truncated("RTP header extension truncated: no profile and length")
        words = _U16(data, pos + 2)[0]
        pos += EXTENSION_HEADER_LENGTH + 4 * words
        if pos > n:
            raise Truncated(f"RTP header extension overruns the packet: {words} words")
    elif pos > n:
        raise Truncated("RTP CSRC list truncated")
    return pos


def header_length(data: bytes | bytearray | memoryview) -> int:
    """Return the payload offset of a packet already validated (by :func:`payload_offset` or
    by building it): 12, plus 4 per CSRC, plus the extension block's 4 + 4 x length octets.
    """
    b0 = data[0]
    head = CSRC_OFFSET + CSRC_LENGTH * (b0 & CSRC_COUNT_MASK)
    if b0 & EXTENSION_BIT:
        head += EXTENSION_HEADER_LENGTH + 4 * _U16(data, head + 2)[0]
    return head


def padding_size(data: bytes | bytearray | memoryview) -> int:
    """Return the padding octets at the end (the last octet's count if P is set, else 0)."""
    return data[-1] if data[0] & PADDING_BIT else 0


def extension_elements(
    data: bytes | bytearray | memoryview, profile: int, pos: int, end: int
) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(id, header_offset, value_offset, size)`` of each RFC 8285 element.

    ``data[pos:end]`` is the block's element data and ``profile`` its form
    (0xBEDE one-byte, 0x100x two-byte; others yield nothing).  Padding bytes
    are skipped; a one-byte id 15 ends the walk (RFC 8285 §4.2).  The one
    walk behind :func:`find_extension`, :func:`rewrite_extension_ids` and
    :class:`~realtime.rtp.rewrite.ExtensionRewrite`; it reads offsets only, no
    values are copied.

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


def last_extension(data: bytes | bytearray | memoryview) -> bytes | None:
    """Return the data of the last element of the RFC 8285 block, or None (no block, or an
    empty one); what a writer that appends an element last finds it by."""
    block = _extension_block(data)
    if block is None:
        return None
    last = None
    for _, _, start, size in extension_elements(data, *block):
        last = (start, size)
    return None if last is None else bytes(data[last[0] : last[0] + last[1]])


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
