"""
The STUN attributes TURN adds: RFC 8656 §18 and RFC 6062 §6.2.

They live beside the STUN codec (not in ``realtime.turn``) because a STUN
decoder must turn them into values wherever they appear, captures included.
Value layouts (XOR-PEER-ADDRESS and XOR-RELAYED-ADDRESS are in
:mod:`realtime.stun.address`)::

    CHANNEL-NUMBER (§18.1):      | Channel Number (16) |   RFFU = 0 (16)   |
    LIFETIME (§18.2):            32-bit seconds
    DATA (§18.4):                the application payload, any length
    REQUESTED-ADDRESS-FAMILY (§18.6), ADDITIONAL-ADDRESS-FAMILY (§18.11):
                                 | Family (8) |       Reserved = 0 (24)     |
    EVEN-PORT (§18.7):           |R|  RFFU (7) |          (one byte)
    REQUESTED-TRANSPORT (§18.8): | Protocol (8) |        RFFU = 0 (24)      |
    DONT-FRAGMENT (§18.9):       empty
    RESERVATION-TOKEN (§18.10):  8 opaque bytes
    ADDRESS-ERROR-CODE (§18.12):
    |  Family (8)   |    Reserved (13)        |Class|     Number    |
    |      Reason Phrase (variable)                                ..
    ICMP (§18.13):
    |           Reserved (16)       |ICMP Type (7)| ICMP Code (9)   |
    |                          Error Data (32)                      |
    CONNECTION-ID (RFC 6062 §6.2.1): 32-bit connection id
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from realtime.stun.layout import Attribute, FlagAttribute, OpaqueAttribute, register, require
from realtime.stun.registry import StunAttributeType as T, attribute_name


def _word(cls: type[Attribute], value: bytes) -> int:
    require(len(value) == 4, f"{attribute_name(cls.TYPE)} has length {len(value)}")
    return int.from_bytes(value, "big")


@register
@dataclass(frozen=True, slots=True)
class ChannelNumber(Attribute):
    """CHANNEL-NUMBER: the channel a ChannelBind binds, 0x4000-0x4FFF (RFC 8656 §18.1)."""

    TYPE: ClassVar[int] = T.CHANNEL_NUMBER
    value: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "ChannelNumber":
        """Return the channel number; a non-zero RFFU half is malformed."""
        word = _word(cls, value)
        require(word & 0xFFFF == 0, "CHANNEL-NUMBER has non-zero RFFU bits")
        return cls(word >> 16)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the number and two zero bytes."""
        return self.value.to_bytes(2, "big") + b"\0\0"

    def summary(self) -> str:
        """Return ``CHANNEL-NUMBER=0x4000``."""
        return f"CHANNEL-NUMBER=0x{self.value:04x}"


@register
@dataclass(frozen=True, slots=True)
class Lifetime(Attribute):
    """LIFETIME: seconds until an allocation expires (RFC 8656 §18.2)."""

    TYPE: ClassVar[int] = T.LIFETIME
    seconds: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "Lifetime":
        """Return the lifetime in seconds."""
        return cls(_word(cls, value))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the lifetime as 4 bytes."""
        return self.seconds.to_bytes(4, "big")

    def summary(self) -> str:
        """Return ``LIFETIME=600``."""
        return f"LIFETIME={self.seconds}"


@register
@dataclass(frozen=True, slots=True)
class Data(OpaqueAttribute):
    """DATA: the payload of a Send or Data indication (RFC 8656 §18.4)."""

    TYPE: ClassVar[int] = T.DATA
    value: bytes


class _FamilyWord(Attribute):
    __slots__ = ()
    family: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes):
        """Return the family byte; non-zero reserved bytes are malformed."""
        word = _word(cls, value)
        require(word & 0xFFFFFF == 0, f"{attribute_name(cls.TYPE)} has non-zero reserved bytes")
        return cls(word >> 24)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the family and three zero bytes."""
        return bytes((self.family, 0, 0, 0))

    def summary(self) -> str:
        """Return ``NAME=IPv4|IPv6|n``."""
        return f"{attribute_name(self.TYPE)}={ {1: 'IPv4', 2: 'IPv6'}.get(self.family, self.family)}"


@register
@dataclass(frozen=True, slots=True)
class RequestedAddressFamily(_FamilyWord):
    """REQUESTED-ADDRESS-FAMILY: the family of relayed address wanted (RFC 8656 §18.6)."""

    TYPE: ClassVar[int] = T.REQUESTED_ADDRESS_FAMILY
    family: int


@register
@dataclass(frozen=True, slots=True)
class AdditionalAddressFamily(_FamilyWord):
    """ADDITIONAL-ADDRESS-FAMILY: ask for a second, IPv6 relayed address (RFC 8656 §18.11)."""

    TYPE: ClassVar[int] = T.ADDITIONAL_ADDRESS_FAMILY
    family: int


