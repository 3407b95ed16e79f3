"""
The SFU session routes of the Cloudflare-compatible API, and what the track routes share.

Routes here (docs/cloudflare-api.md §1.2 rows 1, 3, 10); the track routes are in
:mod:`realtime.api.tracks`, the DataChannel routes in :mod:`realtime.api.datachannels`::

    POST /apps/{appId}/sessions/new                 201 {sessionId[, sessionDescription(answer)]}
    PUT  /apps/{appId}/sessions/{sessionId}/renegotiate   200 {}  (applies the SFU offer's answer)
    GET  /apps/{appId}/sessions/{sessionId}         200 {tracks: [...], dataChannels: [...]}

Every ``/sessions/{sessionId}/...`` call goes through :meth:`SfuSessions.load_session`::

    session id unknown to this app ........... 404 not_found
    session ended (expired, closed, gone) .... 410 session_error
    more than 50 calls in the last second .... 429 retryable_transient_error
    otherwise ................................ the SfuSession

Errors chosen where the contract leaves a choice (docs/cloudflare-api.md §3.1, §3.3):
an overlapping negotiation is 406 ``session_error`` (the session's state
forbids the change; ``invalid_session_description`` is kept for SDP that is
bad or out of order on its own); a rate-limited call is 429
``retryable_transient_error`` (the contract's code for "try again").

The sans-I/O :class:`~realtime.sfu.switchboard.Switchboard`, the rate
limiters and the media port's peers are given to :class:`SfuSessions` by
:class:`~realtime.api.app.RealtimeAPI` (built in ``realtime.service.makeService``);
its :meth:`SfuSessions.collect` runs every :data:`COLLECT_INTERVAL` seconds as
the service's ``sfu-collect`` ``TimerService``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from realtime.api.cluster_hooks import ClusterHooks
from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import read_json
from realtime.api.media import Announced, MediaPeers
from realtime.errors import DecodeError, LocalProtocolError
from realtime.sfu.limits import CONNECT_WAIT, FIRST_PACKET_WAIT, MAX_MEDIA_SECTIONS, RateLimiter
from realtime.sfu.session import NegotiationPending, SfuSession
from realtime.sfu.switchboard import Switchboard
from realtime.sfu.track import PublishedTrack
from realtime.sfu.transceiver import APPLICATION, CLOSED, SUBSCRIBE
from realtime.storage import App

#: seconds between garbage collections of the switchboard (the ``sfu-collect`` service)
COLLECT_INTERVAL = 5.0

log = Logger()


class SfuSessions:
    """The SFU's sessions as the routes see them: create, load, start, wait, forget.

    :param switchboard: the registry of sessions and tracks.
    :param peers: runs the sessions' PeerConnections on the media port.
    :param announced: the address put in answers.
    :param clock: the reactor's clock (``task.Clock`` in tests).
    :param rate_limiter: 50 calls per second per session.
    :param session_limiter: ``sessions/new`` per app (``--session-rate``/``--session-burst``).
    :param cluster: writes sessions into the cluster directory (``--cluster``), or None.
    """

    def __init__(self, switchboard: Switchboard, peers: MediaPeers, announced: Announced,
                 clock: IReactorTime, rate_limiter: RateLimiter, session_limiter: RateLimiter,
                 cluster: ClusterHooks | None = None) -> None:
        self.switchboard = switchboard
        self.peers = peers
        self.announced = announced
        self.clock = clock
        self.rate_limiter = rate_limiter
        self.session_limiter = session_limiter
        self.cluster = cluster

    def collect(self) -> None:
        """End silent tracks and dead sessions (run every :data:`COLLECT_INTERVAL` s).

        A failure is logged, never raised: it would stop the ``TimerService``.
        """
        try:
            for session in self.switchboard.collect_garbage(self.clock.seconds()):
                log.info("session {session_id} expired", session_id=session.session_id,
                         app_id=session.app_id)
                self.forget(session)
        except Exception:
            log.failure("SFU garbage collection failed")

    def forget(self, session: SfuSession) -> None:
        """Stop running ``session``'s PeerConnection and its rate limit."""
        self.peers.remove(session)  # a no-op for a session it does not run
        self.rate_limiter.forget(session.session_id)

    def release(self, session_id: str) -> bool:
        """Drop this node's copy of a session another node took over; return whether it did.

        Nothing is dropped while the copy is connected here.  The PeerConnection
        goes without a word (it never connected here, so no DTLS alert is owed),
        an SFU session leaves the switchboard (its tracks are unpublished here)
        without a 410 memory: the session lives on, on the other node.
        """
        session = self.switchboard.get(session_id)
        if session is None:
            return self.peers.release(session_id)
        connection = session.connection
        if connection is not None and connection.state == "connected":
            return False
        self.peers.remove(session, "taken over")
        self.switchboard.drop_session(session)
        self.rate_limiter.forget(session_id)
        return True

    def new_session(self, app_id: str) -> tuple[SfuSession, Awaitable[None] | None]:
        """Create a session of ``app_id`` on the media port's transport.

        Return it with the cluster directory's write of it (an awaitable), or ``None``
        without ``--cluster``.
        """
        peers, config = self.peers, self.announced.config
        session = self.switchboard.create_session(
            app_id, self.clock.seconds(), certificate=peers.certificate,
            address=config.public_ip, port=config.media_port, keylog=peers.keylog)
        stored = None
        if self.cluster is not None:
            try:
                stored = self.cluster.session_created(session)  # the 503 while Redis is away
            except ApiError:
                self.switchboard.close_session(session, "directory unavailable")
                raise
        log.info("session {session_id} created", session_id=session.session_id, app_id=app_id)
        return session, stored

    def load_session(self, app: App, session_id: str) -> SfuSession:
        """Return the app's live session ``session_id``; raise 404, 410 or 429 otherwise."""
        board = self.switchboard
        session = board.get(session_id)
        if session is None or session.app_id != app.app_id:
            if board.is_gone(session_id):
                raise ApiError(410, ErrorCode.SESSION_ERROR,
                               "The session has expired or was closed; create a new one")
            raise ApiError.not_found(f"Session {session_id} not found")
        connection = session.connection
        if connection is not None and connection.state == "closed":
            board.close_session(session, "closed")
            self.forget(session)
            raise ApiError(410, ErrorCode.SESSION_ERROR,
                           "The session's PeerConnection has closed; create a new session")
        if not self.rate_limiter.allow(session_id, self.clock.seconds()):
            raise ApiError(429, "retryable_transient_error",
                           "More than 50 API calls per second on this session")
        return session

    def start(self, session: SfuSession) -> None:
        """Hand a freshly negotiated session to the PeerHost; send what it queued."""
        if session.connection is None:
            return
        if self.cluster is not None:
            self.cluster.session_negotiated(session)
        if self.peers.sessions.get(session.session_id) is not session:
            self.peers.add(session)
        self.flush(session)

    def expect_checks(self, session: SfuSession) -> None:
        """Let the session's ICE agent answer checks as soon as the SFU has offered.

        The client checks once it has applied our offer and its answer; that
        answer (``PUT renegotiate``) may come later.  Only the first negotiation
        needs it: afterwards the session is running.
        """
        if session.connection is None:
            self.peers.expect(session)

    def flush(self, session: SfuSession) -> None:
        """Send the datagrams API calls queued (upstream PLIs, retransmissions ...)."""
        for touched in session.take_touched():
            self.peers.flush(touched)

    async def ensure_connected(self, session: SfuSession) -> None:
        """Wait up to 5 s for an established session's transport; 425 if it stays down.

        The first negotiation of a session never waits (there is nothing to
        connect yet), docs/cloudflare-api.md §3.5.
        """
        connection = session.connection
        if connection is None or connection.state == "connected":
            return
        if not await self.peers.wait_connected(session, CONNECT_WAIT):
            raise ApiError(425, ErrorCode.SESSION_ERROR,
                           "The PeerConnection is not connected; finish setup and wait for it")

    async def first_packets(self, tracks: list[PublishedTrack],
                            timeout: float = FIRST_PACKET_WAIT) -> set[PublishedTrack]:
        """Wait for the first packet of every track at once; return those that have one.

        One deadline for the whole request: ``timeout`` seconds from now, however
        many tracks wait (five pulls of one silent track took 15 s when each
        waited 3 s in turn; 64 items could hold a request ~190 s).  Each track
        calls back at its first packet (or its end,
        :attr:`PublishedTrack.first_packet_callbacks`); the request resumes on
        the reactor's next turn after the last one, never inside the
        publisher's packet path.
        """
        waiting = {track for track in tracks
                   if track.last_packet_time is None and not track.ended}
        if waiting:
            await self._all_called_back(waiting, timeout)
        return {track for track in tracks
                if track.last_packet_time is not None and not track.ended}

    def _all_called_back(self, tracks: set[PublishedTrack], timeout: float) -> Deferred[None]:
        """Return a Deferred fired once every track has called back, or at ``timeout``."""
        done: Deferred[None] = Deferred()
        callbacks: dict[PublishedTrack, Callable[[], None]] = {}

        def finish() -> None:
            if deadline.active():
                deadline.cancel()
            for track, callback in callbacks.items():  # timed out: leave none on silent tracks
                if callback in track.first_packet_callbacks:
                    track.first_packet_callbacks.remove(callback)
            if not done.called:
                done.callback(None)

        def called_back(track: PublishedTrack) -> None:
            del callbacks[track]
            if not callbacks:
                self.clock.callLater(0, finish)

        deadline = self.clock.callLater(timeout, finish)
        for track in tracks:
            callbacks[track] = callback = partial(called_back, track)
            track.first_packet_callbacks.append(callback)
        return done


