"""
The Dependency Descriptor: which layer a frame is in, read without the payload (AV1 RTP spec, Appendix A).

AV1 (and, in Chromium, VP9 and H.264 too when negotiated) can carry each
frame's place in a scalable structure in an RTP header extension, so that a
forwarder decides without reading (or being able to decrypt) the payload.
It is negotiated as ``a=extmap:N
https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension``.

Every packet carries the three mandatory octets (§A.8.1)::

      0                   1                   2
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
     +-+-+-----------+-------------------------------+
     |S|E|template ID|          frame_number         |
     +-+-+-----------+-------------------------------+
     S: start_of_frame   E: end_of_frame   frame_number: +1 per frame, decode order

The *template dependency structure* (§A.8.3.1) travels only with the first
packet of a key frame (extended fields, descriptor longer than 3 octets).
It lists templates -- a spatial id, a temporal id, one *decode target
indication* per decode target, the frame differences to the frames referred
to, the chain differences -- and a frame then names its template by
``template ID`` (minus the structure's ``template_id_offset``, modulo 64),
overriding parts with custom fields when it must.  So a reader keeps the
last structure per RTP stream (:class:`DescriptorReader`) and reads each
frame's layer from it::

    templates (L1T3, one decode target per temporal layer: DT0 = T0, DT1 <= T1, DT2 <= T2)
      index  S T   DTIs (DT0 DT1 DT2)   fdiffs
        0    0 0   S S S                 -        the key frame
        1    0 0   S S S                 4        T0 -> the T0 four frames before
        2    0 1   - D S  ...            2        ...

Decode target indications (§A.8.3.2, Table A.1): ``-`` not present (the frame
is not part of that target), ``D`` discardable (part of it, referred to by no
later frame of it), ``S`` switch (part of it, and a receiver may start
decoding that target here: nothing before it is needed), ``R`` required.
A forwarder thinning a stream to a lower target forwards the frames whose
indication for that target is not ``-``, and moves *up* to a higher target
only at a frame whose indication for the new target is ``S``.

Bits are read most significant first, ``f(n)`` in the spec; ``ns(n)`` is its
non-symmetric unsigned code (§A.8.2: ``w`` bits, ``w - 1`` of them when the
value is small).  Hostile input: a descriptor shorter than its fields, a
template index past the structure, a structure with more than 32 decode
targets or 64 templates raises :class:`~realtime.errors.DecodeError`; the
caller counts it and forwards the packet as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.errors import DecodeError

__all__ = ["NOT_PRESENT", "DISCARDABLE", "SWITCH", "REQUIRED", "URI", "DependencyDescriptor",
           "DependencyStructure", "DescriptorReader", "FrameTemplate", "parse"]

URI = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
NOT_PRESENT, DISCARDABLE, SWITCH, REQUIRED = 0, 1, 2, 3
"""Decode target indications (§A.8.3.2): ``-``, ``D``, ``S``, ``R``."""

MAX_DECODE_TARGETS = 32
MAX_TEMPLATES = 64


class _Bits:
    """``f(n)`` and ``ns(n)`` over a byte string (§A.8.2), most significant bit first."""

    __slots__ = ("data", "position", "limit")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0
        self.limit = len(data) * 8

    def f(self, n: int) -> int:
        if self.position + n > self.limit:
            raise DecodeError("dependency descriptor: shorter than its fields")
        value = 0
        data, position = self.data, self.position
        for _ in range(n):
            value = (value << 1) | ((data[position >> 3] >> (7 - (position & 7))) & 1)
            position += 1
        self.position = position
        return value

    def ns(self, n: int) -> int:
        w = n.bit_length()
        m = (1 << w) - n
        v = self.f(w - 1) if w > 1 else 0
        if v < m:
            return v
        return (v << 1) - m + self.f(1)


@dataclass(frozen=True, slots=True)
class FrameTemplate:
    """One template of a structure (§A.8.3.1): a frame's layer and dependencies."""

    spatial_id: int
    temporal_id: int
    dtis: tuple[int, ...]           # one decode target indication per decode target
    fdiffs: tuple[int, ...]         # frame_number differences to the frames referred to
    chain_fdiffs: tuple[int, ...]   # per chain, the difference to its previous frame


@dataclass(frozen=True, slots=True)
class DependencyStructure:
    """A template dependency structure (§A.8.3.1), kept from a key frame to the next."""

    template_id_offset: int
    templates: tuple[FrameTemplate, ...]
    decode_target_count: int
    #: per decode target: the chain protecting it (empty without chains)
    protected_by: tuple[int, ...]
    #: per decode target: the highest (spatial_id, temporal_id) of the frames in it
    decode_target_layers: tuple[tuple[int, int], ...]
    #: per spatial layer: (width, height) of its frames, or None when not sent
    resolutions: tuple[tuple[int, int], ...] | None

    @property
    def chain_count(self) -> int:
        return len(self.templates[0].chain_fdiffs) if self.templates else 0


@dataclass(frozen=True, slots=True)
class DependencyDescriptor:
    """What one packet's descriptor says (§A.8.1); the frame's fields come from its template
    unless the packet overrode them, and are None while no structure is known."""

    start_of_frame: bool
    end_of_frame: bool
    template_id: int
    frame_number: int
    structure: DependencyStructure | None       # attached to this packet, if any
    active_decode_targets: int | None           # the bitmask, when this packet sent one
    spatial_id: int | None = None
    temporal_id: int | None = None
    dtis: tuple[int, ...] | None = None
    fdiffs: tuple[int, ...] | None = None
    chain_fdiffs: tuple[int, ...] | None = None


