"""
A pacer per subscribing PeerConnection: video leaves at a rate, not in bursts.

Why.  A publisher's key frame reaches the SFU as a train of 10-60 packets
within a few milliseconds, and the fan-out copies that train to every
subscriber at once.  On a thin path (a token bucket, a DSL modem's queue)
the train overflows the bottleneck's buffer or parks in front of the audio
that follows it: the subscriber loses packets of the key frame it needs, and
hears a gap.  Send-side congestion control therefore spreads what it sends:
draft-ietf-rmcat-gcc-02 §4 has the sender pass media through a *pacer* that
sends "at a rate given by the bandwidth estimate" times a *pacing factor*
(2.5 there), in short bursts (§4: every 5 ms), so that a burst is only a
few milliseconds of the path's capacity, yet a stream that briefly exceeds
the estimate (a key frame) is not held back for long.  RFC 8298 §4.1.2.3
(SCReAM) and RFC 9332 (L4S pacing notes) reason the same way: the pacer
turns the encoder's bursts into what the path can absorb.

What (sans-I/O; :mod:`realtime.net.peers` drives it from the connection's one
timer)::

    connection queue ──admit(out, now)──> what may leave now
        not RTP (STUN, DTLS), RTCP (RFC 5761 §4: PT 192-223), or an SSRC
        not in ``video``  ─> at once (audio is never queued behind video);
                             its bytes still count against the budget
        video (and its RTX: retransmissions, probes) ─> at once if the queue is
                             empty and the budget is not spent, else queued
    get_timer()  ─> when the head of the queue may leave
    the budget:  a *virtual clock* ``free``: the time at which everything sent so
                 far would have left at the pacing rate.  A packet may leave when
                 ``free <= now``; sending it moves ``free`` by size / rate.  Idle
                 time is credited up to BURST (``free >= now - BURST``): after a
                 pause, at most BURST seconds' worth leaves back to back.

The queue is bounded in time.  While it holds more than DRAIN_TARGET seconds
of data at the pacing rate, the rate rises so that its oldest packet leaves
within DRAIN_TARGET of its arrival (a video track the allocator cannot thin,
or an estimate far below the media, must not make the pacer the
bottleneck); a packet older than
MAX_QUEUE_DELAY is dropped (counted in :attr:`dropped`) and
:attr:`keyframe_wanted` asks the session for a key frame, since the
decoder cannot continue past the hole.

Per packet, an idle pacer (queue empty, budget left) costs two comparisons and
one addition: the list it was given is returned as it is, nothing allocated.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

__all__ = ["BURST", "DRAIN_TARGET", "MAX_QUEUE_DELAY", "PACING_FACTOR", "Pacer"]

PACING_FACTOR = 2.5
"""Pacing rate / estimate (draft-ietf-rmcat-gcc-02 §4)."""
BURST = 0.005
"""Seconds of budget an idle pacer may spend back to back (§4: 5 ms bursts)."""
DRAIN_TARGET = 0.25
"""Seconds: a longer queue raises the pacing rate so that it drains in this time."""
MAX_QUEUE_DELAY = 0.5
"""Seconds a video packet may wait; older ones are dropped (and a key frame asked for)."""


class Pacer:
    """Pace one connection's video; let everything else through (see the module docstring).

    :attr:`video`: the SSRCs paced (the subscriber's video streams and their
    RTX streams), set by the session.  ``number_of(datagram)`` reads a packet's
    transport-wide number once, when it is held back (-1: none), and the number
    stays with the held packet; ``departed(number, now)`` is told when it leaves
    (its send time, for the estimate).  :meth:`set_rate` takes the estimate;
    ``None`` (no estimate) turns pacing off.
    """

    __slots__ = ("departed", "number_of", "video", "rate", "_spb", "_free", "_queue",
                 "_queued_bytes", "dropped", "deferred", "keyframe_wanted", "woke")

    def __init__(self, departed: Callable[[int, float], None] | None = None,
                 number_of: Callable[[bytes], int] | None = None) -> None:
        #: told ``(number, now)`` when a held packet leaves: the transport-wide number was
        #: stamped with the forwarding time, and the estimate wants the departure time
        self.departed = departed
        #: the transport-wide number of a packet being held back (-1: none)
        self.number_of = number_of if departed is not None else None
        #: SSRCs whose packets are paced
        self.video: frozenset[int] | set[int] = frozenset()
        #: the pacing rate in bit/s (0: off)
        self.rate = 0.0
        self._spb = 0.0  # seconds per octet at the pacing rate (0: unlimited)
        self._free = 0.0  # the virtual clock: when the budget is no longer spent
        #: (datagram, queued at, transport-wide number or -1); made at the first deferral
        #: (an idle session holds none)
        self._queue: deque[tuple[tuple[bytes, object], float, int]] | None = None
        self._queued_bytes = 0
        #: video packets dropped after MAX_QUEUE_DELAY in the queue
        self.dropped = 0
        #: video packets that waited (a burst spread)
        self.deferred = 0
        #: set when a drop left a hole the subscriber's decoder cannot cross
        self.keyframe_wanted = False
        #: set when the queue became non-empty (the driver must arm the timer now)
        self.woke = False

    def set_rate(self, estimate: float | None) -> None:
        """Pace at PACING_FACTOR x ``estimate`` bit/s (None or 0: do not pace)."""
        if not estimate:
            self.rate, self._spb = 0.0, 0.0
            return
        self.rate = PACING_FACTOR * estimate
        self._spb = 8.0 / self.rate

    def admit(self, out: list, now: float) -> list:
        """Return the datagrams of ``out`` (``(data, address)`` pairs) that leave now,
        with any queued ones whose time has come; keep the rest."""
        if not self._queue:
            if not self._spb:  # not pacing
                return out
            free = self._free
            if free <= now and len(out) == 1:  # the common case: one packet, budget left
                if free < now - BURST:
                    free = now - BURST
                self._free = free + len(out[0][0]) * self._spb
                return out
            if not out:
                return out
        return self._pace(out, now)

    def _pace(self, out: list, now: float) -> list:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        video = self.video
        sent = []
        spb = self._spb
        free = self._free
        if free < now - BURST:
            free = now - BURST
        for item in out:
            data = item[0]
            if len(data) >= 12 and data[0] & 0xC0 == 0x80 and not 192 <= data[1] <= 223 \
                    and int.from_bytes(data[8:12], "big") in video:
                if queue or free > now:
                    if not queue:
                        self.woke = True
                    number_of = self.number_of
                    queue.append((item, now, number_of(data) if number_of is not None else -1))
                    self._queued_bytes += len(data)
                    self.deferred += 1
                    continue
            sent.append(item)
            free += len(data) * spb
        if queue:
            free = self._release(sent, free, now)
        self._free = free
        return sent

    def _release(self, sent: list, free: float, now: float) -> float:
        queue = self._queue
        assert queue is not None
        oldest = now - MAX_QUEUE_DELAY
        while queue and queue[0][1] <= oldest:
            item, _, _ = queue.popleft()
            self._queued_bytes -= len(item[0])
            self.dropped += 1
            self.keyframe_wanted = True
        spb = self._spb
        departed = self.departed
        while queue and free <= now:
            item, _, number = queue.popleft()
            data = item[0]
            queued = self._queued_bytes
            self._queued_bytes = queued - len(data)
            sent.append(item)
            if queue and queued * spb > DRAIN_TARGET:  # send faster: no packet waits longer
                spb = max(DRAIN_TARGET - (now - queue[0][1]), 0.0) / queued
            free += len(data) * spb
            if departed is not None and number >= 0:
                departed(number, now)
        return free

    def get_timer(self) -> float | None:
        """Return when the next queued packet may leave, or None (nothing queued)."""
        queue = self._queue
        if not queue:
            return None
        free = self._free
        oldest = queue[0][1] + MAX_QUEUE_DELAY
        return free if free < oldest else oldest

    @property
    def queued(self) -> int:
        """Return the number of packets waiting."""
        return len(self._queue or ())

    def take_keyframe_wanted(self) -> bool:
        """Return (once) whether a drop asks for a key frame."""
        wanted, self.keyframe_wanted = self.keyframe_wanted, False
        return wanted

    def diagnostics(self) -> dict[str, object]:
        """Return what ``/diagnostics`` shows of the pacer."""
        return {"rate": int(self.rate), "queued": self.queued, "deferred": self.deferred,
                "dropped": self.dropped}
