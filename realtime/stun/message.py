"""
The STUN message: header, attribute list, MESSAGE-INTEGRITY and FINGERPRINT.

Session Traversal Utilities for NAT (RFC 8489) is a request/response protocol
with a 20-byte header followed by attributes (RFC 8489 §5)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |0 0|     STUN Message Type     |         Message Length        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Magic Cookie                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    |                     Transaction ID (96 bits)                  |
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The message type interleaves a 12-bit method with a 2-bit class::

      0                 1
      2  3  4 5 6 7 8 9 0 1 2 3 4 5
     +--+--+-+-+-+-+-+-+-+-+-+-+-+-+
     |M |M |M|M|M|C|M|M|M|C|M|M|M|M|
     |11|10|9|8|7|1|6|5|4|0|3|2|1|0|
     +--+--+-+-+-+-+-+-+-+-+-+-+-+-+

so a Binding request is 0x0001, its success response 0x0101 and its error
response 0x0111.  The length counts the bytes after the header and is a
multiple of 4, because every attribute is padded to 32 bits.

**Magic cookie and classic STUN.**  RFC 5389 put the fixed value 0x2112A442
where RFC 3489 had the first 32 bits of a 128-bit transaction id.  A message
without it is a *classic* message (RFC 8489 §12): this codec decodes it with
a 16-byte ``transaction_id`` and encodes it back unchanged.

**MESSAGE-INTEGRITY** (§14.5) is an HMAC-SHA1 over the message up to the
attribute, with the header length first set as if MESSAGE-INTEGRITY were
the last attribute.  **MESSAGE-INTEGRITY-SHA256** (§14.6) is the same with
HMAC-SHA256.  **FINGERPRINT** (§14.7) is the last attribute: CRC-32 of
everything before it (length again covering FINGERPRINT) XOR 0x5354554e::

    [header, length=L1][attrs ...][MESSAGE-INTEGRITY][FINGERPRINT]
     \\________ HMAC input ________/
     (L1 = through MESSAGE-INTEGRITY)
     \\______________ CRC-32 input _______________/
     (length = whole message)

The checks work on the raw bytes (:func:`check_message_integrity`,
:func:`check_fingerprint`): a re-encoding could differ from what the peer
signed, the raw bytes cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable, TypeVar, overload

from realtime.errors import DecodeError, LocalProtocolError, Truncated
from realtime.stun.attributes import (
    Attribute, RawAttribute, attribute_name, decode_attribute,
)
from realtime.stun.credentials import long_term_key  # noqa: F401  (re-exported)
from realtime.stun.registry import StunAttributeType

_A = TypeVar("_A", bound=Attribute)

MAGIC_COOKIE = 0x2112A442
"""The fixed second word of every RFC 5389/8489 message (§5)."""
FINGERPRINT_XOR = 0x5354554E
"""XORed into the CRC-32 of FINGERPRINT ("STUN" in ASCII, §14.7)."""
HEADER_LENGTH = 20
"""Bytes in the STUN header."""

_COOKIE = MAGIC_COOKIE.to_bytes(4, "big")
_ZEROS = (b"", b"\0", b"\0\0", b"\0\0\0")
_MI = StunAttributeType.MESSAGE_INTEGRITY
_MI256 = StunAttributeType.MESSAGE_INTEGRITY_SHA256
_FP = StunAttributeType.FINGERPRINT


class StunClass(IntEnum):
    """The four message classes (RFC 8489 §5)."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


class StunMethod(IntEnum):
    """STUN methods (IANA "STUN Methods"), each citing its RFC."""

    BINDING = 0x001  # RFC 8489 §18.2
    SHARED_SECRET = 0x002  # RFC 3489 §11.1 (reserved by RFC 5389)
    ALLOCATE = 0x003  # RFC 8656 §7
    REFRESH = 0x004  # RFC 8656 §8
    SEND = 0x006  # RFC 8656 §10.1
    DATA = 0x007  # RFC 8656 §10.3
    CREATE_PERMISSION = 0x008  # RFC 8656 §9
    CHANNEL_BIND = 0x009  # RFC 8656 §12
    CONNECT = 0x00A  # RFC 6062 §4.3
    CONNECTION_BIND = 0x00B  # RFC 6062 §4.4
    CONNECTION_ATTEMPT = 0x00C  # RFC 6062 §4.4


