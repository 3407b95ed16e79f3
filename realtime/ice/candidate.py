"""
ICE candidates: the SDP ``candidate`` attribute, priorities and foundations.

A candidate is one transport address an agent can receive on (RFC 8445 §5.1).
An ICE-lite server has exactly one kind: a *host* candidate on its media
port, announced in the answer (RFC 8445 §5.1.1.1; lite agents gather nothing
else).  Peers announce theirs the same way; we parse them for completeness
and diagnostics, but never run checks towards them (RFC 8445 §2.5).

The SDP grammar (RFC 8839 §5.1, with the ``tcptype`` extension of RFC 6544
§4.5)::

    candidate-attribute = "candidate" ":" foundation SP component-id SP
                          transport SP priority SP
                          connection-address SP port
                          SP cand-type
                          [SP rel-addr] [SP rel-port]
                          [SP tcp-type-ext]
                          *(SP cand-extension)
    foundation          = 1*32ice-char           ; ALPHA / DIGIT / "+" / "/"
    component-id        = 1*3DIGIT               ; 1..256
    transport           = "UDP" / token          ; case-insensitive
    priority            = 1*10DIGIT              ; 1..2^31-1 in practice
    cand-type           = "typ" SP ("host" / "srflx" / "prflx" / "relay" / token)
    rel-addr            = "raddr" SP connection-address
    rel-port            = "rport" SP port
    tcp-type-ext        = "tcptype" SP ("active" / "passive" / "so")
    cand-extension      = token SP *VCHAR        ; kept raw, in order

For example, Chromium writes::

    candidate:2845882245 1 udp 2122260223 127.0.0.1 36585 typ host generation 0 network-id 1

The priority formula (RFC 8445 §5.1.2.1)::

    priority = 2^24 * type-preference + 2^8 * local-preference + (256 - component-id)

     31        24 23                      8 7          0
    +------------+-------------------------+------------+
    |  type pref |     local preference    | 256 - comp |
    +------------+-------------------------+------------+

with the recommended type preferences 126 (host), 110 (prflx), 100 (srflx)
and 0 (relay) (RFC 8445 §5.1.2.2).

Decoding keeps every token's spelling, so ``Candidate.decode(s).encode() == s``
for every well-formed line that starts with ``candidate:``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from realtime.errors import DecodeError, LocalProtocolError

__all__ = [
    "Candidate",
    "CandidateType",
    "TYPE_PREFERENCE",
    "candidate_priority",
    "candidate_foundation",
]


class CandidateType(str, Enum):
    """The candidate types of RFC 8445 §5.1.1 (the SDP ``typ`` values)."""

    HOST = "host"  #: an address on a local interface (RFC 8445 §5.1.1.1)
    SRFLX = "srflx"  #: server reflexive, learned from STUN (RFC 8445 §5.1.1.2)
    PRFLX = "prflx"  #: peer reflexive, learned from a check (RFC 8445 §7.2.5.3.1)
    RELAY = "relay"  #: relayed through a TURN server (RFC 8445 §5.1.1.2)


#: Recommended type preferences, RFC 8445 §5.1.2.2.
TYPE_PREFERENCE: dict[str, int] = {
    CandidateType.HOST.value: 126,
    CandidateType.PRFLX.value: 110,
    CandidateType.SRFLX.value: 100,
    CandidateType.RELAY.value: 0,
}

_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]{1,32}")
# RFC 3261 token characters.
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_DIGITS = re.compile(r"[0-9]+")
_VCHARS = re.compile(r"[\x21-\x7e]+")
#: connection-address (RFC 8839 §5.1): an IPv4/IPv6 literal or an FQDN (mDNS names included)
_ADDRESS = re.compile(r"[A-Za-z0-9.:\-]+")
_PREFIX = "candidate:"


def candidate_priority(type_preference: int, local_preference: int, component: int) -> int:
    """Return the RFC 8445 §5.1.2.1 priority of a candidate.

    :param type_preference: 0..126; see :data:`TYPE_PREFERENCE`.
    :param local_preference: 0..65535; 65535 when there is one interface.
    :param component: component ID, 1..256 (1 = RTP, the only one with rtcp-mux).
    :raises LocalProtocolError: if a value is out of range.
    """
    if not 0 <= type_preference <= 126:
        raise LocalProtocolError(f"type preference {type_preference} is not in 0..126")
    if not 0 <= local_preference <= 0xFFFF:
        raise LocalProtocolError(f"local preference {local_preference} is not in 0..65535")
    if not 1 <= component <= 256:
        raise LocalProtocolError(f"component {component} is not in 1..256")
    return (type_preference << 24) | (local_preference << 8) | (256 - component)


def candidate_foundation(
    candidate_type: str, base_address: str, transport: str = "udp", server: str | None = None
) -> str:
    """Return a foundation shared by candidates that RFC 8445 §5.1.1.3 calls alike.

    Two candidates have the same foundation when they have the same type, the
    same base IP address, the same STUN/TURN ``server`` (None for host
    candidates) and the same transport.  The value is the first 48 bits of a
    SHA-256 over those four, in base64: 8 ``ice-char``\\ s, stable across runs
    and processes, so every node of a cluster announces the same foundation.
    """
    material = "\x00".join(
        (candidate_type.lower(), base_address, transport.lower(), server or "")
    ).encode()
    return base64.b64encode(hashlib.sha256(material).digest()[:6]).decode("ascii")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One ICE candidate as carried by the SDP ``candidate`` attribute (RFC 8839 §5.1).

    Text fields keep the spelling they were decoded with (``UDP`` stays
    ``UDP``); compare :attr:`transport` case-insensitively.
    """

    #: the SDP attribute name (realtime.sdp parses ``a=candidate`` through this class)
    name: ClassVar[str] = "candidate"

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    tcptype: str | None = None
    #: Unknown ``name value`` pairs (``generation 0``), kept raw and in order.
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def host(
        cls,
        address: str,
        port: int,
        *,
        component: int = 1,
        transport: str = "udp",
        local_preference: int = 0xFFFF,
    ) -> "Candidate":
        """Return the host candidate for a media address (IPv4 or IPv6 literal).

        The priority uses type preference 126 (RFC 8445 §5.1.2.2); the
        foundation is :func:`candidate_foundation` of the address.

        :raises LocalProtocolError: if ``address`` is not an IP literal or
            ``port`` is not in 1..65535.
        """
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise LocalProtocolError(f"host candidate address {address!r} is not an IP") from None
        if not 1 <= port <= 0xFFFF:
            raise LocalProtocolError(f"host candidate port {port} is not in 1..65535")
        text = ip.compressed
        return cls(
            foundation=candidate_foundation("host", text, transport),
            component=component,
            transport=transport,
            priority=candidate_priority(126, local_preference, component),
            address=text,
            port=port,
            type=CandidateType.HOST.value,
        )

    @classmethod
    def decode(cls, text: str) -> "Candidate":
        """Parse a ``candidate:`` attribute (the ``a=`` prefix already stripped).

        The ``candidate:`` prefix itself is optional, so the value of an
        ``RTCIceCandidate.candidate`` string and the SDP attribute value both
        parse.

        :raises DecodeError: with an exact message for every grammar violation.
        """
        if text.startswith(_PREFIX):
            text = text[len(_PREFIX) :]
        fields = text.split(" ")
        if len(fields) < 8:
            raise DecodeError(f"candidate has {len(fields)} fields, need at least 8")
        if "" in fields:
            raise DecodeError("candidate has an empty field")
        foundation, component, transport, priority, address, port, typ, cand_type = fields[:8]
        if not _ICE_CHARS.fullmatch(foundation):
            raise DecodeError(f"candidate foundation {foundation!r} is not 1..32 ice-chars")
        component_id = _number(component, "component", 3, 1, 256)
        if not _TOKEN.fullmatch(transport):
            raise DecodeError(f"candidate transport {transport!r} is not a token")
        priority_value = _number(priority, "priority", 10, 1, 0xFFFFFFFF)
        port_value = _number(port, "port", 5, 0, 0xFFFF)
        if not _ADDRESS.fullmatch(address):
            raise DecodeError(f"candidate address {address!r} is not an IP address or FQDN")
        if typ != "typ":
            raise DecodeError(f"candidate has {typ!r} where 'typ' belongs")
        if not _TOKEN.fullmatch(cand_type):
            raise DecodeError(f"candidate type {cand_type!r} is not a token")
        rest = fields[8:]
        related_address = related_port = tcptype = None
        if rest[:1] == ["raddr"]:
            if len(rest) < 2:
                raise DecodeError("candidate raddr has no value")
            related_address, rest = rest[1], rest[2:]
            if not _ADDRESS.fullmatch(related_address):
                raise DecodeError(f"candidate raddr {related_address!r} is not an IP address or FQDN")
        if rest[:1] == ["rport"]:
            if len(rest) < 2:
                raise DecodeError("candidate rport has no value")
            related_port, rest = _number(rest[1], "rport", 5, 0, 0xFFFF), rest[2:]
        if rest[:1] == ["tcptype"]:
            if len(rest) < 2:
                raise DecodeError("candidate tcptype has no value")
            tcptype, rest = rest[1], rest[2:]
            if not _TOKEN.fullmatch(tcptype):
                raise DecodeError(f"candidate tcptype {tcptype!r} is not a token")
        if len(rest) % 2:
            raise DecodeError(f"candidate extension {rest[-1]!r} has no value")
        extensions = tuple(zip(rest[0::2], rest[1::2]))
        for name, value in extensions:
            if not _TOKEN.fullmatch(name):
                raise DecodeError(f"candidate extension name {name!r} is not a token")
            if not _VCHARS.fullmatch(value):
                raise DecodeError(f"candidate extension value {value!r} is not printable")
        return cls(
            foundation,
            component_id,
            transport,
            priority_value,
            address,
            port_value,
            cand_type,
            related_address,
            related_port,
            tcptype,
            extensions,
        )

    def encode(self) -> str:
        """Return the attribute as ``candidate:...`` (without ``a=``)."""
        parts = [
            f"{_PREFIX}{self.foundation}",
            str(self.component),
            self.transport,
            str(self.priority),
            self.address,
            str(self.port),
            "typ",
            self.type,
        ]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        if self.tcptype is not None:
            parts += ["tcptype", self.tcptype]
        for name, value in self.extensions:
            parts += [name, value]
        return " ".join(parts)

    @classmethod
    def parse(cls, value: str) -> "Candidate":
        """Parse the value of an SDP ``a=candidate:`` line (alias of :meth:`decode`)."""
        return cls.decode(value)

    def value(self) -> str:
        """Return the value of the ``a=candidate:`` line (:meth:`encode` without the prefix)."""
        return self.encode()[len(_PREFIX) :]

    def line(self) -> str:
        """Return the whole SDP line, ``a=candidate:...``."""
        return "a=" + self.encode()


def _number(text: str, name: str, max_digits: int, low: int, high: int) -> int:
    """Parse 1..``max_digits`` DIGITs in ``low..high`` or raise DecodeError."""
    if len(text) > max_digits or not _DIGITS.fullmatch(text):
        raise DecodeError(f"candidate {name} {text!r} is not 1..{max_digits} digits")
    value = int(text)
    if not low <= value <= high:
        raise DecodeError(f"candidate {name} {value} is not in {low}..{high}")
    return value
