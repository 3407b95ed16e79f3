"""
RTCP feedback messages (RFC 4585 §6): generic NACK, PLI, FIR (RFC 5104) and REMB.

All feedback packets share one layout (RFC 4585 §6.1); FMT sits where the
report count would be and PT says transport (RTPFB=205) or payload-specific
(PSFB=206)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|   FMT   |       PT      |          length               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  SSRC of packet sender                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  SSRC of media source                         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    :            Feedback Control Information (FCI)                 :

Generic NACK (RTPFB FMT=1, §6.2.1), one FCI entry per 17 packets: PID is a
lost sequence number and bit i of BLP marks PID+i+1 lost as well::

    |            PID                |             BLP               |

PLI (PSFB FMT=1, §6.3.1) has no FCI.  FIR (PSFB FMT=4, RFC 5104 §4.3.1) has
one entry per requested source (media source SSRC is unused, 0)::

    |                              SSRC                             |
    | Seq nr.       |    Reserved                                   |

REMB (PSFB FMT=15 "application layer feedback", draft-alvestrand-rmcat-remb
§2.2) carries a bitrate as mantissa * 2^exp for the listed SSRCs::

    |  Unique identifier 'R' 'E' 'M' 'B'                            |
    |  Num SSRC     | BR Exp    |  BR Mantissa                      |
    |   SSRC feedback                                               |
    |  ...                                                          |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

from realtime.errors import DecodeError, LocalProtocolError
from realtime.rtcp.packet import RtcpPacket, RtcpPacketType
from realtime.wire import Reader

_SSRCS = struct.Struct("!II")


@dataclass(frozen=True, slots=True)
class NackItem:
    """One generic NACK FCI entry: ``pid`` lost, plus PID+i+1 for each bit i of ``blp``."""

    pid: int
    blp: int = 0

    def sequence_numbers(self) -> list[int]:
        """Return the lost sequence numbers this entry names, PID first."""
        lost = [self.pid]
        for bit in range(16):
            if self.blp >> bit & 1:
                lost.append((self.pid + bit + 1) & 0xFFFF)
        return lost


def nack_items(lost: Iterable[int]) -> tuple[NackItem, ...]:
    """Return the fewest NACK entries naming every sequence number in ``lost``.

    Numbers are ordered along the 16-bit circle starting at the first one
    given, so a loss run across the 65535 -> 0 wrap packs into one entry.
    """
    seqs = list(dict.fromkeys(s & 0xFFFF for s in lost))
    if not seqs:
        return ()
    first = seqs[0]
    seqs.sort(key=lambda s: (s - first) & 0xFFFF)
    items = []
    pid, blp = seqs[0], 0
    for seq in seqs[1:]:
        distance = (seq - pid) & 0xFFFF
        if distance <= 16:
            blp |= 1 << (distance - 1)
        else:
            items.append(NackItem(pid, blp))
            pid, blp = seq, 0
    items.append(NackItem(pid, blp))
    return tuple(items)


class _Feedback(RtcpPacket):
    """Common header fields of RFC 4585 feedback (sender and media SSRC)."""

    __slots__ = ()
    fmt: int = 0


def _feedback_reader(body: memoryview, what: str) -> tuple[Reader, int, int]:
    reader = Reader(body, what)
    sender, media = _SSRCS.unpack(reader.view(8))
    return reader, sender, media


@dataclass(frozen=True, slots=True)
class GenericNack(_Feedback):
    """RTPFB generic NACK: ``sender_ssrc`` asks ``media_ssrc`` to resend the listed packets."""

    packet_type = RtcpPacketType.RTPFB
    fmt = 1

    sender_ssrc: int
    media_ssrc: int
    items: tuple[NackItem, ...] = ()
    padding: bytes = b""

    @classmethod
    def from_lost(cls, sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> "GenericNack":
        """Build a NACK naming every sequence number in ``lost`` with the fewest entries."""
        return cls(sender_ssrc, media_ssrc, nack_items(lost))

    def lost_sequence_numbers(self) -> list[int]:
        """Return every sequence number the NACK names, in FCI order."""
        return [seq for item in self.items for seq in item.sequence_numbers()]

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "GenericNack":
        reader, sender, media = _feedback_reader(body, "NACK")
        if reader.remaining % 4:
            raise DecodeError(f"NACK FCI of {reader.remaining} bytes is not whole entries")
        items = tuple(NackItem(reader.u16(), reader.u16()) for _ in range(reader.remaining // 4))
        return cls(sender, media, items, padding)

    def _body(self) -> tuple[int, bytes]:
        fci = b"".join(struct.pack("!HH", item.pid, item.blp) for item in self.items)
        return self.fmt, _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + fci


@dataclass(frozen=True, slots=True)
class PictureLossIndication(_Feedback):
    """PSFB PLI: ``sender_ssrc`` lost pictures of ``media_ssrc`` and wants a keyframe."""

    packet_type = RtcpPacketType.PSFB
    fmt = 1

    sender_ssrc: int
    media_ssrc: int
    padding: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "PictureLossIndication":
        reader, sender, media = _feedback_reader(body, "PLI")
        reader.expect_end()
        return cls(sender, media, padding)

    def _body(self) -> tuple[int, bytes]:
        return self.fmt, _SSRCS.pack(self.sender_ssrc, self.media_ssrc)


@dataclass(frozen=True, slots=True)
class FirEntry:
    """One FIR request: the source to refresh and the command sequence number."""

    ssrc: int
    sequence_number: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class FullIntraRequest(_Feedback):
    """PSFB FIR (RFC 5104 §4.3.1): request a decoder refresh point from each listed source."""

    packet_type = RtcpPacketType.PSFB
    fmt = 4

    sender_ssrc: int
    media_ssrc: int = 0
    entries: tuple[FirEntry, ...] = ()
    padding: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "FullIntraRequest":
        reader, sender, media = _feedback_reader(body, "FIR")
        if reader.remaining % 8:
            raise DecodeError(f"FIR FCI of {reader.remaining} bytes is not whole entries")
        entries = []
        while reader.remaining:
            ssrc, word = _SSRCS.unpack(reader.view(8))
            entries.append(FirEntry(ssrc, word >> 24, word & 0xFFFFFF))
        return cls(sender, media, tuple(entries), padding)

    def _body(self) -> tuple[int, bytes]:
        fci = b"".join(
            _SSRCS.pack(e.ssrc, (e.sequence_number & 0xFF) << 24 | e.reserved) for e in self.entries
        )
        return self.fmt, _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + fci


@dataclass(frozen=True, slots=True)
class ReceiverEstimatedMaxBitrate(_Feedback):
    """PSFB AFB "REMB": the receiver's estimate of the total bitrate for ``ssrcs``.

    The bitrate is kept as sent (``bitrate_mantissa << bitrate_exponent``)
    so that re-encoding is byte-exact; :meth:`from_bitrate` picks the form.
    """

    packet_type = RtcpPacketType.PSFB
    fmt = 15

    sender_ssrc: int
    bitrate_exponent: int
    bitrate_mantissa: int
    ssrcs: tuple[int, ...] = ()
    media_ssrc: int = 0
    padding: bytes = b""

    @property
    def bitrate(self) -> int:
        """Return the estimate in bits per second."""
        return self.bitrate_mantissa << self.bitrate_exponent

    @classmethod
    def from_bitrate(cls, sender_ssrc: int, bitrate: int, ssrcs: Iterable[int]) -> "ReceiverEstimatedMaxBitrate":
        """Build a REMB with the smallest exponent whose 18-bit mantissa holds ``bitrate``."""
        exponent = 0
        while bitrate >> exponent > 0x3FFFF:
            exponent += 1
        if exponent > 63:
            raise LocalProtocolError("bitrate too large for REMB")
        return cls(sender_ssrc, exponent, bitrate >> exponent, tuple(ssrcs))

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "ReceiverEstimatedMaxBitrate":
        reader, sender, media = _feedback_reader(body, "REMB")
        reader.skip(4)  # 'REMB', checked by the dispatcher
        num = reader.u8()
        word = reader.u24()
        ssrcs = tuple(reader.u32() for _ in range(num))
        reader.expect_end()
        return cls(sender, word >> 18, word & 0x3FFFF, ssrcs, media, padding)

    def _body(self) -> tuple[int, bytes]:
        if len(self.ssrcs) > 255 or not 0 <= self.bitrate_exponent <= 63:
            raise LocalProtocolError("REMB holds at most 255 SSRCs and a 6-bit exponent")
        if not 0 <= self.bitrate_mantissa <= 0x3FFFF:
            raise LocalProtocolError("REMB mantissa is 18 bits")
        out = _SSRCS.pack(self.sender_ssrc, self.media_ssrc) + b"REMB"
        out += bytes((len(self.ssrcs),))
        out += (self.bitrate_exponent << 18 | self.bitrate_mantissa).to_bytes(3, "big")
        out += struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        return self.fmt, out
