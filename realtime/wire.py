"""
Reading and writing network-order fields.

:class:`Reader` walks a ``memoryview`` without copying and raises
:class:`~realtime.errors.Truncated` (a :class:`~realtime.errors.DecodeError`)
when a field runs past the end, so decoders never see ``IndexError`` or
``struct.error``.  :class:`Writer` appends fields to a ``bytearray``.

All multi-byte integers on the wire of every protocol here are big-endian
("network byte order", RFC 1700).
"""

from __future__ import annotations

import builtins
import struct

from realtime.errors import DecodeError, Truncated

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


def padding_length(length: int, boundary: int = 4) -> int:
    """Return how many bytes pad ``length`` up to a multiple of ``boundary``."""
    return -length % boundary


class Reader:
    """Read big-endian fields from a buffer, front to back.

    :param data: the buffer; it is wrapped in a ``memoryview`` (no copy).
    :param what: names the structure in error messages ("STUN header").
    """

    __slots__ = ("_view", "_pos", "_end", "what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str = "packet") -> None:
        self._view = memoryview(data)
        self._pos = 0
        self._end = len(self._view)
        self.what = what

    @property
    def position(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Number of bytes not read yet."""
        return self._end - self._pos

    def _take(self, size: int) -> int:
        start = self._pos
        if size < 0 or start + size > self._end:
            raise Truncated(
                f"{self.what} truncated: need {size} bytes at offset {start}, "
                f"have {self._end - start}"
            )
        self._pos = start + size
        return start

    def u8(self) -> int:
        """Read one unsigned byte."""
        return self._view[self._take(1)]

    def u16(self) -> int:
        """Read an unsigned 16-bit integer."""
        return _U16.unpack_from(self._view, self._take(2))[0]

    def u24(self) -> int:
        """Read an unsigned 24-bit integer."""
        start = self._take(3)
        return int.from_bytes(self._view[start : start + 3], "big")

    def u32(self) -> int:
        """Read an unsigned 32-bit integer."""
        return _U32.unpack_from(self._view, self._take(4))[0]

    def u64(self) -> int:
        """Read an unsigned 64-bit integer."""
        return _U64.unpack_from(self._view, self._take(8))[0]

    def bytes(self, size: int) -> bytes:
        """Read ``size`` bytes and return a copy."""
        start = self._take(size)
        return bytes(self._view[start : start + size])

    def view(self, size: int) -> memoryview:
        """Read ``size`` bytes and return a view into the buffer (no copy)."""
        start = self._take(size)
        return self._view[start : start + size]

    def rest(self) -> builtins.bytes:
        """Read everything left."""
        return self.bytes(self.remaining)

    def skip(self, size: int) -> None:
        """Advance past ``size`` bytes."""
        self._take(size)

    def sub(self, size: int, what: str | None = None) -> "Reader":
        """Return a reader over the next ``size`` bytes and skip past them."""
        return Reader(self.view(size), what or self.what)

    def expect_end(self) -> None:
        """Raise :class:`DecodeError` if unread bytes remain."""
        if self._pos != self._end:
            raise DecodeError(f"{self.what} has {self._end - self._pos} trailing bytes")


class Writer:
    """Append big-endian fields to a growing buffer."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def __len__(self) -> int:
        return len(self.buffer)

    def u8(self, value: int) -> "Writer":
        """Append one unsigned byte."""
        self.buffer.append(value)
        return self

    def u16(self, value: int) -> "Writer":
        """Append an unsigned 16-bit integer."""
        self.buffer += _U16.pack(value)
        return self

    def u24(self, value: int) -> "Writer":
        """Append an unsigned 24-bit integer."""
        self.buffer += value.to_bytes(3, "big")
        return self

    def u32(self, value: int) -> "Writer":
        """Append an unsigned 32-bit integer."""
        self.buffer += _U32.pack(value)
        return self

    def u64(self, value: int) -> "Writer":
        """Append an unsigned 64-bit integer."""
        self.buffer += _U64.pack(value)
        return self

    def bytes(self, value: bytes | bytearray | memoryview) -> "Writer":
        """Append raw bytes."""
        self.buffer += value
        return self

    def pad(self, boundary: int = 4, fill: int = 0) -> "Writer":
        """Append ``fill`` bytes until the length is a multiple of ``boundary``."""
        self.buffer += bytes([fill]) * padding_length(len(self.buffer), boundary)
        return self

    def getvalue(self) -> builtins.bytes:
        """Return the bytes written so far."""
        return bytes(self.buffer)
