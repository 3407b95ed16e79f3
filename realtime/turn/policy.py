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
        +-- loopback, private (RFC 1918, fc00::/7), link-local,
        |   multicast, unspecified, reserved, CGNAT, any other
        |   address IANA marks not globally reachable ........ refused (403)
        +-- otherwise (a global unicast address) ............. allowed

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


class PeerPolicy:
    """Decide whether a relay may talk to a peer address.

    :param allow_loopback: allow 127.0.0.0/8 and ::1 (tests, ``--allow-loopback-peers``).
    :param allow: CIDRs allowed even if not global (``--allow-peer``).
    :param deny: CIDRs always refused, checked first (``--deny-peer``).
    """

    def __init__(self, allow_loopback: bool = False, allow: Iterable[str] = (),
                 deny: Iterable[str] = ()) -> None:
        self.allow_loopback = allow_loopback
        self.allow = tuple(ipaddress.ip_network(c, strict=False) for c in allow)
        self.deny = tuple(ipaddress.ip_network(c, strict=False) for c in deny)
        self._cache: dict[str, bool] = {}

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
