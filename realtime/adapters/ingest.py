"""
``location: "local"``: PCM from a WebSocket, played out in real time as a published Opus track.

Cloudflare's ingest adapter runs in *buffer* mode: the endpoint may send
audio faster than real time (a text-to-speech service usually does), in
messages of at most 32 KiB, and the SFU plays it out at its own pace.
:class:`PcmIngest` is that buffer and its clock, a sans-I/O machine
(docs/design.md §1)::

    WebSocket message ──> receive_message(data, now)
                            │ Packet.decode (bad: drops["malformed"]), payload <= 32 KiB
                            v
                          buffer: PCM octets, at most `limit` (10 s); past it the
                          message is dropped and counted (drops["buffer-full"])
                            │ playout starts 60 ms after the first frame (a jitter
                            │ buffer), then handle_timer(now): one 20 ms frame
                            │ (3840 octets) per tick
                            v
                          frames_due -> [(rtp timestamp, pcm)]   ──> Opus encoder (worker)
                                                                   ──> RTP ──> AdapterTrack

The RTP clock is 48 kHz (RFC 7587 §4.1) and advances 960 per 20 ms tick;
when the buffer runs dry the clock keeps running, so the next talk spurt's
timestamps show the silence to the receiver's jitter buffer (RFC 3550 §5.1:
timestamps advance with time, sequence numbers with packets).

The published track is an :class:`AdapterTrack` of an :class:`AdapterSession`:
a session of its own, made for the adapter (Cloudflare returns its new
``sessionId``), without a PeerConnection, registered in the switchboard under
(app, session, trackName), so ``tracks/new`` pulls it like any other track.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from realtime.adapters.packet import Packet
from realtime.adapters.transcode import FRAME_OCTETS, FRAME_SAMPLES, SAMPLE_RATE
from realtime.errors import DecodeError
from realtime.rtp.packet import RtpPacket
from realtime.sdp.codecs import Codec
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sdp.negotiation import RtpStream
from realtime.sfu.track import PublishedTrack

__all__ = ["AdapterSession", "AdapterTrack", "PcmIngest", "opus_media", "opus_rtp",
           "MAX_MESSAGE", "OPUS_PAYLOAD_TYPE"]

#: largest WebSocket message an ingest adapter takes (Cloudflare's limits page: 32 KB)
MAX_MESSAGE = 32 * 1024

#: seconds of one Opus frame, the playout tick
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE

#: playout starts this long after the first frame arrives (and after each dry spell): a
#: jitter buffer for an endpoint that sends in real time, so a late message is no gap
PREBUFFER_SECONDS = 0.06

#: at most this many ticks are caught up at once after a late timer; past it the clock resets
MAX_CATCH_UP = 5

OPUS_PAYLOAD_TYPE = 111


class PcmIngest:
    """Buffer PCM from the endpoint; hand out one 20 ms frame per tick, in real time.

    :param limit: the most PCM octets buffered (default 10 s).
    """

    def __init__(self, limit: int = 10 * SAMPLE_RATE * 4, rtp_start: int = 0) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.next_tick: float | None = None
        self.rtp_time = rtp_start
        self.idle_since: float | None = None
        self.drops: Counter[str] = Counter()
        self.messages = 0
        self.bytes_in = 0
        self.frames = 0
        #: times playout found the buffer dry (the endpoint sent too slowly, or stopped)
        self.underruns = 0

    def receive_message(self, data: bytes, now: float) -> None:
        """Take one WebSocket message (a ``Packet`` whose payload is PCM)."""
        self.bytes_in += len(data)
        if len(data) > MAX_MESSAGE + 16:
            self.drops["too-large"] += 1
            return
        try:
            packet = Packet.decode(data)
        except DecodeError:
            self.drops["malformed"] += 1
            return
        if len(packet.payload) > MAX_MESSAGE:
            self.drops["too-large"] += 1
            return
        if len(self.buffer) + len(packet.payload) > self.limit:
            self.drops["buffer-full"] += 1
            return
        self.messages += 1
        self.buffer += packet.payload
        if self.next_tick is None and len(self.buffer) >= FRAME_OCTETS:
            self.next_tick = now + PREBUFFER_SECONDS

    def get_timer(self) -> float | None:
        """Return when the next frame is due, or None while the buffer is dry."""
        return self.next_tick

    def handle_timer(self, now: float) -> list[tuple[int, bytes]]:
        """Return the frames due by ``now``: ``(rtp timestamp, 3840 octets of PCM)`` each."""
        due: list[tuple[int, bytes]] = []
        while self.next_tick is not None and self.next_tick <= now:
            if len(due) >= MAX_CATCH_UP:      # far behind (a stalled reactor): start afresh
                self.next_tick = now + FRAME_SECONDS
                break
            if len(self.buffer) < FRAME_OCTETS:
                self.next_tick = None
                self.idle_since = now
                self.underruns += 1
                break
            if self.idle_since is not None:   # the clock ran on through the silence
                ticks = round((self.next_tick - self.idle_since) / FRAME_SECONDS)
                self.rtp_time = (self.rtp_time + ticks * FRAME_SAMPLES) & 0xFFFFFFFF
                self.idle_since = None
            frame = bytes(self.buffer[:FRAME_OCTETS])
            del self.buffer[:FRAME_OCTETS]
            due.append((self.rtp_time, frame))
            self.frames += 1
            self.rtp_time = (self.rtp_time + FRAME_SAMPLES) & 0xFFFFFFFF
            self.next_tick += FRAME_SECONDS
        return due


class AdapterLeg:
    """The publisher leg of a track with no PeerConnection behind it: nothing to report to.

    Has what :class:`~realtime.sfu.track.PublishedTrack` asks of
    :class:`~realtime.sfu.rtcp_legs.RtcpLegs`; key frame requests (audio has
    none) are counted.
    """

    def __init__(self) -> None:
        self.keyframe_requests = 0

    def add_source(self, ssrc: int, clock_rate: int, codecs: Any) -> None:
        pass

    def remove_source(self, ssrc: int) -> None:
        pass

    def receive_rtp(self, ssrc: int, sequence_number: int, timestamp: int, keyframe: bool,
                    now: float, retransmission: bool = False) -> None:
        pass

    def request_keyframe(self, ssrc: int, now: float) -> None:
        self.keyframe_requests += 1


class AdapterSession:
    """The publisher an ingest adapter's track names: an app, a fresh session id, no PeerConnection."""

    def __init__(self, app_id: str, session_id: str) -> None:
        self.app_id = app_id
        self.session_id = session_id
        self.rtcp = AdapterLeg()


class AdapterTrack(PublishedTrack):
    """A track fed by an ingest adapter: it lives while the adapter does, silent or not."""

    def is_inactive(self, now: float, timeout: float) -> bool:
        return self.ended


def opus_media(ssrc: int, cname: str) -> NegotiatedMedia:
    """Return what an Opus track published by an adapter "negotiated": PT 111, 48 kHz stereo."""
    opus = Codec(OPUS_PAYLOAD_TYPE, "opus", SAMPLE_RATE, 2, "minptime=10;useinbandfec=1")
    return NegotiatedMedia("0", "audio", True, "recvonly", codecs=(opus,),
                           remote_streams=(RtpStream(ssrc, cname),))


def opus_rtp(sequence_number: int, timestamp: int, ssrc: int, payload: bytes) -> bytes:
    """Return one RTP packet carrying one Opus packet (RFC 7587 §4.2)."""
    return RtpPacket(OPUS_PAYLOAD_TYPE, sequence_number & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc,
                     payload=payload).encode()
