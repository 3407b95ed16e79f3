"""
RTP payloads back into what a decoder takes: Opus packets, VP8 frames, H.264 access units.

An SFU never needs this (it forwards RTP as it came); an adapter that
decodes does.  Each payload format puts a codec's units into RTP its own way:

* **Opus** (RFC 7587 §4.2): one Opus packet per RTP payload, as is.
* **VP8** (RFC 7741 §4): each payload starts with a *payload descriptor*
  (redrawn in :mod:`realtime.media.vp8`), then a piece of the frame::

      |X|R|N|S|R| PID |  S=1 and PID=0: this payload starts a frame
      |I|L|T|K| RSV   |  if X; then PictureID (1-2 octets) if I,
                         TL0PICIDX if L, TID/KEYIDX if T or K
      ... VP8 frame data; the frame's last packet has the RTP marker bit

  The first octet of a frame says its type (RFC 6386 §9.1): bit 0 clear
  means a key frame.
* **H.264** (RFC 6184 §5.6-5.8): the NAL unit type in the first octet says
  how the payload carries NAL units::

      1-23   one NAL unit, whole
      24     STAP-A: | 24 | size(16) NAL | size(16) NAL | ...
      28     FU-A:   | FU indicator (F NRI 28) | FU header (S E R type) | fragment |
                     the NAL header is F NRI of the indicator + type of the header

  and an access unit ends with the marker bit.  We hand the decoder Annex B
  (ITU-T H.264 Annex B: each NAL unit after ``00 00 00 01``); type 5 is an IDR
  (key) picture.

:class:`FrameAssembler` collects one frame's packets (same RTP timestamp),
in any order, and hands the frame over at its marker bit when no packet is
missing; a frame with a hole is dropped and counted, and so is anything
malformed (hostile bytes: drop and count, never raise).
"""

from __future__ import annotations

from collections import Counter

from realtime.errors import DecodeError
from realtime.rtp.packet import padding_size, payload_offset

__all__ = ["FrameAssembler", "rtp_payload", "vp8_payload", "h264_nal_units"]

#: the most packets one frame may have (a 1080p key frame is ~200)
MAX_FRAME_PACKETS = 1024

START_CODE = b"\x00\x00\x00\x01"

STAP_A, FU_A = 24, 28
IDR = 5


def rtp_payload(packet: bytes) -> tuple[int, int, bool, bytes]:
    """Return ``(sequence number, timestamp, marker, payload)`` of an RTP packet.

    :raises DecodeError: the header is truncated or the padding overruns it.
    """
    start = payload_offset(packet)
    end = len(packet) - (padding_size(packet) if len(packet) > start else 0)
    if end < start:
        raise DecodeError("RTP padding overruns the payload")
    sequence = packet[2] << 8 | packet[3]
    timestamp = int.from_bytes(packet[4:8], "big")
    return sequence, timestamp, bool(packet[1] & 0x80), packet[start:end]


def vp8_payload(payload: bytes) -> tuple[bool, bytes]:
    """Return ``(starts a frame, VP8 data)`` of one VP8 RTP payload (RFC 7741 §4.2).

    :raises DecodeError: the descriptor is longer than the payload.
    """
    if not payload:
        raise DecodeError("empty VP8 payload")
    first = payload[0]
    pos = 1
    if first & 0x80:                      # X: extension octet
        if len(payload) < 2:
            raise DecodeError("VP8 descriptor truncated")
        x = payload[1]
        pos = 2
        if x & 0x80:                      # I: PictureID, 7 or 15 bits
            if len(payload) <= pos:
                raise DecodeError("VP8 PictureID truncated")
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:                      # L: TL0PICIDX
            pos += 1
        if x & 0x30:                      # T or K: TID/Y/KEYIDX
            pos += 1
    if pos >= len(payload):
        raise DecodeError("VP8 descriptor leaves no frame data")
    starts = bool(first & 0x10) and first & 0x07 == 0
    return starts, payload[pos:]