def _structure(bits: _Bits) -> DependencyStructure:
    """template_dependency_structure() (§A.8.3.1)."""
    offset = bits.f(6)
    count = bits.f(5) + 1
    # template_layers(): next_layer_idc 0 same layer, 1 next temporal, 2 next spatial, 3 end
    layers: list[tuple[int, int]] = []
    spatial = temporal = 0
    while True:
        layers.append((spatial, temporal))
        if len(layers) > MAX_TEMPLATES:
            raise DecodeError("dependency descriptor: more than 64 templates")
        idc = bits.f(2)
        if idc == 3:
            break
        if idc == 1:
            temporal += 1
        elif idc == 2:
            spatial, temporal = spatial + 1, 0
    dtis = [tuple(bits.f(2) for _ in range(count)) for _ in layers]       # template_dtis()
    fdiffs = []
    for _ in layers:                                                       # template_fdiffs()
        diffs = []
        while bits.f(1):
            diffs.append(bits.f(4) + 1)
        fdiffs.append(tuple(diffs))
    chains = bits.ns(count + 1)                                            # template_chains()
    protected_by: tuple[int, ...] = ()
    chain_fdiffs: list[tuple[int, ...]] = [() for _ in layers]
    if chains:
        protected_by = tuple(bits.ns(chains) for _ in range(count))
        chain_fdiffs = [tuple(bits.f(4) for _ in range(chains)) for _ in layers]
    targets = []                                                           # decode_target_layers()
    for dt in range(count):
        present = [layers[i] for i in range(len(layers)) if dtis[i][dt] != NOT_PRESENT]
        targets.append((max((s for s, _ in present), default=0),
                        max((t for _, t in present), default=0)))
    resolutions = None
    if bits.f(1):                                                          # render_resolutions()
        resolutions = tuple((bits.f(16) + 1, bits.f(16) + 1) for _ in range(spatial + 1))
    templates = tuple(FrameTemplate(s, t, dtis[i], fdiffs[i], chain_fdiffs[i])
                      for i, (s, t) in enumerate(layers))
    return DependencyStructure(offset, templates, count, protected_by, tuple(targets),
                               resolutions)


def parse(data: bytes, structure: DependencyStructure | None) -> DependencyDescriptor:
    """Read one descriptor (the extension element's data) against the last ``structure``
    known for its stream (the one it attaches, if any, takes precedence).

    :raises DecodeError: shorter than 3 octets or than its fields; a template the
        structure does not have.
    """
    if len(data) < 3:
        raise DecodeError("dependency descriptor: shorter than its 3 mandatory octets")
    bits = _Bits(data)
    start, end, template_id, frame_number = bits.f(1), bits.f(1), bits.f(6), bits.f(16)
    attached = active = None
    custom_dtis = custom_fdiffs = custom_chains = 0
    if len(data) > 3:                                      # extended_descriptor_fields()
        has_structure, has_active = bits.f(1), bits.f(1)
        custom_dtis, custom_fdiffs, custom_chains = bits.f(1), bits.f(1), bits.f(1)
        if has_structure:
            attached = structure = _structure(bits)
            active = (1 << attached.decode_target_count) - 1
        if has_active:
            if structure is None:
                raise DecodeError("dependency descriptor: active targets before a structure")
            active = bits.f(structure.decode_target_count)
    if structure is None:
        return DependencyDescriptor(bool(start), bool(end), template_id, frame_number, None,
                                    active)
    index = (template_id + 64 - structure.template_id_offset) % 64
    if index >= len(structure.templates):
        raise DecodeError("dependency descriptor: a template the structure does not have")
    template = structure.templates[index]              # frame_dependency_definition()
    dtis = template.dtis
    if custom_dtis:
        dtis = tuple(bits.f(2) for _ in range(structure.decode_target_count))
    fdiffs = template.fdiffs
    if custom_fdiffs:
        custom = []
        size = bits.f(2)
        while size:
            custom.append(bits.f(4 * size) + 1)
            size = bits.f(2)
        fdiffs = tuple(custom)
    chain_fdiffs = template.chain_fdiffs
    if custom_chains:
        chain_fdiffs = tuple(bits.f(8) for _ in range(structure.chain_count))
    return DependencyDescriptor(bool(start), bool(end), template_id, frame_number, attached,
                                active, template.spatial_id, template.temporal_id, dtis,
                                fdiffs, chain_fdiffs)


class DescriptorReader:
    """One RTP stream's reader: keeps the last structure a key frame attached.

    :meth:`read` returns the packet's descriptor, or None for a malformed one
    (counted in :attr:`malformed`); until a structure has arrived the layer
    fields are None (the stream is forwarded whole).
    """

    __slots__ = ("structure", "malformed")

    def __init__(self) -> None:
        self.structure: DependencyStructure | None = None
        self.malformed = 0

    def read(self, data: bytes) -> DependencyDescriptor | None:
        try:
            descriptor = parse(data, self.structure)
        except DecodeError:
            self.malformed += 1
            return None
        if descriptor.structure is not None:
            self.structure = descriptor.structure
        return descriptor

