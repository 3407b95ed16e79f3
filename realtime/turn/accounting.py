"""
Usage accounting: bytes relayed per TURN key, username and customIdentifier, per minute.

Cloudflare bills TURN by *egress*: the bytes the server sends to the client,
TURN framing included, once the client has authenticated.  The machine
(:meth:`~realtime.turn.server.TurnServer.drain_usage`) counts, per
allocation, the bytes received from the client (ingress) and sent to it
(egress) -- requests and responses of an authenticated allocation, Send and
Data indications, ChannelData; never 401 challenges.  This module folds
those counts into per-minute buckets::

    TurnServer.drain_usage()  every few seconds (and before a usage query)
        [(credential, ingress, egress), ...]
                 │ UsageLedger.record(usage, now)
                 v
    {(key id, username, customIdentifier, minute): [ingress, egress]}
                 │ UsageLedger.rows()   -> StateStore.add_turn_usage (SQLite, summed)
                 v
    GET /v1/turn/keys/{keyId}/usage  -> summarize(rows): totals + per-minute series

Pure: no clock, no database; the caller passes ``now`` and the store.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterable

from realtime.turn.credentials import Credential

UsageRow = tuple[str, str, str, int, int, int]
"""``(key_id, username, custom_identifier, minute, ingress, egress)``; minute in unix seconds."""


class UsageLedger:
    """Accumulate relayed bytes per (key, username, customIdentifier, minute) until flushed."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str, str, int], list[int]] = {}

    def record(self, usage: Iterable[tuple[Credential, int, int]], now: float) -> None:
        """Add ``(credential, ingress, egress)`` counts to the minute containing ``now``."""
        minute = int(now // 60) * 60
        for credential, ingress, egress in usage:
            key = (credential.key_id, credential.username, credential.custom_identifier, minute)
            bucket = self._pending.get(key)
            if bucket is None:
                self._pending[key] = [ingress, egress]
            else:
                bucket[0] += ingress
                bucket[1] += egress

    def rows(self) -> list[UsageRow]:
        """Return the pending rows and forget them."""
        pending, self._pending = self._pending, {}
        return [(*key, counts[0], counts[1]) for key, counts in pending.items()]


def iso_minute(minute: int) -> str:
    """Return ``minute`` (unix seconds) as ``YYYY-MM-DDTHH:MM:00Z``."""
    return datetime.fromtimestamp(minute, timezone.utc).strftime("%Y-%m-%dT%H:%M:00Z")


def summarize(series: Iterable[tuple[int, int, int]]) -> dict:
    """Return totals and a per-minute series from ``(minute, ingress, egress)`` rows."""
    points = [{"minute": iso_minute(m), "ingressBytes": i, "egressBytes": e} for m, i, e in series]
    return {
        "ingressBytes": sum(p["ingressBytes"] for p in points),
        "egressBytes": sum(p["egressBytes"] for p in points),
        "series": points,
    }