def h264_nal_units(payload: bytes) -> tuple[bool | None, list[bytes]]:
    """Return ``(FU-A start?, NAL units or fragment)`` of one H.264 RTP payload (RFC 6184).

    For a single NAL unit or a STAP-A the flag is None and the list holds
    whole NAL units; for an FU-A it says whether this is the first fragment
    (whose list item begins with the rebuilt NAL header) and the list holds
    the fragment.

    :raises DecodeError: a truncated aggregate or fragment, or a type we do not take.
    """
    if not payload:
        raise DecodeError("empty H.264 payload")
    kind = payload[0] & 0x1F
    if 1 <= kind <= 23:
        return None, [payload]
    if kind == STAP_A:
        units, pos = [], 1
        while pos < len(payload):
            if pos + 2 > len(payload):
                raise DecodeError("STAP-A size truncated")
            size = payload[pos] << 8 | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > len(payload):
                raise DecodeError("STAP-A unit overruns the payload")
            units.append(payload[pos:pos + size])
            pos += size
        return None, units
    if kind == FU_A:
        if len(payload) < 3:
            raise DecodeError("FU-A truncated")
        header = payload[1]
        if header & 0x80:
            nal_header = bytes([payload[0] & 0xE0 | header & 0x1F])
            return True, [nal_header + payload[2:]]
        return False, [payload[2:]]
    raise DecodeError(f"H.264 packetization type {kind} is not supported")


class FrameAssembler:
    """Collect RTP packets into whole frames of one codec (``opus``, ``vp8``, ``h264``).

    :meth:`push` takes one RTP packet and returns ``(timestamp, frame, keyframe)``
    when it completes a frame, else None.  ``drops`` counts what was thrown
    away by reason (``malformed``, ``incomplete``, ``late``, ``too-long``).
    """

    def __init__(self, codec: str) -> None:
        self.codec = codec.lower()
        if self.codec not in ("opus", "vp8", "h264"):
            raise ValueError(f"no depacketizer for {codec}")
        self.drops: Counter[str] = Counter()
        self._timestamp: int | None = None
        self._packets: dict[int, tuple[bool, bytes]] = {}
        self._done: int | None = None      # timestamp of the last frame handed over

    def push(self, packet: bytes) -> tuple[int, bytes, bool] | None:
        """Take one RTP packet; return a completed ``(timestamp, frame, keyframe)`` or None."""
        try:
            sequence, timestamp, marker, payload = rtp_payload(packet)
        except DecodeError:
            self.drops["malformed"] += 1
            return None
        if self.codec == "opus":
            return (timestamp, payload, False) if payload else None
        if timestamp == self._done or (self._done is not None
                                       and (timestamp - self._done) & 0x80000000):
            self.drops["late"] += 1         # a frame we already handed over, or older
            return None
        if timestamp != self._timestamp:
            if self._packets:
                self.drops["incomplete"] += 1
            self._timestamp, self._packets = timestamp, {}
        if len(self._packets) >= MAX_FRAME_PACKETS:
            self.drops["too-long"] += 1
            self._packets = {}
            return None
        self._packets[sequence] = (marker, payload)
        if not marker:
            return None
        return self._complete(sequence)

    def _complete(self, last: int) -> tuple[int, bytes, bool] | None:
        """Hand over the frame ending at sequence ``last`` if it has no hole."""
        packets, timestamp = self._packets, self._timestamp
        assert timestamp is not None
        self._packets = {}
        first = max(packets, key=lambda s: (last - s) & 0xFFFF)   # the earliest before last
        count = ((last - first) & 0xFFFF) + 1
        if count != len(packets):
            self.drops["incomplete"] += 1
            return None
        ordered = [packets[(first + i) & 0xFFFF][1] for i in range(count)]
        try:
            frame, keyframe = self._depacketize(ordered)
        except DecodeError:
            self.drops["malformed"] += 1
            return None
        if frame is None:
            self.drops["incomplete"] += 1
            return None
        self._done = timestamp
        return timestamp, frame, keyframe

    def _depacketize(self, payloads: list[bytes]) -> tuple[bytes | None, bool]:
        if self.codec == "vp8":
            pieces = [vp8_payload(p) for p in payloads]
            if not pieces[0][0]:
                return None, False           # the frame's first packet is missing
            data = b"".join(piece for _, piece in pieces)
            return data, not data[0] & 0x01
        out = bytearray()
        keyframe = False
        in_fragment = False
        for payload in payloads:
            start, units = h264_nal_units(payload)
            if start is None:
                for unit in units:
                    out += START_CODE + unit
                    keyframe |= unit[0] & 0x1F == IDR
            elif start:
                out += START_CODE + units[0]
                keyframe |= units[0][0] & 0x1F == IDR
                in_fragment = True
            elif in_fragment:
                out += units[0]
            else:
                return None, False            # a fragment without its start
        return bytes(out), keyframe
