"""
Keyframes: spotting one in an RTP payload, and asking a publisher for one.

An SFU may start forwarding a video stream to a subscriber, or switch a
subscriber to another simulcast layer, only at a point the decoder can start
from.  The payload formats say where that is; this module reads just enough
of each to answer "does this packet start a keyframe?"  Detectors take the
RTP payload (no RTP header) and raise only :class:`~realtime.errors.Truncated`
for a descriptor cut short.

VP8 (RFC 7741 §4.2, §4.3): a payload descriptor, then, in the first packet
of a frame (S=1, PID=0), the payload header whose P bit is 0 on key frames::

      0 1 2 3 4 5 6 7
     +-+-+-+-+-+-+-+-+
     |X|R|N|S|R| PID |        S: start of partition, PID: partition index
     +-+-+-+-+-+-+-+-+
  X: |I|L|T|K| RSV   |
     +-+-+-+-+-+-+-+-+
  I: |M| PictureID   |        (a second PictureID byte when M=1)
     +-+-+-+-+-+-+-+-+
  L: |   TL0PICIDX   |
     +-+-+-+-+-+-+-+-+
T/K: |TID|Y| KEYIDX  |
     +-+-+-+-+-+-+-+-+
     |Size0|H| VER |P|        payload header, P=0: key frame
     +-+-+-+-+-+-+-+-+

VP9 (RFC 9628 §4.2): the first byte ``|I|P|L|F|B|E|V|Z|``; a key frame is
the start of a frame (B=1) that is not inter-picture predicted (P=0) in the
base spatial layer (SID=0 of the layer byte ``|TID|U|SID|D|`` when L=1,
which follows the PictureID when I=1).

H.264 (RFC 6184 §5.2-5.8): the NAL unit header ``|F|NRI| Type |``; an IDR
slice (type 5) or a sequence parameter set (type 7, which precedes every IDR
from WebRTC encoders) starts a key frame, sent alone (types 1-23), inside an
aggregation packet (STAP-A 24, STAP-B 25, MTAP16 26, MTAP24 27) or as the
first fragment (S bit) of a fragmentation unit (FU-A 28, FU-B 29)::

    STAP-A: | hdr 24 | size | NALU 1 | size | NALU 2 | ...
    FU-A:   | indicator 28 | S|E|R| Type | fragment ... |

AV1 (AV1 RTP payload specification §4.4): the aggregation header
``|Z|Y| W |N|-|-|-|``; N=1 marks the first packet of a coded video sequence.

:class:`KeyframeRequester` aggregates PLI/FIR wishes for one published
stream (RFC 4585 §6.3.1, RFC 5104 §4.3.1): many subscribers asking at once
produce one upstream request, at most one per ``min_interval``::

    subscriber PLIs:   x  x   x         x                 x
    upstream:          P---------(300 ms)P          keyframe   P
                       |<- outstanding: no resend until retry_interval ->|
"""

from __future__ import annotations

from typing import Callable

from realtime.errors import Truncated

__all__ = [
    "KeyframeDetector",
    "KeyframeRequester",
    "av1_keyframe",
    "h264_keyframe",
    "keyframe_detector",
    "packet_starts_keyframe",
    "vp8_keyframe",
    "vp9_keyframe",
]

Payload = bytes | bytearray | memoryview
KeyframeDetector = Callable[[Payload], bool]


def vp8_keyframe(payload: Payload) -> bool:
    """Return True if a VP8 payload (RFC 7741) starts a key frame."""
    n = len(payload)
    if n < 1:
        raise Truncated("VP8 payload descriptor is empty")
    b0 = payload[0]
    if not b0 & 0x10 or b0 & 0x07:  # S=0 or PID != 0: not the first packet of a frame
        return False
    pos = 1
    if b0 & 0x80:
        if n < 2:
            raise Truncated("VP8 extension byte missing")
        x = payload[1]
        pos = 2
        if x & 0x80:
            if n <= pos:
                raise Truncated("VP8 PictureID missing")
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:
            pos += 1
        if x & 0x30:
            pos += 1
    if n <= pos:
        raise Truncated("VP8 payload header missing")
    return not payload[pos] & 0x01


def vp9_keyframe(payload: Payload) -> bool:
    """Return True if a VP9 payload (RFC 9628) starts a key frame of the base spatial layer."""
    n = len(payload)
    if n < 1:
        raise Truncated("VP9 payload descriptor is empty")
    b0 = payload[0]
    if b0 & 0x40 or not b0 & 0x08:  # P=1 (predicted) or B=0 (not the start of a frame)
        return False
    if not b0 & 0x20:  # no layer indices: single spatial layer
        return True
    pos = 1
    if b0 & 0x80:
        if n <= pos:
            raise Truncated("VP9 PictureID missing")
        pos += 2 if payload[pos] & 0x80 else 1
    if n <= pos:
        raise Truncated("VP9 layer indices missing")
    return (payload[pos] >> 1) & 0x07 == 0


_H264_KEY_NALS = (5, 7)  # IDR slice, sequence parameter set


