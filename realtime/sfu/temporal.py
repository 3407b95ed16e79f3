"""
Temporal layers: which frames of a VP8 or VP9 L1T3 stream a subscriber is sent
(RFC 7741 §4.2, RFC 9628 §4.2).

A VP8 encoder asked for ``scalabilityMode: "L1T3"`` (W3C webrtc-svc) numbers
its frames in three temporal layers: TID 0 at a quarter of the frame rate,
TID 1 adding a quarter, TID 2 the other half::

    frame    1   2   3   4   5   6   7   8
    TID      0   2   1   2   0   2   1   2      30 fps sent
    TID<=1   0       1       0       1          15 fps
    TID 0    0               0                   7.5 fps

A frame of TID t refers only to frames of TID <= t, so an SFU may drop every
frame above a chosen TID and the rest still decode.  The payload descriptor
says which layer a packet belongs to (the T/K octet: TID, and Y, "layer sync":
this frame refers only to TID 0, so forwarding may start here).  Dropping
packets makes holes the subscriber would take for loss (NACKs, then a key
frame request), so the filter renumbers what it forwards:

* RTP sequence numbers: minus the packets dropped before (RFC 3550 §5.1 lets
  a translator do so; RFC 7667 §3.7 describes the selective forwarder);
* PictureID: minus the *pictures* dropped before (RFC 7741 §4.2: the
  receiver reads a PictureID gap as a lost picture);
* TL0PICIDX is left alone: TID 0 frames are never dropped.

Decisions are per frame (a frame starts at S=1, partition 0; every packet
of it shares its PictureID): the target goes down at the next frame, and up
only at a TID 0 frame or a layer-sync frame (Y=1) at or under the new
target, where nothing that was dropped is referred to.  A stream without the
T bit (no temporal layers) is forwarded whole.

Where it sits (docs/bandwidth.md, "Temporal layers"): the track reads each
publisher packet's TID once (:func:`temporal_layer`) for the per-layer rates;
the subscriber's :class:`~realtime.media.simulcast.LayerSelector` chooses a
``(rid, tid)`` and calls :meth:`TemporalFilter.set_target`; the forwarder's
reference path asks :meth:`TemporalFilter.keep` per packet while the filter
is :attr:`~TemporalFilter.active`, and turns each dropped packet and picture
into lower deltas of a new segment, so NACKs map back to the original packets
(:mod:`realtime.sfu.forwarder`); the bound send path hands those packets to
the reference.  :func:`choose_layer` is the choice in its plainest form (the
selector adds the hysteresis); :meth:`TemporalFilter.accept` and
:meth:`~TemporalFilter.rewrite` renumber on their own, for a path without
segments.

VP9 (RFC 9628 §4.2, :mod:`realtime.media.vp9`) differs in two rules, made with
``TemporalFilter(vp9=True)``: the switching-up bit U says the frame *after* the
one carrying it may go up (VP8's Y: the frame carrying it), so the target moves
up at the frame right after a forwarded frame with U=1 (nothing dropped in
between); and PictureIDs are not renumbered, since VP9 names references by
PictureID differences (P_DIFF) that a renumbering would point at the wrong
picture: the receiver sees gaps where the dropped pictures were.  Sequence
numbers are renumbered for both.

Hostile input: a descriptor shorter than its flags announce counts as
"no temporal information" and the packet is forwarded unchanged.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from realtime.media import vp9
from realtime.media.vp8 import read_picture_id, rewrite_picture_fields

__all__ = ["ALL", "TemporalFilter", "choose_layer", "temporal_fields", "temporal_layer"]

ALL = 0xFF
"""The target that forwards every temporal layer."""


def temporal_fields(payload: bytes | bytearray, offset: int) -> tuple[int, bool, int, bool] | None:
    """Return ``(TID, Y, PictureID or -1, frame start?)`` of the descriptor at ``offset``.

    None when it has no TID (the T bit unset) or is truncated.
    """
    end = len(payload)
    if offset + 2 > end:
        return None
    first = payload[offset]
    start = first & 0x10 != 0 and first & 0x0F == 0  # S=1, partition index 0
    if not first & 0x80:
        return None
    x = payload[offset + 1]
    if not x & 0x20:  # T: no TID
        return None
    i = offset + 2
    picture_id = -1
    if x & 0x80:  # I
        picture_id, i = read_picture_id(payload, i)
        if i < 0:
            return None
    if x & 0x40:  # L: TL0PICIDX
        i += 1
    if i >= end:
        return None
    tk = payload[i]
    return tk >> 6, tk & 0x20 != 0, picture_id, start


class TemporalFilter:
    """Drop the frames above a target TID for one subscriber of one VP8 or VP9 stream; renumber.

    :param vp9: the stream is VP9 (RFC 9628): its descriptor, its switching-up rule,
        its PictureIDs left alone (the module docstring).
    :param payload_types: the publisher's payload types of that codec (None: the
        forwarder's VP8 payload types); packets of others are forwarded unjudged.
    :param fields: where ``(TID, switch point?, frame number, frame start?)`` are read
        instead of the payload descriptor: the track's Dependency Descriptor reader
        (realtime/sfu/dependency.py), whatever the codec.  A switch point is then the
        frame that may itself be the first of the higher layer (as VP8's Y).

    :attr:`target` is what is forwarded now (:data:`ALL`: everything); :meth:`set_target`
    asks for a change, applied at the next frame start where it is safe.  :attr:`active`
    is False while everything is forwarded and nothing else is asked for: the bound send
    path (realtime/sfu/sendpath.py) may then skip the filter.

    Two ways to use it: :meth:`keep` (the per-frame decision; the forwarder turns
    each dropped packet and picture into a new segment's deltas, so its NACK map
    stays exact: realtime/sfu/forwarder.py), or :meth:`accept` + :meth:`rewrite`
    (the decision and the renumbering in one, for a path without segments).
    """

    __slots__ = ("target", "wanted", "active", "dropped_packets", "dropped_pictures",
                 "picture_delta", "start", "vp9", "payload_types", "read_fields", "up_after",
                 "_forwarding", "_picture", "_up_next")

    def __init__(self, vp9: bool = False, payload_types: Iterable[int] | None = None,
                 fields: Callable[[bytes | bytearray, int],
                                  tuple[int, bool, int, bool] | None] | None = None) -> None:
        self.vp9 = vp9
        self.payload_types = None if payload_types is None else frozenset(payload_types)
        #: ``(TID, switch bit, PictureID, frame start?)`` of a descriptor, or None
        self.read_fields = fields if fields is not None else (
            _vp9_fields if vp9 else temporal_fields)
        #: VP9's U (its own descriptor): the frame *after* a switch point may go up
        self.up_after = vp9 and fields is None
        self._up_next = False  # VP9: the last frame was forwarded with U=1
        self.target = ALL
        self.wanted = ALL
        self.active = False
        self.dropped_packets = 0
        self.dropped_pictures = 0
        #: what :meth:`rewrite` subtracts from PictureIDs (mod 2^15 or 2^7)
        self.picture_delta = 0
        #: whether the last packet :meth:`keep` judged starts a frame
        self.start = False
        self._forwarding = True  # the decision for the current frame
        self._picture = -1  # the current frame's PictureID

    def set_target(self, tid: int) -> None:
        """Forward TIDs up to ``tid`` from the next safe frame on (:data:`ALL`: every one)."""
        self.wanted = tid
        self.active = tid != ALL or self.target != ALL

    def keep(self, packet: bytes | bytearray, offset: int) -> bool:
        """Return whether to forward ``packet`` (its VP8 descriptor at ``offset``); count drops.

        The target moves only at a frame's first packet (VP8: S=1, partition 0; VP9:
        B=1), so a frame is forwarded or dropped whole: down at once; up, for VP8 at a
        TID 0 frame or a layer-sync frame (Y=1) at or under the new target, for VP9 at
        the frame right after a forwarded one with U=1.  A frame whose start was
        not seen (lost, or forwarded before the filter was consulted) is judged by
        its TID against the current target.
        """
        fields = self.read_fields(packet, offset)
        if fields is None:
            self.start = False
            return True
        tid, sync, picture_id, start = fields
        self.start = start
        if start or picture_id != self._picture:  # a new frame: decide once for all of it
            if start:
                wanted = self.wanted
                if wanted < self.target:
                    self.target = wanted  # down: at once
                elif wanted > self.target and (
                        self._up_next if self.up_after else tid <= wanted and (tid == 0 or sync)):
                    self.target = wanted  # up: where nothing dropped is referred to
                self.active = wanted != ALL or self.target != ALL
            forwarding = tid <= self.target
            if not forwarding and picture_id != self._picture and picture_id >= 0:
                self.dropped_pictures += 1
            # VP9's U: the next frame may go up if this one is forwarded (RFC 9628 §4.2)
            self._up_next = forwarding and sync and start
            self._forwarding = forwarding
            self._picture = picture_id
        if not self._forwarding:
            self.dropped_packets += 1
            return False
        return True

    def accept(self, packet: bytes | bytearray, offset: int, seq: int) -> int:
        """Return the sequence number to send ``packet`` (source ``seq``) with; -1: drop it."""
        if not self.keep(packet, offset):
            return -1
        self.picture_delta = 0 if self.vp9 else -self.dropped_pictures
        return (seq - self.dropped_packets) & 0xFFFF

    def rewrite(self, packet: bytearray, offset: int) -> None:
        """Renumber the PictureID of a packet being sent (in place), past the dropped pictures."""
        if self.picture_delta:
            rewrite_picture_fields(packet, offset, self.picture_delta & 0x7FFF, 0)


_vp9_fields = vp9.temporal_fields


def temporal_layer(packet: bytes | bytearray) -> int:
    """Return the TID of a VP8 RTP packet (-1: none, or a malformed header or descriptor).

    Read once per publisher packet for the per-layer rates
    (:meth:`SimulcastLayers.packet_received <realtime.media.simulcast.SimulcastLayers.packet_received>`),
    so in one pass without objects: the payload offset (RFC 3550 §5.1: CSRCs,
    the extension block's length), then the descriptor's X, I/M, L and T/K
    octets (RFC 7741 §4.2) -- what ``payload_offset`` and :func:`temporal_fields`
    read (tests/sfu/test_temporal_delivery.py compares them on random bytes).
    """
    n = len(packet)
    if n < 12:
        return -1
    b0 = packet[0]
    pos = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if pos + 4 > n:
            return -1
        pos += 4 + 4 * (packet[pos + 2] << 8 | packet[pos + 3])
    if pos + 2 > n or not packet[pos] & 0x80:
        return -1
    x = packet[pos + 1]
    if not x & 0x20:  # T: no TID
        return -1
    i = pos + 2
    if x & 0x80:  # I: PictureID, 7 or 15 bits (M)
        if i >= n:
            return -1
        i += 2 if packet[i] & 0x80 else 1
    if x & 0x40:  # L: TL0PICIDX
        i += 1
    if i >= n:
        return -1
    return packet[i] >> 6


def choose_layer(layers: Sequence[tuple[str, Sequence[float]]], available: float,
                 min_tid: int = 1) -> tuple[str, int]:
    """Return the ``(rid, tid)`` to send within ``available`` bit/s.

    ``layers`` run best first, each with its measured bit/s cumulated per TID
    (``[TID 0, TID <= 1, TID <= 2]``; one entry for a stream without temporal
    layers).  The best spatial layer whose rate at ``min_tid`` (15 fps in
    L1T3 by default: sharper but not a slide show) fits is chosen, at the
    highest TID that fits; if none fits, the last (smallest) at the highest
    TID that fits, TID 0 at least: a lower frame rate rather than a freeze.
    """
    for rid, rates in layers:
        floor = min(min_tid, len(rates) - 1)
        if rates[floor] <= available:
            tid = max(t for t in range(len(rates)) if t <= floor or rates[t] <= available)
            return rid, tid
    rid, rates = layers[-1]
    fits = [t for t in range(len(rates)) if rates[t] <= available]
    return rid, max(fits, default=0)
