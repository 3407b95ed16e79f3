"""
The VP9 payload descriptor (RFC 9628 §4.2): temporal layers for an SFU.

Every VP9 RTP payload starts with a descriptor.  Its first octet is always
there; the others follow in this order when their flag says so::

      0 1 2 3 4 5 6 7
     +-+-+-+-+-+-+-+-+
     |I|P|L|F|B|E|V|Z|  I: PictureID, P: inter-picture predicted, L: layer indices,
     +-+-+-+-+-+-+-+-+  F: flexible mode, B/E: start/end of a frame, V: scalability
  I: |M| PICTURE ID  |  structure (SS), Z: not a reference for upper spatial layers
     +-+-+-+-+-+-+-+-+
  M: | EXTENDED PID  |  M=1: a 15-bit PictureID
     +-+-+-+-+-+-+-+-+
  L: | TID |U| SID |D|  temporal layer, U: switching up point, spatial layer,
     +-+-+-+-+-+-+-+-+  D: depends on the spatial layer below
     |   TL0PICIDX   |  non-flexible mode (F=0) only: the TID 0 picture counter
     +-+-+-+-+-+-+-+-+
 F,P:| P_DIFF      |N|  flexible mode only, up to 3: reference = PictureID - P_DIFF,
     +-+-+-+-+-+-+-+-+  N: another follows
  V: | SS ...        |  N_S|Y|G, widths/heights (Y), the picture group (G)
     +-+-+-+-+-+-+-+-+

What an SFU thinning temporal layers needs from it (realtime/sfu/temporal.py):
TID, the U bit, the PictureID (one per picture: the frames of one picture share
it) and B (a frame's first packet).  U's meaning (RFC 9628 §4.2): "switching
up" to a higher frame rate is possible after this picture, because later
pictures of a higher TID refer to no picture before it with a TID above its
own.  So unlike VP8's Y bit, which says the frame *carrying* it may be
forwarded, U says the *next* frame may be: the filter moves up at the frame
right after a forwarded frame with U=1.

Chromium's VP9 with ``scalabilityMode: "L1T3"`` uses the flexible mode
(tests/media/vp9_chromium_l1t3.txt, captured through the SFU): 15-bit
PictureIDs, no TL0PICIDX, U=1 on every frame, P_DIFF 1 for TID 2 (the frame
before), 2 for TID 1 and 4 for TID 0, and an SS with the frame size on key
frames.  References are PictureID *differences*, in the flexible mode's
P_DIFF as in the non-flexible mode's picture group, so the SFU must not
renumber PictureIDs across the pictures it drops (a TID 1 frame's P_DIFF of 2
would then name the wrong picture): it leaves the gaps, which a receiver reads
as pictures of the layers it is not sent (flexible mode: nothing refers to
them; non-flexible: the TL0PICIDX and the picture group tell their layer).
Sequence numbers are still renumbered (RFC 3550 §5.1, as for VP8).

Hostile input: :meth:`Vp9Descriptor.decode` raises only
:class:`~realtime.errors.Truncated`; the per-packet readers
(:func:`temporal_fields`, :func:`temporal_layer`) never raise: a descriptor
cut short is "no temporal information" (-2 from :func:`temporal_layer`, which
the track counts as a malformed descriptor).
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import Truncated
from realtime.media.vp8 import read_picture_id

__all__ = ["PictureGroupEntry", "Scalability", "Vp9Descriptor", "temporal_fields",
           "temporal_layer"]

MALFORMED = -2
"""What :func:`temporal_layer` returns for a descriptor shorter than its flags announce."""


@dataclass(frozen=True, slots=True)
class PictureGroupEntry:
    """One picture of the SS picture group: its TID, U bit and P_DIFFs (RFC 9628 §4.2.1)."""

    temporal_id: int
    switching_up: bool
    reference_diffs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Scalability:
    """The scalability structure (SS, RFC 9628 §4.2.1): spatial layers, sizes, picture group."""

    spatial_layers: int
    sizes: tuple[tuple[int, int], ...]
    picture_group: tuple[PictureGroupEntry, ...] | None


@dataclass(frozen=True, slots=True)
class Vp9Descriptor:
    """A decoded VP9 payload descriptor (RFC 9628 §4.2); -1 marks an absent number.

    :ivar length: the descriptor's octets (the VP9 frame data follows).
    """

    inter_predicted: bool
    flexible: bool
    start: bool
    end: bool
    not_upper_reference: bool
    picture_id: int = -1
    picture_id_bits: int = 0
    temporal_id: int = -1
    switching_up: bool = False
    spatial_id: int = 0
    inter_layer: bool = False
    tl0_picture_index: int = -1
    reference_diffs: tuple[int, ...] = ()
    scalability: Scalability | None = None
    length: int = 1

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> "Vp9Descriptor":
        """Read the descriptor at the start of an RTP payload.

        :raises Truncated: the payload ends before a field its flags announce.
        """
        def octet(i: int, what: str) -> int:
            return _octet(payload, i, what)

        b0 = octet(0, "the first octet")
        pos = 1
        picture_id, bits = -1, 0
        if b0 & 0x80:  # I
            first = octet(pos, "PictureID")
            if first & 0x80:  # M
                picture_id, bits = (first & 0x7F) << 8 | octet(pos + 1, "extended PictureID"), 15
                pos += 2
            else:
                picture_id, bits = first, 7
                pos += 1
        tid, up, sid, dep, tl0 = -1, False, 0, False, -1
        if b0 & 0x20:  # L
            layer = octet(pos, "layer indices")
            tid, up, sid, dep = layer >> 5, layer & 0x10 != 0, layer >> 1 & 0x07, layer & 1 != 0
            pos += 1
            if not b0 & 0x10:  # non-flexible: TL0PICIDX
                tl0 = octet(pos, "TL0PICIDX")
                pos += 1
        diffs: list[int] = []
        if b0 & 0x10 and b0 & 0x40:  # F and P: P_DIFFs
            while True:
                value = octet(pos, "P_DIFF")
                pos += 1
                diffs.append(value >> 1)
                if not value & 1 or len(diffs) == 3:
                    break
        scalability = None
        if b0 & 0x02:  # V
            scalability, pos = _scalability(payload, pos)
        return cls(b0 & 0x40 != 0, b0 & 0x10 != 0, b0 & 0x08 != 0, b0 & 0x04 != 0,
                   b0 & 0x01 != 0, picture_id, bits, tid, up, sid, dep, tl0, tuple(diffs),
                   scalability, pos)


def _octet(payload: bytes | bytearray | memoryview, i: int, what: str) -> int:
    if i >= len(payload):
        raise Truncated(f"VP9 payload descriptor truncated: {what} missing at {i}")
    return payload[i]


def _scalability(payload: bytes | bytearray | memoryview, pos: int) -> tuple[Scalability, int]:
    """Read the SS at ``pos``; return it and the offset after it."""

    def read(i: int, what: str) -> int:
        return _octet(payload, i, what)

    head = read(pos, "SS")
    pos += 1
    layers = (head >> 5) + 1  # N_S: spatial layers minus one
    sizes = []
    if head & 0x10:  # Y: a width and height per spatial layer
        for _ in range(layers):
            width = read(pos, "SS width") << 8 | read(pos + 1, "SS width")
            height = read(pos + 2, "SS height") << 8 | read(pos + 3, "SS height")
            sizes.append((width, height))
            pos += 4
    group = None
    if head & 0x08:  # G: the picture group
        count = read(pos, "SS N_G")
        pos += 1
        entries = []
        for _ in range(count):
            entry = read(pos, "SS picture")
            pos += 1
            refs = tuple(read(pos + r, "SS P_DIFF") for r in range(entry >> 2 & 0x03))
            pos += len(refs)
            entries.append(PictureGroupEntry(entry >> 5, entry & 0x10 != 0, refs))
        group = tuple(entries)
    return Scalability(layers, tuple(sizes), group), pos


def temporal_fields(payload: bytes | bytearray, offset: int) -> tuple[int, bool, int, bool] | None:
    """Return ``(TID, U, PictureID or -1, frame start?)`` of the descriptor at ``offset``.

    The per-packet reader of :class:`~realtime.sfu.temporal.TemporalFilter` (same
    shape as VP8's :func:`realtime.sfu.temporal.temporal_fields`).  None without
    layer indices (L=0) or when truncated.
    """
    end = len(payload)
    if offset >= end:
        return None
    b0 = payload[offset]
    if not b0 & 0x20:  # L: no layer indices
        return None
    i = offset + 1
    picture_id = -1
    if b0 & 0x80:  # I
        picture_id, i = read_picture_id(payload, i)
        if i < 0:
            return None
    if i >= end:
        return None
    layer = payload[i]
    return layer >> 5, layer & 0x10 != 0, picture_id, b0 & 0x08 != 0


def temporal_layer(packet: bytes | bytearray) -> int:
    """Return the TID of a VP9 RTP packet: -1 without layer indices, :data:`MALFORMED` (-2)
    for a truncated header or descriptor.

    Read once per publisher packet for the per-TID rates, in one pass: the payload
    offset (RFC 3550 §5.1: CSRCs, the extension block), then the I/M and L octets.
    """
    n = len(packet)
    if n < 12:
        return MALFORMED
    b0 = packet[0]
    pos = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if pos + 4 > n:
            return MALFORMED
        pos += 4 + 4 * (packet[pos + 2] << 8 | packet[pos + 3])
    if pos >= n:
        return MALFORMED
    first = packet[pos]
    if not first & 0x20:
        return -1
    i = pos + 1
    if first & 0x80:
        if i >= n:
            return MALFORMED
        i += 2 if packet[i] & 0x80 else 1
    if i >= n:
        return MALFORMED
    return packet[i] >> 5
