"""
The SFU's published limits and the per-session API rate limiter.

Cloudflare documents these limits for its Realtime SFU (docs/cloudflare-api.md §3.5,
from ``realtime/sfu/platform/limits.mdx``); a compatible server enforces the
same numbers so that clients tuned against one behave the same on the other:

=============================  =========  ======================================
limit                          value      where it is enforced
=============================  =========  ======================================
API calls per session          50 / s     :class:`RateLimiter` (HTTP 429)
tracks per API call            64         the API (HTTP 400 ``invalid_params``)
track inactivity               30 s       :meth:`Switchboard.collect_garbage`
wait for a connected transport 5 s        the API (then HTTP 425 ``session_error``)
reconnect window               30 s       :class:`~realtime.net.peers.PeerHost`
wait for a silent track        3 s        the API (then per item ``empty_track_error``)
=============================  =========  ======================================

Limits of our own, where the contract is silent (issue 10 item 4: unbounded
creation was the cheapest way to make the server hold memory):

=============================  =========  ======================================
``sessions/new`` per app       20 / s     :class:`RateLimiter` keyed by app id
                               burst 100  (HTTP 429; ``--session-rate``, ``--session-burst``)
m= sections per SDP            256        the API (HTTP 400 ``invalid_session_description``)
tracks per call, autoDiscover  64         counted with the listed tracks (HTTP 400)
=============================  =========  ======================================

The rate limiter is a token bucket (RFC 2697's single-rate idea, without
colours): a bucket of ``burst`` tokens refills at ``rate`` tokens per
second; a call takes one token or is refused::

    tokens
    burst ┤■■■■■■■■■■■■            ╭──── refill at `rate`/s, capped at burst
          │            ╲ calls    ╱
        0 ┤             ╲________╱ <- refused while empty
          └──────────────────────────────────> now
"""

from __future__ import annotations

from collections import OrderedDict

#: API calls one session may make per second (Cloudflare's limit).
API_CALLS_PER_SECOND = 50.0
#: tracks one ``tracks/new`` / ``tracks/close`` / ``tracks/update`` may name.
MAX_TRACKS_PER_CALL = 64
#: seconds without a packet after which a published track is garbage-collected.
TRACK_INACTIVITY = 30.0
#: seconds an operation that needs a connected transport waits for it.
CONNECT_WAIT = 5.0
#: seconds a pull waits for the first packet of a known but silent track.
FIRST_PACKET_WAIT = 3.0
#: seconds a session that never negotiated is kept.
UNNEGOTIATED_TIMEOUT = 60.0
#: ``sessions/new`` calls per second per app, and the burst (``--session-rate/-burst``).
SESSIONS_PER_SECOND = 20.0
SESSION_BURST = 100.0
#: m= sections one SDP given to the API may hold (a 1,000-section autoDiscover offer
#: published 1,000 tracks and held the reactor 0.17 s).
MAX_MEDIA_SECTIONS = 256


class RateLimiter:
    """Admit at most ``rate`` calls per second per key (token bucket, bursts up to ``burst``).

    State is bounded: at most ``max_keys`` buckets are kept, the least
    recently used is forgotten first (a forgotten key starts full again).
    """

    __slots__ = ("rate", "burst", "max_keys", "_buckets")

    def __init__(self, rate: float = API_CALLS_PER_SECOND, burst: float | None = None,
                 max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = rate if burst is None else burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        """Take one token from ``key``'s bucket at time ``now``; False if it is empty."""
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def forget(self, key: str) -> None:
        """Drop ``key``'s bucket (its session has gone)."""
        self._buckets.pop(key, None)