_CLASSES = tuple(StunClass)
_METHOD_NAMES = {m.value: m.name.replace("_", "-") for m in StunMethod}


def message_type(method: int, message_class: int) -> int:
    """Return the 14-bit message type interleaving ``method`` and ``message_class``."""
    return ((method & 0xF) | ((method & 0x70) << 1) | ((method & 0xF80) << 2)
            | ((message_class & 1) << 4) | ((message_class & 2) << 7))


def split_message_type(value: int) -> tuple[int, StunClass]:
    """Return ``(method, class)`` from a message type."""
    method = (value & 0xF) | ((value >> 1) & 0x70) | ((value >> 2) & 0xF80)
    return method, _CLASSES[((value >> 4) & 1) | ((value >> 7) & 2)]


def method_name(method: int) -> str:
    """Return "BINDING", "ALLOCATE", ... or ``0xNNN`` for an unregistered method."""
    return _METHOD_NAMES.get(method) or f"0x{method:03x}"


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A decoded STUN message; ``encode(decode(b)) == b`` for well-formed ``b``.

    :ivar method: a :class:`StunMethod` or any 12-bit value.
    :ivar message_class: request, indication, success or error.
    :ivar transaction_id: 12 bytes, or 16 for a classic RFC 3489 message.
    :ivar attributes: in wire order; unknown or malformed ones as
        :class:`~realtime.stun.attributes.RawAttribute`.
    :ivar padding: ``None`` when every attribute's padding was zero (always,
        for messages we build); otherwise the padding bytes received after
        each attribute, kept so a capture re-encodes byte for byte.
    """

    method: int
    message_class: StunClass
    transaction_id: bytes
    attributes: tuple[Attribute | RawAttribute, ...] = ()
    padding: tuple[bytes, ...] | None = None

    @property
    def classic(self) -> bool:
        """Return True for an RFC 3489 message (no magic cookie, 16-byte id)."""
        return len(self.transaction_id) == 16

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> "StunMessage":
        """Return the message in ``data`` (exactly one message, no trailing bytes).

        Raises :class:`~realtime.errors.DecodeError` subclasses only; values
        of known attributes that are malformed are kept raw (see
        :mod:`realtime.stun.layout`).
        """
        data = bytes(data)
        size = len(data)
        if size < HEADER_LENGTH:
            raise Truncated(f"STUN header truncated: need 20 bytes, have {size}")
        kind = (data[0] << 8) | data[1]
        if kind & 0xC000:
            raise DecodeError(f"STUN message type 0x{kind:04x} has the top two bits set")
        length = (data[2] << 8) | data[3]
        if length & 3:
            raise DecodeError(f"STUN message length {length} is not a multiple of 4")
        if length != size - HEADER_LENGTH:
            raise DecodeError(
                f"STUN message length {length} does not match the {size - HEADER_LENGTH} "
                "bytes after the header"
            )
        xor_key = data[4:20]
        transaction_id = data[8:20] if data[4:8] == _COOKIE else xor_key
        attributes = []
        paddings = []
        odd_padding = False
        pos = HEADER_LENGTH
        while pos < size:
            attribute_type = (data[pos] << 8) | data[pos + 1]
            value_length = (data[pos + 2] << 8) | data[pos + 3]
            end = pos + 4 + value_length
            padded = end + (-value_length & 3)
            if padded > size:
                raise Truncated(
                    f"STUN attribute 0x{attribute_type:04x} truncated: length {value_length}, "
                    f"{size - pos - 4} bytes left"
                )
            attributes.append(decode_attribute(attribute_type, data[pos + 4 : end], xor_key))
            pad = data[end:padded]
            paddings.append(pad)
            if pad and pad != _ZEROS[len(pad)]:
                odd_padding = True
            pos = padded
        method, message_class = split_message_type(kind)
        return cls(method, message_class, transaction_id, tuple(attributes),
                   tuple(paddings) if odd_padding else None)

    def encode(self) -> bytes:
        """Return the wire bytes, attributes as stored (zero padding unless ``padding``)."""
        return _encode(self.method, self.message_class, self.transaction_id,
                       self.attributes, self.padding)

    @overload
    def find(self, attribute_type: type[_A]) -> _A | None: ...

    @overload
    def find(self, attribute_type: int) -> Attribute | RawAttribute | None: ...

    def find(self, attribute_type: int | type) -> Attribute | RawAttribute | None:
        """Return the first attribute of ``attribute_type``, or None.

        Given a class (``msg.find(Username)``) only instances of that class
        match, so a malformed value kept raw is not returned; given a type
        code (``msg.find(0x0006)``) raw attributes match too.
        """
        if isinstance(attribute_type, type):
            for attribute in self.attributes:
                if isinstance(attribute, attribute_type):
                    return attribute
            return None
        for attribute in self.attributes:
            if attribute.type == attribute_type:
                return attribute
        return None

    def summary(self) -> str:
        """Return one line: method, class, transaction id and attributes."""
        parts = [f"{method_name(self.method)} {self.message_class.name.lower()}",
                 f"tid={self.transaction_id.hex()}" + (" classic" if self.classic else "")]
        parts += [attribute.summary() for attribute in self.attributes]
        return " ".join(parts)


def _encode(method, message_class, transaction_id, attributes, padding=None) -> bytes:
    if len(transaction_id) == 12:
        xor_key = _COOKIE + transaction_id
    elif len(transaction_id) == 16:
        xor_key = bytes(transaction_id)
    else:
        raise LocalProtocolError(f"transaction id must be 12 or 16 bytes, not {len(transaction_id)}")
    if not 0 <= method <= 0xFFF:
        raise LocalProtocolError(f"STUN method 0x{method:x} does not fit in 12 bits")
    if padding is not None and len(padding) != len(attributes):
        raise LocalProtocolError("padding needs one entry per attribute")
    body = bytearray()
    for index, attribute in enumerate(attributes):
        value = attribute.encode_value(xor_key)
        if len(value) > 0xFFFF:
            raise LocalProtocolError(f"{attribute_name(attribute.type)} value is over 65535 bytes")
        body += attribute.type.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value
        pad = -len(value) & 3
        if pad:
            fill = padding[index] if padding is not None else _ZEROS[pad]
            if len(fill) != pad:
                raise LocalProtocolError(f"attribute {index} needs {pad} padding bytes")
            body += fill
    if len(body) > 0xFFFF:
        raise LocalProtocolError("STUN message is over 65535 bytes")
    header = message_type(method, message_class).to_bytes(2, "big") + len(body).to_bytes(2, "big")
    return header + xor_key + bytes(body)


def _with_length(data: bytes | bytearray, extra: int) -> bytes:
    """Return the header's first 4 bytes with the length grown by ``extra``."""
    return bytes(data[:2]) + (len(data) - HEADER_LENGTH + extra).to_bytes(2, "big")


