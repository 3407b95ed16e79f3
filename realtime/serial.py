"""
Serial number arithmetic (RFC 1982) and unwrapping of wrapping counters.

RTP sequence numbers (16 bits), RTP timestamps and SCTP TSNs (32 bits) wrap
around.  RFC 1982 §3.2 defines comparison on such a circle: ``a`` is *less
than* ``b`` when ``b`` is ahead of ``a`` by less than half the space::

        0 ............ a ---- (< 2^(N-1)) ----> b ............ 2^N - 1
                       a < b           (and b > a)

Unwrapping turns a stream of N-bit values into monotonic integers by keeping
the highest value seen (RFC 3550 Appendix A.1 does the same with a "cycles"
counter for the extended highest sequence number).
"""

from __future__ import annotations


def serial_lt(a: int, b: int, bits: int) -> bool:
    """Return True if ``a`` precedes ``b`` in ``bits``-bit serial arithmetic."""
    half = 1 << (bits - 1)
    return a != b and ((b - a) & ((1 << bits) - 1)) < half


def serial_le(a: int, b: int, bits: int) -> bool:
    """Return True if ``a`` precedes or equals ``b``."""
    return a == b or serial_lt(a, b, bits)


def serial_diff(a: int, b: int, bits: int) -> int:
    """Return the signed distance from ``b`` to ``a`` (``a - b``) on the circle."""
    size = 1 << bits
    d = (a - b) & (size - 1)
    return d - size if d >= size >> 1 else d


def seq_lt(a: int, b: int) -> bool:
    """16-bit serial ``a < b`` (RTP sequence numbers)."""
    return serial_lt(a, b, 16)


def tsn_lt(a: int, b: int) -> bool:
    """32-bit serial ``a < b`` (SCTP TSNs, RTP timestamps)."""
    return serial_lt(a, b, 32)


class Unwrapper:
    """Extend an N-bit wrapping counter to an unbounded integer.

    The first value seen is returned as is; each later value is placed at the
    point on the number line closest to the previous extended value, so
    reordering of less than half the space is handled.

    >>> u = Unwrapper(16)
    >>> [u.unwrap(v) for v in (65534, 65535, 0, 1, 65535)]
    [65534, 65535, 65536, 65537, 65535]
    """

    __slots__ = ("bits", "last")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.last: int | None = None

    def unwrap(self, value: int) -> int:
        """Return the extended value of ``value``."""
        if self.last is None:
            self.last = value
            return value
        extended = self.last + serial_diff(value, self.last & ((1 << self.bits) - 1), self.bits)
        if extended < 0:
            extended += 1 << self.bits
        if extended > self.last:
            self.last = extended
        return extended
