"""
The switchboard: which sessions exist and which tracks they publish.

There are no rooms (docs/design.md §2).  A track is named by its publisher
session and its ``trackName`` within an app; any session of the same app
may pull it, any number of times (docs/cloudflare-api.md §1.3, §3.4)::

    Switchboard
    ├── sessions:  sessionId -> SfuSession (app_id, transceivers, PeerConnection)
    ├── tracks:    (app_id, sessionId, trackName) -> PublishedTrack
    │                                                 └── subscriptions -> other sessions
    ├── gone:      recently ended sessionIds (bounded; answered 410, not 404)
    └── touched:   sessions with output queued by the fan-out (the I/O side sends it)

Lifetimes (docs/cloudflare-api.md §3.5)::

    created ──first exchange──> negotiated ──...──> closed (PeerConnection gone,
       │                                            or close_session)
       └─ UNNEGOTIATED_TIMEOUT without an exchange ─> closed

    track published ──no packet for TRACK_INACTIVITY──> ended: unpublished, its
                                                        subscribers' sections go inactive

Pure code: times come in as ``now``; the API's Twisted side calls
:meth:`Switchboard.collect_garbage` periodically.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Callable

from realtime.sfu.limits import TRACK_INACTIVITY, UNNEGOTIATED_TIMEOUT
from realtime.sfu.restore import FindTrack, replay
from realtime.sfu.session import SfuSession
from realtime.sfu.track import PublishedTrack

__all__ = ["Switchboard"]

#: ended session ids remembered to answer 410 instead of 404
GONE_MEMORY = 10_000


class Switchboard:
    """Register sessions and the tracks they publish, per app.

    :param random: RNG for session ids, ICE credentials and SSRCs.
    """

    def __init__(self, random: Callable[[int], bytes] = os.urandom,
                 transport_cc: bool = True, pacing: bool = True) -> None:
        self.random = random
        #: sessions pace the video they send (``--no-pacer``: off; realtime/sfu/pacer.py)
        self.pacing = pacing
        #: sessions negotiate transport-wide congestion control (``--no-transport-cc``: off)
        self.transport_cc = transport_cc
        self.sessions: dict[str, SfuSession] = {}
        self.tracks: dict[tuple[str, str, str], PublishedTrack] = {}
        self.gone: OrderedDict[str, str] = OrderedDict()
        self.touched: set[SfuSession] = set()
        #: called with every session :meth:`create_session` makes (the usage meter)
        self.observers: list[Callable[[SfuSession], None]] = []

    # -- sessions -------------------------------------------------------------

    def create_session(self, app_id: str, now: float, session_id: str | None = None,
                       credentials: tuple[str, str] | None = None,
                       **transport: Any) -> SfuSession:
        """Create a session of ``app_id`` with a fresh 32-hex-digit id.

        ``transport`` goes to :class:`SfuSession` (certificate, address, port,
        srtp_profiles, keylog).  A cluster node taking over a session another
        node made passes its ``session_id`` and ICE ``credentials`` (ufrag, pwd),
        which the client already holds (docs/cluster.md).

        :raises ValueError: ``session_id`` is live here already.
        """
        if session_id is None:
            while True:
                session_id = self.random(16).hex()
                if session_id not in self.sessions and session_id not in self.gone:
                    break
        elif session_id in self.sessions:
            raise ValueError(f"session {session_id} is live here already")
        session = SfuSession(session_id, app_id, now=now, publish=self.publish,
                             touched=self.touched, random=self.random,
                             credentials=credentials, transport_cc=self.transport_cc,
                             pacing=self.pacing, **transport)
        self.sessions[session_id] = session
        for observe in self.observers:
            observe(session)
        return session

    def get(self, session_id: str) -> SfuSession | None:
        """Return the live session ``session_id``, or None."""
        return self.sessions.get(session_id)

    def is_gone(self, session_id: str) -> bool:
        """Return whether ``session_id`` existed and has ended (HTTP 410)."""
        return session_id in self.gone

    def close_session(self, session: SfuSession, reason: str = "closed") -> None:
        """End ``session``: its tracks are unpublished, its subscriptions stop."""
        if self.sessions.get(session.session_id) is not session:
            return
        del self.sessions[session.session_id]
        self.gone[session.session_id] = reason
        while len(self.gone) > GONE_MEMORY:
            self.gone.popitem(last=False)
        session.close()
        for key in [k for k, track in self.tracks.items() if track.session is session]:
            del self.tracks[key]
        self.touched.discard(session)

    def restore(self, app_id: str, session_id: str, credentials: tuple[str, str],
                exchange: tuple[str, str, bool], plan: list[dict[str, Any]], created: float,
                now: float, find_remote_track: FindTrack | None = None,
                **transport: Any) -> SfuSession:
        """Rebuild a session another node negotiated: same id, ICE credentials, transceivers.

        ``exchange`` is (our SDP, the client's SDP, we offered) of its last
        completed negotiation, ``plan`` what each mid carries
        (:func:`realtime.sfu.restore.replay`).  Its pushed tracks are published
        here under the same (session, name); a pulled track is looked up here
        first, then through ``find_remote_track(app_id, session_id, name)``
        (a cross-node pull), else its section stays silent.

        :raises ValueError, DecodeError: the session is live here, or the
            description does not replay (the session is then not kept).
        """
        def find(app: str, publisher: str, name: str) -> PublishedTrack | None:
            track = self.find(app, publisher, name)
            if track is None and find_remote_track is not None:
                track = find_remote_track(app, publisher, name)
            return track

        session = self.create_session(app_id, now, session_id, credentials, **transport)
        session.created = created
        try:
            replay(session, *exchange, plan, now, find)
        except Exception:
            self.drop_session(session)
            raise
        return session

    def drop_session(self, session: SfuSession) -> None:
        """Forget a copy of ``session`` another node took over: no 410 here, its tracks end."""
        if self.sessions.get(session.session_id) is session:
            self.close_session(session, "taken over")
            self.gone.pop(session.session_id, None)

    # -- tracks ---------------------------------------------------------------

    def publish(self, track: PublishedTrack) -> None:
        """Register ``track`` under (app, session, name); an older track of that name ends."""
        key = (track.session.app_id, track.session.session_id, track.name)
        old = self.tracks.get(key)
        if old is not None and old is not track:
            old.end()
        self.tracks[key] = track

    def unpublish(self, track: PublishedTrack) -> None:
        """Remove ``track`` from the registry (it ends)."""
        key = (track.session.app_id, track.session.session_id, track.name)
        if self.tracks.get(key) is track:
            del self.tracks[key]
        track.end()

    def find(self, app_id: str, session_id: str, name: str) -> PublishedTrack | None:
        """Return the live track ``name`` of ``session_id`` in ``app_id``, or None."""
        track = self.tracks.get((app_id, session_id, name))
        if track is None or track.ended:
            return None
        return track

    # -- expiry ---------------------------------------------------------------

    def collect_garbage(self, now: float, track_inactivity: float = TRACK_INACTIVITY,
                        unnegotiated: float = UNNEGOTIATED_TIMEOUT) -> list[SfuSession]:
        """End silent tracks and dead sessions; return the sessions closed.

        A session is dead when its PeerConnection closed or failed for good
        (the I/O side removed it) or it never negotiated within
        ``unnegotiated`` seconds.
        """
        for key, track in list(self.tracks.items()):
            if track.is_inactive(now, track_inactivity):
                del self.tracks[key]
                track.end()
        closed = []
        for session in list(self.sessions.values()):
            connection = session.connection
            dead = connection.state == "closed" if connection is not None else \
                now - session.created >= unnegotiated
            if dead:
                self.close_session(session, "expired")
                closed.append(session)
        return closed

    def stats(self) -> dict[str, int]:
        """Return counts of sessions, tracks and subscriptions (for diagnostics)."""
        return {
            "sessions": len(self.sessions),
            "tracks": len(self.tracks),
            "subscriptions": sum(len(t.subscriptions) for t in self.tracks.values()),
        }
