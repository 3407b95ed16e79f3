"""
STUN attribute codecs: one frozen dataclass per attribute type.

This module holds the attributes of RFC 8489 (STUN itself), RFC 8445 (ICE),
RFC 5780 (NAT behaviour discovery) and the non-address attributes of classic
RFC 3489; it re-exports the address attributes (:mod:`realtime.stun.address`)
and the TURN ones (:mod:`realtime.stun.relay_attributes`) so that
``from realtime.stun.attributes import ...`` reaches every codec.  The
registry of type codes is :class:`~realtime.stun.registry.StunAttributeType`
and ``ATTRIBUTE_CLASSES`` maps each code with a codec to its class.

Layouts of the attributes defined here (values only; the TLV header and
padding are in :mod:`realtime.stun.layout`)::

    USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN:  UTF-8 text
    USERHASH:                  32 bytes, SHA-256(username ":" realm)
    MESSAGE-INTEGRITY:         20 bytes, HMAC-SHA1 (RFC 8489 §14.5)
    MESSAGE-INTEGRITY-SHA256:  16-32 bytes, HMAC-SHA256 prefix (§14.6)
    FINGERPRINT:               32 bits, CRC-32 xor 0x5354554e (§14.7)

    ERROR-CODE (§14.8):
    |           Reserved, should be 0         |Class|     Number    |
    |      Reason Phrase (variable)                                ..

    UNKNOWN-ATTRIBUTES (§14.13):
    |      Attribute 1 Type           |     Attribute 2 Type        |  ...

    PASSWORD-ALGORITHM (§14.12), and a list of them in PASSWORD-ALGORITHMS (§14.11):
    |          Algorithm            |  Algorithm Parameters Length  |
    |                    Algorithm Parameters (variable, padded to 4) ...

    PRIORITY (RFC 8445 §16.1):           32-bit priority
    USE-CANDIDATE:                       empty
    ICE-CONTROLLED / ICE-CONTROLLING:    64-bit tie-breaker

    CHANGE-REQUEST (RFC 5780 §7.2):
    |0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 A B 0|
       A: change IP, B: change port
    RESPONSE-PORT (§7.5):  |  Port  |  reserved (0)  |
    PADDING (§7.6):        any bytes
    CACHE-TIMEOUT (§7.7):  32-bit seconds
    PASSWORD (RFC 3489 §11.2.7): opaque bytes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from realtime.stun.address import (  # noqa: F401  (re-exported)
    IPV4, IPV6, AddressAttribute, AlternateServer, ChangedAddress, MappedAddress,
    OtherAddress, ReflectedFrom, ResponseAddress, ResponseOrigin, SourceAddress,
    XorAddressAttribute, XorMappedAddress, XorPeerAddress, XorRelayedAddress, family_of,
)
from realtime.stun.layout import (  # noqa: F401  (re-exported)
    ATTRIBUTE_CLASSES, Attribute, FlagAttribute, OpaqueAttribute, RawAttribute,
    TextAttribute, decode_attribute, reader, register, require,
)
from realtime.stun.registry import (  # noqa: F401  (re-exported)
    StunAttributeType, attribute_name, is_comprehension_required,
)
from realtime.stun.relay_attributes import (  # noqa: F401  (re-exported)
    AdditionalAddressFamily, AddressErrorCode, ChannelNumber, ConnectionId, Data,
    DontFragment, EvenPort, Icmp, Lifetime, RequestedAddressFamily,
    RequestedTransport, ReservationToken,
)

T = StunAttributeType


def _u32(cls: type[Attribute], value: bytes) -> int:
    require(len(value) == 4, f"{attribute_name(cls.TYPE)} has length {len(value)}")
    return int.from_bytes(value, "big")


# -- text ---------------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class Username(TextAttribute):
    """USERNAME: who is authenticating, UTF-8 under 513 bytes (RFC 8489 §14.3)."""

    TYPE: ClassVar[int] = T.USERNAME
    value: str


@register
@dataclass(frozen=True, slots=True)
class Realm(TextAttribute):
    """REALM: the long-term credential realm (RFC 8489 §14.9)."""

    TYPE: ClassVar[int] = T.REALM
    value: str


@register
@dataclass(frozen=True, slots=True)
class Nonce(TextAttribute):
    """NONCE: the server's nonce for long-term credentials (RFC 8489 §14.10)."""

    TYPE: ClassVar[int] = T.NONCE
    value: str