def _aggregated_key(payload: Payload, pos: int, skip: int, what: str) -> bool:
    """Walk the units of a STAP/MTAP: 16-bit size, ``skip`` header bytes, the NAL unit."""
    n = len(payload)
    while pos < n:
        if pos + 2 > n:
            raise Truncated(f"H.264 {what} unit size truncated")
        size = payload[pos] << 8 | payload[pos + 1]
        start = pos + 2 + skip
        if size < skip + 1 or pos + 2 + size > n:
            raise Truncated(f"H.264 {what} unit overruns the packet")
        if payload[start] & 0x1F in _H264_KEY_NALS:
            return True
        pos += 2 + size
    return False


def h264_keyframe(payload: Payload) -> bool:
    """Return True if an H.264 payload (RFC 6184) carries an IDR or SPS or starts an IDR."""
    n = len(payload)
    if n < 1:
        raise Truncated("H.264 payload is empty")
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return nal_type in _H264_KEY_NALS
    if nal_type == 24:
        return _aggregated_key(payload, 1, 0, "STAP-A")
    if nal_type == 25:
        return _aggregated_key(payload, 3, 0, "STAP-B")
    if nal_type == 26:
        return _aggregated_key(payload, 3, 3, "MTAP16")
    if nal_type == 27:
        return _aggregated_key(payload, 3, 4, "MTAP24")
    if nal_type in (28, 29):
        if n < 2:
            raise Truncated("H.264 FU header missing")
        fu = payload[1]
        return bool(fu & 0x80) and fu & 0x1F in _H264_KEY_NALS
    return False


def av1_keyframe(payload: Payload) -> bool:
    """Return True if an AV1 payload's aggregation header has N=1 (a new coded video sequence)."""
    if len(payload) < 1:
        raise Truncated("AV1 aggregation header missing")
    return bool(payload[0] & 0x08)


_DETECTORS: dict[str, KeyframeDetector] = {
    "VP8": vp8_keyframe,
    "VP9": vp9_keyframe,
    "H264": h264_keyframe,
    "AV1": av1_keyframe,
}


def keyframe_detector(encoding_name: str) -> KeyframeDetector | None:
    """Return the detector for an ``a=rtpmap`` encoding name (case-insensitive), or None.

    Audio codecs and unknown video codecs have no detector: every packet is
    a valid starting point for the former, and the latter cannot be switched.
    """
    return _DETECTORS.get(encoding_name.upper())


def packet_starts_keyframe(
    packet: Payload, detector: KeyframeDetector, payload_offset: int
) -> bool:
    """Run ``detector`` on the payload of an RTP ``packet`` (padding excluded); empty is False."""
    end = len(packet)
    if packet[0] & 0x20:
        end -= packet[end - 1]
    if end <= payload_offset:
        return False
    return detector(memoryview(packet)[payload_offset:end])


class KeyframeRequester:
    """Aggregate and debounce keyframe requests for one published stream.

    Subscribers' PLI/FIR, new subscriptions and layer switches call
    :meth:`request`; :meth:`due` says when an upstream PLI or FIR should be
    sent.  A request is sent at once unless one went out less than
    ``min_interval`` ago; while a request is outstanding (sent, no key frame
    seen since) it is repeated only every ``retry_interval``.

    :ivar fir_sequence_number: the RFC 5104 §4.3.1.2 command sequence
        number of the latest request; repeats of an outstanding request keep it.
    """

    __slots__ = (
        "min_interval",
        "retry_interval",
        "wanted",
        "requested_at",
        "outstanding",
        "last_sent",
        "last_keyframe",
        "fir_sequence_number",
        "requests",
        "sent",
        "keyframes",
    )

    def __init__(self, min_interval: float = 0.3, retry_interval: float = 1.0) -> None:
        self.min_interval = min_interval
        self.retry_interval = retry_interval
        self.wanted = False
        self.requested_at = 0.0
        self.outstanding = False
        self.last_sent: float | None = None
        self.last_keyframe: float | None = None
        self.fir_sequence_number = 0
        self.requests = 0
        self.sent = 0
        self.keyframes = 0

    def request(self, now: float) -> None:
        """Note that somebody needs a key frame of this stream."""
        self.requests += 1
        if not self.wanted:
            self.wanted = True
            self.requested_at = now

    def keyframe_received(self, now: float) -> None:
        """Note that the publisher sent a key frame: every pending wish is satisfied."""
        self.keyframes += 1
        self.last_keyframe = now
        self.wanted = False
        self.outstanding = False

    def get_timer(self) -> float | None:
        """Return when the next upstream request may go out, or None if nothing is wanted."""
        if not self.wanted:
            return None
        if self.last_sent is None:
            return self.requested_at
        if self.outstanding:
            return self.last_sent + self.retry_interval
        return max(self.requested_at, self.last_sent + self.min_interval)

    def due(self, now: float) -> bool:
        """Return True (and record the send) if an upstream PLI/FIR should be sent now."""
        deadline = self.get_timer()
        if deadline is None or deadline > now:
            return False
        if not self.outstanding:
            self.fir_sequence_number = (self.fir_sequence_number + 1) & 0xFF
        self.outstanding = True
        self.last_sent = now
        self.sent += 1
        return True
