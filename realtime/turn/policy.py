"""
Which peers a relay may reach, and how fast: address filtering and token buckets.

**Peer filtering.**  A TURN relay is an open proxy for whoever holds a
credential, so a server must not let it reach the networks behind it
(RFC 8656 §21.2.3, "Exploiting a TURN server to reach internal hosts").
Cloudflare and coturn refuse CreatePermission, ChannelBind and Send towards
non-public ranges; :class:`PeerPolicy` does the same, in this order::

    peer IP (IPv4-mapped IPv6 unwrapped to IPv4)
        |
        +-- in a --deny-peer CIDR ............................ refused (403)
        +-- in an --allow-peer CIDR .......................... allowed
        +-- loopback and --allow-loopback-peers .............. allowed
        +-- in DENIED_RANGES (below: private, CGNAT, link-local,
        |   multicast, documentation, 6to4, Teredo, site-local ...) refused (403)
        +-- any other address IANA marks not globally
        |   reachable (Python's ``is_global``) ............... refused (403)
        +-- otherwise (a global unicast address) ............. allowed
    peer IP and port (ChannelBind, Send)
        +-- one of the server's own TURN UDP endpoints ....... refused (403 / dropped)

:data:`DENIED_RANGES` is explicit rather than left to the Python version's
idea of "global": 6to4 (``2002::/16``, which embeds any IPv4 address, 10.0.0.1
included), the deprecated site-local ``fec0::/10`` and the 6to4 relay anycast
``192.88.99.0/24`` counted as global in Python 3.11.  The server's own TURN
UDP ports (on its own addresses) are refused so that a relay cannot be
pointed back at the server (TURN inside TURN).  Its relayed addresses and
its SFU media port stay reachable on purpose: when both sides of a call
relay through this server, each side's peer *is* the other's relayed
address, and a client that can only relay reaches the SFU through TURN.

Decisions are cached per host string (bounded), because Send indications
ask for every datagram.

**Rate limits.**  :class:`TokenBucket` is the classic bucket: ``rate``
tokens per second accumulate up to ``burst``; an action costing ``n`` passes
only if ``n`` tokens are there.  Allocations use three (new peer addresses
per second, packets per second, bytes per second, like Cloudflare's
per-allocation limits) and the server one per source for 401 answers.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHE_LIMIT = 4096

#: Ranges never relayed to (unless --allow-peer names them), with where they are defined.
DENIED_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why) for cidr, why in (
        ("0.0.0.0/8", "this network (RFC 791, RFC 6890)"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared address space, CGNAT (RFC 6598)"),
        ("127.0.0.0/8", "loopback (RFC 1122); --allow-loopback-peers"),
        ("169.254.0.0/16", "link-local (RFC 3927)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
        ("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
        ("192.88.99.0/24", "6to4 relay anycast, deprecated (RFC 7526)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking (RFC 2544)"),
        ("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
        ("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
        ("224.0.0.0/4", "multicast (RFC 5771)"),
        ("240.0.0.0/4", "reserved, and broadcast 255.255.255.255 (RFC 1112, RFC 919)"),
        ("::/128", "unspecified (RFC 4291)"),
        ("::1/128", "loopback (RFC 4291); --allow-loopback-peers"),
        ("::/96", "IPv4-compatible, deprecated (RFC 4291 §2.5.5.1)"),
        ("64:ff9b::/96", "NAT64 well-known prefix, embeds IPv4 (RFC 6052)"),
        ("64:ff9b:1::/48", "NAT64 local use (RFC 8215)"),
        ("100::/64", "discard-only (RFC 6666)"),
        ("2001::/32", "Teredo, embeds IPv4 (RFC 4380)"),
        ("2001::/23", "IETF protocol assignments (RFC 2928)"),
        ("2001:db8::/32", "documentation (RFC 3849)"),
        ("2002::/16", "6to4, embeds any IPv4 address (RFC 3056, deprecated by RFC 7526)"),
        ("3fff::/20", "documentation (RFC 9637)"),
        ("5f00::/16", "SRv6 SIDs (RFC 9602)"),
        ("fc00::/7", "unique local (RFC 4193)"),
        ("fe80::/10", "link-local (RFC 4291)"),
        ("fec0::/10", "site-local, deprecated (RFC 3879)"),
        ("ff00::/8", "multicast (RFC 4291)"),
    ))


class PeerPolicy:
    """Decide whether a relay may talk to a peer address.

    :param allow_loopback: allow 127.0.0.0/8 and ::1 (tests, ``--allow-loopback-peers``).
    :param allow: CIDRs allowed even if not global (``--allow-peer``).
    :param deny: CIDRs always refused, checked first (``--deny-peer``).
    :param own_endpoints: the server's own ``(ip, port)`` listening endpoints, never
        relayed to (the service adds the bound ports once it listens).
    """

    def __init__(self, allow_loopback: bool = False, allow: Iterable[str] = (),
                 deny: Iterable[str] = (), own_endpoints: Iterable[tuple[str, int]] = ()) -> None:
        self.allow_loopback = allow_loopback
        self.allow = tuple(ipaddress.ip_network(c, strict=False) for c in allow)
        self.deny = tuple(ipaddress.ip_network(c, strict=False) for c in deny)
        #: ``(ip, port)`` pairs of the server's own sockets; ChannelBind/Send to them is refused
        self.own_endpoints: set[tuple[str, int]] = set()
        self.add_own_endpoints(own_endpoints)
        self._cache: dict[str, bool] = {}

    def add_own_endpoints(self, endpoints: Iterable[tuple[str, int]]) -> None:
        """Refuse ``(ip, port)`` endpoints of the server itself (ports known once bound)."""
        for host, port in endpoints:
            self.own_endpoints.add((str(ipaddress.ip_address(host)), port))

    def permits_endpoint(self, host: str, port: int) -> bool:
        """Return True if a relay may send to ``host:port`` (not one of the server's sockets)."""
        return (host, port) not in self.own_endpoints and self.permits(host)

    def permits(self, host: str) -> bool:
        """Return True if a relay may send to and receive from ``host``."""
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        verdict = self._decide(host)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[host] = verdict
        return verdict

    def _decide(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.deny if net.version == ip.version):
            return False
        if any(ip in net for net in self.allow if net.version == ip.version):
            return True
        if ip.is_loopback:
            return self.allow_loopback
        if any(ip in net for net, _ in DENIED_RANGES if net.version == ip.version):
            return False
        if (ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_unspecified
                or ip.is_reserved):
            return False
        return ip.is_global


class TokenBucket:
    """Let through ``rate`` units per second with bursts up to ``burst`` units.

    :param rate: tokens added per second.
    :param burst: most tokens held (the bucket starts full).
    :param now: the time the bucket is created.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, amount: float, now: float) -> bool:
        """Spend ``amount`` tokens if available at ``now``; return whether they were."""
        tokens = self.tokens
        if now > self.stamp:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if tokens >= amount:
            self.tokens = tokens - amount
            return True
        self.tokens = tokens
        return False