def encode_message(
    method: int,
    message_class: StunClass,
    transaction_id: bytes,
    attributes: Iterable[Attribute | RawAttribute] = (),
    *,
    integrity_key: bytes | None = None,
    integrity_sha256_key: bytes | None = None,
    fingerprint: bool = False,
) -> bytes:
    """Return an encoded message, appending the integrity and fingerprint attributes.

    In this order, each computed over everything before it (RFC 8489
    §14.5-14.7): MESSAGE-INTEGRITY (HMAC-SHA1 with ``integrity_key``),
    MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256 with ``integrity_sha256_key``, 32
    bytes), FINGERPRINT.
    """
    data = bytearray(_encode(method, message_class, transaction_id, tuple(attributes)))
    if integrity_key is not None:
        digest = hmac.new(integrity_key, _with_length(data, 24) + data[4:], hashlib.sha1).digest()
        data += b"\x00\x08\x00\x14" + digest
    if integrity_sha256_key is not None:
        digest = hmac.new(integrity_sha256_key, _with_length(data, 36) + data[4:], hashlib.sha256).digest()
        data += b"\x00\x1c\x00\x20" + digest
    if fingerprint:
        crc = zlib.crc32(_with_length(data, 8) + data[4:]) ^ FINGERPRINT_XOR
        data += b"\x80\x28\x00\x04" + crc.to_bytes(4, "big")
    data[2:4] = (len(data) - HEADER_LENGTH).to_bytes(2, "big")
    return bytes(data)