# -- request bodies ------------------------------------------------------------------


def session_description(body: dict[str, Any], kind: str | None,
                        required: bool = False) -> str | None:
    """Return the SDP of ``body["sessionDescription"]`` (of type ``kind``), or None if absent."""
    description = body.get("sessionDescription")
    if description is None and not required:
        return None
    if not isinstance(description, dict) or not isinstance(description.get("sdp"), str):
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       "sessionDescription must be an object with an sdp string")
    if kind is not None and description.get("type") != kind:
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       f"sessionDescription.type must be '{kind}'")
    sdp = description["sdp"]
    if sdp.count("m=") > MAX_MEDIA_SECTIONS and _sections(sdp) > MAX_MEDIA_SECTIONS:
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       f"At most {MAX_MEDIA_SECTIONS} m= sections per session description")
    return sdp


def _sections(sdp: str) -> int:
    """Count the m= lines of ``sdp`` (CRLF or LF line ends) without parsing it."""
    return sdp.startswith("m=") + sdp.count("\nm=")


def sdp_error(error: DecodeError) -> ApiError:
    """Return the 400 ``invalid_session_description`` for a parse or negotiation failure."""
    return ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION, str(error))


def overlap_error(error: NegotiationPending) -> ApiError:
    """Return the 406 for a change while an SFU offer awaits its answer."""
    return ApiError(406, ErrorCode.SESSION_ERROR, str(error))


