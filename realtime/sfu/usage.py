"""
SFU usage accounting: bytes and packets per app, session and track, per minute.

Issue 4 asks for "egress/ingress bytes per app, session and track".  The
words mean, here (and in docs/api.md, "Usage")::

    ingress = bytes the SFU received from a client      egress = bytes the SFU sent to a client

Cloudflare bills Realtime by egress, the bytes sent to clients, so the
*session* row counts what crosses the wire: every UDP payload the session's
:class:`~realtime.peer.connection.PeerConnection` received or sent -- SRTP
and SRTCP with their authentication tags, DTLS records (DataChannels
included) and STUN.  A *track* row counts the RTP of one published track
before encryption: ingress is what its publisher sent (accepted for the
track, RTX repairs included), egress what the SFU forwarded of it to every
subscriber.  Retransmissions answering a subscriber's NACK are counted on
that subscriber's session row only (they leave from the subscriber's RTCP
leg, which does not know the track).  An app's totals are the sum of its
session rows::

    hot path (one integer add on an object that exists anyway)
      PeerConnection.receive_classified   bytes_received  += len(datagram), packets_received += 1
      PeerConnection.datagrams_to_send    bytes_sent      += len(datagram), packets_sent     += 1
      PublishedTrack.receive_rtp          bytes           += len(packet),   packets          += 1
      PublishedTrack fan-out              egress_bytes    += len(packet),   egress_packets   += 1
                 │
                 │ UsageMeter.drain(now)   every ~10 s (realtime.net.usage_flush) and
                 v                         before every usage query
    {(app, session, track name | "", minute): [ingress, egress, ingress packets, egress packets]}
                 │ UsageMeter.rows()  ->  StateStore.add_sfu_usage (SQLite, summed per minute)
                 v
    GET /v1/apps/{appId}/usage  ->  summarize(rows): totals + per-minute series

The meter reads counters instead of being called per packet: it keeps the
last value it saw of each counter (a *mark*) and folds the difference into
the minute that contains ``now``.  It holds every observed session until
the drain after the session closed, so the bytes of its last seconds are
counted too; a track is read through its publisher session's transceivers,
which keep their track after it ended.

Pure: no clock, no database, no I/O; ``now`` and the store come from the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from realtime.turn.accounting import iso_minute

__all__ = ["SESSION", "SfuUsageRow", "UsageMeter", "UsageTotals", "summarize"]

#: the track name of a session's own row (its PeerConnection's wire bytes);
#: real track names are never empty (the API refuses an empty ``trackName``)
SESSION = ""

SfuUsageRow = tuple[str, str, str, int, int, int, int, int]
"""``(app_id, session_id, track_name, minute, ingress_bytes, egress_bytes,
ingress_packets, egress_packets)``; ``minute`` in unix seconds, a multiple of 60."""


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Bytes and packets counted in one direction pair.

    :param ingress_bytes: bytes received from the client.
    :param egress_bytes: bytes sent to the client(s).
    :param ingress_packets: datagrams (session) or RTP packets (track) received.
    :param egress_packets: datagrams (session) or RTP packets (track) sent.
    """

    ingress_bytes: int = 0
    egress_bytes: int = 0
    ingress_packets: int = 0
    egress_packets: int = 0


def session_counters(session: Any) -> UsageTotals:
    """Return the wire counters of ``session``'s PeerConnection (zeros before it exists)."""
    connection = session.connection
    if connection is None:
        return UsageTotals()
    return UsageTotals(connection.bytes_received, connection.bytes_sent,
                       connection.packets_received, connection.packets_sent)


def track_counters(track: Any) -> UsageTotals:
    """Return the RTP counters of a :class:`~realtime.sfu.track.PublishedTrack`."""
    return UsageTotals(track.bytes, track.egress_bytes, track.packets, track.egress_packets)


class UsageMeter:
    """Fold the counters of observed sessions and their tracks into minute buckets.

    ``observe`` every session when it is made (the switchboard's observer);
    call :meth:`drain` periodically and :meth:`rows` to take what to store.
    """

    def __init__(self) -> None:
        #: session -> {counted object (the session itself or a track): last totals}
        self._marks: dict[Any, dict[Any, UsageTotals]] = {}
        self._pending: dict[tuple[str, str, str, int], list[int]] = {}

    def __len__(self) -> int:
        """Return how many sessions are observed (live, or closed but not yet drained)."""
        return len(self._marks)

    def observe(self, session: Any) -> None:
        """Start metering ``session`` (an :class:`~realtime.sfu.session.SfuSession`)."""
        self._marks.setdefault(session, {})

    def drain(self, now: float) -> None:
        """Fold every counter's growth since the last drain into the minute containing ``now``.

        Sessions that are closed are read one last time and then forgotten.
        """
        minute = int(now // 60) * 60
        for session in list(self._marks):
            marks = self._marks[session]
            app_id, session_id = session.app_id, session.session_id
            self._fold(marks, session, (app_id, session_id, SESSION, minute),
                       session_counters(session))
            for transceiver in session.transceivers:
                track = transceiver.track
                if track is not None:
                    self._fold(marks, track, (app_id, session_id, track.name, minute),
                               track_counters(track))
            if session.closed:
                del self._marks[session]

    def _fold(self, marks: dict[Any, UsageTotals], counted: Any,
              key: tuple[str, str, str, int], now: UsageTotals) -> None:
        last = marks.get(counted) or UsageTotals()
        delta = (now.ingress_bytes - last.ingress_bytes, now.egress_bytes - last.egress_bytes,
                 now.ingress_packets - last.ingress_packets,
                 now.egress_packets - last.egress_packets)
        marks[counted] = now
        if not any(delta):
            return
        bucket = self._pending.get(key)
        if bucket is None:
            self._pending[key] = list(delta)
        else:
            for i, value in enumerate(delta):
                bucket[i] += value

    def rows(self) -> list[SfuUsageRow]:
        """Return the pending rows and forget them."""
        pending, self._pending = self._pending, {}
        return [(app, session, track, minute, ingress_bytes, egress_bytes, ingress_packets,
                 egress_packets)
                for (app, session, track, minute),
                (ingress_bytes, egress_bytes, ingress_packets, egress_packets) in pending.items()]

    def restore(self, rows: Iterable[SfuUsageRow]) -> None:
        """Put rows taken by :meth:`rows` back (the store refused them; retry later)."""
        for row in rows:
            key, counts = row[:4], row[4:]
            bucket = self._pending.get(key)
            if bucket is None:
                self._pending[key] = list(counts)
            else:
                for i, value in enumerate(counts):
                    bucket[i] += value


def summarize(series: Iterable[tuple[int, int, int, int, int]]) -> dict:
    """Return totals and a per-minute series from ``(minute, in, out, in pkts, out pkts)`` rows.

    The keys follow the TURN usage route (:func:`realtime.turn.accounting.summarize`)
    with packet counts added.
    """
    points = [{"minute": iso_minute(m), "ingressBytes": i, "egressBytes": e,
               "ingressPackets": ip, "egressPackets": ep} for m, i, e, ip, ep in series]
    return {
        "ingressBytes": sum(p["ingressBytes"] for p in points),
        "egressBytes": sum(p["egressBytes"] for p in points),
        "ingressPackets": sum(p["ingressPackets"] for p in points),
        "egressPackets": sum(p["egressPackets"] for p in points),
        "series": points,
    }
