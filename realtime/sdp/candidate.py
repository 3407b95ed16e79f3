"""
ICE candidates in SDP (RFC 8839 §5.1) and ``a=end-of-candidates`` (§5.2).

::

    a=candidate:<foundation> <component> <transport> <priority>
                <address> <port> typ <host|srflx|prflx|relay>
                [raddr <address>] [rport <port>]
                *(<extension-name> <extension-value>)

    a=candidate:4104601358 1 udp 2122260223 127.0.0.1 41516 typ host
                generation 0 network-id 1 network-cost 50

Extension pairs (``generation``, ``tcptype``, ``network-id`` ...) are kept in
order so a candidate line round-trips.  The server is ICE-lite (RFC 8445
§2.5): it advertises host candidates only and never gathers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from realtime.sdp.attributes import is_token, malformed, parse_int

#: RFC 8445 §5.1.2.1 type preferences for a host candidate
HOST_TYPE_PREFERENCE = 126


def candidate_priority(component: int = 1, type_preference: int = HOST_TYPE_PREFERENCE,
                       local_preference: int = 65535) -> int:
    """Return the RFC 8445 §5.1.2.1 priority ``2^24*type + 2^8*local + (256 - component)``."""
    return (type_preference << 24) + (local_preference << 8) + (256 - component)


@dataclass(frozen=True, slots=True)
class Candidate:
    """Describe one ICE candidate, the value of an ``a=candidate`` line (RFC 8839 §5.1)."""

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
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def host(cls, address: str, port: int, foundation: str = "1",
             transport: str = "udp") -> Candidate:
        """Build our host candidate for ``address:port`` (IPv4 or IPv6) on component 1."""
        return cls(foundation, 1, transport, candidate_priority(), address, port, "host")

    @classmethod
    def parse(cls, value: str) -> Candidate:
        """Parse the value of an ``a=candidate`` line."""
        parts = value.split()
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2:
            raise malformed(cls.name, value)
        foundation, component, transport, priority, address, port, _, kind = parts[:8]
        if not is_token(foundation) or not is_token(transport) or not is_token(kind):
            raise malformed(cls.name, value)
        if not is_token(address.replace(":", "-")):
            raise malformed(cls.name, value)
        related_address = related_port = None
        extensions: list[tuple[str, str]] = []
        for key, item in zip(parts[8::2], parts[9::2]):
            if key == "raddr" and related_address is None and not extensions:
                related_address = item
            elif key == "rport" and related_port is None and not extensions:
                related_port = parse_int(item, cls.name, value, 0, 65535)
            else:
                extensions.append((key, item))
        return cls(
            foundation,
            parse_int(component, cls.name, value, 1, 256),
            transport,
            parse_int(priority, cls.name, value, 0, 2**32 - 1),
            address,
            parse_int(port, cls.name, value, 0, 65535),
            kind,
            related_address,
            related_port,
            tuple(extensions),
        )

    def value(self) -> str:
        """Return the attribute value, fields separated by single spaces."""
        parts = [self.foundation, str(self.component), self.transport, str(self.priority),
                 self.address, str(self.port), "typ", self.type]
        if self.related_address is not None:
            parts += ["raddr", self.related_address]
        if self.related_port is not None:
            parts += ["rport", str(self.related_port)]
        for key, item in self.extensions:
            parts += [key, item]
        return " ".join(parts)

    def line(self) -> str:
        """Return the whole ``a=candidate:`` line."""
        return f"a=candidate:{self.value()}"
