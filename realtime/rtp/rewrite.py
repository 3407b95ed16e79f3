"""
Carrying header extensions from one RTP session into another (RFC 8285 §5).

Extension ids are local to a session: the ``a=extmap`` lines of each side
bind them to URIs.  A middlebox that forwards packets between sessions (an
RFC 3550 §7 translator, or an SFU, RFC 7667 §3.7) must therefore rewrite the
block: renumber the elements both sides negotiated, drop the rest and add
values of its own (the receiving section's ``mid``, RFC 8843 §15.2).

The block sits after the CSRC list when the X bit is set (RFC 3550 §5.3.1;
the layout is drawn in :mod:`realtime.rtp.extensions`)::

    in:   | fixed header | CSRCs | BE DE len=3 | 1:"0" | 2:abs-send-time | 10:"f" | pad | payload |
          ids {1: drop, 2 -> 2, 10: drop}; append (4, b"7")
    out:  | fixed header | CSRCs | BE DE len=2 | 2:abs-send-time | 4:"7" | pad         | payload |

When the block arrives in the one-byte form (§4.2) and every new id and
appended value fits it too, elements are copied straight from the input into
the output (the fast path, taken by every browser's packets); otherwise the
elements are collected and written in whichever form fits
(:func:`~realtime.rtp.extensions.write_extension_block`).  When nothing is
left, the X bit is cleared and no block is written.

An SFU applies one rewrite to the same received packet once per subscriber,
and subscribers that negotiated alike share one rewrite object
(:meth:`realtime.sfu.forwarder.ExtensionPlan.between` hands out one per
distinct plan).  So a rewrite remembers its output for the last ``bytes``
packet it was given: the next call with that very object (immutable, so the
same octets) returns a fresh copy of that output without parsing the block
again.  A ``bytearray`` may change between calls and is never remembered.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Mapping

from realtime.errors import DecodeError, Truncated
from realtime.rtp.extensions import ONE_BYTE_PROFILE, write_extension_block
from realtime.rtp.packet import (
    CSRC_COUNT_MASK,
    CSRC_LENGTH,
    CSRC_OFFSET,
    EXTENSION_BIT,
    EXTENSION_HEADER_LENGTH,
    extension_elements,
)

__all__ = ["ExtensionRewrite"]

_PROFILE_LEN = struct.Struct("!HH")  # the block's own header: profile, length in words


@dataclass(frozen=True, slots=True)
class ExtensionRewrite:
    """How packets of one session carry header extensions into another.

    :ivar ids: incoming id -> outgoing id; elements whose id is absent are dropped.
    :ivar append: elements added to every packet as ``(id, value)`` (say, the receiver's mid).
    :ivar one_byte: derived: every new id and appended value fits the one-byte form (fast path).
    """

    ids: Mapping[int, int] = field(default_factory=dict)
    append: tuple[tuple[int, bytes], ...] = ()
    one_byte: bool = field(init=False, repr=False, compare=False, default=False)
    #: ``(packet, output)`` of the last ``bytes`` packet rewritten (see the module docstring)
    _last: tuple[bytes, bytes] | None = field(init=False, repr=False, compare=False,
                                             default=None)

    def __post_init__(self) -> None:
        fits = all(1 <= i <= 14 for i in self.ids.values()) and all(
            1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in self.append
        )
        object.__setattr__(self, "one_byte", fits)

    def apply(self, packet: bytes | bytearray) -> bytearray:
        """Return a copy of ``packet`` whose extension block follows this rewrite.

        :raises DecodeError: the CSRC list or extension block is truncated, or
            an element overruns the block.
        """
        last = self._last
        if last is not None and last[0] is packet:
            return bytearray(last[1])
        out = self._apply(packet)
        if type(packet) is bytes:
            object.__setattr__(self, "_last", (packet, bytes(out)))
        return out

    def _apply(self, packet: bytes | bytearray) -> bytearray:
        n = len(packet)
        b0 = packet[0]
        head = CSRC_OFFSET + CSRC_LENGTH * (b0 & CSRC_COUNT_MASK)
        if not b0 & EXTENSION_BIT:
            if head > n:
                raise Truncated("RTP CSRC list truncated")
            return self._rebuild(packet, head, head, [])
        if head + EXTENSION_HEADER_LENGTH > n:
            raise Truncated("RTP header extension truncated: no profile and length")
        profile, words = _PROFILE_LEN.unpack_from(packet, head)
        tail = head + EXTENSION_HEADER_LENGTH + 4 * words
        if tail > n:
            raise Truncated(f"RTP header extension overruns the packet: {words} words")
        if profile == ONE_BYTE_PROFILE and self.one_byte:
            return self._one_byte(packet, head, tail)
        ids = self.ids
        elements: list[tuple[int, bytes | bytearray]] = []
        for this_id, _, start, size in extension_elements(
            packet, profile, head + EXTENSION_HEADER_LENGTH, tail
        ):
            new = ids.get(this_id)
            if new is not None:
                elements.append((new, packet[start : start + size]))
        return self._rebuild(packet, head, tail, elements)

    def _one_byte(self, packet: bytes | bytearray, head: int, tail: int) -> bytearray:
        """Fast path: one-byte form in and out, elements copied straight into the result.

        Each element is one octet ``ID(4 bits) | L(4 bits)`` then L+1 data
        octets; 0 is a padding octet, ID 15 ends the block (RFC 8285 §4.2).
        """
        out = bytearray(packet[:head])
        out += b"\xbe\xde\x00\x00"
        ids = self.ids
        pos = head + EXTENSION_HEADER_LENGTH
        while pos < tail:
            byte = packet[pos]
            if byte == 0:
                pos += 1
                continue
            if byte >= 0xF0:
                break
            end = pos + 2 + (byte & 0x0F)
            if end > tail:
                raise DecodeError(f"one-byte header extension {byte >> 4} overruns the block")
            new = ids.get(byte >> 4)
            if new is not None:
                out.append(new << 4 | (byte & 0x0F))
                out += packet[pos + 1 : end]
            pos = end
        for ext_id, value in self.append:
            out.append(ext_id << 4 | (len(value) - 1))
            out += value
        size = len(out) - head - EXTENSION_HEADER_LENGTH
        if size == 0:
            del out[head:]
            out[0] &= ~EXTENSION_BIT
        else:
            pad = -size % 4
            if pad:
                out += bytes(pad)
            out[head + 2 : head + 4] = ((size + pad) >> 2).to_bytes(2, "big")
        out += packet[tail:]
        return out

    def _rebuild(
        self,
        packet: bytes | bytearray,
        head: int,
        tail: int,
        elements: list[tuple[int, bytes | bytearray]],
    ) -> bytearray:
        """General path: write ``elements`` plus the appended ones in whichever form fits."""
        elements.extend(self.append)
        out = bytearray(packet[:head])
        if elements:
            out[0] |= EXTENSION_BIT
            write_extension_block(out, elements)
        else:
            out[0] &= ~EXTENSION_BIT
        out += packet[tail:]
        return out