def pending_offer(session: SfuSession) -> dict[str, str]:
    """Return the SFU's offer just made (``offer_media``) as a ``sessionDescription``."""
    offer = session.pending_offer
    if offer is None:
        raise LocalProtocolError("the session has no pending offer")
    return {"type": "offer", "sdp": offer.serialize()}


def item_error(item: dict[str, Any], code: str, description: str) -> dict[str, Any]:
    """Return a per-item result carrying ``errorCode``/``errorDescription`` (HTTP 200)."""
    return {**item, "errorCode": code, "errorDescription": description}


# -- routes ---------------------------------------------------------------------------


class SessionRoutes:
    """``sessions/new``, ``renegotiate`` and ``GET`` session.

    :param sessions: the SFU's sessions.
    """

    def __init__(self, sessions: SfuSessions) -> None:
        self.sessions = sessions

    async def sessions_new(self, request: IRequest, app: App) -> tuple[int, dict[str, Any]]:
        """Create a session; with an offer in the body, answer it too (the older flow).

        At most ``--session-rate`` per second per app (burst ``--session-burst``),
        else 429: each abandoned session holds ~56 KB for 60 s.
        """
        sessions = self.sessions
        body = read_json(request)
        sdp = session_description(body, "offer")
        limiter, now = sessions.session_limiter, sessions.clock.seconds()
        if not limiter.allow(app.app_id, now):
            raise ApiError(429, "retryable_transient_error",
                           f"More than {limiter.rate:g} new sessions per second for this app")
        session, stored = sessions.new_session(app.app_id)
        result: dict[str, Any] = {"sessionId": session.session_id}
        if sdp is not None:
            try:
                answer = session.answer_offer(sdp, now)
            except DecodeError as error:
                sessions.switchboard.close_session(session, "bad offer")
                raise sdp_error(error) from None
            sessions.start(session)
            result["sessionDescription"] = {"type": "answer", "sdp": answer.serialize()}
        if stored is not None:
            # --cluster: answer once the directory has the session, so that a call for it
            # reaching another node at once finds its owner (realtime.cluster.forward)
            await stored
        return 201, result

    def renegotiate(self, request: IRequest, app: App, session_id: str) -> dict[str, Any]:
        """Apply the client's answer to the SFU's pending offer."""
        session = self.sessions.load_session(app, session_id)
        body = read_json(request)
        sdp = session_description(body, "answer", required=True)
        assert sdp is not None  # required=True raises instead
        try:
            session.apply_answer(sdp, self.sessions.clock.seconds())
        except DecodeError as error:
            raise sdp_error(error) from None
        self.sessions.start(session)
        return {}

    def session_state(self, request: IRequest, app: App, session_id: str) -> dict[str, Any]:
        """Return the session's tracks and DataChannels with their status."""
        session = self.sessions.load_session(app, session_id)
        tracks = []
        for transceiver in session.transceivers:
            if transceiver.role == APPLICATION:
                continue
            subscription = transceiver.subscription
            item: dict[str, Any]
            if transceiver.role == SUBSCRIBE or (transceiver.role == CLOSED and subscription):
                if subscription is None:
                    continue
                item = {"location": "remote", "mid": transceiver.mid,
                        "sessionId": subscription.track.session.session_id,
                        "trackName": subscription.track.name}
                layer = subscription.layer_state()
                if layer is not None:
                    item["layer"] = layer
            else:
                if transceiver.track_name is None:
                    continue
                item = {"location": "local", "mid": transceiver.mid,
                        "trackName": transceiver.track_name}
            item["status"] = transceiver.status()
            tracks.append(item)
        channels = session.datachannels.listed(self.sessions.clock.seconds())
        return {"tracks": tracks, "dataChannels": [channel.describe() for channel in channels]}
