"""
The NACK shield of DataChannel feeds between nodes: the part of
:class:`~realtime.cluster.datachannels.DataChannelRelay` that asks, resends and probes.

:mod:`realtime.cluster.datachannel_repair` draws the exchange and its bounds; this module
moves it through the relay link.  Each hop keeps what it sends of a reliable feed in a
:class:`~realtime.cluster.datachannel_repair.RetransmissionBuffer` (the owner in its
:class:`~realtime.cluster.datachannel_frames.FeedSender`, a relay node in its ``Follow``
while it has children, a ``canReply`` subscriber's node in its replies' sender); each
receiving feed's :class:`~realtime.cluster.datachannel_frames.FeedReceiver` says when to
ask and what.  One ``IDelayedCall`` (:meth:`RepairShield._arm_repair`) runs
:meth:`RepairShield.repair_tick` at the earliest of every feed's next NACK, hold deadline
and tail probe; the per-packet path only compares that deadline.

``/diagnostics`` -> ``clusterDataChannels`` -> ``repair``: ``nacksSent``,
``nacksReceived``, ``resent`` (fragments resent for NACKs), ``probes``, and the drops
(``nack-malformed``, ``nack-not-child`` (a node we do not feed), ``nack-unreliable``,
``nack-node-gone``, ``not-buffered``, ``over-budget``, ``range-cut``, ``lookups-cut``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from realtime.cluster.datachannel_frames import FeedReceiver, FeedSender
from realtime.cluster.datachannel_repair import (
    DataChannelNack, ResendBudget, RetransmissionBuffer,
)
from realtime.cluster.relay import Address, RelayKind, RelayPacketReceived
from realtime.errors import DecodeError
from realtime.sfu.datachannels import ChannelPolicy

__all__ = ["RepairShield", "unreliable"]


def unreliable(policy: ChannelPolicy) -> bool:
    """Return whether a channel's policy is partially reliable (RFC 8831 §6.1: a limit on
    retransmissions or on lifetime): its frames between nodes are not retransmitted."""
    return policy.max_retransmits is not None or policy.max_packet_life_time is not None


class RepairShield:
    """Retransmission between nodes for :class:`~realtime.cluster.datachannels.DataChannelRelay`
    (its base): the relay sets the attributes below and calls :meth:`_shield_init`."""

    clock: Any
    addresses: Callable[[], dict[str, Address]]
    send_relay: Callable[[RelayKind, int, bytes, list[Address]], None]
    _remote: dict[tuple[str, str], Any]
    _senders: dict[Any, FeedSender]
    _published: dict[tuple[str, str], Any]
    _replies: dict[Any, FeedSender]

    def _shield_init(self) -> None:
        self.budget = ResendBudget()
        self._repair_call: Any = None
        self._repair_at: float | None = None
        #: NACKs sent and received, fragments resent, tail probes, and drops by reason
        self.repair: Counter[str] = Counter()

    # -- receiving side ---------------------------------------------------------------

    def _asked(self, receiver: FeedReceiver, session_id: str, name: str, node: str, now: float,
               reply: bool = False) -> None:
        """Send ``node`` the NACK ``receiver`` has due now, if any; arm the timer."""
        at = receiver.nack_at
        if at is not None and at <= now:
            ranges = receiver.nack(now)
            address = self.addresses().get(node)
            if ranges and address is not None:
                self.send_relay(RelayKind.DATACHANNEL_NACK, 0, DataChannelNack(
                    session_id, name, tuple(ranges), reply).encode(), [address])
                self.repair["nacksSent"] += 1
        self._arm_repair(receiver.get_timer())

    # -- sending side -----------------------------------------------------------------

    def nacked(self, packet: RelayPacketReceived) -> None:
        """Resend what a node we feed asks for, from our buffer of that feed."""
        try:
            nack = DataChannelNack.decode(packet.payload)
        except DecodeError:
            self.repair["nack-malformed"] += 1
            return
        self.repair["nacksReceived"] += 1
        node, key = packet.sender, (nack.session_id, nack.name)
        buffer = self._buffer_for(node, key, nack.reply)
        if buffer is None:
            return
        address = self.addresses().get(node)
        if address is None:
            self.repair["nack-node-gone"] += 1
            return
        now = self.clock.seconds()
        before = Counter(buffer.counters)
        payloads = buffer.find(nack.ranges, now, self.budget.bucket(node, now))
        for payload in payloads:
            self.send_relay(RelayKind.DATACHANNEL, 0, payload, [address])
        self.repair["resent"] += len(payloads)
        for reason in ("not-buffered", "over-budget", "range-cut", "lookups-cut"):
            if buffer.counters[reason] != before[reason]:
                self.repair[reason] += buffer.counters[reason] - before[reason]

    def _buffer_for(self, node: str, key: tuple[str, str],
                    reply: bool) -> RetransmissionBuffer | None:
        """Return the buffer of the feed ``node`` asks about, if we feed it that."""
        buffer = None
        fed = False
        if reply:                       # the owner asks for our subscriber's replies
            follow = self._remote.get(key)
            if follow is not None and node == follow.owner:
                sender = self._replies.get(follow.publication)
                fed = sender is not None
                buffer = None if sender is None else sender.buffer
        else:
            publication = self._published.get(key)
            sender = None if publication is None else self._senders.get(publication)
            if sender is not None and node in sender.nodes:
                fed, buffer = True, sender.buffer
            else:
                follow = self._remote.get(key)
                if follow is not None and node in follow.children:
                    fed, buffer = True, follow.buffer
        if not fed:
            self.repair["nack-not-child"] += 1
        elif buffer is None:
            self.repair["nack-unreliable"] += 1
        return buffer

    def _kept(self, buffer: RetransmissionBuffer | None) -> None:
        """A hop sent frames it keeps: arm its tail probe."""
        if buffer is not None:
            self._arm_repair(buffer.probe_at)

    # -- the one timer ----------------------------------------------------------------

    def _arm_repair(self, at: float | None) -> None:
        """Make the repair timer fire by ``at`` (absolute reactor time), if not sooner."""
        if at is None or self._repair_at is not None and self._repair_at <= at:
            return
        if self._repair_call is not None and self._repair_call.active():
            self._repair_call.cancel()
        self._repair_at = at
        self._repair_call = self.clock.callLater(max(0.0, at - self.clock.seconds()),
                                                 self.repair_tick)

    def repair_tick(self) -> None:
        """Give up gaps held too long, ask again, probe idle tails; re-arm."""
        self._repair_call, self._repair_at = None, None
        now = self.clock.seconds()
        addresses = self.addresses()
        self.budget.prune(addresses)        # the buckets of nodes gone
        timers: list[float | None] = []
        for (session_id, name), follow in list(self._remote.items()):
            receiver = follow.receiver
            receiver.handle_timer(now)
            self._deliver_ready(follow, follow.parent)
            self._asked(receiver, session_id, name, follow.parent, now)
            if follow.children:
                self._probe(follow.buffer, sorted(follow.children), addresses, now)
                timers.append(follow.buffer.probe_at)
            sender = self._replies.get(follow.publication)
            if sender is not None:
                self._probe(sender.buffer, [follow.owner], addresses, now)
                timers.append(sender.buffer.probe_at if sender.buffer is not None else None)
        for publication, sender in list(self._senders.items()):
            self._probe(sender.buffer, sorted(sender.nodes), addresses, now)
            timers.append(sender.buffer.probe_at if sender.buffer is not None else None)
            if sender.replier_node is not None:
                sender.replies.handle_timer(now)
                self._replies_ready(publication, sender)
                self._asked(sender.replies, publication.session_id, publication.name,
                            sender.replier_node, now, reply=True)
        for at in timers:
            self._arm_repair(at)

    def _probe(self, buffer: RetransmissionBuffer | None, nodes: list[str],
               addresses: dict[str, Address], now: float) -> None:
        payload = None if buffer is None else buffer.probe(now)
        targets = [addresses[n] for n in nodes if n in addresses]
        if payload is not None and targets:
            self.send_relay(RelayKind.DATACHANNEL, 0, payload, targets)
            self.repair["probes"] += 1

    def _deliver_ready(self, follow: Any, node: str) -> None:
        raise NotImplementedError

    def _replies_ready(self, publication: Any, sender: FeedSender) -> None:
        raise NotImplementedError

    def stop_repair(self) -> None:
        """Cancel the repair timer (the service stops)."""
        if self._repair_call is not None and self._repair_call.active():
            self._repair_call.cancel()
        self._repair_call, self._repair_at = None, None
