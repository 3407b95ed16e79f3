"""
Per-subscriber RTP rewriting: the forwarding core of a Selective Forwarding Middlebox.

RFC 7667 §3.7 describes the SFU topology: the middlebox chooses which of a
publisher's streams each receiver gets and forwards them without decoding.
Because a subscriber must see *one* continuous RTP stream per track even
when the SFU switches simulcast layers or the publisher restarts (new SSRC,
new sequence space), every subscriber has its own outgoing SSRC, sequence
numbers and timestamps (RFC 3550 §5.1, §8.2: one SSRC, one sequence space)::

    source f (publisher SSRC A)   seq 500 501 502 503  |
    source h (publisher SSRC B)                        |   seq 9000(K) 9001 9003 9004
                                                       |switch on h's key frame
    subscriber (SSRC S)           seq 70  71  72  73   |   74   75   77   78
                                         seq_delta = 70-500   seq_delta = 74-9000
    timestamps:                   ts_out = ts_in + ts_delta; at a switch the first
                                  ts_out = last ts_out + (wall time since it) x clock rate

Within a *segment* (one source, from the switch on) the outgoing sequence
number is the incoming one plus a constant, so a gap the publisher left stays
a gap (the subscriber NACKs it, and the packet may yet arrive through the
SFU's own NACK upstream) and nothing else is ever skipped.  Packets older
than the segment's first packet, and packets of any other source, are
dropped: their numbers belong to the previous segment.  A bit window over
the last 256 numbers drops duplicates (the original and its RTX copy); a packet
older than that window is dropped too (`too-late`): it may have been sent already,
and a second copy would reuse an SRTP index the subscriber drops as a replay.

The segments double as the map *outgoing seq -> original packet* the NACK
shield needs: :meth:`Forwarder.retransmit` finds the segment an outgoing
number falls in, subtracts its delta and fetches the original from that
source's :class:`~realtime.media.nack.RetransmissionBuffer`, then sends it
again, either plainly (same outgoing seq) or, where the subscriber
negotiated RFC 4588 RTX, on the RTX SSRC with the OSN first
(:func:`~realtime.rtp.rtx.wrap_rtx`)::

    segments (last `history`):  [start_out_ext=70, delta=-430, ts_delta, source f]
                                [start_out_ext=74, delta=-8926, ts_delta, source h]
    NACK 72 -> segment 1 -> source f seq 502 -> buffer f -> resend as 72 (or RTX, OSN 72)

VP8 pictures are numbered too (RFC 7741 §4.2 PictureID, TL0PICIDX), per
layer: each segment also carries the offsets that make its pictures follow
the last one sent (:mod:`realtime.media.vp8`); until the first switch they
are zero and nothing is rewritten.

Header extensions are rewritten to the subscriber's negotiation (RFC 8285
§5: ids are local to a session): :class:`ExtensionPlan` maps the
publisher's ids to the subscriber's, drops what the subscriber did not
negotiate or must not see (mid, rid, repaired-rid, transport-cc: per hop
values) and may append the subscriber's own ``mid``; the octets are
rewritten by :class:`~realtime.rtp.rewrite.ExtensionRewrite`.  Every
header field is read and written at its named offset in
:mod:`realtime.rtp.packet`.  Payload types are
mapped the same way.  Hostile input: a datagram shorter than an RTP header
or with a malformed extension block raises
:class:`~realtime.errors.DecodeError`; a packet of an unmapped payload type
is dropped and counted.

This class is the reference.  The server's fan-out calls a per-subscriber
closure bound from it, :func:`realtime.sfu.sendpath.bind_send_path`, which
does the in-order case of :meth:`Forwarder.forward` together with SRTP
protect and queueing in one call and hands every other case back to
:meth:`Forwarder.forward`; ``tests/sfu/test_sendpath.py`` requires both to
send the same octets.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from realtime.errors import Truncated
from realtime.media.vp8 import PictureNumbering, rewrite_picture_fields
from realtime.rtp.extensions import ExtensionUri
from realtime.rtp.packet import (
    HEADER_LENGTH,
    PAYLOAD_TYPE_MASK,
    header_length,
    padding_size,
    payload_offset,
    rewrite_header,
    sequence_number_and_timestamp,
    timestamp,
)
from realtime.rtp.rewrite import ExtensionRewrite
from realtime.rtp.rtx import wrap_rtx
from realtime.rtp.statistics import SenderStatistics
from realtime.sfu.stream import PublishedStream
from realtime.sfu.temporal import TemporalFilter

__all__ = ["ExtensionPlan", "Forwarder", "PublishedStream", "Segment"]

_WINDOW = 256
_WINDOW_MASK = (1 << _WINDOW) - 1

MAX_JUMP = 3000
"""A sequence jump beyond this (RFC 3550 A.1 MAX_DROPOUT) is a publisher restart."""

PER_HOP_URIS = frozenset(
    {
        ExtensionUri.MID,
        ExtensionUri.RTP_STREAM_ID,
        ExtensionUri.REPAIRED_RTP_STREAM_ID,
        ExtensionUri.TRANSPORT_WIDE_CC,
    }
)
"""Extensions whose values describe one hop, never forwarded as received."""


class ExtensionPlan(ExtensionRewrite):
    """How one subscriber's packets carry header extensions: an
    :class:`~realtime.rtp.rewrite.ExtensionRewrite` (the byte-level work)
    built from both sides' ``a=extmap`` by the SFU's policy, :meth:`between`.
    """

    __slots__ = ()

    @classmethod
    def between(
        cls,
        publisher: Mapping[int, str],
        subscriber: Mapping[int, str],
        mid: str | None = None,
        per_hop: frozenset[str] = PER_HOP_URIS,
        transport_cc: int | None = None,
    ) -> "ExtensionPlan":
        """Plan from both sides' ``a=extmap`` (id -> URI); append ``mid`` if negotiated.

        ``transport_cc``: the subscriber's transport-wide-cc id; a placeholder
        element goes last, for the stamping hook (:mod:`realtime.sfu.estimate`).
        Equal plans are one object (up to :data:`_PLANS_KEPT` distinct ones), so
        the fan-out of one packet rewrites its block once per distinct plan
        (:mod:`realtime.rtp.rewrite` remembers the last output).
        """
        by_uri = {uri: ext_id for ext_id, uri in subscriber.items()}
        ids = {
            ext_id: by_uri[uri]
            for ext_id, uri in publisher.items()
            if uri in by_uri and uri not in per_hop
        }
        append: tuple[tuple[int, bytes], ...] = ()
        if mid is not None and ExtensionUri.MID in by_uri:
            append = ((by_uri[ExtensionUri.MID], mid.encode("ascii")),)
        if transport_cc is not None:
            append += ((transport_cc, b"\xff\xff"),)
        key = (cls, frozenset(ids.items()), append)
        plan = _PLANS.get(key)
        if plan is None:
            if len(_PLANS) >= _PLANS_KEPT:
                _PLANS.clear()
            plan = _PLANS[key] = cls(ids, append)
        return plan


_PLANS: dict[tuple, ExtensionPlan] = {}
_PLANS_KEPT = 1024
"""Distinct plans :meth:`ExtensionPlan.between` shares before it starts afresh."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of outgoing sequence numbers taken from one source with constant deltas."""

    start: int
    seq_delta: int
    ts_delta: int
    source: PublishedStream
    picture_delta: int = 0  # VP8 PictureID offset (realtime.media.vp8)
    tl0_delta: int = 0      # VP8 TL0PICIDX offset


