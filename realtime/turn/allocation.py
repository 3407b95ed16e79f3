"""
An allocation's state: relayed address, permissions, channel bindings, lifetimes.

An *allocation* (RFC 8656 §2, §3) is a relayed transport address on the
server, owned by one client 5-tuple (client address, server address,
transport).  It lives as long as the client refreshes it; it relays only to
peers the client has *permissions* for; *channels* give peers a short
header.  Its life (RFC 8656 §7-§8)::

                 Allocate ok                 Refresh(lifetime > 0)
       (none) --------------> ALLOCATED <-----------------------+
                                  |   |                         |
                                  |   +-------------------------+
                 Refresh(0) /     |
          lifetime expired /      | credential expired or revoked
          TCP connection lost     v
                  |           SUSPENDED   (nothing relayed; deleted after the grace)
                  v               |
               DELETED <----------+

    per allocation:
      permissions   peer IP    -> expiry        300 s, refreshed by CreatePermission
                                                 and ChannelBind (§9)
      channels      number     -> (peer, expiry) 600 s, refreshed by ChannelBind (§12)
      channel_by_peer  peer address -> binding

A permission is for an IP address, any port (§9); a channel is for one
address and port.  Expired entries stop counting at once (every check
compares with ``now``) and are removed by the server's sweep.

The relayed addresses come from a :class:`RelayAllocator`.
:class:`RelayPortPool` is the pure one (it only picks port numbers, for
tests and replay); the Twisted adapter wraps it and binds a UDP socket per
address (:mod:`realtime.net.turn_relay`).
"""

from __future__ import annotations

import random as _random
from typing import Callable, Hashable, Protocol

from realtime.addresses import Address
from realtime.stun.attributes import IPV4, IPV6
from realtime.turn.credentials import Credential
from realtime.turn.policy import TokenBucket

#: (socket, remote address): a client 5-tuple, or (relay address, peer address).
Route = tuple[Hashable, Address]

PERMISSION_LIFETIME = 300.0
"""Seconds a permission lasts (RFC 8656 §9)."""
CHANNEL_LIFETIME = 600.0
"""Seconds a channel binding lasts (RFC 8656 §12)."""


def is_stream(listener: Hashable) -> bool:
    """Return True if ``listener`` names a TCP or TLS connection (``"tcp..."``, ``"tls..."``)."""
    return isinstance(listener, str) and listener.startswith(("tcp", "tls"))


class ChannelBinding:
    """One channel: its number, the peer it names, when it expires, and the relay it leaves by."""

    __slots__ = ("number", "peer", "expires", "relay")

    def __init__(self, number: int, peer: Address, expires: float, relay: Address) -> None:
        self.number = number
        self.peer = peer
        self.expires = expires
        self.relay = relay


class Limits:
    """An allocation's three rate limits (Cloudflare-like defaults).

    :param peers_per_second: new peer addresses per second (burst: twice that).
    :param packets_per_second: relayed datagrams per second, both directions (burst: 1 s).
    :param bytes_per_second: relayed bytes per second (burst: 1 s); 12.5 MB/s = 100 Mbit/s.
    """

    __slots__ = ("peers_per_second", "packets_per_second", "bytes_per_second")

    def __init__(self, peers_per_second: float = 10.0, packets_per_second: float = 10000.0,
                 bytes_per_second: float = 12.5e6) -> None:
        self.peers_per_second = peers_per_second
        self.packets_per_second = packets_per_second
        self.bytes_per_second = bytes_per_second


