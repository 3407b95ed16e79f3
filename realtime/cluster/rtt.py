"""
Round-trip time between nodes, measured on the relay link.  Sans-I/O: no sockets, no clock.

The cascading trees (:mod:`realtime.cluster.tree`) place a node under the
shallowest, least loaded parent and then, among equals, the one with the
lowest round-trip time to it.  This module measures that time.

**Probes.**  Every :data:`PROBE_INTERVAL` seconds each node sends every live
member of the registry one ``PING`` relay frame (:class:`~realtime.cluster.relay.RelayKind`)
whose payload is an 8-byte random nonce; the member echoes the payload in a
``PONG``.  Both are ordinary relay frames: sealed with the sender's key,
authenticated, and checked against the link's replay window, so only a member
can answer and a captured frame cannot be played again.  On top of that the
table accepts a ``PONG`` only for the one probe outstanding to *that* member,
once: the RTT is measured on our own clock (the time the ``PING`` left to the
time its ``PONG`` came in) and the peer's clock is never trusted.

**Smoothing** (RFC 6298 §2, the TCP retransmission timer's estimator): the
first measurement ``R`` sets ``SRTT = R`` and ``RTTVAR = R / 2`` (§2.2); each
later ``R'`` updates ``RTTVAR = (1 - beta) * RTTVAR + beta * |SRTT - R'|``, then
``SRTT = (1 - alpha) * SRTT + alpha * R'`` with ``alpha = 1/8``, ``beta = 1/4``
(§2.3).  A probe every 2 s and alpha 1/8 let SRTT follow a lasting change of
the path within ~8 probes (16 s), while one delayed ``PONG`` (a busy node, a
queue) moves it by an eighth only.

**Forgetting.**  :meth:`RttTable.probes` is given the live members each round;
peers that left the registry are forgotten with their estimate.  A member that
stops answering keeps its estimate for :data:`MAX_AGE` only, then is left out
of :meth:`RttTable.snapshot` (what the node writes into its registry record),
so a silent node is not preferred on an old figure.

**Drops**, each counted in :attr:`RttTable.dropped`, never raised or logged:
``malformed`` (a payload that is not 8 bytes), ``unknown`` (no probe
outstanding to that peer, or a nonce we never sent it), ``stale`` (the nonce of
the peer's previous probe, replaced before it was answered), ``duplicate`` (the
nonce of a probe already answered), ``implausible`` (a sample below zero, the
clock stepped back, or above :data:`MAX_RTT`).

Cost: one sealed frame per member per 2 s each way, 8 bytes of payload (+ the
relay header, ~60 bytes on the wire); nothing on the per-packet path.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

__all__ = ["MAX_AGE", "MAX_RTT", "NONCE_LENGTH", "PROBE_INTERVAL", "RttTable", "pair_rtts"]

#: Seconds between probe rounds (fixed; see docs/cascading.md "Measured RTT").
PROBE_INTERVAL = 2.0
#: A sample longer than this (seconds) is discarded: no use for placement, likely a stall.
MAX_RTT = 2.0
#: An estimate with no new sample for this long (seconds) is not reported.
MAX_AGE = 10.0
#: PING/PONG payload: a random 64-bit nonce.
NONCE_LENGTH = 8
#: RFC 6298 §2.3 gains.
ALPHA = 1 / 8
BETA = 1 / 4
#: Most peers written into a record (the registry record's list limit).
MAX_REPORTED = 256


class _Peer:
    """What the table keeps per member: the probe in flight and the estimate."""

    __slots__ = ("nonce", "sent", "previous", "answered", "srtt", "rttvar", "updated")

    def __init__(self) -> None:
        self.nonce: bytes | None = None     # the probe outstanding
        self.sent = 0.0
        self.previous: bytes | None = None  # the probe it replaced, unanswered
        self.answered: bytes | None = None  # the last probe answered
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.updated = 0.0


class RttTable:
    """Smoothed round-trip times from this node to the other members.

    :param random: returns ``n`` random bytes (the nonces); injected for tests.
    """

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._peers: dict[str, _Peer] = {}
        #: PONGs dropped by reason (module docstring).
        self.dropped: Counter[str] = Counter()
        #: Probes sent, PONGs accepted as samples, PINGs answered.
        self.probed = 0
        self.samples = 0
        self.answered = 0

    # -- probing ---------------------------------------------------------------------------

    def retain(self, members: Iterable[str]) -> None:
        """Forget every peer not in ``members`` (the live members but this node)."""
        live = set(members)
        for gone in [p for p in self._peers if p not in live]:
            del self._peers[gone]

    def probe(self, member: str, now: float) -> bytes:
        """Return the payload of a new ``PING`` to ``member``.

        A probe to it still unanswered is replaced (its ``PONG``, if it comes,
        is counted ``stale``).
        """
        peer = self._peers.get(member)
        if peer is None:
            peer = self._peers[member] = _Peer()
        if peer.nonce is not None:
            peer.previous = peer.nonce
        peer.nonce = nonce = self._random(NONCE_LENGTH)
        peer.sent = now
        self.probed += 1
        return nonce

    def probes(self, members: Iterable[str], now: float) -> list[tuple[str, bytes]]:
        """Start a round: forget the peers not in ``members``, return ``(member, PING
        payload)`` for each member (the live members but this node)."""
        live = sorted(set(members))
        self.retain(live)
        return [(member, self.probe(member, now)) for member in live]

    def ping_received(self, payload: bytes) -> bytes | None:
        """Return the ``PONG`` payload answering a member's ``PING`` (None: malformed, dropped)."""
        if len(payload) != NONCE_LENGTH:
            self.dropped["malformed"] += 1
            return None
        self.answered += 1
        return bytes(payload)

    def pong_received(self, member: str, payload: bytes, now: float) -> float | None:
        """Take ``member``'s ``PONG``; return the sample (seconds), or None if it was dropped."""
        if len(payload) != NONCE_LENGTH:
            self.dropped["malformed"] += 1
            return None
        peer = self._peers.get(member)
        if peer is None or peer.nonce != payload:
            if peer is not None and payload == peer.previous:
                self.dropped["stale"] += 1
            elif peer is not None and payload == peer.answered:
                self.dropped["duplicate"] += 1
            else:
                self.dropped["unknown"] += 1
            return None
        peer.answered, peer.nonce = peer.nonce, None
        sample = now - peer.sent
        if not 0.0 <= sample <= MAX_RTT:
            self.dropped["implausible"] += 1
            return None
        if peer.srtt is None:                           # RFC 6298 §2.2
            peer.srtt, peer.rttvar = sample, sample / 2
        else:                                           # RFC 6298 §2.3 (RTTVAR first)
            peer.rttvar = (1 - BETA) * peer.rttvar + BETA * abs(peer.srtt - sample)
            peer.srtt = (1 - ALPHA) * peer.srtt + ALPHA * sample
        peer.updated = now
        self.samples += 1
        return sample

    # -- reading ---------------------------------------------------------------------------

    def srtt(self, member: str) -> float | None:
        """Return the smoothed RTT to ``member`` in seconds (None: never measured)."""
        peer = self._peers.get(member)
        return None if peer is None else peer.srtt

    def snapshot(self, now: float) -> dict[str, float]:
        """Return ``member -> SRTT in milliseconds`` (rounded to the µs) for the members
        measured within :data:`MAX_AGE`, at most :data:`MAX_REPORTED` of them (the nearest)."""
        fresh = sorted((peer.srtt, member) for member, peer in self._peers.items()
                       if peer.srtt is not None and now - peer.updated <= MAX_AGE)
        return {member: max(round(srtt * 1000, 3), 0.001)
                for srtt, member in fresh[:MAX_REPORTED]}

    def stats(self, now: float) -> dict[str, object]:
        """Return the estimates and counters (``/diagnostics``)."""
        return {"rtt_ms": self.snapshot(now), "probes": self.probed, "samples": self.samples,
                "pings_answered": self.answered, "dropped": dict(self.dropped)}


def pair_rtts(reported: Mapping[str, Mapping[str, float]]) -> dict[tuple[str, str], float]:
    """Return ``(a, b) -> seconds`` for the placement (:meth:`Tree.attach`'s ``rtt``).

    :param reported: ``node -> {peer: RTT in ms}``, as the live nodes' registry
        records carry it (``NodeRecord.rtts``).
    Both orders of a pair get the same value: the mean of the two nodes'
    measurements when both reported one, else the one reported.  Pairs with a
    node not in ``reported`` (not live) and values that are not positive are left out.
    """
    samples: dict[tuple[str, str], list[float]] = {}
    for node, rtts in reported.items():
        for peer, ms in rtts.items():
            if peer == node or peer not in reported or not 0 < ms < MAX_RTT * 1000:
                continue
            samples.setdefault((min(node, peer), max(node, peer)), []).append(ms / 1000)
    out = {}
    for (a, b), values in samples.items():
        out[(a, b)] = out[(b, a)] = sum(values) / len(values)
    return out
