"""
The AV1 Dependency Descriptor (AV1 RTP specification, Appendix A): each frame's layer.

AV1's RTP payload says nothing about layers; a header extension does.  Every
packet carries the *mandatory* fields, three octets::

    |S|E| template id (6) |   frame number (16)   |
     start/end of frame

and, when longer, *extended* fields: five flags (template dependency structure
present, active decode targets present, custom DTIs, custom frame diffs,
custom chains), the structure itself when present, then the frame's own
overrides.  The *template dependency structure*, sent on a key frame's first
packet and in force until the next, lists templates: per template a spatial
and a temporal id, one decode target indication (DTI: not present,
discardable, switch, required) per decode target, the frame diffs (references
as frame-number differences) and chain diffs.  A later packet names only its
template id, so a frame's temporal id is its template's::

    template index = (template id + 64 - template_id_offset) mod 64
    temporal id    = the structure's TemplateTemporalId[template index]

The structure's layers are coded compactly (``next_layer_idc``: same layer,
next temporal id, next spatial id, end), and chain counts and protections in
the AV1 bitstream specification's ``ns(n)`` code (a value below n in
floor(log2 n) or one more bits).

What this module does: :func:`parse_structure` / :meth:`DependencyDescriptor.decode`
read the mandatory fields, the structure and the frame's temporal and spatial
id (a pure codec: no state; the caller keeps the last structure per stream).
What it does not do yet: drive :class:`~realtime.sfu.temporal.TemporalFilter`
(docs/bandwidth.md, "AV1: what is left").

Hostile input: every read past the end raises :class:`~realtime.errors.Truncated`;
a template id the structure does not have raises :class:`~realtime.errors.DecodeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import DecodeError, Truncated

__all__ = ["DependencyDescriptor", "DependencyStructure", "parse_structure"]

NOT_PRESENT, DISCARDABLE, SWITCH, REQUIRED = range(4)
"""Decode target indications (the structure's ``template_dti`` values)."""


class _Bits:
    """Read unsigned fields most significant bit first (the specification's f(n))."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data
        self.pos = 0
        self.end = 8 * len(data)

    def f(self, n: int) -> int:
        if self.pos + n > self.end:
            raise Truncated(f"dependency descriptor truncated: need {n} bits at bit {self.pos}, "
                            f"have {self.end - self.pos}")
        value = 0
        for _ in range(n):
            value = value << 1 | (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def ns(self, n: int) -> int:
        """The non-symmetric code of a value below ``n``."""
        w = n.bit_length()
        m = (1 << w) - n
        v = self.f(w - 1)
        if v < m:
            return v
        return (v << 1) - m + self.f(1)


@dataclass(frozen=True, slots=True)
class DependencyStructure:
    """A template dependency structure: per template its layer, DTIs and frame diffs."""

    template_id_offset: int
    decode_targets: int
    spatial_ids: tuple[int, ...]
    temporal_ids: tuple[int, ...]
    dtis: tuple[tuple[int, ...], ...]
    fdiffs: tuple[tuple[int, ...], ...]
    chains: int
    resolutions: tuple[tuple[int, int], ...] = ()

    @property
    def max_temporal_id(self) -> int:
        return max(self.temporal_ids)


def _structure(bits: _Bits) -> DependencyStructure:
    offset = bits.f(6)
    targets = bits.f(5) + 1
    spatial, temporal = [0], [0]
    while True:  # template_layers
        idc = bits.f(2)
        if idc == 3:
            break
        if len(spatial) >= 64:
            raise DecodeError("dependency descriptor: more than 64 templates")
        sid, tid = spatial[-1], temporal[-1]
        if idc == 1:
            tid += 1
        elif idc == 2:
            sid, tid = sid + 1, 0
        spatial.append(sid)
        temporal.append(tid)
    count = len(spatial)
    dtis = tuple(tuple(bits.f(2) for _ in range(targets)) for _ in range(count))
    fdiffs = []
    for _ in range(count):
        diffs = []
        while bits.f(1):
            diffs.append(bits.f(4) + 1)
        fdiffs.append(tuple(diffs))
    chains = bits.ns(targets + 1)
    if chains:
        for _ in range(targets):
            bits.ns(chains)  # decode_target_protected_by
        for _ in range(count * chains):
            bits.f(4)  # template_chain_fdiff
    resolutions = []
    if bits.f(1):
        for _ in range(max(spatial) + 1):
            resolutions.append((bits.f(16) + 1, bits.f(16) + 1))
    return DependencyStructure(offset, targets, tuple(spatial), tuple(temporal), dtis,
                               tuple(fdiffs), chains, tuple(resolutions))


def parse_structure(data: bytes | bytearray | memoryview) -> DependencyStructure | None:
    """Return the structure a descriptor carries, or None (mandatory fields only, or none sent).

    :raises Truncated: the descriptor ends inside a field.
    """
    if len(data) <= 3:
        if len(data) < 3:
            raise Truncated(f"dependency descriptor truncated: {len(data)} octets of 3")
        return None
    bits = _Bits(data)
    bits.f(24)
    if not bits.f(1):
        return None
    bits.f(4)
    return _structure(bits)


@dataclass(frozen=True, slots=True)
class DependencyDescriptor:
    """What one packet's descriptor says about its frame (with the structure in force)."""

    start_of_frame: bool
    end_of_frame: bool
    template_id: int
    frame_number: int
    spatial_id: int
    temporal_id: int
    dtis: tuple[int, ...]
    structure: DependencyStructure

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview,
               structure: DependencyStructure | None = None) -> "DependencyDescriptor":
        """Read a descriptor; ``structure``: the one in force (the packet's own wins).

        :raises Truncated: the descriptor ends inside a field.
        :raises DecodeError: no structure is known, or its templates lack the id named.
        """
        if len(data) < 3:
            raise Truncated(f"dependency descriptor truncated: {len(data)} octets of 3")
        bits = _Bits(data)
        start, end, template_id, number = bits.f(1), bits.f(1), bits.f(6), bits.f(16)
        custom_dtis = 0
        if len(data) > 3:
            has_structure, has_active, custom_dtis, _, _ = (bits.f(1) for _ in range(5))
            if has_structure:
                structure = _structure(bits)
            if has_active:
                if structure is None:
                    raise DecodeError("dependency descriptor: active decode targets "
                                      "without a structure")
                bits.f(structure.decode_targets)
        if structure is None:
            raise DecodeError("dependency descriptor: no template dependency structure known")
        index = (template_id + 64 - structure.template_id_offset) % 64
        if index >= len(structure.temporal_ids):
            raise DecodeError(f"dependency descriptor: template {template_id} not in the "
                              f"structure ({len(structure.temporal_ids)} templates)")
        dtis = structure.dtis[index]
        if custom_dtis:
            dtis = tuple(bits.f(2) for _ in range(structure.decode_targets))
        return cls(bool(start), bool(end), template_id, number, structure.spatial_ids[index],
                   structure.temporal_ids[index], dtis, structure)
