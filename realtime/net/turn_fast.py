"""
The TURN relay's fast path: ChannelData in both directions with one dict lookup per packet.

The reference is :class:`realtime.turn.server.TurnServer` (``_channel_data``
and ``_from_peer``): per packet it finds the allocation, the channel, the
permission, checks the credential and the rate limits, then frames or
unframes ChannelData (RFC 8656 §12.4, :mod:`realtime.turn.channel_data`).
Between two STUN requests of one client nothing in that chain changes but
the clock and the token buckets, so the adapter keeps, per channel, the
answer to every lookup in one entry::

    client -> peer   TurnUdpPort.channels[(client addr, channel number)]
                        -> ChannelEntry(allocation, relay socket, peer, until)
    peer -> client   RelaySocket.peers[peer addr]
                        -> PeerEntry(allocation, client socket, client addr,
                                     channel number bytes, until)

    until = min(channel expiry, permission expiry (peer side), allocation
                expiry, credential expiry)          the precomputed checks

Per packet the fast path checks ``now < until`` and that the allocation is
not suspended (revocation), charges the allocation's token buckets and
byte counters exactly as the reference does, and queues the output on the
socket it will leave by.  Anything else -- no entry, an expired one, a
malformed length, a Data indication (peer without a channel), a TCP/TLS
client -- goes to the reference machine, which then *learns* an entry if the
packet was relayable.

Invalidation: entries die by ``until`` (expiry of anything they depend on:
the sweep only removes what has expired), by the suspension check, and are
forgotten for a client whenever the machine handles a STUN message from it
(Refresh, ChannelBind, CreatePermission may change what the entries
promise; the next ChannelData relearns them) and when its allocation is
deleted or its connection closes.  ``tests/net/test_turn_fast.py`` feeds the
same packets, with expiries, refusals, revocation and deletion, through the
fast path and through the machine alone and compares every byte written.
"""

from __future__ import annotations

from typing import Any, Hashable

from realtime.addresses import Address
from realtime.turn.allocation import Allocation

_FOREVER = float("inf")


class ChannelEntry:
    """Client -> peer: where ChannelData on one (client, channel) goes, and until when."""

    __slots__ = ("allocation", "target", "peer", "until")

    def __init__(self, allocation: Allocation, target: Any, peer: Address, until: float) -> None:
        self.allocation = allocation
        self.target = target
        self.peer = peer
        self.until = until


class PeerEntry:
    """Peer -> client: the channel header and client a peer's datagrams go to, and until when."""

    __slots__ = ("allocation", "target", "client", "number", "until")

    def __init__(self, allocation: Allocation, target: Any, client: Address, number: bytes,
                 until: float) -> None:
        self.allocation = allocation
        self.target = target
        self.client = client
        self.number = number
        self.until = until


class FastPath:
    """Build, use and forget the entries of one :class:`~realtime.net.turn_port.TurnHost`.

    :param host: the TURN host (its ``server``, ``sockets`` and write queue); ``Any``
        because the host module imports this one.
    """

    def __init__(self, host: Any) -> None:
        self.host = host
        #: client route -> [(table, key), ...] of the entries that depend on its allocation
        self.owned: dict[Hashable, list[tuple[dict, Hashable]]] = {}

    # -- per packet ------------------------------------------------------------

    def channel_data(self, entry: ChannelEntry, data: bytes, now: float) -> bool:
        """Relay client ChannelData through ``entry``; False if the reference must handle it."""
        allocation = entry.allocation
        if now >= entry.until or allocation.suspended_until is not None:
            return False
        size = len(data)
        length = (data[2] << 8) | data[3]
        if length > size - 4:
            return False  # the reference raises the exact DecodeError
        allocation.ingress += size
        if allocation.packets.take(1, now) and allocation.bytes.take(length, now):
            target = entry.target
            queued = target.queued
            if not queued:
                self.host.dirty.append(target)
            queued.append((data[4:4 + length], entry.peer))
        else:
            allocation.dropped += 1
            self.host.server.drops["rate-limit"] += 1
        return True

    def from_peer(self, entry: PeerEntry, data: bytes, now: float) -> bool:
        """Relay a peer datagram as ChannelData through ``entry``; False for the reference."""
        allocation = entry.allocation
        if now >= entry.until or allocation.suspended_until is not None:
            return False
        size = len(data)
        if allocation.packets.take(1, now) and allocation.bytes.take(size, now):
            out = entry.number + size.to_bytes(2, "big") + data
            allocation.egress += len(out)
            target = entry.target
            queued = target.queued
            if not queued:
                self.host.dirty.append(target)
            queued.append((out, entry.client))
        else:
            allocation.dropped += 1
            self.host.server.drops["rate-limit"] += 1
        return True

    # -- learning and forgetting ---------------------------------------------------

    def learn_channel(self, table: dict, client: tuple, channel: int, now: float) -> None:
        """After the reference took ChannelData on ``channel`` from ``client``: remember it."""
        allocation = self.host.server.allocations.get(client)
        if allocation is None or allocation.suspended_until is not None or allocation.stream:
            return
        binding = allocation.channels.get(channel)
        if binding is None:
            return
        until = min(binding.expires, allocation.expires, _credential_until(allocation))
        target = self.host.sockets.get(binding.relay)
        if until <= now or getattr(target, "queued", None) is None:
            return
        key = (client[1], channel)
        if key not in table:  # a replaced entry is already owned
            self.owned.setdefault(allocation.client, []).append((table, key))
        table[key] = ChannelEntry(allocation, target, binding.peer, until)

    def learn_peer(self, table: dict, relay: Address, peer: Address, now: float) -> None:
        """After the reference took a datagram from ``peer`` on ``relay``: remember it."""
        allocation = self.host.server.by_relay.get(relay)
        if allocation is None or allocation.suspended_until is not None or allocation.stream:
            return
        permission = allocation.permissions.get(peer[0])
        binding = allocation.channel_by_peer.get(peer)
        if permission is None or binding is None:
            return  # Data indications stay on the reference path
        until = min(permission, binding.expires, allocation.expires,
                    _credential_until(allocation))
        target = self.host.sockets.get(allocation.client[0])
        if until <= now or getattr(target, "queued", None) is None:
            return
        number = binding.number.to_bytes(2, "big")
        if peer not in table:
            self.owned.setdefault(allocation.client, []).append((table, peer))
        table[peer] = PeerEntry(allocation, target, allocation.client[1], number, until)

    def forget(self, client: Hashable) -> None:
        """Drop every entry that depends on ``client``'s allocation."""
        for table, key in self.owned.pop(client, ()):
            table.pop(key, None)


def _credential_until(allocation: Allocation) -> float:
    expires = allocation.credential.expires
    return _FOREVER if expires is None else expires