@register
@dataclass(frozen=True, slots=True)
class Software(TextAttribute):
    """SOFTWARE: a textual description of the sending agent (RFC 8489 §14.14)."""

    TYPE: ClassVar[int] = T.SOFTWARE
    value: str


@register
@dataclass(frozen=True, slots=True)
class AlternateDomain(TextAttribute):
    """ALTERNATE-DOMAIN: the TLS name of an ALTERNATE-SERVER (RFC 8489 §14.16)."""

    TYPE: ClassVar[int] = T.ALTERNATE_DOMAIN
    value: str


# -- opaque bytes -------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class UserHash(OpaqueAttribute):
    """USERHASH: SHA-256 of ``username ":" realm``, for anonymity (RFC 8489 §14.4)."""

    TYPE: ClassVar[int] = T.USERHASH
    SIZES: ClassVar[tuple[int, ...]] = (32,)
    value: bytes


@register
@dataclass(frozen=True, slots=True)
class MessageIntegrity(OpaqueAttribute):
    """MESSAGE-INTEGRITY: 20-byte HMAC-SHA1 of the message so far (RFC 8489 §14.5)."""

    TYPE: ClassVar[int] = T.MESSAGE_INTEGRITY
    SIZES: ClassVar[tuple[int, ...]] = (20,)
    value: bytes


@register
@dataclass(frozen=True, slots=True)
class MessageIntegritySha256(OpaqueAttribute):
    """MESSAGE-INTEGRITY-SHA256: 16-32 byte HMAC-SHA256 prefix (RFC 8489 §14.6)."""

    TYPE: ClassVar[int] = T.MESSAGE_INTEGRITY_SHA256
    SIZES: ClassVar[tuple[int, ...]] = (16, 20, 24, 28, 32)
    value: bytes


@register
@dataclass(frozen=True, slots=True)
class Padding(OpaqueAttribute):
    """PADDING: filler that makes a request large, to probe fragmentation (RFC 5780 §7.6)."""

    TYPE: ClassVar[int] = T.PADDING
    value: bytes


@register
@dataclass(frozen=True, slots=True)
class Password(OpaqueAttribute):
    """PASSWORD: a Shared Secret response's password (classic RFC 3489 §11.2.7)."""

    TYPE: ClassVar[int] = T.PASSWORD
    value: bytes


# -- integers and flags -------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class Fingerprint(Attribute):
    """FINGERPRINT: CRC-32 of the message so far, XOR 0x5354554e (RFC 8489 §14.7)."""

    TYPE: ClassVar[int] = T.FINGERPRINT
    value: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "Fingerprint":
        """Return the 32-bit checksum."""
        return cls(_u32(cls, value))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the checksum as 4 bytes."""
        return self.value.to_bytes(4, "big")

    def summary(self) -> str:
        """Return ``FINGERPRINT=0x........``."""
        return f"FINGERPRINT=0x{self.value:08x}"


@register
@dataclass(frozen=True, slots=True)
class Priority(Attribute):
    """PRIORITY: the priority a peer-reflexive candidate would get (RFC 8445 §7.1.1)."""

    TYPE: ClassVar[int] = T.PRIORITY
    value: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "Priority":
        """Return the 32-bit priority."""
        return cls(_u32(cls, value))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the priority as 4 bytes."""
        return self.value.to_bytes(4, "big")

    def summary(self) -> str:
        """Return ``PRIORITY=n``."""
        return f"PRIORITY={self.value}"


@register
@dataclass(frozen=True, slots=True)
class UseCandidate(FlagAttribute):
    """USE-CANDIDATE: the controlling agent nominates this pair (RFC 8445 §7.1.2)."""

    TYPE: ClassVar[int] = T.USE_CANDIDATE