@register
@dataclass(frozen=True, slots=True)
class EvenPort(Attribute):
    """EVEN-PORT: ask for an even relayed port, R reserves the next one (RFC 8656 §18.7)."""

    TYPE: ClassVar[int] = T.EVEN_PORT
    reserve: bool = False

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "EvenPort":
        """Return the R flag; a length other than 1 or RFFU bits set are malformed."""
        require(len(value) == 1, f"EVEN-PORT has length {len(value)}")
        require(value[0] & 0x7F == 0, "EVEN-PORT has non-zero RFFU bits")
        return cls(bool(value[0] & 0x80))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return one byte with the R bit."""
        return b"\x80" if self.reserve else b"\0"

    def summary(self) -> str:
        """Return ``EVEN-PORT=R`` or ``EVEN-PORT``."""
        return "EVEN-PORT=R" if self.reserve else "EVEN-PORT"


@register
@dataclass(frozen=True, slots=True)
class RequestedTransport(Attribute):
    """REQUESTED-TRANSPORT: the IP protocol of the relay, 17 = UDP (RFC 8656 §18.8)."""

    TYPE: ClassVar[int] = T.REQUESTED_TRANSPORT
    protocol: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "RequestedTransport":
        """Return the protocol number; non-zero RFFU bytes are malformed."""
        word = _word(cls, value)
        require(word & 0xFFFFFF == 0, "REQUESTED-TRANSPORT has non-zero RFFU bytes")
        return cls(word >> 24)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the protocol and three zero bytes."""
        return bytes((self.protocol, 0, 0, 0))

    def summary(self) -> str:
        """Return ``REQUESTED-TRANSPORT=UDP|TCP|n``."""
        return f"REQUESTED-TRANSPORT={ {17: 'UDP', 6: 'TCP'}.get(self.protocol, self.protocol)}"


@register
@dataclass(frozen=True, slots=True)
class DontFragment(FlagAttribute):
    """DONT-FRAGMENT: set DF on the relayed datagrams (RFC 8656 §18.9)."""

    TYPE: ClassVar[int] = T.DONT_FRAGMENT


@register
@dataclass(frozen=True, slots=True)
class ReservationToken(OpaqueAttribute):
    """RESERVATION-TOKEN: names a port reserved by EVEN-PORT R (RFC 8656 §18.10)."""

    TYPE: ClassVar[int] = T.RESERVATION_TOKEN
    SIZES: ClassVar[tuple[int, ...]] = (8,)
    value: bytes


@register
@dataclass(frozen=True, slots=True)
class AddressErrorCode(Attribute):
    """ADDRESS-ERROR-CODE: why one family of a dual allocation failed (RFC 8656 §18.12)."""

    TYPE: ClassVar[int] = T.ADDRESS_ERROR_CODE
    family: int
    code: int
    reason: str = ""

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "AddressErrorCode":
        """Return family, code and reason; reserved bits or number > 99 are malformed."""
        require(len(value) >= 4, f"ADDRESS-ERROR-CODE has length {len(value)}")
        word = int.from_bytes(value[:4], "big")
        require(word & 0x00FFF800 == 0, "ADDRESS-ERROR-CODE has non-zero reserved bits")
        number = word & 0xFF
        require(number < 100, f"ADDRESS-ERROR-CODE number {number} is over 99")
        return cls(word >> 24, ((word >> 8) & 0x7) * 100 + number, value[4:].decode("utf-8"))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return family, class, number and reason."""
        klass, number = divmod(self.code, 100)
        return bytes((self.family, 0, klass & 0x7, number)) + self.reason.encode("utf-8")


@register
@dataclass(frozen=True, slots=True)
class Icmp(Attribute):
    """ICMP: the ICMP error a relayed datagram caused (RFC 8656 §18.13)."""

    TYPE: ClassVar[int] = T.ICMP
    icmp_type: int
    icmp_code: int
    error_data: int = 0

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "Icmp":
        """Return type, code and error data; a length other than 8 or reserved bits are malformed."""
        require(len(value) == 8, f"ICMP has length {len(value)}")
        word = int.from_bytes(value[:4], "big")
        require(word >> 16 == 0, "ICMP has non-zero reserved bits")
        return cls((word >> 9) & 0x7F, word & 0x1FF, int.from_bytes(value[4:], "big"))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the reserved half, type, code and error data."""
        word = ((self.icmp_type & 0x7F) << 9) | (self.icmp_code & 0x1FF)
        return word.to_bytes(4, "big") + self.error_data.to_bytes(4, "big")


@register
@dataclass(frozen=True, slots=True)
class ConnectionId(Attribute):
    """CONNECTION-ID: names a peer TCP connection of a TCP allocation (RFC 6062 §6.2.1)."""

    TYPE: ClassVar[int] = T.CONNECTION_ID
    value: int

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes) -> "ConnectionId":
        """Return the 32-bit connection id."""
        return cls(_word(cls, value))

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the id as 4 bytes."""
        return self.value.to_bytes(4, "big")