class Forwarder:
    """Rewrite one published track's packets into one subscriber's continuous RTP stream.

    :param ssrc: the SSRC the subscriber sees (signalled in the SFU's SDP).
    :param payload_types: publisher PT -> subscriber PT; None keeps them.
    :param extensions: the subscriber's :class:`ExtensionPlan`; None forwards
        the block untouched.
    :param rtx_ssrc: the RTX SSRC (RFC 4588) if the subscriber negotiated RTX.
    :param rtx_payload_types: subscriber media PT -> its RTX PT (``apt``).
    :param require_keyframe: video: start each segment on a key frame only.
    :param history: how many segments (switches) NACKs can reach back to.
    :param random: RNG for the initial sequence number and timestamp.
    :param vp8_payload_types: publisher PTs that are VP8: their PictureID and
        TL0PICIDX are renumbered across switches (:mod:`realtime.media.vp8`).
    :param stamp: called with every packet sent (and resent) and ``now``: the
        subscriber's transport-wide numbering (:mod:`realtime.sfu.estimate`).
    :param temporal: the subscriber's :class:`~realtime.sfu.temporal.TemporalFilter`
        for a VP8 or VP9 track (its target is set by the allocator's layer choice); while it
        is active, each frame above its target is dropped and the packets after it
        continue in a new segment (sequence number and PictureID deltas one packet /
        one picture lower), so NACKs still map to the original packets.
    """

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        payload_types: Mapping[int, int] | None = None,
        extensions: ExtensionPlan | None = None,
        rtx_ssrc: int | None = None,
        rtx_payload_types: Mapping[int, int] | None = None,
        require_keyframe: bool = False,
        history: int = 16,
        random: Callable[[int], bytes] = os.urandom,
        vp8_payload_types: Iterable[int] = (),
        stamp: Callable[[bytearray, float], None] | None = None,
        temporal: TemporalFilter | None = None,
    ) -> None:
        self.ssrc = ssrc
        self.temporal = temporal
        self._resegment = False  # frames were dropped: the next packet sent starts a segment
        self._after_drop = False  # the last packet of the current source was dropped
        self.stamp = stamp
        self.vp8_payload_types = frozenset(vp8_payload_types)
        #: the payload types the temporal filter judges (its codec's; VP8's by default)
        self._temporal_types = self.vp8_payload_types if temporal is None or \
            temporal.payload_types is None else temporal.payload_types
        self.vp8 = PictureNumbering() if self.vp8_payload_types else None
        self.clock_rate = clock_rate
        self.payload_types = payload_types
        self.extensions = extensions
        self.rtx_ssrc = rtx_ssrc
        self.rtx_payload_types = dict(rtx_payload_types or {})
        self.require_keyframe = require_keyframe
        self.segments: deque[Segment] = deque(maxlen=history)
        self.sender = SenderStatistics(ssrc)
        initial = int.from_bytes(random(6), "big")
        self._out_ext = (initial >> 32) - 1  # extended highest outgoing seq sent
        self._out_ts = initial & 0xFFFFFFFF
        self._rtx_seq = int.from_bytes(random(2), "big")
        self.source: PublishedStream | None = None
        self._seq_delta = 0
        self._ts_delta = 0
        self._in_highest = 0
        self._seen = 0  # bit i: the packet i numbers before the highest was forwarded
        self._span = 0
        self._last_time: float | None = None
        self.keyframe_wanted = False
        self._keyframe_unasked = False
        self.forwarded = 0
        #: packets not forwarded, in all and by reason (``/diagnostics``): "duplicate",
        #: "before-segment", "awaiting-keyframe", "payload-type-not-negotiated",
        #: "temporal-layer" (a frame above the subscriber's temporal layer)
        self.dropped = 0
        self.drops: Counter[str] = Counter()
        self.retransmitted = 0
        self.unanswered = 0

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.drops[reason] += 1

    def take_keyframe_wanted(self) -> bool:
        """Return True once when the forwarder starts waiting for a key frame (ask for one)."""
        unasked, self._keyframe_unasked = self._keyframe_unasked, False
        return unasked

    @property
    def sequence_number(self) -> int:
        """Return the highest outgoing sequence number sent so far."""
        return self._out_ext & 0xFFFF

    def continuation(self) -> tuple[int, int]:
        """Return (extended highest sequence number, timestamp) sent so far.

        What another node needs to carry this stream on without the
        subscriber's SRTP receiver taking its packets for replays
        (:mod:`realtime.cluster.resume`).
        """
        return self._out_ext, self._out_ts

    def continue_from(self, extended: int, timestamp: int) -> None:
        """Make the next segment start at sequence ``extended`` and ``timestamp`` (a resume)."""
        self._out_ext = extended - 1
        self._out_ts = timestamp & 0xFFFFFFFF
        self._last_time = None

    def forward(
        self, packet: bytes, source: PublishedStream, keyframe: bool, now: float
    ) -> bytearray | None:
        """Return ``packet`` rewritten for this subscriber, or None if it must not be sent."""
        if len(packet) < HEADER_LENGTH:
            raise Truncated(f"RTP header truncated: need 12 bytes, have {len(packet)}")
        seq, ts = sequence_number_and_timestamp(packet)
        if source is self.source:
            d = (seq - self._in_highest) & 0xFFFF
            if d == 0:
                self._drop("duplicate")
                return None
            if d < 0x8000:
                if d > MAX_JUMP:
                    return self._start_segment(packet, source, seq, ts, keyframe, now)
                temporal = self.temporal
                dropping = temporal is not None and temporal.active and \
                    not self._temporal_keep(packet, temporal)
                self._in_highest = seq
                self._span += d
                self._seen = (self._seen << d | 1) & _WINDOW_MASK
                if dropping:
                    # taken out of the numbering: the packets after it come one number earlier
                    self._out_ext += d - 1
                    self._seq_delta = (self._seq_delta - 1) & 0xFFFF
                    self._resegment = self._after_drop = True
                    self._drop("temporal-layer")
                    return None
                if self._after_drop:
                    self._after_drop = False
                    if d > 1 and temporal is not None and temporal.start:
                        # missing between a dropped packet and a frame start: the dropped
                        # frame's tail, taken out too (else a gap the subscriber NACKs)
                        self._seq_delta = (self._seq_delta - d + 1) & 0xFFFF
                        d = 1
                self._out_ext += d
                self._out_ts = (ts + self._ts_delta) & 0xFFFFFFFF
                self._last_time = now
                if self._resegment:
                    self._continue_segment(source)
            else:
                back = 0x10000 - d
                if back > MAX_JUMP:
                    return self._start_segment(packet, source, seq, ts, keyframe, now)
                if back > self._span:
                    self._drop("before-segment")  # its number belongs to the last one
                    return None
                if back >= _WINDOW:
                    # older than the window: whether it was sent cannot be told, and a copy
                    # sent again reuses its SRTP index, which the subscriber drops as a
                    # replay (RFC 3711 §3.3.2) and reports lost in transport-cc feedback
                    # (Chromium's RTX padding repeats one old packet for seconds)
                    self._drop("too-late")
                    return None
                if self._seen >> back & 1:
                    self._drop("duplicate")  # say, original and RTX both arrived
                    return None
                self._seen |= 1 << back
                if self.temporal is not None:  # frames may have been dropped since
                    return self._emit_late(packet, seq, ts, back, now)
            return self._emit(packet, seq, ts, now)
        return self._start_segment(packet, source, seq, ts, keyframe, now)

    def _start_segment(
        self, packet: bytes, source: PublishedStream, seq: int, ts: int, keyframe: bool, now: float
    ) -> bytearray | None:
        if self.require_keyframe and not keyframe:
            self._drop("awaiting-keyframe")
            if not self.keyframe_wanted:
                self.keyframe_wanted = self._keyframe_unasked = True
            return None
        self.keyframe_wanted = self._keyframe_unasked = False
        temporal = self.temporal
        if temporal is not None and temporal.active:
            self._temporal_keep(packet, temporal)  # a key frame (TID 0): it notes the frame
        self._resegment = self._after_drop = False
        start = self._out_ext + 1
        if self._last_time is None:
            out_ts = self._out_ts
        else:
            step = max(1, round((now - self._last_time) * self.clock_rate))
            out_ts = (self._out_ts + step) & 0xFFFFFFFF
        self._seq_delta = (start - seq) & 0xFFFF
        self._ts_delta = (out_ts - ts) & 0xFFFFFFFF
        vp8 = self.vp8
        if vp8 is not None and packet[1] & PAYLOAD_TYPE_MASK in self.vp8_payload_types:
            vp8.switch(packet, payload_offset(packet))
            self.segments.append(Segment(start, self._seq_delta, self._ts_delta, source,
                                         vp8.picture_delta, vp8.tl0_delta))
        else:
            self.segments.append(Segment(start, self._seq_delta, self._ts_delta, source))
        self.source = source
        self._in_highest = seq
        self._span = 0
        self._seen = 1
        self._out_ext = start
        self._out_ts = out_ts
        self._last_time = now
        return self._emit(packet, seq, ts, now)

    # -- temporal layers (realtime/sfu/temporal.py) -----------------------------------

    def _temporal_keep(self, packet: bytes, temporal: TemporalFilter) -> bool:
        """Ask the filter about a packet of its codec; a newly dropped VP8 picture lowers the
        PictureID delta (VP9's PictureIDs keep their gaps: realtime/sfu/temporal.py)."""
        if packet[1] & PAYLOAD_TYPE_MASK not in self._temporal_types:
            return True
        pictures = temporal.dropped_pictures
        keep = temporal.keep(packet, payload_offset(packet))
        vp8 = self.vp8
        if temporal.dropped_pictures != pictures and vp8 is not None and not temporal.vp9:
            vp8.picture_delta = (vp8.picture_delta - 1) & 0x7FFF
        return keep

    def _continue_segment(self, source: PublishedStream) -> None:
        """Start a segment of the same source at the packet being sent, with today's deltas."""
        self._resegment = False
        vp8 = self.vp8
        if vp8 is not None:
            self.segments.append(Segment(self._out_ext, self._seq_delta, self._ts_delta, source,
                                         vp8.picture_delta, vp8.tl0_delta))
        else:
            self.segments.append(Segment(self._out_ext, self._seq_delta, self._ts_delta, source))

    def _emit_late(self, packet: bytes, seq: int, ts: int, back: int,
                   now: float) -> bytearray | None:
        """Send a late packet with the deltas of the segment it arrived in (frames were
        dropped since); drop it if it is of a dropped frame's numbers."""
        source = self.source
        later: Segment | None = None
        for segment in reversed(self.segments):
            if segment.source is not source:
                break
            first_in = (segment.start - segment.seq_delta) & 0xFFFF
            if (self._in_highest - first_in) & 0xFFFF >= back:
                out_ext = self._out_ext - ((self._out_ext - seq - segment.seq_delta) & 0xFFFF)
                temporal = self.temporal
                if (later is not None and out_ext >= later.start) or (
                        temporal is not None and temporal.active
                        and not self._late_tid_fits(packet, temporal.target)):
                    break
                return self._emit(packet, seq, ts, now, segment)
            later = segment
        self._drop("temporal-layer")
        return None

    def _dropped_frame(self, packet: bytes) -> bool:
        """Return whether a NACKed number's original is above the temporal target (a frame
        dropped whose number stayed: a gap before it); its PictureID would collide."""
        temporal = self.temporal
        return temporal is not None and temporal.active and \
            not self._late_tid_fits(packet, temporal.target)

    def _late_tid_fits(self, packet: bytes, target: int) -> bool:
        if packet[1] & PAYLOAD_TYPE_MASK not in self._temporal_types or self.temporal is None:
            return True
        fields = self.temporal.read_fields(packet, payload_offset(packet))
        return fields is None or fields[0] <= target

    def _emit(self, packet: bytes, seq: int, ts: int, now: float,
              segment: Segment | None = None) -> bytearray | None:
        if segment is None:
            out = self._rewrite(
                packet, (seq + self._seq_delta) & 0xFFFF, (ts + self._ts_delta) & 0xFFFFFFFF
            )
        else:  # a late packet of an earlier segment of this source (_emit_late)
            out = self._rewrite(packet, (seq + segment.seq_delta) & 0xFFFF,
                                (ts + segment.ts_delta) & 0xFFFFFFFF)
        if out is None:
            return None
        self.forwarded += 1
        head = header_length(out)  # validated: ExtensionRewrite.apply or payload_offset checked it
        vp8 = self.vp8
        if vp8 is not None and packet[1] & PAYLOAD_TYPE_MASK in self.vp8_payload_types:
            if segment is not None:
                if segment.picture_delta or segment.tl0_delta:
                    rewrite_picture_fields(out, head, segment.picture_delta, segment.tl0_delta)
            else:
                if vp8.picture_delta or vp8.tl0_delta:
                    rewrite_picture_fields(out, head, vp8.picture_delta, vp8.tl0_delta)
                vp8.last_packet = out
                vp8.last_offset = head
        size = len(out) - head - padding_size(out)
        self.sender.sent(size, self._out_ts, now)
        stamp = self.stamp  # the one transport-wide stamping hook
        if stamp is not None:
            stamp(out, now)
        return out

    def _rewrite(self, packet: bytes, seq: int, ts: int) -> bytearray | None:
        """Rewrite header fields, payload type and extensions; None for an unmapped payload type."""
        pt = packet[1] & PAYLOAD_TYPE_MASK
        if self.payload_types is not None:
            mapped = self.payload_types.get(pt)
            if mapped is None:
                self._drop("payload-type-not-negotiated")
                return None
            pt = mapped
        plan = self.extensions
        out = bytearray(packet) if plan is None else plan.apply(packet)
        rewrite_header(out, self.ssrc, seq, ts, pt)
        return out

    def next_rtx_sequence_number(self) -> int:
        """Return the next sequence number of the RTX stream (for a bandwidth probe's padding)."""
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        return self._rtx_seq

    def segment_of(self, sequence_number: int) -> Segment | None:
        """Return the segment an outgoing sequence number was sent in, or None if beyond history."""
        ext = self._out_ext - ((self._out_ext - sequence_number) & 0xFFFF)
        for segment in reversed(self.segments):
            if ext >= segment.start:
                return segment
        return None

    def original(self, sequence_number: int) -> tuple[PublishedStream, int] | None:
        """Return ``(source, original seq)`` behind an outgoing sequence number, or None."""
        segment = self.segment_of(sequence_number)
        if segment is None:
            return None
        return segment.source, (sequence_number - segment.seq_delta) & 0xFFFF

    def retransmit(self, sequence_numbers: Iterable[int], now: float) -> list[bytearray]:
        """Answer a subscriber's NACK from the sources' buffers: RTX where negotiated, else resend.

        Numbers whose packet is no longer (or never was) buffered are counted
        in :attr:`unanswered`.
        """
        out = []
        for seq in sequence_numbers:
            seq &= 0xFFFF
            segment = self.segment_of(seq)
            packet = None
            if segment is not None:
                packet = segment.source.buffer.get((seq - segment.seq_delta) & 0xFFFF)
            if packet is None or segment is None or (
                    self.temporal is not None and self._dropped_frame(packet)):
                self.unanswered += 1
                continue
            ts = timestamp(packet) + segment.ts_delta
            rewritten = self._rewrite(packet, seq, ts & 0xFFFFFFFF)
            if rewritten is None:
                continue
            if (segment.picture_delta or segment.tl0_delta) and \
                    packet[1] & PAYLOAD_TYPE_MASK in self.vp8_payload_types:
                rewrite_picture_fields(rewritten, payload_offset(rewritten),
                                       segment.picture_delta, segment.tl0_delta)
            if self.rtx_ssrc is not None:
                rtx_pt = self.rtx_payload_types.get(rewritten[1] & PAYLOAD_TYPE_MASK)
                if rtx_pt is not None:  # else no RTX for this payload type: plain resend
                    self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
                    wrap_rtx(rewritten, rtx_pt, self.rtx_ssrc, self._rtx_seq)
            if self.stamp is not None:
                self.stamp(rewritten, now)
            self.retransmitted += 1
            out.append(rewritten)
        return out