class _TieBreaker(Attribute):
    __slots__ = ()
    tiebreaker: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes):
        """Return the 64-bit tie-breaker."""
        require(len(value) == 8, f"{attribute_name(cls.TYPE)} has length {len(value)}")
        return cls(int.from_bytes(value, "big"))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the tie-breaker as 8 bytes."""
        return self.tiebreaker.to_bytes(8, "big")

    def summary(self) -> str:
        """Return ``NAME=0x<tie-breaker>``."""
        return f"{attribute_name(self.TYPE)}=0x{self.tiebreaker:016x}"


@register
@dataclass(frozen=True, slots=True)
class IceControlled(_TieBreaker):
    """ICE-CONTROLLED: the sender thinks it is controlled; carries its tie-breaker (RFC 8445 §7.1.3)."""

    TYPE: ClassVar[int] = T.ICE_CONTROLLED
    tiebreaker: int


@register
@dataclass(frozen=True, slots=True)
class IceControlling(_TieBreaker):
    """ICE-CONTROLLING: the sender thinks it is controlling; carries its tie-breaker (RFC 8445 §7.1.3)."""

    TYPE: ClassVar[int] = T.ICE_CONTROLLING
    tiebreaker: int


@register
@dataclass(frozen=True, slots=True)
class ChangeRequest(Attribute):
    """CHANGE-REQUEST: ask the server to answer from another IP and/or port (RFC 5780 §7.2)."""

    TYPE: ClassVar[int] = T.CHANGE_REQUEST
    change_ip: bool = False
    change_port: bool = False

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "ChangeRequest":
        """Return the two flags; any other bit set is malformed."""
        flags = _u32(cls, value)
        require(flags & ~0x6 == 0, f"CHANGE-REQUEST has reserved bits 0x{flags:08x}")
        return cls(bool(flags & 0x4), bool(flags & 0x2))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the flags word."""
        return ((0x4 if self.change_ip else 0) | (0x2 if self.change_port else 0)).to_bytes(4, "big")

    def summary(self) -> str:
        """Return ``CHANGE-REQUEST=ip,port`` naming the flags set."""
        flags = [n for n, f in (("ip", self.change_ip), ("port", self.change_port)) if f]
        return f"CHANGE-REQUEST={','.join(flags) or 'none'}"


@register
@dataclass(frozen=True, slots=True)
class ResponsePort(Attribute):
    """RESPONSE-PORT: the port the response should be sent to (RFC 5780 §7.5)."""

    TYPE: ClassVar[int] = T.RESPONSE_PORT
    port: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "ResponsePort":
        """Return the port; non-zero reserved bytes are malformed."""
        word = _u32(cls, value)
        require(word & 0xFFFF == 0, "RESPONSE-PORT has non-zero reserved bytes")
        return cls(word >> 16)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the port and two zero bytes."""
        return self.port.to_bytes(2, "big") + b"\0\0"


@register
@dataclass(frozen=True, slots=True)
class CacheTimeout(Attribute):
    """CACHE-TIMEOUT: how long the server keeps binding state, in seconds (RFC 5780 §7.7)."""

    TYPE: ClassVar[int] = T.CACHE_TIMEOUT
    seconds: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "CacheTimeout":
        """Return the 32-bit timeout."""
        return cls(_u32(cls, value))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the timeout as 4 bytes."""
        return self.seconds.to_bytes(4, "big")


# -- errors -------------------------------------------------------------------


