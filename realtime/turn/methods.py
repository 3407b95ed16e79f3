"""
The four TURN request methods: Allocate, Refresh, CreatePermission, ChannelBind.

Each handler runs after authentication (:mod:`realtime.turn.server`) and
either returns the success response's attributes or raises :class:`Reply`
with an error code (table in :mod:`realtime.turn.responses`).  The checks
follow the RFC's numbered steps, in order:

Allocate (RFC 8656 §7.2)::

    5-tuple has an allocation ..... same transaction id: success again, else 437
    REQUESTED-TRANSPORT ........... missing/malformed 400, not UDP 442 (no RFC 6062)
    RESERVATION-TOKEN with EVEN-PORT or an address family ........... 400
    REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together; additional not IPv6 ... 400
    family without a relay host .................................... 440
    username at its allocation cap ................................. 486
    server full, no relay port, unknown or stale reservation ........ 508
    success: XOR-RELAYED-ADDRESS, LIFETIME, [RESERVATION-TOKEN], XOR-MAPPED-ADDRESS

With ADDITIONAL-ADDRESS-FAMILY (IPv6) the allocation is *dual*: an IPv4 and
an IPv6 relayed address, one XOR-RELAYED-ADDRESS each, and peers of either
family.  A server without IPv6 relays (no ``--relay-ipv6``) makes the IPv4
one alone and says why in ADDRESS-ERROR-CODE (IPv6, 440)::

    Allocate  REQUESTED-TRANSPORT UDP, ADDITIONAL-ADDRESS-FAMILY IPv6
      -> success  XOR-RELAYED-ADDRESS 203.0.113.5:50000
                  XOR-RELAYED-ADDRESS [2001:db8::5]:50002     (IPv6 relays)
      -> success  XOR-RELAYED-ADDRESS 203.0.113.5:50000
                  ADDRESS-ERROR-CODE IPv6 440                 (IPv4 only)
                                     IPv6 508                 (no free IPv6 port)

Refresh (§8.2): no allocation 437; REQUESTED-ADDRESS-FAMILY of a family the
allocation has no relay of 443; LIFETIME 0 deletes (with REQUESTED-ADDRESS-
FAMILY on a dual allocation: only that family's relayed address); otherwise
the lifetime is recomputed.

CreatePermission (§9.2) and ChannelBind (§11.2): no allocation 437; no
XOR-PEER-ADDRESS (or CHANNEL-NUMBER outside 0x4000-0x7FFF) 400; peer of a
family the allocation has no relay of 443; peer refused by :class:`~realtime.turn.policy.PeerPolicy`
403; channel or peer already bound to something else 400; too many new
peers per second 508.  CreatePermission installs all its peers or none.

The handlers change the server's state through the narrow
:class:`AllocationTable` protocol below (the server's allocation indexes,
relays, knobs and timer), never through the server class itself, so this
module does not import :mod:`realtime.turn.server` and the server is the only
one to import the other.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Protocol

from realtime.addresses import Address
from realtime.stun.attributes import (
    IPV4, IPV6, AdditionalAddressFamily, AddressErrorCode, ChannelNumber, DontFragment, EvenPort,
    Lifetime, RawAttribute, RequestedAddressFamily, RequestedTransport, ReservationToken,
    StunAttributeType as T, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
)
from realtime.stun.message import StunMessage, StunMethod
from realtime.turn.allocation import Allocation, RelayAllocator, Route, is_stream
from realtime.turn.channel_data import CHANNEL_MAX, CHANNEL_MIN
from realtime.turn.config import TurnConfig
from realtime.turn.credentials import Credential
from realtime.turn.policy import PeerPolicy
from realtime.turn.responses import REASONS

UDP = 17
"""REQUESTED-TRANSPORT protocol number of UDP, the only relay transport here."""

_OPTIONS = frozenset({T.RESERVATION_TOKEN, T.EVEN_PORT, T.REQUESTED_ADDRESS_FAMILY,
                               T.ADDITIONAL_ADDRESS_FAMILY, T.LIFETIME, T.XOR_PEER_ADDRESS,
                               T.CHANNEL_NUMBER})


class AllocationTable(Protocol):
    """What a method handler may read and change in the TURN server, and nothing more.

    :class:`~realtime.turn.server.TurnServer` provides it.  Handlers read the
    knobs and the peer policy, look allocations up, open and close relays,
    keep reservations, and tell the server about a new allocation, a deleted
    one, a dropped relay family or an earlier deadline.
    """

    config: TurnConfig
    policy: PeerPolicy
    relays: RelayAllocator
    random: Callable[[int], bytes]
    #: client route -> allocation (handlers only count it)
    allocations: dict[Route, Allocation]
    #: reservation token -> (reserved relayed address, expiry)
    reservations: dict[bytes, tuple[Address, float]]
    #: allocations per username (handlers only read it)
    per_user: Counter[str]
    #: dropped inputs per reason
    drops: Counter[str]

    def live_allocation(self, client: Route, now: float) -> Allocation | None:
        """Return the unexpired allocation of ``client``."""
        ...

    def register(self, allocation: Allocation, lifetime: float) -> None:
        """Index and announce a new allocation."""
        ...

    def delete(self, allocation: Allocation, reason: str) -> None:
        """Remove an allocation and release its relays."""
        ...

    def drop_relay(self, allocation: Allocation, relay: Address) -> None:
        """Give back one relayed address of a dual allocation."""
        ...

    def wake(self, deadline: float) -> None:
        """Make the server's timer fire no later than ``deadline``."""
        ...