class Allocation:
    """The state of one allocation (see the module diagram).

    :ivar client: the client's route ``(listener socket, client address)``.
    :ivar relay: the relayed transport address (the first, when there are two).
    :ivar relays: every relayed address: one, or an IPv4 and an IPv6 one for a
        *dual allocation* (ADDITIONAL-ADDRESS-FAMILY, RFC 8656 §7.2).
    :ivar credential: who created it (later requests must use the same username).
    :ivar expires: when it expires unless refreshed.
    :ivar stream: the client is on TCP/TLS (ChannelData is padded).
    :ivar ingress: bytes received from the client since the last usage report.
    :ivar egress: bytes sent to the client since the last usage report.
    :ivar dropped: relayed datagrams dropped by the rate limits.
    :ivar suspended_until: deletion time once the credential went bad, else ``None``.
    """

    __slots__ = (
        "client", "relay", "relays", "credential", "expires", "transaction_id", "stream",
        "fingerprint", "permissions", "channels", "channel_by_peer", "packets", "bytes",
        "new_peers", "ingress", "egress", "dropped", "suspended_until", "dont_fragment",
    )

    def __init__(self, client: Route, relay: Address, credential: Credential, expires: float,
                 transaction_id: bytes, stream: bool, limits: Limits, now: float) -> None:
        self.client = client
        self.relay = relay
        self.relays: tuple[Address, ...] = (relay,)
        self.credential = credential
        self.expires = expires
        self.transaction_id = transaction_id
        self.stream = stream
        self.fingerprint = False
        self.dont_fragment = False
        self.permissions: dict[str, float] = {}
        self.channels: dict[int, ChannelBinding] = {}
        self.channel_by_peer: dict[Address, ChannelBinding] = {}
        self.packets = TokenBucket(limits.packets_per_second, limits.packets_per_second, now)
        self.bytes = TokenBucket(limits.bytes_per_second, limits.bytes_per_second, now)
        self.new_peers = TokenBucket(limits.peers_per_second, 2 * limits.peers_per_second, now)
        self.ingress = 0
        self.egress = 0
        self.dropped = 0
        self.suspended_until: float | None = None

    @property
    def family(self) -> int:
        """Return the (first) relayed address family (:data:`IPV4` or :data:`IPV6`)."""
        return IPV6 if ":" in self.relay[0] else IPV4

    def relay_of(self, family: int) -> Address | None:
        """Return the relayed address of ``family``, or ``None`` (a peer of it gets 443)."""
        for relay in self.relays:
            if (IPV6 if ":" in relay[0] else IPV4) == family:
                return relay
        return None

    def permitted(self, host: str, now: float) -> bool:
        """Return True if a live permission covers ``host``."""
        expires = self.permissions.get(host)
        return expires is not None and expires > now

    def install_permission(self, host: str, now: float) -> None:
        """Create or refresh the permission for ``host`` (300 s)."""
        self.permissions[host] = now + PERMISSION_LIFETIME

    def bind_channel(self, number: int, peer: Address, now: float) -> None:
        """Create or refresh channel ``number`` for ``peer`` (600 s) and its permission."""
        binding = self.channels.get(number)
        if binding is None:
            relay = self.relay_of(IPV6 if ":" in peer[0] else IPV4) or self.relay
            binding = ChannelBinding(number, peer, now + CHANNEL_LIFETIME, relay)
            self.channels[number] = binding
            self.channel_by_peer[peer] = binding
        else:
            binding.expires = now + CHANNEL_LIFETIME
        self.install_permission(peer[0], now)

    def channel_conflict(self, number: int, peer: Address, now: float) -> bool:
        """Return True if ``number`` or ``peer`` is bound (live) to something else (§12.2)."""
        binding = self.channels.get(number)
        if binding is not None and binding.expires > now and binding.peer != peer:
            return True
        other = self.channel_by_peer.get(peer)
        return other is not None and other.expires > now and other.number != number

    def expire(self, now: float) -> None:
        """Remove permissions and channel bindings that have expired."""
        for host in [h for h, t in self.permissions.items() if t <= now]:
            del self.permissions[host]
        for number in [n for n, b in self.channels.items() if b.expires <= now]:
            binding = self.channels.pop(number)
            if self.channel_by_peer.get(binding.peer) is binding:
                del self.channel_by_peer[binding.peer]

    def next_deadline(self) -> float:
        """Return the earliest expiry among the allocation, its permissions and channels."""
        suspended = self.suspended_until
        deadline = self.expires if suspended is None else min(self.expires, suspended)
        if self.credential.expires is not None and self.suspended_until is None:
            deadline = min(deadline, self.credential.expires)
        for expires in self.permissions.values():
            deadline = min(deadline, expires)
        for binding in self.channels.values():
            deadline = min(deadline, binding.expires)
        return deadline


class RelayAllocator(Protocol):
    """Hand out relayed transport addresses (and take them back)."""

    def open(self, family: int, *, even: bool = False,
             pair: bool = False) -> tuple[Address, ...] | None:
        """Return one address (two consecutive ones, the first even, if ``pair``), or None."""
        ...

    def close(self, address: Address) -> None:
        """Release ``address``."""
        ...


class RelayPortPool:
    """Pick relay ports at random from ``low..high`` on one host per address family.

    Pure bookkeeping: no socket is opened.  Random choice makes relayed
    addresses hard to guess (RFC 8656 §7.2 recommends it).

    :param hosts: ``{IPV4: "203.0.113.5", IPV6: "2001:db8::5"}``; a family
        without a host cannot be allocated (440).
    :param low: the first relay port.
    :param high: the last relay port.
    :param choice: ``choice(sequence)``, injected for deterministic tests.
    """

    def __init__(self, hosts: dict[int, str], low: int = 49152, high: int = 65535,
                 choice: Callable = _random.SystemRandom().choice) -> None:
        if not 0 < low <= high <= 65535:
            raise ValueError(f"bad relay port range {low}-{high}")
        self.hosts = dict(hosts)
        self.low = low
        self.high = high
        self._choice = choice
        self.in_use: set[Address] = set()

    def supports(self, family: int) -> bool:
        """Return True if relays of ``family`` can be allocated."""
        return family in self.hosts

    def open(self, family: int, *, even: bool = False,
             pair: bool = False) -> tuple[Address, ...] | None:
        """Return free address(es) of ``family`` and mark them used, or ``None``."""
        host = self.hosts.get(family)
        if host is None:
            return None
        even = even or pair
        start = self.low + (self.low & 1) if even else self.low
        stop = self.high + 1 - pair
        if start >= stop:
            return None
        ports = range(start, stop, 2 if even else 1)
        for _ in range(16):  # cheap random probes first, a full scan if the pool is crowded
            port = self._choice(ports)
            if self._free(host, port, pair):
                break
        else:
            candidates = self.free_ports(host, even, pair)
            if not candidates:
                return None
            port = self._choice(candidates)
        chosen = ((host, port), (host, port + 1)) if pair else ((host, port),)
        self.in_use.update(chosen)
        return chosen

    def _free(self, host: str, port: int, pair: bool) -> bool:
        used = self.in_use
        return (host, port) not in used and not (pair and (host, port + 1) in used)

    def free_ports(self, host: str, even: bool, pair: bool) -> list[int]:
        """Return the ports that could be handed out now (the first of a pair if ``pair``)."""
        start = self.low + (self.low & 1) if even else self.low
        return [p for p in range(start, self.high + 1 - pair, 2 if even else 1)
                if self._free(host, p, pair)]

    def close(self, address: Address) -> None:
        """Mark ``address`` free again."""
        self.in_use.discard(address)
