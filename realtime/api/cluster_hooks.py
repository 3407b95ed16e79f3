"""
What the API asks of the cluster when ``--cluster`` is on (docs/cluster.md).

The API does not import the cluster (it sits below it, tests/test_layering.py);
``realtime.service`` passes a :class:`ClusterHooks` implementation
(:class:`realtime.cluster.publish.ClusterSessions`) to
:class:`~realtime.api.app.RealtimeAPI`, or ``None`` for one process alone.
Each hook raises :class:`~realtime.api.errors.ApiError` 503
``directory_unavailable`` when the directory cannot take the write, so a
session other nodes could never find is never answered.
"""

from __future__ import annotations

from typing import Any, Awaitable, Protocol


class ClusterHooks(Protocol):
    """Write what other nodes need into the cluster directory."""

    def echo_created(self, session: Any, app_id: str, offer_sdp: str) -> Awaitable[None]:
        """Store an echo session (offer + answer) before its answer is sent."""
        ...

    def session_created(self, session: Any) -> Awaitable[None]:
        """Store an SFU session just made (raise the 503 at once if the directory is away).

        The returned awaitable fires once the write is done (or failed and was counted).
        """
        ...

    def session_negotiated(self, session: Any) -> None:
        """Store an SFU session's negotiated parameters and its pushed tracks."""
        ...

    def find_track(self, board: Any, app_id: str, session_id: str,
                   name: str) -> Awaitable[Any | None]:
        """Return a track another node publishes, mirrored here (None if there is none).

        Called for a pull whose track ``board`` (this node's switchboard)
        does not hold; the result is a track-like object local subscribers
        attach to as to a local track (``realtime.cluster.remote_tracks``).
        """
        ...

    def owned_elsewhere(self, session_id: str, name: str) -> Awaitable[bool]:
        """Whether the directory names another node as the owner of that track."""
        ...

    def stats(self, app_id: str) -> dict[str, Any]:
        """Return the cluster's counters for app ``app_id``'s ``/diagnostics`` (relay, pulls)."""
        ...

    def datachannel_feeds(self) -> tuple[Any, ...]:
        """Return the feeds a new publication gets (the relay to other nodes)."""
        ...

    def datachannel_published(self, channel: Any) -> None:
        """Store a DataChannel publication just made here (closing it marks it closed)."""
        ...

    def remote_datachannel(self, app_id: str, session_id: str,
                           name: str) -> Awaitable[Any | None]:
        """Return a publication held by another node (a ``RemotePublication``), or None."""
        ...

    def known_remote_datachannel(self, session_id: str, name: str) -> Any | None:
        """Return a publication of another node this node already relays, or None."""
        ...

    def datachannel_stats(self) -> dict[str, Any] | None:
        """Return the DataChannel relay's node-wide counters (``/diagnostics``), or None."""
        ...

    def stream_published(self, app_id: str, name: str, session_id: str) -> Awaitable[None]:
        """Name ``session_id`` as WHIP stream ``name``'s publisher, for every node's WHEP."""
        ...

    def stream_ended(self, app_id: str, name: str, session_id: str) -> None:
        """Forget WHIP stream ``name`` if ``session_id`` still publishes it (in the background)."""
        ...

    def stream_tracks(self, app_id: str, name: str,
                      by_id: bool = True) -> Awaitable[tuple[str, list[str]] | None]:
        """Return ``(session id, its pushed track names)`` of a WHIP stream (or, ``by_id``, of
        a session whose id is ``name``) that the directory knows and whose session lives."""
        ...