def _malformed(message: StunMessage, types: frozenset[int]) -> bool:
    """Return True if an attribute of ``types`` was kept raw because its value is malformed."""
    return any(type(a) is RawAttribute and a.type in types for a in message.attributes)


class Reply(Exception):
    """Raised inside a handler to answer with an error ``code`` and ``extra`` attributes."""

    def __init__(self, code: int, extra: tuple = ()) -> None:
        self.code = code
        self.extra = extra


def lifetime_of(server: AllocationTable, message: StunMessage) -> float:
    """Return the lifetime to grant: 0 to delete, else the request's LIFETIME clamped (§7.2)."""
    requested = message.find(Lifetime)
    config = server.config
    if requested is None:
        return config.default_lifetime
    if requested.seconds == 0:
        return 0.0
    return max(config.default_lifetime, min(float(requested.seconds), config.max_lifetime))


def allocate(server: AllocationTable, message: StunMessage, source: Route, credential: Credential,
             now: float) -> list:
    """Create an allocation (RFC 8656 §7.2); return the success attributes or raise an error."""
    existing = server.live_allocation(source, now)
    if existing is not None:
        if existing.transaction_id != message.transaction_id:
            raise Reply(437)
        return allocate_success(existing, None, now)  # a retransmission (§7.2)
    transport = message.find(RequestedTransport)
    if transport is None:
        raise Reply(400)
    if transport.protocol != UDP:
        raise Reply(442)
    token = message.find(ReservationToken)
    even = message.find(EvenPort)
    requested = message.find(RequestedAddressFamily)
    additional = message.find(AdditionalAddressFamily)
    if _malformed(message, _OPTIONS):
        raise Reply(400)
    if token is not None and (even is not None or requested is not None or additional is not None):
        raise Reply(400)
    if requested is not None and additional is not None:
        raise Reply(400)
    if additional is not None and additional.family != IPV6:
        raise Reply(400)
    family = requested.family if requested is not None else IPV4
    if family not in (IPV4, IPV6) or not supports(server, family):
        raise Reply(440)
    if server.per_user[credential.username] >= server.config.max_allocations_per_user:
        raise Reply(486)
    if len(server.allocations) >= server.config.max_allocations:
        raise Reply(508)
    new_token = None
    if token is not None:
        reserved = server.reservations.pop(token.value, None)
        if reserved is None or reserved[1] <= now:
            if reserved is not None:
                server.relays.close(reserved[0])
            raise Reply(508)
        relay = reserved[0]
    else:
        opened = server.relays.open(family, even=even is not None,
                                    pair=even is not None and even.reserve)
        if not opened:
            raise Reply(508)
        relay = opened[0]
        if len(opened) > 1:
            new_token = server.random(8)
            expiry = now + server.config.reservation_lifetime
            server.reservations[new_token] = (opened[1], expiry)
            server.wake(expiry)
    second = None
    if additional is not None and supports(server, IPV6):
        opened = server.relays.open(IPV6)
        second = opened[0] if opened else None
    lifetime = lifetime_of(server, message) or server.config.default_lifetime
    allocation = Allocation(source, relay, credential, now + lifetime, message.transaction_id,
                            is_stream(source[0]), server.config.limits, now)
    if second is not None:
        allocation.relays = (relay, second)
    allocation.fingerprint = message.find(T.FINGERPRINT) is not None
    allocation.dont_fragment = message.find(DontFragment) is not None
    server.register(allocation, lifetime)
    attributes = allocate_success(allocation, new_token, now)
    if additional is not None and second is None:
        error = 508 if supports(server, IPV6) else 440  # no free IPv6 port / no IPv6 relays
        attributes.insert(1, AddressErrorCode(IPV6, error, REASONS[error]))
    return attributes


