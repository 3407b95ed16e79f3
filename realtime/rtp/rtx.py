"""
RTP retransmission payload format (RFC 4588), SSRC-multiplexed as WebRTC uses it.

A retransmission travels on its own SSRC and payload type (``a=rtpmap:97
rtx/90000``, ``a=fmtp:97 apt=96``) with its own sequence numbers.  The
original sequence number (OSN) leads the payload (§4)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         RTP Header                            |
    |  (rtx SSRC, rtx PT, rtx seq; original timestamp and marker)   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |            OSN                |                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
    |                  Original RTP Packet Payload                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The original CSRCs and header extensions are carried over unchanged.
Senders also use the RTX stream for bandwidth probes: packets with the P bit
and no payload at all (not even an OSN), see :func:`is_padding_only`.

:func:`encapsulate_rtx` and :func:`decapsulate_rtx` work on
:class:`RtpPacket` values; :func:`wrap_rtx` and :func:`unwrap_rtx` do the
same on the datagram's bytes for the SFU's per-packet path: the OSN is two
octets inserted (or removed) at the payload offset, and the header fields
change at their RFC 3550 §5.1 offsets::

    original: | V P X CC | M PT=96  | seq = 72       | ts | SSRC S     | CSRCs, ext |       payload | pad |
    RTX:      | V P X CC | M PT=97  | seq = rtx seq  | ts | SSRC R     | CSRCs, ext | 72 |  payload | pad |
"""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Mapping

from realtime.errors import DecodeError
from realtime.rtp.packet import (
    MARKER_BIT,
    PADDING_BIT,
    PAYLOAD_TYPE_MASK,
    SEQUENCE_NUMBER_OFFSET,
    SSRC_OFFSET,
    RtpPacket,
    payload_offset,
)

OSN_LENGTH = 2
"""Octets of the original sequence number that leads an RTX payload (§4)."""

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def encapsulate_rtx(
    packet: RtpPacket, rtx_payload_type: int, rtx_ssrc: int, rtx_sequence_number: int
) -> RtpPacket:
    """Wrap ``packet`` for retransmission: new SSRC/PT/seq, OSN prepended to the payload."""
    return replace(
        packet,
        payload_type=rtx_payload_type,
        ssrc=rtx_ssrc,
        sequence_number=rtx_sequence_number,
        payload=packet.sequence_number.to_bytes(2, "big") + packet.payload,
    )


def decapsulate_rtx(rtx: RtpPacket, payload_type: int, ssrc: int) -> RtpPacket:
    """Recover the original packet from an RTX packet (RFC 4588 §4); padding is dropped.

    An RTX payload shorter than the 2-byte OSN raises :class:`DecodeError`.
    """
    if len(rtx.payload) < 2:
        raise DecodeError("RTX payload has no original sequence number")
    return replace(
        rtx,
        payload_type=payload_type,
        ssrc=ssrc,
        sequence_number=rtx.payload[0] << 8 | rtx.payload[1],
        payload=rtx.payload[2:],
        padding_size=0,
        padding_data=b"",
    )


def original_sequence_number(rtx: RtpPacket) -> int:
    """Return the OSN of an RTX packet."""
    if len(rtx.payload) < 2:
        raise DecodeError("RTX payload has no original sequence number")
    return rtx.payload[0] << 8 | rtx.payload[1]


def is_padding_only(packet: RtpPacket) -> bool:
    """Return True for a probe: padding present and no payload (nothing to repair)."""
    return packet.padding_size > 0 and not packet.payload


# --- the same on the datagram's bytes (the SFU's per-packet path) -------------------------


def wrap_rtx(packet: bytearray, rtx_payload_type: int, rtx_ssrc: int, rtx_sequence_number: int) -> None:
    """Turn ``packet`` into its RTX form in place: its sequence number becomes the OSN.

    The OSN is inserted at the payload offset; PT, sequence number and SSRC
    are overwritten; marker, timestamp, CSRCs, extensions and padding stay.

    :raises DecodeError: the header or its extension block is truncated.
    """
    offset = payload_offset(packet)
    packet[offset:offset] = packet[SEQUENCE_NUMBER_OFFSET : SEQUENCE_NUMBER_OFFSET + OSN_LENGTH]
    packet[1] = (packet[1] & MARKER_BIT) | rtx_payload_type
    _U16.pack_into(packet, SEQUENCE_NUMBER_OFFSET, rtx_sequence_number)
    _U32.pack_into(packet, SSRC_OFFSET, rtx_ssrc)


def unwrap_rtx(packet: bytes | bytearray, apt: Mapping[int, int], ssrc: int) -> bytearray | None:
    """Return the packet an RTX packet repairs, or None when there is nothing to repair.

    ``apt`` maps RTX payload types to the payload type each repairs (SDP
    ``a=fmtp:97 apt=96``), ``ssrc`` is the original stream's SSRC.  None:
    the payload type is not an RTX one of ``apt``, or the payload is shorter
    than an OSN (a padding-only probe).  The RTX padding is removed and the P
    bit cleared: the padding belonged to the RTX packet, not the original.

    :raises DecodeError: the header or its extension block is truncated.
    """
    offset = payload_offset(packet)
    end = len(packet) - (packet[-1] if packet[0] & PADDING_BIT else 0)
    payload_type = apt.get(packet[1] & PAYLOAD_TYPE_MASK)
    if end - offset < OSN_LENGTH or payload_type is None:
        return None
    original = bytearray(packet[:offset])
    original += packet[offset + OSN_LENGTH : end]
    original[0] &= ~PADDING_BIT
    original[1] = (original[1] & MARKER_BIT) | payload_type
    _U16.pack_into(original, SEQUENCE_NUMBER_OFFSET, _U16.unpack_from(packet, offset)[0])
    _U32.pack_into(original, SSRC_OFFSET, ssrc)
    return original
