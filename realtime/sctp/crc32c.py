"""
CRC-32C, the SCTP checksum (RFC 9260 §6.8 and Appendix A).

SCTP protects each packet with the Castagnoli CRC (the polynomial iSCSI
uses, RFC 3720 §12.1): reflected input and output, initial value and final
XOR ``0xFFFFFFFF``, reflected polynomial ``0x82F63B78``.  The sender computes
it over the whole packet with the checksum field set to zero and stores the
32-bit result **least significant byte first** (that is what RFC 9260
Appendix A's sample code does; every captured packet agrees)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Source Port Number        |     Destination Port Number   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                      Verification Tag                         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  crc & 0xFF  | crc>>8 & 0xFF | crc>>16 & 0xFF |   crc >> 24   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Two implementations with one contract, ``f(data) -> int``:

* :func:`crc32c_reference` -- the textbook byte-at-a-time table algorithm in
  pure Python, for reading (and as the oracle in tests);
* :func:`crc32c` -- the ``crc32c`` package (SSE 4.2 / ARMv8 instructions
  where available) when it is importable, the reference otherwise.  Every
  packet in and out goes through it, so it is on the hot path.
"""

from __future__ import annotations

from typing import Callable

POLYNOMIAL_REFLECTED = 0x82F63B78
"""The Castagnoli polynomial 0x1EDC6F41 with its bits reversed."""


def _make_table() -> tuple[int, ...]:
    """Return the 256 remainders of one input byte (the "table" of the algorithm)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLYNOMIAL_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


TABLE = _make_table()
"""``TABLE[b]`` is the CRC register after shifting byte ``b`` through it."""


def crc32c_reference(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Return the CRC-32C of ``data`` (continuing from ``crc``), one byte at a time.

    >>> hex(crc32c_reference(b"123456789"))
    '0xe3069283'
    """
    register = crc ^ 0xFFFFFFFF
    table = TABLE
    for byte in bytes(data):
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register ^ 0xFFFFFFFF


def _load_fast() -> Callable[..., int] | None:
    """Return the ``crc32c`` package's function, or None if it is missing."""
    try:
        from crc32c import crc32c as fast
    except ImportError:  # pragma: no cover - the package is an install requirement
        return None
    return fast


_fast = _load_fast()
IMPLEMENTATION = "crc32c package" if _fast is not None else "pure-Python reference"
"""Which implementation :func:`crc32c` uses."""

crc32c: Callable[..., int] = _fast if _fast is not None else crc32c_reference
"""Return the CRC-32C of ``data``: the fast library, or the reference without it."""


def sctp_checksum(packet: bytes | bytearray | memoryview) -> bytes:
    """Return the 4 checksum bytes for ``packet`` (its bytes 8..11 are taken as zero)."""
    view = memoryview(packet)
    value = crc32c(view[12:], crc32c(bytes(view[:8]) + b"\0\0\0\0"))
    return value.to_bytes(4, "little")
