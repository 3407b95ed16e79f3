"""
Transport-address attributes: MAPPED-ADDRESS and its relatives, plain or XORed.

The plain layout (RFC 8489 §14.1, unchanged since RFC 3489 §11.2.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |0 0 0 0 0 0 0 0|    Family     |           Port                |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 Address (32 bits or 128 bits)                 |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Family 0x01 is IPv4 (4-byte address), 0x02 is IPv6 (16 bytes).

The XOR layout (RFC 8489 §14.2) is the same with ``X-Port`` and
``X-Address``: the port is XORed with the top 16 bits of the magic cookie
(0x2112), an IPv4 address with the cookie (0x2112A442) and an IPv6 address
with the cookie followed by the 96-bit transaction id.  NATs that rewrite
addresses they find in payloads (some ALGs did with MAPPED-ADDRESS) leave
XORed ones alone, which is why RFC 5389 introduced them.

Who uses which layout:

=====================  ======  ==========================================
attribute              layout  defined by
=====================  ======  ==========================================
MAPPED-ADDRESS         plain   RFC 8489 §14.1 (classic responses)
XOR-MAPPED-ADDRESS     XOR     RFC 8489 §14.2
ALTERNATE-SERVER       plain   RFC 8489 §14.15
XOR-PEER-ADDRESS       XOR     RFC 8656 §18.3
XOR-RELAYED-ADDRESS    XOR     RFC 8656 §18.5
RESPONSE-ORIGIN        plain   RFC 5780 §7.3
OTHER-ADDRESS          plain   RFC 5780 §7.4
RESPONSE-ADDRESS       plain   RFC 3489 §11.2.2
CHANGED-ADDRESS        plain   RFC 3489 §11.2.3
SOURCE-ADDRESS         plain   RFC 3489 §11.2.5
REFLECTED-FROM         plain   RFC 3489 §11.2.11
=====================  ======  ==========================================
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import ClassVar

from realtime.errors import DecodeError, LocalProtocolError
from realtime.stun.layout import Attribute, register, require
from realtime.stun.registry import StunAttributeType as T, attribute_name

IPV4 = 0x01
"""Address family code of IPv4 (RFC 8489 §14.1)."""
IPV6 = 0x02
"""Address family code of IPv6 (RFC 8489 §14.1)."""

_SIZES = {IPV4: 4, IPV6: 16}
_AF = {IPV4: socket.AF_INET, IPV6: socket.AF_INET6}


def family_of(address: str) -> int:
    """Return :data:`IPV6` if ``address`` contains a colon, else :data:`IPV4`."""
    return IPV6 if ":" in address else IPV4


def _xor(data: bytes, key: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(key[: len(data)], "big")).to_bytes(len(data), "big")


class AddressAttribute(Attribute):
    """Base of the plain address attributes: ``family``, ``address``, ``port``.

    ``address`` is the text :func:`socket.inet_ntop` writes (decoded values
    compare equal only in that canonical form).
    """

    __slots__ = ()
    XOR: ClassVar[bool] = False
    family: int
    address: str
    port: int

    @classmethod
    def of(cls, address: str, port: int):
        """Return the attribute for ``(address, port)`` with the family inferred."""
        return cls(family_of(address), address, port)

    @classmethod
    def decode_value(cls, value: bytes, xor_key: bytes):
        """Return the attribute; unknown family, bad length or reserved bits are malformed."""
        name = attribute_name(cls.TYPE)
        require(len(value) >= 4, f"{name} has length {len(value)}")
        family = value[1]
        size = _SIZES.get(family)
        if size is None:
            raise DecodeError(f"{name} has unknown family {family}")
        require(len(value) == 4 + size, f"{name} has length {len(value)} for family {family}")
        require(value[0] == 0, f"{name} has reserved byte {value[0]}")
        port = int.from_bytes(value[2:4], "big")
        raw = value[4:]
        if cls.XOR:
            port ^= 0x2112
            raw = _xor(raw, xor_key)
        return cls(family, socket.inet_ntop(_AF[family], raw), port)

    def encode_value(self, xor_key: bytes) -> bytes:
        """Return the value bytes, XORed for the XOR- attributes."""
        try:
            raw = socket.inet_pton(_AF[self.family], self.address)
        except (KeyError, OSError, ValueError):
            raise LocalProtocolError(
                f"cannot encode {self.address!r} as address family {self.family}"
            ) from None
        if not 0 <= self.port <= 0xFFFF:
            raise LocalProtocolError(f"port {self.port} out of range")
        port = self.port
        if self.XOR:
            port ^= 0x2112
            raw = _xor(raw, xor_key)
        return bytes((0, self.family)) + port.to_bytes(2, "big") + raw

    def summary(self) -> str:
        """Return ``NAME=host:port`` (IPv6 in brackets)."""
        host = f"[{self.address}]" if self.family == IPV6 else self.address
        return f"{attribute_name(self.TYPE)}={host}:{self.port}"


class XorAddressAttribute(AddressAttribute):
    """Base of the XOR-ed address attributes (RFC 8489 §14.2)."""

    __slots__ = ()
    XOR: ClassVar[bool] = True


@register
@dataclass(frozen=True, slots=True)
class MappedAddress(AddressAttribute):
    """MAPPED-ADDRESS: the reflexive transport address, unobfuscated (RFC 8489 §14.1)."""

    TYPE: ClassVar[int] = T.MAPPED_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class XorMappedAddress(XorAddressAttribute):
    """XOR-MAPPED-ADDRESS: the reflexive transport address, XORed (RFC 8489 §14.2)."""

    TYPE: ClassVar[int] = T.XOR_MAPPED_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class XorPeerAddress(XorAddressAttribute):
    """XOR-PEER-ADDRESS: a peer's address as seen from the relay (RFC 8656 §18.3)."""

    TYPE: ClassVar[int] = T.XOR_PEER_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class XorRelayedAddress(XorAddressAttribute):
    """XOR-RELAYED-ADDRESS: the relayed transport address of an allocation (RFC 8656 §18.5)."""

    TYPE: ClassVar[int] = T.XOR_RELAYED_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class AlternateServer(AddressAttribute):
    """ALTERNATE-SERVER: where a 300 (Try Alternate) response redirects (RFC 8489 §14.15)."""

    TYPE: ClassVar[int] = T.ALTERNATE_SERVER
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class ResponseOrigin(AddressAttribute):
    """RESPONSE-ORIGIN: the address a response was sent from (RFC 5780 §7.3)."""

    TYPE: ClassVar[int] = T.RESPONSE_ORIGIN
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class OtherAddress(AddressAttribute):
    """OTHER-ADDRESS: the server's alternate IP and port for NAT tests (RFC 5780 §7.4)."""

    TYPE: ClassVar[int] = T.OTHER_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class ResponseAddress(AddressAttribute):
    """RESPONSE-ADDRESS: where to send the response (classic RFC 3489 §11.2.2)."""

    TYPE: ClassVar[int] = T.RESPONSE_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class ChangedAddress(AddressAttribute):
    """CHANGED-ADDRESS: the server's alternate address (classic RFC 3489 §11.2.3)."""

    TYPE: ClassVar[int] = T.CHANGED_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class SourceAddress(AddressAttribute):
    """SOURCE-ADDRESS: the address the response was sent from (classic RFC 3489 §11.2.5)."""

    TYPE: ClassVar[int] = T.SOURCE_ADDRESS
    family: int
    address: str
    port: int


@register
@dataclass(frozen=True, slots=True)
class ReflectedFrom(AddressAttribute):
    """REFLECTED-FROM: who asked for a RESPONSE-ADDRESS redirect (classic RFC 3489 §11.2.11)."""

    TYPE: ClassVar[int] = T.REFLECTED_FROM
    family: int
    address: str
    port: int
