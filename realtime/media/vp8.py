"""
VP8 picture numbering across simulcast switches (RFC 7741 §4.2).

Every VP8 RTP payload starts with a *payload descriptor*.  Its optional
fields number the pictures so that a receiver can tell a lost picture from
a late one and which pictures a temporal layer depends on::

      0 1 2 3 4 5 6 7
     +-+-+-+-+-+-+-+-+
     |X|R|N|S|R| PID |  required; X: the extension octet follows
     +-+-+-+-+-+-+-+-+
  X: |I|L|T|K| RSV   |  I: PictureID, L: TL0PICIDX, T/K: TID/KEYIDX follow
     +-+-+-+-+-+-+-+-+
  I: |M| PictureID   |  M=1: PictureID is 15 bits, continued in the next octet
     +-+-+-+-+-+-+-+-+
  M: |   PictureID   |
     +-+-+-+-+-+-+-+-+
  L: |   TL0PICIDX   |  the PictureID-like counter of temporal-layer-0 pictures
     +-+-+-+-+-+-+-+-+
 T/K:|TID|Y| KEYIDX  |
     +-+-+-+-+-+-+-+-+

Each simulcast layer is its own encoder with its own PictureID and
TL0PICIDX counters (RFC 7741 §4.2: PictureID "MAY start on a random
number").  An SFU that switches a subscriber from one layer to another
must therefore renumber them, as it renumbers RTP sequence numbers and
timestamps (:mod:`realtime.sfu.forwarder`): otherwise the subscriber sees
the picture numbers jump, back or forth, and may take the new layer's key
frame for an old picture and drop it.  :class:`PictureNumbering` keeps one
offset per field for the current source and moves it at each switch so
that the first picture of the new source follows the last one sent::

    layer f: PictureID 4101 4102 4103 |
    layer h:                           | 977(K) 978 979
    out:               4101 4102 4103  | 4104   4105 4106     delta = 4104 - 977

The descriptor is rewritten in place; its length never changes.  A 7-bit
PictureID (M=0) is renumbered modulo 128, a 15-bit one modulo 32768.
Hostile input: a descriptor shorter than its own flags announce is left
alone (the packet is forwarded unchanged, the subscriber's decoder judges it).
"""

from __future__ import annotations

__all__ = ["PictureNumbering", "picture_fields", "rewrite_picture_fields"]


def read_picture_id(payload: bytes | bytearray, i: int) -> tuple[int, int]:
    """Return ``(PictureID, the offset after it)`` of the PictureID field at ``i``, or
    ``(-1, -1)`` when it is cut short.

    M=1: 15 bits over two octets, else 7 (RFC 7741 §4.2; VP9's descriptor carries
    the same field, RFC 9628 §4.2).
    """
    end = len(payload)
    if i >= end:
        return -1, -1
    if payload[i] & 0x80:
        if i + 1 >= end:
            return -1, -1
        return (payload[i] & 0x7F) << 8 | payload[i + 1], i + 2
    return payload[i], i + 1


def _field_offsets(payload: bytes | bytearray, offset: int) -> tuple[int, bool, int] | None:
    """Return ``(PictureID index, 15-bit?, TL0PICIDX index or -1)``; None without a PictureID."""
    end = len(payload)
    if offset + 3 > end or not payload[offset] & 0x80:
        return None
    x = payload[offset + 1]
    if not x & 0x80:
        return None
    i = offset + 2
    long = payload[i] & 0x80 != 0
    tl0 = i + 1 + long
    if tl0 > end or (x & 0x40 and tl0 >= end):
        return None
    return i, long, tl0 if x & 0x40 else -1


def picture_fields(payload: bytes | bytearray, offset: int) -> tuple[int, int, int] | None:
    """Return ``(PictureID, its bit width, TL0PICIDX or -1)`` of the descriptor at ``offset``.

    None when the descriptor has no PictureID or is truncated.
    """
    found = _field_offsets(payload, offset)
    if found is None:
        return None
    i, long, tl0 = found
    picture_id = ((payload[i] & 0x7F) << 8 | payload[i + 1]) if long else payload[i]
    return picture_id, 15 if long else 7, payload[tl0] if tl0 >= 0 else -1


class PictureNumbering:
    """Renumber one subscriber's VP8 PictureID and TL0PICIDX across source switches.

    The forwarder notes every packet it sends (:attr:`last_packet`, a
    reference: nothing is parsed per packet), calls :meth:`switch` at the
    first packet of a new source (a key frame) and, while either delta is
    not zero, :func:`rewrite_picture_fields` on every packet sent,
    retransmissions included (they carry the deltas of their segment).
    """

    __slots__ = ("picture_delta", "tl0_delta", "last_packet", "last_offset")

    def __init__(self) -> None:
        self.picture_delta = 0
        self.tl0_delta = 0
        #: the last packet sent and its payload offset (None: nothing sent yet)
        self.last_packet: bytes | bytearray | None = None
        self.last_offset = 0

    def switch(self, packet: bytes | bytearray, offset: int) -> None:
        """Make the picture at ``offset`` (a new source's first) follow the last one sent."""
        new = picture_fields(packet, offset)
        if new is None or self.last_packet is None:
            return
        last = picture_fields(self.last_packet, self.last_offset)
        if last is None:
            return
        self.picture_delta = (last[0] + 1 - new[0]) & 0x7FFF
        if new[2] >= 0 and last[2] >= 0:
            self.tl0_delta = (last[2] + 1 - new[2]) & 0xFF


def rewrite_picture_fields(packet: bytearray, offset: int, picture_delta: int,
                           tl0_delta: int) -> None:
    """Add the deltas to the PictureID and TL0PICIDX of the descriptor at ``offset``, in place."""
    found = _field_offsets(packet, offset)
    if found is None:
        return
    i, long, tl0 = found
    if long:
        picture_id = (((packet[i] & 0x7F) << 8 | packet[i + 1]) + picture_delta) & 0x7FFF
        packet[i] = 0x80 | picture_id >> 8
        packet[i + 1] = picture_id & 0xFF
    else:
        packet[i] = (packet[i] + picture_delta) & 0x7F
    if tl0 >= 0:
        packet[tl0] = (packet[tl0] + tl0_delta) & 0xFF
