"""
How a STUN attribute sits on the wire, and the base classes of the codecs.

Every attribute is a type-length-value record aligned to 32 bits
(RFC 8489 §14)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Type                  |            Length             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Value (variable)                ....
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

``Length`` counts the value only; 0-3 padding bytes follow to reach a
multiple of 4.  Senders should pad with zeros but receivers must ignore the
padding contents (RFC 8489 §14), so the message codec keeps non-zero padding
aside to re-encode captures byte for byte.

An attribute class knows its ``TYPE`` and converts its *value* (without the
TLV header or padding).  Address attributes XOR their value with the 16
bytes that follow the message type and length -- the magic cookie and the
transaction id -- which is why both methods receive ``xor_key``.

**Malformed values are kept raw.**  When a known type carries a value its
codec cannot accept (wrong length, bad UTF-8, non-zero reserved bits, an
unknown address family), the decoder keeps it as a :class:`RawAttribute`
with the same type instead of failing the whole message.  That keeps the
round trip byte-exact and lets a receiver answer the parts it understands;
code that needs the attribute asks for its class with
:meth:`~realtime.stun.message.StunMessage.find` and sees ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from realtime.errors import DecodeError
from realtime.stun.registry import attribute_name
from realtime.wire import Reader

A = TypeVar("A", bound="Attribute")

ATTRIBUTE_CLASSES: dict[int, type["Attribute"]] = {}
"""Attribute type code -> codec class, filled by :func:`register`."""


class Attribute:
    """Base of every attribute value class: a ``TYPE`` and a value codec."""

    __slots__ = ()
    TYPE: ClassVar[int]

    @property
    def type(self) -> int:
        """Return the attribute type code."""
        return self.TYPE

    if TYPE_CHECKING:
        # Subclasses are dataclasses whose fields are the constructor's arguments.
        def __init__(self, *args: Any) -> None: ...

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> Attribute:
        """Return the attribute decoded from its value bytes (raise DecodeError if malformed)."""
        raise NotImplementedError

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the value bytes (no TLV header, no padding)."""
        raise NotImplementedError

    def summary(self) -> str:
        """Return ``NAME=short value`` for logs and ``realtime-replay``."""
        return attribute_name(self.type)


def register(cls: type[A]) -> type[A]:
    """Record ``cls`` as the codec of ``cls.TYPE`` (class decorator)."""
    ATTRIBUTE_CLASSES[cls.TYPE] = cls
    return cls


@dataclass(frozen=True, slots=True)
class RawAttribute:
    """An attribute kept as bytes: unknown type, or a malformed value of a known one."""

    type: int
    value: bytes

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the stored value bytes."""
        return self.value

    def summary(self) -> str:
        """Return ``NAME(raw N bytes)``."""
        return f"{attribute_name(self.type)}(raw {len(self.value)} bytes)"


def decode_attribute(attribute_type: int, value: bytes, xor_key: bytes) -> Attribute | RawAttribute:
    """Return the attribute for ``(type, value)``; unknown or malformed values stay raw."""
    cls = ATTRIBUTE_CLASSES.get(attribute_type)
    if cls is None:
        return RawAttribute(attribute_type, value)
    try:
        return cls.decode_value(value, xor_key)
    except ValueError:  # DecodeError, UnicodeDecodeError: keep the bytes
        return RawAttribute(attribute_type, value)


def reader(value: bytes, cls: type[Attribute]) -> Reader:
    """Return a :class:`Reader` over an attribute value named after ``cls``."""
    return Reader(value, f"{attribute_name(cls.TYPE)} attribute")


def require(condition: bool, message: str) -> None:
    """Raise :class:`DecodeError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise DecodeError(message)


class TextAttribute(Attribute):
    """Base of attributes whose value is UTF-8 text (USERNAME, REALM, ...)."""

    __slots__ = ()
    value: str

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes):
        """Return the attribute with ``value`` decoded as strict UTF-8."""
        return cls(value.decode("utf-8"))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the UTF-8 bytes of the text."""
        return self.value.encode("utf-8")

    def summary(self) -> str:
        """Return ``NAME="text"`` (long text shortened)."""
        text = self.value if len(self.value) <= 40 else self.value[:37] + "..."
        return f"{attribute_name(self.TYPE)}={text!r}"


class OpaqueAttribute(Attribute):
    """Base of attributes whose value is opaque bytes, optionally of fixed sizes."""

    __slots__ = ()
    value: bytes
    SIZES: ClassVar[tuple[int, ...] | None] = None

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes):
        """Return the attribute; a value of a size not in ``SIZES`` is malformed."""
        require(cls.SIZES is None or len(value) in cls.SIZES,
                f"{attribute_name(cls.TYPE)} has length {len(value)}")
        return cls(value)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the bytes."""
        return self.value

    def summary(self) -> str:
        """Return ``NAME=hex`` (or the length, for long values)."""
        if len(self.value) <= 8:
            return f"{attribute_name(self.TYPE)}={self.value.hex()}"
        return f"{attribute_name(self.TYPE)}({len(self.value)} bytes)"


class FlagAttribute(Attribute):
    """Base of attributes with an empty value (USE-CANDIDATE, DONT-FRAGMENT)."""

    __slots__ = ()

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes):
        """Return the attribute; any value bytes make it malformed."""
        require(not value, f"{attribute_name(cls.TYPE)} has length {len(value)}")
        return cls()

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return no bytes."""
        return b""
