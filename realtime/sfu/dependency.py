"""
Temporal layers read from the Dependency Descriptor, for a track's subscribers' filters.

The descriptor's codec (realtime/media/dependency_descriptor.py) reads one
extension element against a structure; this is the track's side of it: find
the element in each RTP packet, keep a structure per SSRC, and answer the
temporal filter (realtime/sfu/temporal.py) in the shape it asks of a codec's
payload descriptor.
"""

from __future__ import annotations

from typing import Callable

from realtime.errors import DecodeError
from realtime.media.dependency_descriptor import (
    SWITCH, DependencyDescriptor, DependencyStructure, DescriptorReader, parse)
from realtime.rtp.packet import find_extension

__all__ = ["DescriptorFields", "Fields"]

#: a reader of ``(TID, switch point?, frame or picture number, frame start?)``, or None
Fields = Callable[[bytes | bytearray, int], "tuple[int, bool, int, bool] | None"]


class DescriptorFields:
    """The temporal-layer reader of a track whose publisher negotiated the descriptor.

    One per published track, shared by its subscribers' temporal filters
    (realtime/sfu/temporal.py) in place of the codec's payload descriptor.
    With the descriptor negotiated, the SFU read no TID from Chromium's VP8
    L1T3 packets (tried: the per-TID rates stayed empty and
    test_temporal_layers_chromium.py failed), so the descriptor is then where
    temporal layers are read, for VP8 as for AV1.

    * :meth:`observe`, once per received packet (the track): keeps each SSRC's
      structure (:class:`DescriptorReader`), returns the frame's temporal id;
    * calling it, per packet per subscriber (the filter): ``(temporal id, switch
      point?, frame_number, start_of_frame?)``, the shape of VP8's
      :func:`realtime.sfu.temporal.temporal_fields`, read once: the packet last
      observed is answered from what :meth:`observe` read.  A *switch point*
      is a frame whose indication for the decode target of its own layer is
      ``S`` (§A.8.3.2): a subscriber may move up to that layer there.  A packet
      without the descriptor is read by ``fallback`` (the codec's own payload
      descriptor reader, if any): negotiated is not sent.

    :param ext_id: the descriptor's extension id in the publisher's packets.
    :param payload_types: the track's payload types the filters judge (its media's).
    :param fallback: the codec's reader for packets without the descriptor, or None.
    """

    __slots__ = ("ext_id", "payload_types", "fallback", "readers", "_packet", "_fields",
                 "_found")

    def __init__(self, ext_id: int, payload_types: frozenset[int] = frozenset(),
                 fallback: Fields | None = None) -> None:
        self.ext_id = ext_id
        self.payload_types = payload_types
        self.fallback = fallback
        self.readers: dict[int, DescriptorReader] = {}
        self._packet: object = None
        self._fields: tuple[int, bool, int, bool] | None = None
        self._found = False  # the packet last observed carried the descriptor

    def observe(self, packet: bytes) -> int:
        """Read ``packet``'s descriptor (keeping a structure it attaches); return its
        temporal id, or -1 (no descriptor, no structure yet, or malformed)."""
        self._packet = packet
        self._fields = None
        self._found = False
        try:
            data = find_extension(packet, self.ext_id)
        except DecodeError:
            return -1
        if data is None:
            return -1
        self._found = True
        ssrc = int.from_bytes(packet[8:12], "big")
        reader = self.readers.get(ssrc)
        if reader is None:
            if len(self.readers) >= 16:  # a track has a few streams; a stranger's churn is not kept
                self.readers.clear()
            reader = self.readers[ssrc] = DescriptorReader()
        descriptor = reader.read(data)
        if descriptor is None or descriptor.temporal_id is None:
            return -1
        self._fields = _fields_of(descriptor, reader.structure)
        return descriptor.temporal_id

    def __call__(self, packet: bytes | bytearray, offset: int) -> tuple[int, bool, int, bool] | None:
        if packet is self._packet:
            if self._found or self.fallback is None:
                return self._fields
            return self.fallback(packet, offset)
        # another packet (a NACKed one, from the history): read against its stream's
        # structure as it is now, changing nothing
        try:
            data = find_extension(packet, self.ext_id)
            if data is None:
                return None if self.fallback is None else self.fallback(packet, offset)
            reader = self.readers.get(int.from_bytes(packet[8:12], "big"))
            structure = reader.structure if reader is not None else None
            descriptor = parse(data, structure)
        except DecodeError:
            return None
        if descriptor.temporal_id is None:
            return None
        return _fields_of(descriptor, descriptor.structure or structure)


def _fields_of(descriptor: DependencyDescriptor, structure: DependencyStructure | None
               ) -> tuple[int, bool, int, bool]:
    sid, tid, dtis = descriptor.spatial_id, descriptor.temporal_id, descriptor.dtis
    switch = False
    if structure is not None and dtis is not None:
        layers = structure.decode_target_layers
        for dt in range(min(len(layers), len(dtis))):
            if layers[dt] == (sid, tid):
                switch = dtis[dt] == SWITCH
                break
    return tid or 0, switch, descriptor.frame_number, descriptor.start_of_frame
