"""
RTCP packets and compound datagrams (RFC 3550 §6.1, §6.4.1; RFC 5506 reduced size).

Every RTCP packet starts with the same 32-bit header (§6.4.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P| count/FMT |       PT      |    length (words - 1)         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  body (length x 32 bits) ...                  |
    |                               +-------------------------------+
    |                               | padding (P=1) ... | pad count |
    +-------------------------------+-------------------------------+

A datagram is a *compound* of such packets laid end to end (§6.1)::

    [ SR or RR ][ SDES ][ BYE ] ...      (classic compound)
    [ PSFB PLI ]                         (reduced size, RFC 5506 §3)

The decoder accepts both: it splits the datagram by the length fields and
does not enforce the compound rules of §6.1 (RFC 5506 lets a single
feedback packet travel alone; :func:`is_reduced_size` tells them apart).

Each packet becomes a typed value (:mod:`~realtime.rtcp.reports`,
:mod:`~realtime.rtcp.sdes`, :mod:`~realtime.rtcp.bye`,
:mod:`~realtime.rtcp.feedback`, :mod:`~realtime.rtcp.transport_cc`); packet
types and feedback formats we do not model -- APP, XR, TMMBR, SLI, RPSI,
other AFB -- become :class:`RawRtcpPacket`, so ``encode(decode(b)) == b``
holds for every well-formed datagram.  Padding (P bit) is kept raw in every
packet's ``padding`` field, count octet included.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, ClassVar, Iterable

from realtime.errors import DecodeError, LocalProtocolError, Truncated

_HEADER = struct.Struct("!BBH")


class RtcpPacketType(IntEnum):
    """IANA "RTP Control Protocol (RTCP) Packet Types" in use here."""

    IJ = 195  #: RFC 5450 extended inter-arrival jitter
    SR = 200  #: RFC 3550 §6.4.1 sender report
    RR = 201  #: RFC 3550 §6.4.2 receiver report
    SDES = 202  #: RFC 3550 §6.5 source description
    BYE = 203  #: RFC 3550 §6.6 goodbye
    APP = 204  #: RFC 3550 §6.7 application-defined
    RTPFB = 205  #: RFC 4585 §6.2 transport layer feedback
    PSFB = 206  #: RFC 4585 §6.3 payload-specific feedback
    XR = 207  #: RFC 3611 extended reports


class RtcpPacket:
    """Base of every RTCP packet value; ``encode()`` adds the common header.

    Subclasses set ``packet_type`` and implement ``_body() -> (count, bytes)``
    and ``_from_body(count, body, padding)``.
    """

    __slots__ = ()
    packet_type: ClassVar[int]

    def _body(self) -> tuple[int, bytes]:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self) -> bytes:
        """Serialize this packet (header, body, padding)."""
        count, body = self._body()
        padding: bytes = getattr(self, "padding", b"")
        size = len(body) + len(padding)
        if size % 4 or not 0 <= count <= 31:
            raise LocalProtocolError(f"RTCP body of {size} bytes / count {count} cannot be framed")
        if padding and padding[-1] != len(padding):
            raise LocalProtocolError("the last padding octet must count the padding")
        b0 = 0x80 | (0x20 if padding else 0) | count
        return _HEADER.pack(b0, self.packet_type, size // 4) + body + padding

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> "RtcpPacket":
        """Decode a datagram holding exactly one packet of this class."""
        packets = decode_compound(data)
        if len(packets) != 1 or not isinstance(packets[0], cls):
            raise DecodeError(f"expected one {cls.__name__}, got {len(packets)} RTCP packets")
        return packets[0]

    @staticmethod
    def decode_compound(data: bytes | bytearray | memoryview) -> tuple["RtcpPacket", ...]:
        """Split and decode a compound datagram (see :func:`decode_compound`)."""
        return decode_compound(data)


@dataclass(frozen=True, slots=True)
class RawRtcpPacket(RtcpPacket):
    """A packet kept as bytes: its type, the 5-bit count/FMT field, body and padding."""

    type: int
    count: int
    body: bytes
    padding: bytes = b""

    @property
    def packet_type(self) -> int:  # type: ignore[override]
        """Return the packet type octet."""
        return self.type

    def _body(self) -> tuple[int, bytes]:
        return self.count, self.body


def split_padding(b0: int, body: memoryview) -> tuple[memoryview, bytes]:
    """Return ``(body, padding)``: strip the §6.4.1 padding when the P bit is set."""
    if not b0 & 0x20:
        return body, b""
    if not body:
        raise DecodeError("RTCP padding bit set on an empty packet")
    count = body[-1]
    if count == 0:
        raise DecodeError("RTCP padding count is zero")
    if count > len(body):
        raise DecodeError(f"RTCP padding count {count} exceeds the {len(body)}-byte body")
    return body[: len(body) - count], bytes(body[len(body) - count :])


Decoder = Callable[[int, memoryview, bytes], RtcpPacket]


@functools.cache
def _decoders() -> dict[int, Decoder]:
    # Deliberate import circle (a registry): those modules import this one for
    # RtcpPacket, and this table names their decoders, so it imports them lazily.
    from realtime.rtcp import bye, feedback, reports, sdes, transport_cc

    rtpfb = {1: feedback.GenericNack._from_body, 15: transport_cc.TransportFeedback._from_body}
    psfb = {1: feedback.PictureLossIndication._from_body, 4: feedback.FullIntraRequest._from_body}

    def rtpfb_decoder(count: int, body: memoryview, padding: bytes) -> RtcpPacket:
        known = rtpfb.get(count)
        if known is None:
            return RawRtcpPacket(RtcpPacketType.RTPFB, count, bytes(body), padding)
        return known(count, body, padding)

    def psfb_decoder(count: int, body: memoryview, padding: bytes) -> RtcpPacket:
        known = psfb.get(count)
        if known is None and count == 15 and body[8:12] == b"REMB":
            known = feedback.ReceiverEstimatedMaxBitrate._from_body
        if known is None:
            return RawRtcpPacket(RtcpPacketType.PSFB, count, bytes(body), padding)
        return known(count, body, padding)

    return {
        RtcpPacketType.SR: reports.SenderReport._from_body,
        RtcpPacketType.RR: reports.ReceiverReport._from_body,
        RtcpPacketType.SDES: sdes.SourceDescription._from_body,
        RtcpPacketType.BYE: bye.Goodbye._from_body,
        RtcpPacketType.RTPFB: rtpfb_decoder,
        RtcpPacketType.PSFB: psfb_decoder,
    }


def decode_compound(data: bytes | bytearray | memoryview) -> tuple[RtcpPacket, ...]:
    """Decode every packet of an RTCP datagram, front to back.

    Raises :class:`DecodeError` for an empty datagram, a version other than
    2, a length running past the datagram, bad padding or a malformed body.
    """
    view = memoryview(data)
    end = len(view)
    if end == 0:
        raise Truncated("RTCP datagram is empty")
    decoders = _decoders()
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < end:
        if end - pos < 4:
            raise Truncated(f"RTCP header truncated: need 4 bytes, have {end - pos}")
        b0, packet_type, words = _HEADER.unpack_from(view, pos)
        if b0 >> 6 != 2:
            raise DecodeError(f"RTCP version must be 2, got {b0 >> 6}")
        stop = pos + 4 + 4 * words
        if stop > end:
            raise Truncated(f"RTCP length of {words} words overruns the datagram ({end - pos - 4} bytes left)")
        body, padding = split_padding(b0, view[pos + 4 : stop])
        count = b0 & 0x1F
        decoder = decoders.get(packet_type)
        if decoder is None:
            packets.append(RawRtcpPacket(packet_type, count, bytes(body), padding))
        else:
            packets.append(decoder(count, body, padding))
        pos = stop
    return tuple(packets)


def encode_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Serialize packets back to back into one datagram."""
    return b"".join(packet.encode() for packet in packets)


def is_reduced_size(packets: tuple[RtcpPacket, ...]) -> bool:
    """Return True unless the datagram starts with SR or RR as RFC 3550 §6.1 requires."""
    return not packets or packets[0].packet_type not in (RtcpPacketType.SR, RtcpPacketType.RR)