@register
@dataclass(frozen=True, slots=True)
class ErrorCode(Attribute):
    """ERROR-CODE: a numeric code 300-699 and a UTF-8 reason phrase (RFC 8489 §14.8)."""

    TYPE: ClassVar[int] = T.ERROR_CODE
    code: int
    reason: str = ""

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "ErrorCode":
        """Return the code (class * 100 + number); reserved bits or number > 99 are malformed."""
        require(len(value) >= 4, f"ERROR-CODE has length {len(value)}")
        word = int.from_bytes(value[:4], "big")
        require(word >> 11 == 0, "ERROR-CODE has non-zero reserved bits")
        number = word & 0xFF
        require(number < 100, f"ERROR-CODE number {number} is over 99")
        return cls(((word >> 8) & 0x7) * 100 + number, value[4:].decode("utf-8"))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return class, number and reason."""
        klass, number = divmod(self.code, 100)
        return bytes((0, 0, klass & 0x7, number)) + self.reason.encode("utf-8")

    def summary(self) -> str:
        """Return ``ERROR-CODE=401 'reason'``."""
        return f"ERROR-CODE={self.code} {self.reason!r}"


@register
@dataclass(frozen=True, slots=True)
class UnknownAttributes(Attribute):
    """UNKNOWN-ATTRIBUTES: the comprehension-required types a 420 rejects (RFC 8489 §14.13)."""

    TYPE: ClassVar[int] = T.UNKNOWN_ATTRIBUTES
    types: tuple[int, ...]

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "UnknownAttributes":
        """Return the listed types; an odd length is malformed."""
        require(len(value) % 2 == 0, f"UNKNOWN-ATTRIBUTES has length {len(value)}")
        return cls(tuple(int.from_bytes(value[i : i + 2], "big") for i in range(0, len(value), 2)))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the types, two bytes each."""
        return b"".join(t.to_bytes(2, "big") for t in self.types)

    def summary(self) -> str:
        """Return ``UNKNOWN-ATTRIBUTES=0x....,...``."""
        return "UNKNOWN-ATTRIBUTES=" + ",".join(f"0x{t:04x}" for t in self.types)


# -- password algorithms ------------------------------------------------------

MD5 = 0x0001
"""PASSWORD-ALGORITHM code of MD5 (RFC 8489 §18.5)."""
SHA256 = 0x0002
"""PASSWORD-ALGORITHM code of SHA-256 (RFC 8489 §18.5)."""


def _read_algorithm(value: bytes, offset: int, name: str) -> tuple[tuple[int, bytes], int]:
    require(len(value) - offset >= 4, f"{name} truncated at offset {offset}")
    algorithm = int.from_bytes(value[offset : offset + 2], "big")
    length = int.from_bytes(value[offset + 2 : offset + 4], "big")
    end = offset + 4 + length
    padded = end + (-length % 4)
    require(padded <= len(value), f"{name} parameters truncated at offset {offset}")
    require(not any(value[end:padded]), f"{name} has non-zero parameter padding")
    return (algorithm, value[offset + 4 : end]), padded


def _write_algorithm(algorithm: int, parameters: bytes) -> bytes:
    return (algorithm.to_bytes(2, "big") + len(parameters).to_bytes(2, "big")
            + parameters + b"\0" * (-len(parameters) % 4))


@register
@dataclass(frozen=True, slots=True)
class PasswordAlgorithm(Attribute):
    """PASSWORD-ALGORITHM: the algorithm the client picked for its key (RFC 8489 §14.12)."""

    TYPE: ClassVar[int] = T.PASSWORD_ALGORITHM
    algorithm: int
    parameters: bytes = b""

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "PasswordAlgorithm":
        """Return the algorithm and its parameters; trailing bytes are malformed."""
        (algorithm, parameters), end = _read_algorithm(value, 0, "PASSWORD-ALGORITHM")
        require(end == len(value), "PASSWORD-ALGORITHM has trailing bytes")
        return cls(algorithm, parameters)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return algorithm, parameter length and padded parameters."""
        return _write_algorithm(self.algorithm, self.parameters)


@register
@dataclass(frozen=True, slots=True)
class PasswordAlgorithms(Attribute):
    """PASSWORD-ALGORITHMS: the algorithms a server accepts, in preference order (RFC 8489 §14.11)."""

    TYPE: ClassVar[int] = T.PASSWORD_ALGORITHMS
    algorithms: tuple[tuple[int, bytes], ...]

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "PasswordAlgorithms":
        """Return the ``(algorithm, parameters)`` pairs."""
        pairs = []
        offset = 0
        while offset < len(value):
            pair, offset = _read_algorithm(value, offset, "PASSWORD-ALGORITHMS")
            pairs.append(pair)
        return cls(tuple(pairs))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return every pair, each padded to 4 bytes."""
        return b"".join(_write_algorithm(a, p) for a, p in self.algorithms)
