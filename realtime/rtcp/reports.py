"""
Sender and receiver reports (RFC 3550 §6.4.1 SR, §6.4.2 RR) and their report blocks.

::

            0                   1                   2                   3
            0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    header |V=2|P|    RC   |   PT=SR=200   |             length            |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                         SSRC of sender                        |
           +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    sender |              NTP timestamp, most significant word             |
    info   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   (SR     |             NTP timestamp, least significant word             |
    only)  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                         RTP timestamp                         |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                     sender's packet count                     |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                      sender's octet count                     |
           +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    report |                 SSRC_1 (SSRC of first source)                 |
    block  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
      1    | fraction lost |       cumulative number of packets lost       |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |           extended highest sequence number received           |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                      interarrival jitter                      |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                         last SR (LSR)                         |
           +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
           |                   delay since last SR (DLSR)                  |
           +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
           |                  profile-specific extensions                  |

An RR (PT=201) is the same without the sender info.  The cumulative loss is
a *signed* 24-bit number (duplicates can make it negative, §6.4.1).  Bytes
after the report blocks are the profile-specific extension, kept raw.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from realtime.errors import LocalProtocolError
from realtime.rtcp.packet import RtcpPacket, RtcpPacketType
from realtime.wire import Reader

_BLOCK = struct.Struct("!IB3sIIII")
_SENDER_INFO = struct.Struct("!IQIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report about the source ``ssrc`` (24 bytes)."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int

    @classmethod
    def read(cls, reader: Reader) -> "ReportBlock":
        """Read a block from ``reader`` (raises ``Truncated`` when short)."""
        data = reader.view(24)
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack(data)
        return cls(ssrc, fraction, int.from_bytes(lost, "big", signed=True), highest, jitter, lsr, dlsr)

    def encode(self) -> bytes:
        """Serialize the 24-byte block; cumulative loss must fit signed 24 bits."""
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise LocalProtocolError("cumulative_lost must fit a signed 24-bit field")
        return _BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            self.cumulative_lost.to_bytes(3, "big", signed=True),
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _read_blocks(reader: Reader, count: int) -> tuple[ReportBlock, ...]:
    reader.what = "report block"
    return tuple(ReportBlock.read(reader) for _ in range(count))


@dataclass(frozen=True, slots=True)
class SenderReport(RtcpPacket):
    """An SR: what ``ssrc`` sent (NTP/RTP timestamps, counts) plus report blocks."""

    packet_type = RtcpPacketType.SR

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""
    padding: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "SenderReport":
        reader = Reader(body, "SR sender info")
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack(reader.view(24))
        reports = _read_blocks(reader, count)
        return cls(ssrc, ntp, rtp, packets, octets, reports, reader.rest(), padding)

    def _body(self) -> tuple[int, bytes]:
        info = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        blocks = b"".join(block.encode() for block in self.reports)
        return len(self.reports), info + blocks + self.profile_extension


@dataclass(frozen=True, slots=True)
class ReceiverReport(RtcpPacket):
    """An RR: reception report blocks sent by ``ssrc``, a receiver that sends no media."""

    packet_type = RtcpPacketType.RR

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    profile_extension: bytes = b""
    padding: bytes = b""

    @classmethod
    def _from_body(cls, count: int, body: memoryview, padding: bytes) -> "ReceiverReport":
        reader = Reader(body, "RR")
        ssrc = reader.u32()
        reports = _read_blocks(reader, count)
        return cls(ssrc, reports, reader.rest(), padding)

    def _body(self) -> tuple[int, bytes]:
        blocks = b"".join(block.encode() for block in self.reports)
        return len(self.reports), struct.pack("!I", self.ssrc) + blocks + self.profile_extension
