"""
One RTP stream a publisher sends (one SSRC, one simulcast layer): what its subscribers share.

Each subscriber's :class:`~realtime.sfu.forwarder.Forwarder` rewrites the
stream's packets into its own sequence space; the stream keeps what is common to
all of them, once: the retransmission buffer the NACK shield answers from
(:mod:`realtime.media.nack`) and the key frame detection the layer switches and
the subscribers' first frames wait on (:mod:`realtime.media.keyframes`).
"""

from __future__ import annotations

from realtime.errors import DecodeError, Truncated
from realtime.media.keyframes import KeyframeDetector, packet_starts_keyframe
from realtime.media.nack import RetransmissionBuffer
from realtime.rtp.packet import HEADER_LENGTH, payload_offset, sequence_number

__all__ = ["PublishedStream"]


class PublishedStream:
    """One RTP stream a publisher sends (one SSRC; one simulcast layer): what its subscribers share.

    :param ssrc: the publisher's SSRC.
    :param clock_rate: RTP timestamp units per second.
    :param detector: key frame detector of the codec, None for audio.
    :param rid: the simulcast layer name, if any.
    """

    __slots__ = (
        "ssrc",
        "clock_rate",
        "detector",
        "rid",
        "buffer",
        "packets",
        "keyframes",
        "malformed",
    )

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        detector: KeyframeDetector | None = None,
        rid: str | None = None,
        buffer_capacity: int = 1024,
    ) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.detector = detector
        self.rid = rid
        self.buffer = RetransmissionBuffer(buffer_capacity)
        self.packets = 0
        self.keyframes = 0
        self.malformed = 0

    def receive(self, packet: bytes) -> bool:
        """Store a (decrypted) packet for retransmission; return True if it starts a key frame.

        A datagram too short for its RTP header raises :class:`DecodeError`;
        a malformed payload descriptor is counted in :attr:`malformed` and
        treated as "not a key frame".
        """
        if len(packet) < HEADER_LENGTH:
            raise Truncated(f"RTP header truncated: need 12 bytes, have {len(packet)}")
        self.buffer.store(sequence_number(packet), packet)
        self.packets += 1
        detector = self.detector
        if detector is None:
            return False
        offset = payload_offset(packet)
        try:
            key = packet_starts_keyframe(packet, detector, offset)
        except DecodeError:
            self.malformed += 1
            return False
        if key:
            self.keyframes += 1
        return key
