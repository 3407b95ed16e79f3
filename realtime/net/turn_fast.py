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
                        -> RelayEntry(allocation, relay socket, peer, until)
    peer -> client   RelaySocket.peers[peer addr]
                        -> PeerEntry(allocation, client socket, client addr,
                                     channel number bytes, until)

    client -> peer   TurnUdpPort.sends[(client addr, XOR-PEER-ADDRESS value)]
      (Send)            -> RelayEntry(allocation, relay socket, peer, until)

    until = min(channel expiry, permission expiry (peer side), allocation
                expiry, credential expiry)          the precomputed checks

Per packet the fast path checks ``now < until`` and that the allocation is
not suspended (revocation), charges the allocation's token buckets and
byte counters exactly as the reference does, and queues the output on the
socket it will leave by.  Anything else -- no entry, an expired one, a
malformed length, a Data indication (peer without a channel), a TCP/TLS
client -- goes to the reference machine, which then *learns* an entry if the
packet was relayable.

Send indications (RFC 8656 §11.2) get the same treatment with a minimal
parse instead of a STUN decode (:func:`split_send_indication`): the fast
path takes only the layout clients send, ``XOR-PEER-ADDRESS`` (IPv4) then
``DATA``, optionally ``FINGERPRINT``, magic cookie present, lengths
consistent; the entry is keyed by the 8 octets of the XOR-PEER-ADDRESS
value as received (with IPv4 they are XORed with the fixed cookie only, so
they are the same in every indication to that peer).  Everything else is
the reference's: the full decode, the ``bad-send``/``no-permission``/
``own-endpoint`` drops.  The per-packet checks are the ChannelData ones
(``until`` = min(permission, allocation, credential expiry), suspension,
both token buckets on the DATA length, ingress counted on the whole
indication), so the output is the reference's, byte for byte.  A Send
indication changes no allocation state, so unlike every other STUN message
it does not make the host forget the client's entries.

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
from realtime.stun.address import IPV4
from realtime.turn.allocation import Allocation

_FOREVER = float("inf")


class RelayEntry:
    """Client -> peer: where ChannelData on one (client, channel), or Send
    indications naming one peer, go, and until when (the two tables of the
    diagram above hold the same kind of entry under different keys)."""

    __slots__ = ("allocation", "target", "peer", "until")

    def __init__(self, allocation: Allocation, target: Any, peer: Address, until: float) -> None:
        self.allocation = allocation
        self.target = target
        self.peer = peer
        self.until = until


#: type Send indication (method 0x006, class indication), RFC 8656 §18 / RFC 8489 §5
SEND_INDICATION = b"\x00\x16"
MAGIC_COOKIE = b"\x21\x12\xa4\x42"
#: XOR-PEER-ADDRESS (0x0012), 8 octets: an IPv4 address (RFC 8656 §18.3)
_PEER_V4_HEADER = b"\x00\x12\x00\x08"
_DATA = b"\x00\x13"
_FINGERPRINT = b"\x80\x28\x00\x04"


def split_send_indication(data: bytes) -> tuple[bytes, int, int] | None:
    """Return ``(XOR-PEER-ADDRESS value, DATA start, DATA end)`` of a plain Send indication.

    Only this layout is taken (offsets in octets), anything else returns
    None and goes to the machine's full decode::

         0  type 0x0016 | length = size - 20 | magic cookie | transaction id
        20  0x0012 | 8 | 0 | family 1 | X-Port | X-Address      XOR-PEER-ADDRESS
        32  0x0013 | n | DATA (n octets) | padding to 4          DATA
            [0x8028 | 4 | CRC-32]                                FINGERPRINT
    """
    size = len(data)
    if size < 36 or data[0:2] != SEND_INDICATION or data[4:8] != MAGIC_COOKIE:
        return None
    if (data[2] << 8 | data[3]) != size - 20 or data[20:24] != _PEER_V4_HEADER:
        return None
    if data[24] != 0 or data[25] != 1 or data[32:34] != _DATA:
        return None
    end = 36 + (data[34] << 8 | data[35])
    padded = end + (-end & 3)
    if padded != size and (padded + 8 != size or data[padded:padded + 4] != _FINGERPRINT):
        return None
    return data[24:32], 36, end


def peer_of(value: bytes) -> Address:
    """Return ``(ip, port)`` of an IPv4 XOR-PEER-ADDRESS value (RFC 8489 §14.2: XOR the cookie)."""
    port = (value[2] << 8 | value[3]) ^ 0x2112
    ip = ".".join(str(a ^ b) for a, b in zip(value[4:8], MAGIC_COOKIE))
    return ip, port


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

    def channel_data(self, entry: RelayEntry, data: bytes, now: float) -> bool:
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

    def send_indication(self, entry: RelayEntry, data: bytes, start: int, end: int,
                        now: float) -> bool:
        """Relay the DATA of a Send indication through ``entry``; False for the reference."""
        allocation = entry.allocation
        if now >= entry.until or allocation.suspended_until is not None:
            return False
        allocation.ingress += len(data)
        if allocation.packets.take(1, now) and allocation.bytes.take(end - start, now):
            target = entry.target
            queued = target.queued
            if not queued:
                self.host.dirty.append(target)
            queued.append((data[start:end], entry.peer))
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
        table[key] = RelayEntry(allocation, target, binding.peer, until)

    def learn_send(self, table: dict, client: tuple, value: bytes, now: float) -> None:
        """After the reference took a Send indication naming ``value`` from ``client``: remember it."""
        allocation = self.host.server.allocations.get(client)
        if allocation is None or allocation.suspended_until is not None or allocation.stream:
            return
        peer = peer_of(value)
        permission = allocation.permissions.get(peer[0])
        relay = allocation.relay_of(IPV4)
        if permission is None or relay is None or peer in self.host.server.policy.own_endpoints:
            return
        until = min(permission, allocation.expires, _credential_until(allocation))
        target = self.host.sockets.get(relay)
        if until <= now or getattr(target, "queued", None) is None:
            return
        key = (client[1], value)
        if key not in table:
            self.owned.setdefault(allocation.client, []).append((table, key))
        table[key] = RelayEntry(allocation, target, peer, until)

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
