"""
The repair path of a published track: RTX packets (RFC 4588) turned back into originals.

A publisher answers the SFU's NACKs on a separate RTX stream (RFC 4588 §4):
another SSRC, another payload type, the original sequence number (OSN) at the
head of the payload.  Its route (realtime/sfu/routing.py) leads here, not to
the track; what comes out goes through the track as a retransmission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realtime.errors import Truncated
from realtime.rtp.packet import HEADER_LENGTH
from realtime.rtp.rtx import unwrap_rtx
from realtime.sfu.stream import PublishedStream

if TYPE_CHECKING:  # pragma: no cover
    from realtime.sfu.track import PublishedTrack

__all__ = ["RtxRepair"]


class RtxRepair:
    """Turn a publisher's RTX packets (RFC 4588 §4) back into the packets they repair.

    The route of an RTX SSRC (signalled with ``a=ssrc-group:FID`` or learned
    from a RepairedRtpStreamId) points here instead of at the track.  The
    packet the SFU's upstream NACK asked for arrives as::

        RTX:      | V P X CC M PT=rtx | seq (rtx)  | ts | SSRC (rtx) | ext | OSN | payload |
        repaired: | V P X CC M PT=apt | seq = OSN  | ts | SSRC       | ext |       payload |

    and goes through :meth:`PublishedTrack.receive_rtp` as a retransmission:
    it fills the gap in the retransmission buffer and, when still in time,
    reaches subscribers under the sequence number they expect.  RTX packets
    without an OSN (Chromium's padding-only bandwidth probes) are dropped.

    :param track: the repaired track.
    :param apt: RTX payload type -> the media payload type it repairs.
    """

    __slots__ = ("track", "apt", "probes")

    def __init__(self, track: "PublishedTrack", apt: dict[int, int]) -> None:
        self.track = track
        self.apt = apt
        self.probes = 0

    def receive_rtp(self, packet: bytes, stream: PublishedStream, now: float) -> None:
        """Unwrap an RTX packet of ``stream``'s repair stream and hand the original to the track.

        :raises DecodeError: the header is truncated or its extension block malformed.
        """
        if len(packet) < HEADER_LENGTH:
            raise Truncated(f"RTP header truncated: need 12 bytes, have {len(packet)}")
        original = unwrap_rtx(packet, self.apt, stream.ssrc)
        if original is None:
            self.probes += 1
            return
        self.track.receive_rtp(bytes(original), stream, now, retransmission=True)
