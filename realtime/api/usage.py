"""
The SFU usage route: bytes and packets per app, session and track (issue 4).

::

    GET /v1/apps/{appId}/usage?since=&until=&sessionId=&trackName=
      -> 200 {"appId", "since", "until", ["sessionId"], ["trackName"],
              "ingressBytes", "egressBytes", "ingressPackets", "egressPackets",
              "series": [{"minute": "2024-05-21T12:34:00Z", "ingressBytes", "egressBytes",
                          "ingressPackets", "egressPackets"}, ...],
              ["tracks": [{"trackName", "ingressBytes", ...}, ...]]   (with sessionId only)}

It mirrors the TURN key usage route (:mod:`realtime.api.turn`): ``since``
and ``until`` are unix seconds or ISO 8601 times (default: the last 24 h),
the window is ``[since, until)`` in whole minutes, and the running counters
are flushed to the store before the answer, so it includes the last second.
What the numbers mean is in :mod:`realtime.sfu.usage`::

    no filter               the app's sessions, wire bytes (SRTP/SRTCP/DTLS/STUN),
                            egress = bytes sent to clients (what Cloudflare bills)
    sessionId=S             that session's wire bytes, plus "tracks": what S published
    trackName=T             RTP of tracks named T (of session S when given):
                            ingress = from the publisher, egress = to all subscribers

``realtime.service.makeService`` builds one :class:`SfuUsage` (meter + store),
adds its meter to the switchboard's observers, gives it to
:class:`~realtime.api.app.RealtimeAPI`, and runs :meth:`SfuUsage.flush` every
few seconds and once more on stop (the ``usage-flush`` service,
:mod:`realtime.net.usage_flush`).
"""

from __future__ import annotations

import math
from typing import Any

from twisted.web.iweb import IRequest

from twisted.internet.interfaces import IReactorTime

from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import query_time
from realtime.sfu.usage import UsageMeter, summarize
from realtime.storage import App, StateStore

#: seconds of SFU usage kept in the store
RETENTION = 31 * 86400
#: seconds between prunes of usage older than :data:`RETENTION`
PRUNE_INTERVAL = 3600.0
#: the default window of a query without ``since``, in seconds
DEFAULT_WINDOW = 86400
#: longest accepted query parameter (session ids are 32, track names short)
MAX_PARAMETER = 1024


class SfuUsage:
    """Meter the SFU's sessions and write what it counted to the store.

    :param store: where rows are summed (:meth:`StateStore.add_sfu_usage`).
    :param meter: the pure aggregator (a fresh one by default).
    :param retention: seconds of usage kept; older minutes are pruned hourly.
    """

    def __init__(self, store: StateStore, meter: UsageMeter | None = None,
                 retention: float = RETENTION) -> None:
        self.store = store
        self.meter = meter or UsageMeter()
        self.retention = retention
        self.pruned: float | None = None

    def flush(self, now: float) -> int:
        """Drain the meter into the store (and prune hourly); return the rows written."""
        self.meter.drain(now)
        rows = self.meter.rows()
        if rows:
            try:
                self.store.add_sfu_usage(rows)
            except Exception:
                self.meter.restore(rows)
                raise
        if self.pruned is None or now - self.pruned >= PRUNE_INTERVAL:
            self.pruned = now
            self.store.prune_sfu_usage(int(now - self.retention) // 60 * 60)
        return len(rows)


def query_text(request: IRequest, name: str) -> str | None:
    """Return query parameter ``name`` as text, ``None`` when absent or empty.

    :raises ApiError: 400 ``invalid_params`` past :data:`MAX_PARAMETER` characters.
    """
    args = request.args or {}
    raw = args.get(name.encode(), [b""])[0].decode("utf-8", "replace")
    if len(raw) > MAX_PARAMETER:
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       f"{name} must be at most {MAX_PARAMETER} characters")
    return raw or None


def _totals(row: tuple[str, int, int, int, int]) -> dict[str, Any]:
    name, ingress, egress, ingress_packets, egress_packets = row
    return {"trackName": name, "ingressBytes": ingress, "egressBytes": egress,
            "ingressPackets": ingress_packets, "egressPackets": egress_packets}


class UsageRoutes:
    """``usage``: an app's SFU usage, flushed first so it includes the last second.

    :param usage: the meter and its store.
    :param clock: the reactor's clock.
    """

    def __init__(self, usage: SfuUsage, clock: IReactorTime) -> None:
        self.usage = usage
        self.clock = clock

    def usage_report(self, request: IRequest, app: App) -> dict[str, Any]:
        """Return the app's SFU bytes and packets in [since, until): totals and per minute."""
        now = self.clock.seconds()
        self.usage.flush(now)
        store = self.usage.store
        until = query_time(request, "until", now + 60)
        since = query_time(request, "since", until - DEFAULT_WINDOW)
        if since > until:
            raise ApiError(400, ErrorCode.INVALID_PARAMS, "since must not be after until")
        session_id = query_text(request, "sessionId")
        track_name = query_text(request, "trackName")
        first, end = int(since // 60) * 60, math.ceil(until)
        rows = store.sfu_usage(app.app_id, first, end, session_id, track_name or "")
        body: dict[str, Any] = {"appId": app.app_id, "since": since, "until": until}
        if session_id is not None:
            body["sessionId"] = session_id
        if track_name is not None:
            body["trackName"] = track_name
        body.update(summarize(rows))
        if session_id is not None and track_name is None:
            body["tracks"] = [_totals(row) for row in
                              store.sfu_usage_by_track(app.app_id, session_id, first, end)]
        return body
