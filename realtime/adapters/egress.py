"""
``location: "remote"``: a published track's RTP, turned into bounded work for a decoder.

An egress adapter subscribes to a track inside the SFU like a local
subscriber, without a PeerConnection: :class:`EgressTap` stands in the
track's subscription list (as :class:`realtime.cluster.pulls.RelayFanout`
does), so :meth:`PublishedTrack.receive_rtp <realtime.sfu.track.PublishedTrack.receive_rtp>`
hands it every packet with no extra lookup::

    publisher ─SRTP─> PublishedTrack.receive_rtp ──> subscribers' Forwarders
                                                └──> EgressTap.send_rtp
                                                       │ FrameAssembler: Opus packets,
                                                       │ whole VP8/H.264 frames
                                                       v
                                                     pending (at most `limit` units)
                                                       │ take_work(): a batch for the
                                                       v worker thread (decode, PCM/JPEG)
                                                     the WebSocket (Packet messages)

Back-pressure: the queue is bounded.  When the worker falls behind, a new
unit is dropped and counted (``drops["queue-full"]``): memory never grows.
A dropped video frame breaks the decoder's reference chain, so the tap then
drops everything until the next key frame and asks the publisher for one
(through the track: aggregated and debounced like any subscriber's PLI).

Only one RTP stream of a simulcast track is taken: the first one seen
(the tap has no layer selector).
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any, Callable

from realtime.adapters.frames import FrameAssembler

__all__ = ["EgressTap", "Unit"]

#: one unit of work: (RTP timestamp, Opus packet or video frame, key frame?)
Unit = tuple[int, bytes, bool]


class EgressTap:
    """Receive one track's packets like a subscription; queue whole units for the decoder.

    :param track: the :class:`~realtime.sfu.track.PublishedTrack` tapped.
    :param codec: the track's codec name (``opus``, ``vp8``, ``h264``).
    :param wake: called (on the reactor) when work is queued and the worker may be idle.
    :param limit: the most units queued (audio: 50 = 1 s; video: a few frames).
    """

    selector = None
    mid = ""

    def __init__(self, track: Any, codec: str, wake: Callable[[], None], limit: int) -> None:
        self.track = track
        self.codec = codec.lower()
        self.wake = wake
        self.limit = limit
        self.assembler = FrameAssembler(self.codec)
        self.pending: deque[Unit] = deque()
        self.session = self
        self.forwarder = self
        self.open = True
        self.ended = False
        self.video = track.kind == "video"
        self.awaiting_keyframe = self.video
        self._ssrc: int | None = None
        self._now = 0.0
        self.drops: Counter[str] = Counter()
        self.units = 0
        self.bytes_in = 0

    # -- what PublishedTrack.receive_rtp asks of a subscription --------------------------

    @property
    def can_send_media(self) -> bool:
        return self.open

    def forward(self, packet: bytes, stream: Any, keyframe: bool, now: float) -> bytes | None:
        self._now = now
        if self._ssrc is None:
            self._ssrc = stream.ssrc
        elif stream.ssrc != self._ssrc:
            return None                       # another simulcast layer
        return packet

    def take_keyframe_wanted(self) -> bool:
        return False

    def current_rid(self) -> None:
        return None

    def send_rtp(self, packet: bytes) -> bool:
        """Take one RTP packet of the track; queue the unit it completes, if any."""
        self.bytes_in += len(packet)
        unit = self.assembler.push(packet)
        if unit is None:
            return True
        if self.awaiting_keyframe:
            if not unit[2]:
                self.drops["awaiting-keyframe"] += 1
                return True
            self.awaiting_keyframe = False
        if len(self.pending) >= self.limit:
            self.drops["queue-full"] += 1
            if self.video:                    # the decoder lost a reference: start over
                self.drops["queue-full"] += len(self.pending)
                self.pending.clear()
                self.awaiting_keyframe = True
                self.track.request_keyframe(None, self._now)
            return True
        self.pending.append(unit)
        self.units += 1
        self.wake()
        return True

    def end(self) -> None:
        """The track ended (PublishedTrack.end): nothing more will come; the link closes."""
        self.ended = True
        self.wake()

    # -- the worker's side ----------------------------------------------------------------

    def take_work(self) -> list[Unit]:
        """Return every queued unit (oldest first) and empty the queue."""
        work = list(self.pending)
        self.pending.clear()
        return work

    def close(self) -> None:
        """Stop taking packets and leave the track's subscription list."""
        self.open = False
        self.pending.clear()
        self.track.detach(self)

