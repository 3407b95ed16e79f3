"""
RFC 7983 demultiplexing: what kind of packet arrived on a shared port.

WebRTC puts STUN, DTLS, SRTP/SRTCP (and, on a TURN port, ChannelData) on one
5-tuple.  RFC 7983 §7 (updating RFC 5764 §5.1.2) tells them apart by the
first byte::

                 +----------------+
                 |        [0..3] -+--> forward to STUN
                 |                |
                 |      [16..19] -+--> forward to ZRTP
                 |                |
     packet -->  |      [20..63] -+--> forward to DTLS
                 |                |
                 |      [64..79] -+--> forward to TURN Channel
                 |                |
                 |    [128..191] -+--> forward to RTP/RTCP
                 +----------------+

Among the RTP/RTCP range, RFC 5761 §4 separates RTCP by the payload-type
byte: RTCP packet types 192..223 (SR 200, RR 201, ... ) land in 64..95 once
the marker bit is masked off.
"""

from __future__ import annotations

from enum import IntEnum


class PacketKind(IntEnum):
    """The classes of RFC 7983 §7, with RTP split from RTCP (RFC 5761 §4)."""

    UNKNOWN = 0
    STUN = 1
    ZRTP = 2
    DTLS = 3
    CHANNEL_DATA = 4
    RTP = 5
    RTCP = 6


def _build_table() -> tuple[PacketKind, ...]:
    table = [PacketKind.UNKNOWN] * 256
    for b in range(0, 4):
        table[b] = PacketKind.STUN
    for b in range(16, 20):
        table[b] = PacketKind.ZRTP
    for b in range(20, 64):
        table[b] = PacketKind.DTLS
    for b in range(64, 80):
        table[b] = PacketKind.CHANNEL_DATA
    for b in range(128, 192):
        table[b] = PacketKind.RTP
    return tuple(table)


_FIRST_BYTE = _build_table()


def classify(data: bytes | bytearray | memoryview) -> PacketKind:
    """Return the :class:`PacketKind` of a datagram from its first two bytes.

    Empty input is :attr:`PacketKind.UNKNOWN`.  One table lookup: this runs for
    every packet on the media port.
    """
    if not data:
        return PacketKind.UNKNOWN
    kind = _FIRST_BYTE[data[0]]
    if kind is PacketKind.RTP and len(data) > 1 and 64 <= (data[1] & 0x7F) <= 95:
        return PacketKind.RTCP
    return kind