def _locate(data: bytes, wanted: int) -> tuple[int, int] | None:
    """Return ``(offset, value_length)`` of the first ``wanted`` attribute, or None."""
    size = len(data)
    if size < HEADER_LENGTH or ((data[2] << 8) | data[3]) != size - HEADER_LENGTH:
        return None
    pos = HEADER_LENGTH
    while pos + 4 <= size:
        attribute_type = (data[pos] << 8) | data[pos + 1]
        value_length = (data[pos + 2] << 8) | data[pos + 3]
        if pos + 4 + value_length > size:
            return None
        if attribute_type == wanted:
            return pos, value_length
        pos += 4 + value_length + (-value_length & 3)
    return None


def _check_hmac(data: bytes, key: bytes, wanted: int, sizes: tuple[int, ...], digest) -> bool:
    data = bytes(data)
    found = _locate(data, wanted)
    if found is None or found[1] not in sizes:
        return False
    offset, value_length = found
    signed = data[:2] + (offset + 4 + value_length - HEADER_LENGTH).to_bytes(2, "big") + data[4:offset]
    expected = hmac.new(key, signed, digest).digest()[:value_length]
    return hmac.compare_digest(expected, data[offset + 4 : offset + 4 + value_length])


def check_message_integrity(data: bytes, key: bytes) -> bool:
    """Return True if the raw message's MESSAGE-INTEGRITY verifies with ``key``.

    False if the attribute is absent, has the wrong size or does not match,
    or the message is malformed.  Compares with :func:`hmac.compare_digest`.
    """
    return _check_hmac(data, key, _MI, (20,), hashlib.sha1)


def check_message_integrity_sha256(data: bytes, key: bytes) -> bool:
    """Return True if the raw message's MESSAGE-INTEGRITY-SHA256 verifies with ``key``."""
    return _check_hmac(data, key, _MI256, (16, 20, 24, 28, 32), hashlib.sha256)


def check_fingerprint(data: bytes) -> bool:
    """Return True if the raw message ends with a FINGERPRINT that matches its CRC-32."""
    data = bytes(data)
    found = _locate(data, _FP)
    if found is None or found[1] != 4 or found[0] + 8 != len(data):
        return False
    expected = (zlib.crc32(data[:-8]) ^ FINGERPRINT_XOR).to_bytes(4, "big")
    return hmac.compare_digest(expected, data[-4:])


def is_stun(data: bytes | bytearray | memoryview) -> bool:
    """Return True if ``data`` looks like one RFC 5389/8489 message.

    Cheap header checks only: top two bits zero, length a multiple of 4 and
    equal to the bytes after the header, magic cookie present.
    """
    if len(data) < HEADER_LENGTH or data[0] & 0xC0:
        return False
    length = (data[2] << 8) | data[3]
    return length & 3 == 0 and length == len(data) - HEADER_LENGTH and bytes(data[4:8]) == _COOKIE
