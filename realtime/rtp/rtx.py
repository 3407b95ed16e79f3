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
"""

from __future__ import annotations

from dataclasses import replace

from realtime.errors import DecodeError
from realtime.rtp.packet import RtpPacket


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
