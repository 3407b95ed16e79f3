"""
The TURN server as a sans-I/O machine (RFC 8656): every allocation of one server.

One :class:`TurnServer` takes every packet of every TURN listener and every
relay socket, and says what to send where.  A *route* names a socket and a
remote address: ``(listener, client address)`` for a client 5-tuple -- the
listener is a string such as ``"udp"``, ``"tcp#12"`` or ``"tls#3"``
(a name starting with ``tcp`` or ``tls`` marks a stream, where ChannelData
is padded) -- and ``(relay address, peer address)`` for a relay socket::

      client ──(listener, client)──> receive_datagram ──┐
                                                        │  STUN request -> auth -> handler
      peer ──(relay addr, peer)────> receive_datagram ──┤  Send / ChannelData -> peer
                                                        │  peer datagram -> Data / ChannelData
                                                        v
                          datagrams_to_send(now) -> [(bytes, route), ...]

Request handling, in order (RFC 8489 §6.3, §9.2.4; RFC 8656 §7.2, §8.2, §9.2,
§11.2)::

    STUN request ── Binding? ─────────────────────────> Binding success (stateless)
         │ no MESSAGE-INTEGRITY ───────────────────────> 401 + REALM + NONCE (always)
         │ USERNAME/REALM/NONCE missing ───────────────> 400
         │ NONCE stale or foreign ─────────────────────> 438 + REALM + NONCE
         │ unknown user / MI mismatch ─────────────────> 401 (rate-limited per host)
         │ username differs from the allocation's ─────> 441
         │ unknown comprehension-required attribute ───> 420
         v
     Allocate / Refresh / CreatePermission / ChannelBind (responses carry MI)

Only *failed* integrity checks count against a host's 401 budget: a
challenge to a request without MESSAGE-INTEGRITY is always answered, like a
Binding request, because UDP sources are spoofable and a flood "from" a
victim's address must not use up the victim's own challenges (issue 10 item
7: 100 spoofed requests/s cut a client's successes from 25 to 1-2 in 5 s).
The NONCE is stateless (an HMAC of its expiry and the client's host) and
valid 10 minutes, so a client that has one reuses it and needs no further
challenge.  The reflection this allows is bounded by the answer's size:
a 401 is at most 3.0x the smallest request that draws it (Binding: 1.86x);
see docs/turn.md.

Indications (Send) and ChannelData are not authenticated; they are relayed
only within an allocation, to peers with a live permission, within the
allocation's rate limits.  Peer datagrams reach the client only from
permitted peers: as ChannelData if the peer has a channel, else as a Data
indication.  Nothing is relayed once the credential has expired or been
revoked; the allocation is deleted after ``credential_grace`` seconds.

Timers: :meth:`get_timer` is the earliest expiry of any allocation,
permission, channel, reservation or credential; :meth:`handle_timer` sweeps.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from typing import Callable

from realtime.addresses import Address
from realtime.stun.attributes import (
    IPV4, IPV6, AdditionalAddressFamily, AddressErrorCode, ChannelNumber, Data, DontFragment,
    ErrorCode, EvenPort, Lifetime, RawAttribute, MessageIntegrity, Nonce, Realm, RequestedAddressFamily,
    RequestedTransport, ReservationToken, Software, StunAttributeType as T, UnknownAttributes,
    Username, XorMappedAddress, XorPeerAddress, XorRelayedAddress,
)
from realtime.stun.binding import answer_binding, unknown_required
from realtime.stun.message import (
    StunClass, StunMessage, StunMethod, check_message_integrity, encode_message,
)
from realtime.turn.allocation import Allocation, RelayAllocator, Route
from realtime.turn.channel_data import CHANNEL_MAX, CHANNEL_MIN, frame_channel_data, split_channel_data
from realtime.turn.credentials import Authenticator, Credential, NonceIssuer
from realtime.turn.config import TurnConfig
from realtime.turn.events import AllocationCreated, AllocationDeleted, TurnEvent
from realtime.turn.methods import HANDLERS, Reply
from realtime.turn.policy import PeerPolicy, TokenBucket
from realtime.turn.responses import REASONS, TURN_ATTRIBUTES

class TurnServer:
    """Relay for every allocation of one server (see the module docstring).

    :param authenticator: looks usernames up (:mod:`realtime.turn.credentials`).
    :param relays: hands out relayed addresses (:class:`~realtime.turn.allocation.RelayPortPool`
        or the Twisted socket-binding one).
    :param config: the knobs.
    :param nonces: mints and checks NONCEs (default: a :class:`NonceIssuer` with a random key).
    :param policy: which peers may be reached (default: global unicast only).
    :param random: random bytes source (transaction ids, reservation tokens).
    """

    def __init__(self, authenticator: Authenticator, relays: RelayAllocator, *,
                 config: TurnConfig | None = None, nonces: NonceIssuer | None = None,
                 policy: PeerPolicy | None = None,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.authenticator = authenticator
        self.relays = relays
        self.config = config or TurnConfig()
        self.nonces = nonces if nonces is not None else NonceIssuer(random(32))
        self.policy = policy if policy is not None else PeerPolicy()
        self.random = random
        #: client route -> allocation
        self.allocations: dict[Route, Allocation] = {}
        #: relayed address -> allocation
        self.by_relay: dict[Address, Allocation] = {}
        #: reservation token -> (reserved address, expiry)
        self.reservations: dict[bytes, tuple[Address, float]] = {}
        #: allocations per username
        self.per_user: Counter[str] = Counter()
        #: dropped inputs per reason
        self.drops: Counter[str] = Counter()
        #: 401 answers: ``challenge`` (no credentials yet), ``integrity`` (a bad credential)
        self.unauthorized: Counter[str] = Counter()
        #: bytes relayed and datagrams dropped that live allocations' counters no longer
        #: hold (drained usage, deleted allocations), by ``(transport, "in" | "out" |
        #: "dropped")``, transport ``udp`` or ``tcp`` (TCP/TLS); plus the live counters:
        #: totals that only grow (realtime.net.metrics)
        self.relayed_before: Counter[tuple[str, str]] = Counter()
        self._outgoing: list[tuple[bytes, Route]] = []
        self._events: deque[TurnEvent] = deque()
        self._deadline: float | None = None
        self._unauthorized: dict[str, TokenBucket] = {}
        self._closed_usage: list[tuple[Credential, int, int]] = []
        self._tid_prefix = random(8)
        self._tid_counter = 0
        software = self.config.software
        self._tail = (Software(software),) if software else ()

    # -- sans-I/O surface ----------------------------------------------------

    def receive_datagram(self, data: bytes, source: Route, now: float) -> None:
        """Take one packet from a client listener or a relay socket.

        :raises realtime.errors.DecodeError: a malformed STUN or ChannelData message.
        """
        socket = source[0]
        if type(socket) is tuple:
            self._from_peer(socket, data, source[1], now)
            return
        first = data[0] if data else 0xFF
        if first < 0x40:
            self._stun(data, source, now)
        elif first < 0x80:
            self._channel_data(data, source, now)
        else:
            self.drops["not-turn"] += 1

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Route]]:
        """Return and forget the packets to send, each with its route."""
        out = self._outgoing
        if out:
            self._outgoing = []
        return out

    def get_timer(self) -> float | None:
        """Return when :meth:`handle_timer` must next run, or ``None``."""
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """Expire allocations, permissions, channels, reservations and bad credentials."""
        if self._deadline is None or now < self._deadline:
            return
        self._sweep(now)

    def next_event(self) -> TurnEvent | None:
        """Return the oldest event not yet taken, or ``None``."""
        return self._events.popleft() if self._events else None

    def close_client(self, client: Route, now: float) -> None:
        """Delete the allocation of ``client`` (its TCP/TLS connection is gone)."""
        allocation = self.allocations.get(client)
        if allocation is not None:
            self.delete(allocation, "closed")

    def revoke(self, username: str, now: float) -> int:
        """Stop relaying for ``username`` at once; delete its allocations after the grace.

        Returns how many allocations were suspended.
        """
        count = 0
        for allocation in self.allocations.values():
            if allocation.credential.username == username and allocation.suspended_until is None:
                self._suspend(allocation, now)
                count += 1
        return count

    def drain_usage(self) -> list[tuple[Credential, int, int]]:
        """Return ``(credential, ingress bytes, egress bytes)`` since the last call, and reset."""
        usage = self._closed_usage
        self._closed_usage = []
        for allocation in self.allocations.values():
            if allocation.ingress or allocation.egress:
                usage.append((allocation.credential, allocation.ingress, allocation.egress))
                self._count_relayed(allocation, allocation.ingress, allocation.egress)
                allocation.ingress = allocation.egress = 0
        return usage

    def _count_relayed(self, allocation: Allocation, ingress: int, egress: int) -> None:
        """Keep bytes an allocation's counters are about to lose in :attr:`relayed_before`."""
        transport = _transport(allocation)
        self.relayed_before[(transport, "in")] += ingress
        self.relayed_before[(transport, "out")] += egress

    # -- relaying (the per-packet paths) -------------------------------------

    def _relayable(self, allocation: Allocation, size: int, now: float) -> bool:
        expires = allocation.credential.expires
        if allocation.suspended_until is not None or (expires is not None and now > expires):
            self.drops["credential"] += 1
            return False
        if allocation.packets.take(1, now) and allocation.bytes.take(size, now):
            return True
        allocation.dropped += 1
        self.drops["rate-limit"] += 1
        return False

    def _from_peer(self, relay: Address, data: bytes, peer: Address, now: float) -> None:
        allocation = self.by_relay.get(relay)
        if allocation is None or now >= allocation.expires:
            self.drops["no-allocation"] += 1
            return
        expires = allocation.permissions.get(peer[0])
        if expires is None or expires <= now:
            self.drops["no-permission"] += 1
            return
        if not self._relayable(allocation, len(data), now):
            return
        binding = allocation.channel_by_peer.get(peer)
        if binding is not None and binding.expires > now:
            out = frame_channel_data(binding.number, data, allocation.stream)
        else:
            out = encode_message(
                StunMethod.DATA, StunClass.INDICATION, self._transaction_id(),
                (XorPeerAddress.of(peer[0], peer[1]), Data(data)),
                fingerprint=allocation.fingerprint,
            )
        allocation.egress += len(out)
        self._outgoing.append((out, allocation.client))

    def _channel_data(self, data: bytes, source: Route, now: float) -> None:
        allocation = self.allocations.get(source)
        if allocation is None:
            self.drops["no-allocation"] += 1
            return
        channel, payload = split_channel_data(data)
        allocation.ingress += len(data)
        binding = allocation.channels.get(channel)
        if binding is None or binding.expires <= now:
            self.drops["unbound-channel"] += 1
            return
        if self._relayable(allocation, len(payload), now):
            self._outgoing.append((payload, (binding.relay, binding.peer)))

    def _send_indication(self, message: StunMessage, size: int, source: Route, now: float) -> None:
        allocation = self.allocations.get(source)
        if allocation is None:
            self.drops["no-allocation"] += 1
            return
        allocation.ingress += size
        peer = message.find(XorPeerAddress)
        data = message.find(Data)
        relay = allocation.relay_of(peer.family) if peer is not None else None
        if peer is None or relay is None or data is None:
            self.drops["bad-send"] += 1
            return
        if not allocation.permitted(peer.address, now):
            self.drops["no-permission"] += 1
            return
        if (peer.address, peer.port) in self.policy.own_endpoints:
            self.drops["own-endpoint"] += 1
            return
        if self._relayable(allocation, len(data.value), now):
            self._outgoing.append((data.value, (relay, (peer.address, peer.port))))

    def _transaction_id(self) -> bytes:
        self._tid_counter = (self._tid_counter + 1) & 0xFFFFFFFF
        return self._tid_prefix + self._tid_counter.to_bytes(4, "big")

    # -- STUN requests -------------------------------------------------------

    def _stun(self, data: bytes, source: Route, now: float) -> None:
        message = StunMessage.decode(data)
        kind = message.message_class
        if kind is StunClass.REQUEST:
            if message.method == StunMethod.BINDING:
                response = answer_binding(data, source[1], software=self.config.software)
                if response is not None:
                    self._outgoing.append((response, source))
                return
            self._request(message, data, source, now)
        elif kind is StunClass.INDICATION and message.method == StunMethod.SEND:
            self._send_indication(message, len(data), source, now)
        elif not (kind is StunClass.INDICATION and message.method == StunMethod.BINDING):
            self.drops["unexpected-stun"] += 1

    def _request(self, message: StunMessage, data: bytes, source: Route, now: float) -> None:
        credential = self._authenticate(message, data, source, now)
        if credential is None:
            return
        fingerprint = message.find(T.FINGERPRINT) is not None
        handler = HANDLERS.get(message.method)
        before = self.allocations.get(source)
        try:
            unknown = unknown_required(message, TURN_ATTRIBUTES)
            if unknown:
                raise Reply(420, (UnknownAttributes(unknown),))
            if handler is None:
                raise Reply(400)
            attributes = handler(self, message, source, credential, now)
            message_class = StunClass.SUCCESS
        except Reply as reply:
            attributes = [ErrorCode(reply.code, REASONS[reply.code]), *reply.extra]
            message_class = StunClass.ERROR
        out = encode_message(message.method, message_class, message.transaction_id,
                             [*attributes, *self._tail], integrity_key=credential.key,
                             fingerprint=fingerprint)
        allocation = before or self.allocations.get(source)
        if allocation is not None:
            if self.allocations.get(source) is allocation:
                allocation.ingress += len(data)
                allocation.egress += len(out)
            else:  # deleted by this request (Refresh 0): report its last bytes
                self._closed_usage.append((allocation.credential, len(data), len(out)))
                self._count_relayed(allocation, len(data), len(out))
        self._outgoing.append((out, source))

    def _plain_error(self, message: StunMessage, source: Route, code: int,
                     extra: tuple = ()) -> None:
        """Answer with an error that carries no MESSAGE-INTEGRITY (401, 438, 400 before auth).

        No SOFTWARE: an unauthenticated answer is kept as small as it can be (it is
        what a spoofed request reflects) and tells an anonymous prober nothing.
        """
        out = encode_message(
            message.method, StunClass.ERROR, message.transaction_id,
            [ErrorCode(code, REASONS[code]), *extra],
            fingerprint=message.find(T.FINGERPRINT) is not None,
        )
        self._outgoing.append((out, source))

    def _challenge(self, message: StunMessage, source: Route, code: int, now: float,
                   failed_integrity: bool = False) -> None:
        host = source[1][0]
        if failed_integrity:
            bucket = self._unauthorized.get(host)
            if bucket is None:
                if len(self._unauthorized) >= 65536:
                    self._unauthorized.clear()
                bucket = self._unauthorized[host] = TokenBucket(
                    self.config.unauthorized_rate, self.config.unauthorized_burst, now)
                self.wake(now + 60.0)
            if not bucket.take(1, now):
                self.drops["unauthorized-rate-limit"] += 1
                return
        if code == 401:
            self.unauthorized["integrity" if failed_integrity else "challenge"] += 1
        extra = (Nonce(self.nonces.issue(host, now)), Realm(self.config.realm))
        self._plain_error(message, source, code, extra)

    def _authenticate(self, message: StunMessage, data: bytes, source: Route,
                      now: float) -> Credential | None:
        """Return the request's credential, or answer 400/401/438 and return ``None``."""
        if message.find(T.MESSAGE_INTEGRITY) is None:
            self._challenge(message, source, 401, now)
            return None
        username = message.find(Username)
        realm = message.find(Realm)
        nonce = message.find(Nonce)
        if (username is None or realm is None or nonce is None
                or message.find(MessageIntegrity) is None):
            self._plain_error(message, source, 400)
            return None
        if not self.nonces.check(nonce.value, source[1][0], now):
            self._challenge(message, source, 438, now)
            return None
        credential = self.authenticator.credential(username.value, self.config.realm, now)
        if credential is None or not check_message_integrity(data, credential.key):
            self._challenge(message, source, 401, now, failed_integrity=True)
            return None
        allocation = self.allocations.get(source)
        if allocation is not None and allocation.credential.username != credential.username:
            out = encode_message(message.method, StunClass.ERROR, message.transaction_id,
                                 [ErrorCode(441, REASONS[441]), *self._tail],
                                 integrity_key=credential.key)
            self._outgoing.append((out, source))
            return None
        return credential

    # -- lifetimes -----------------------------------------------------------

    def live_allocation(self, client: Route, now: float) -> Allocation | None:
        """Return the allocation of ``client`` unless it has expired (then delete it)."""
        allocation = self.allocations.get(client)
        if allocation is not None and now >= allocation.expires:
            self.delete(allocation, "expired")
            return None
        return allocation

    def register(self, allocation: Allocation, lifetime: float) -> None:
        """Index a new allocation by client and relay, count it, announce it."""
        self.allocations[allocation.client] = allocation
        for relay in allocation.relays:
            self.by_relay[relay] = allocation
        self.per_user[allocation.credential.username] += 1
        self.wake(allocation.next_deadline())
        self._events.append(AllocationCreated(allocation.client, allocation.relay,
                                              allocation.credential.username, lifetime))

    def drop_relay(self, allocation: Allocation, relay: Address) -> None:
        """Give back one relayed address of a dual allocation, and the channels through it."""
        allocation.relays = tuple(r for r in allocation.relays if r != relay)
        allocation.relay = allocation.relays[0]
        del self.by_relay[relay]
        self.relays.close(relay)
        for number, binding in list(allocation.channels.items()):
            if binding.relay == relay:
                del allocation.channels[number]
                allocation.channel_by_peer.pop(binding.peer, None)

    def wake(self, deadline: float) -> None:
        """Make :meth:`get_timer` return ``deadline`` if it is earlier than the current one."""
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline

    def _suspend(self, allocation: Allocation, now: float) -> None:
        allocation.suspended_until = now + self.config.credential_grace
        self.wake(allocation.suspended_until)

    def delete(self, allocation: Allocation, reason: str) -> None:
        """Remove ``allocation``, release its relay, keep its unreported usage, announce it."""
        if self.allocations.get(allocation.client) is not allocation:
            return
        del self.allocations[allocation.client]
        for relay in allocation.relays:
            del self.by_relay[relay]
            self.relays.close(relay)
        username = allocation.credential.username
        self.per_user[username] -= 1
        if self.per_user[username] <= 0:
            del self.per_user[username]
        self._count_relayed(allocation, allocation.ingress, allocation.egress)
        self.relayed_before[(_transport(allocation), "dropped")] += allocation.dropped
        if allocation.ingress or allocation.egress:
            self._closed_usage.append(
                (allocation.credential, allocation.ingress, allocation.egress))
        self._events.append(AllocationDeleted(allocation.client, allocation.relay, username, reason))

    def _sweep(self, now: float) -> None:
        revoked = getattr(self.authenticator, "is_revoked", None)
        deadline: float | None = None
        for allocation in list(self.allocations.values()):
            expires = allocation.credential.expires
            if now >= allocation.expires:
                self.delete(allocation, "expired")
                continue
            if allocation.suspended_until is not None:
                if now >= allocation.suspended_until:
                    self.delete(allocation, "credential")
                    continue
            elif (expires is not None and now >= expires) or (
                    revoked is not None and revoked(allocation.credential.username)):
                self._suspend(allocation, now)
            allocation.expire(now)
            next_one = allocation.next_deadline()
            deadline = next_one if deadline is None else min(deadline, next_one)
        for token, (address, expiry) in list(self.reservations.items()):
            if expiry <= now:
                del self.reservations[token]
                self.relays.close(address)
            else:
                deadline = expiry if deadline is None else min(deadline, expiry)
        if self._unauthorized:
            for host in [h for h, b in self._unauthorized.items() if now - b.stamp > 60.0]:
                del self._unauthorized[host]
            if self._unauthorized:
                deadline = now + 60.0 if deadline is None else min(deadline, now + 60.0)
        if deadline is not None and deadline <= now:
            deadline = now + 0.001
        self._deadline = deadline


def _transport(allocation: Allocation) -> str:
    """Return the client transport label of ``allocation``: ``udp``, or ``tcp`` (TCP/TLS)."""
    return "tcp" if allocation.stream else "udp"