def supports(server: AllocationTable, family: int) -> bool:
    """Return True if the relay allocator can hand out addresses of ``family``."""
    supports = getattr(server.relays, "supports", None)
    return True if supports is None else supports(family)


def allocate_success(allocation: Allocation, token: bytes | None, now: float) -> list:
    """Return the attributes of an Allocate success: relayed and mapped address, lifetime."""
    client = allocation.client[1]
    attributes = [XorRelayedAddress.of(*relay) for relay in allocation.relays]
    attributes.append(Lifetime(max(0, int(allocation.expires - now + 0.5))))
    if token is not None:
        attributes.append(ReservationToken(token))
    attributes.append(XorMappedAddress.of(client[0].split("%", 1)[0], client[1]))
    return attributes


def refresh(server: AllocationTable, message: StunMessage, source: Route, credential: Credential,
            now: float) -> list:
    """Extend the allocation's lifetime, or delete it for LIFETIME 0 (RFC 8656 §8.2)."""
    allocation = server.live_allocation(source, now)
    if allocation is None:
        raise Reply(437)
    requested = message.find(RequestedAddressFamily)
    relay = allocation.relay_of(requested.family) if requested is not None else None
    if requested is not None and relay is None:
        raise Reply(443)
    lifetime = lifetime_of(server, message)
    if lifetime == 0:
        if relay is not None and len(allocation.relays) > 1:
            server.drop_relay(allocation, relay)  # one family of a dual allocation
        else:
            server.delete(allocation, "refresh")
        return [Lifetime(0)]
    allocation.expires = now + lifetime
    allocation.credential = credential
    return [Lifetime(int(lifetime))]


def peer_host(server: AllocationTable, allocation: Allocation, peer: XorPeerAddress | None) -> str:
    """Return the peer's IP if a permission may be installed for it; else raise 400/443/403."""
    if peer is None:
        raise Reply(400)
    if allocation.relay_of(peer.family) is None:
        raise Reply(443)
    if not server.policy.permits(peer.address):
        raise Reply(403)
    return peer.address


def create_permission(server: AllocationTable, message: StunMessage, source: Route,
                      credential: Credential, now: float) -> list:
    """Install or refresh a permission per XOR-PEER-ADDRESS, all or none (RFC 8656 §9.2)."""
    allocation = server.live_allocation(source, now)
    if allocation is None:
        raise Reply(437)
    peers = [a for a in message.attributes if isinstance(a, XorPeerAddress)]
    if not peers or _malformed(message, _OPTIONS):
        raise Reply(400)
    hosts = [peer_host(server, allocation, peer) for peer in peers]
    new = {h for h in hosts if h not in allocation.permissions}
    if new and not allocation.new_peers.take(len(new), now):
        server.drops["peer-rate-limit"] += 1
        raise Reply(508)
    for host in hosts:
        allocation.install_permission(host, now)
    server.wake(now + 300.0)
    return []


def channel_bind(server: AllocationTable, message: StunMessage, source: Route, credential: Credential,
                 now: float) -> list:
    """Bind or refresh a channel and its peer's permission (RFC 8656 §11.2)."""
    allocation = server.live_allocation(source, now)
    if allocation is None:
        raise Reply(437)
    number = message.find(ChannelNumber)
    peer = message.find(XorPeerAddress)
    if (_malformed(message, _OPTIONS) or number is None or peer is None
            or not CHANNEL_MIN <= number.value <= CHANNEL_MAX):
        raise Reply(400)
    host = peer_host(server, allocation, peer)
    address = (host, peer.port)
    if not server.policy.permits_endpoint(host, peer.port):
        raise Reply(403)
    if allocation.channel_conflict(number.value, address, now):
        raise Reply(400)
    if host not in allocation.permissions and not allocation.new_peers.take(1, now):
        server.drops["peer-rate-limit"] += 1
        raise Reply(508)
    allocation.expire(now)
    allocation.bind_channel(number.value, address, now)
    server.wake(now + 300.0)
    return []


HANDLERS: dict[int, Callable[[AllocationTable, StunMessage, Route, Credential, float], list]] = {
    StunMethod.ALLOCATE: allocate,
    StunMethod.REFRESH: refresh,
    StunMethod.CREATE_PERMISSION: create_permission,
    StunMethod.CHANNEL_BIND: channel_bind,
}
"""Request method -> handler ``f(server, message, source, credential, now) -> attributes``."""
