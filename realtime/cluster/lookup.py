"""
"Consensus on demand": hold the first checks of an unknown session while the directory is asked.

A browser's first STUN Binding may reach a node that did not make its
session (anycast: the route decides).  The USERNAME (``ours:theirs``,
RFC 8445 §7.2.2) starts with the ufrag our answer carried, so the node asks
the directory for that ufrag's session, builds the session from the record,
and answers.  Browsers retransmit and pair several candidates at once, so
several checks for one ufrag arrive while the answer is outstanding.

:class:`SessionLookups` is the sans-I/O part of that: it decides when to ask
(once per ufrag), holds the checks that arrive meanwhile (bounded), releases
them when the answer comes, and remembers recent misses so a flood of random
ufrags costs Redis one lookup per ufrag per ``negative_ttl``, not one per
packet::

          check for unknown ufrag U
                   |
        +----------+-----------+--------------------+
        | U missed recently    | U being looked up  | otherwise
        v                      v                    v
      drop "unknown"        hold (<= held_per       start lookup, hold
                            ufrag, else drop)       (<= max_pending lookups)
                                                      |
                 lookup_finished(U, found) <----------+  (or timeout: drop held)
                   found: release held checks to the new session
                   not found: drop them, remember U for negative_ttl

:class:`~realtime.cluster.finder.SessionFinder` is the Twisted side that runs
the lookups against :class:`~realtime.cluster.directory.Directory`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Address = tuple[str, int]

#: Lookups in flight at once (a bound on memory and on load sent to Redis).
MAX_PENDING = 1024
#: Checks held per ufrag while its lookup runs (browsers send a handful).
HELD_PER_UFRAG = 8
#: Seconds a lookup may take before its held checks are dropped.
LOOKUP_TIMEOUT = 1.0
#: Seconds a ufrag the directory did not know is refused without asking again.
NEGATIVE_TTL = 2.0
#: Misses remembered at once (oldest forgotten first).
MAX_NEGATIVE = 4096
#: Lookups started per second at most (token bucket, burst of one second's worth): a flood
#: of random ufrags costs Redis this much and no more.
MAX_LOOKUP_RATE = 1000.0


@dataclass
class _Pending:
    deadline: float
    held: list[tuple[bytes, Address]] = field(default_factory=list)


class SessionLookups:
    """Decide when to ask the directory about a ufrag; hold and release the checks meanwhile."""

    def __init__(self, *, max_pending: int = MAX_PENDING, held_per_ufrag: int = HELD_PER_UFRAG,
                 timeout: float = LOOKUP_TIMEOUT, negative_ttl: float = NEGATIVE_TTL,
                 max_rate: float = MAX_LOOKUP_RATE) -> None:
        self.max_pending = max_pending
        self.held_per_ufrag = held_per_ufrag
        self.timeout = timeout
        self.negative_ttl = negative_ttl
        self.max_rate = max_rate
        self._tokens = max_rate
        self._refilled: float | None = None
        self._pending: dict[str, _Pending] = {}
        self._misses: dict[str, float] = {}     # ufrag -> until (insertion ordered)
        #: Checks dropped, by reason: ``unknown``, ``held_full``, ``pending_full``,
        #: ``rate_limited``, ``timeout``, ``directory_unavailable``.
        self.dropped: Counter[str] = Counter()

    def check_arrived(self, ufrag: str, data: bytes, addr: Address, now: float) -> bool:
        """Take a check for unknown ``ufrag``; return True when the caller must start a lookup."""
        until = self._misses.get(ufrag)
        if until is not None:
            if now < until:
                self.dropped["unknown"] += 1
                return False
            del self._misses[ufrag]
        pending = self._pending.get(ufrag)
        if pending is not None:
            if len(pending.held) >= self.held_per_ufrag:
                self.dropped["held_full"] += 1
            else:
                pending.held.append((data, addr))
            return False
        if len(self._pending) >= self.max_pending:
            self.dropped["pending_full"] += 1
            return False
        if not self._take_token(now):
            self.dropped["rate_limited"] += 1
            return False
        self._pending[ufrag] = _Pending(now + self.timeout, [(data, addr)])
        return True

    def _take_token(self, now: float) -> bool:
        if self._refilled is not None:
            elapsed = max(0.0, now - self._refilled)
            self._tokens = min(self.max_rate, self._tokens + elapsed * self.max_rate)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def lookup_finished(self, ufrag: str, found: bool, now: float) -> list[tuple[bytes, Address]]:
        """End the lookup of ``ufrag``; return the held checks if found (else drop them)."""
        pending = self._pending.pop(ufrag, None)
        if pending is None:         # timed out already
            return []
        if found:
            return pending.held
        self.dropped["unknown"] += len(pending.held)
        self._misses[ufrag] = now + self.negative_ttl
        while len(self._misses) > MAX_NEGATIVE:
            del self._misses[next(iter(self._misses))]
        return []

    def lookup_failed(self, ufrag: str) -> None:
        """End the lookup of ``ufrag`` without an answer (directory away): drop, remember nothing."""
        pending = self._pending.pop(ufrag, None)
        if pending is not None:
            self.dropped["directory_unavailable"] += len(pending.held)

    def handle_timer(self, now: float) -> None:
        """Drop lookups past their deadline (with their held checks) and expired misses."""
        for ufrag in [u for u, p in self._pending.items() if p.deadline <= now]:
            self.dropped["timeout"] += len(self._pending.pop(ufrag).held)
        for ufrag in [u for u, until in self._misses.items() if until <= now]:
            del self._misses[ufrag]

    def get_timer(self) -> float | None:
        """Return the earliest lookup deadline or miss expiry, or ``None``."""
        deadlines = [p.deadline for p in self._pending.values()]
        deadlines += self._misses.values()
        return min(deadlines, default=None)

    @property
    def pending(self) -> int:
        """Lookups in flight."""
        return len(self._pending)
