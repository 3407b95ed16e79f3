"""
The SFU session routes of the Cloudflare-compatible API, and what the track routes share.

Routes here (docs/cloudflare-api.md §1.2 rows 1, 3, 10); the track routes are in
:mod:`realtime.api.tracks`, the DataChannel routes in :mod:`realtime.api.datachannels`::

    POST /apps/{appId}/sessions/new                 201 {sessionId[, sessionDescription(answer)]}
    PUT  /apps/{appId}/sessions/{sessionId}/renegotiate   200 {}  (applies the SFU offer's answer)
    GET  /apps/{appId}/sessions/{sessionId}         200 {tracks: [...], dataChannels: [...]}

Every ``/sessions/{sessionId}/...`` call goes through :func:`load_session`::

    session id unknown to this app ........... 404 not_found
    session ended (expired, closed, gone) .... 410 session_error
    more than 50 calls in the last second .... 429 retryable_transient_error
    otherwise ................................ the SfuSession

Errors chosen where the contract leaves a choice (docs/cloudflare-api.md §3.1, §3.3):
an overlapping negotiation is 406 ``session_error`` (the session's state
forbids the change; ``invalid_session_description`` is kept for SDP that is
bad or out of order on its own); a rate-limited call is 429
``retryable_transient_error`` (the contract's code for "try again").

The sans-I/O :class:`~realtime.sfu.switchboard.Switchboard` lives on the
:class:`~realtime.api.app.RealtimeAPI` instance (made on first use, with a
periodic garbage collection on the injected clock); PeerConnections run in
the media port's :class:`~realtime.net.peers.PeerHost`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater
from twisted.web.iweb import IRequest

from realtime.api.app import RealtimeAPI, app_route, read_json
from realtime.api.errors import ApiError, ErrorCode
from realtime.errors import DecodeError
from realtime.sfu.limits import CONNECT_WAIT, FIRST_PACKET_WAIT, MAX_MEDIA_SECTIONS, RateLimiter
from realtime.sfu.session import NegotiationPending, SfuSession
from realtime.sfu.switchboard import Switchboard
from realtime.sfu.track import PublishedTrack
from realtime.sfu.transceiver import APPLICATION, CLOSED, SUBSCRIBE

#: seconds between garbage collections of the switchboard
COLLECT_INTERVAL = 5.0
#: seconds between checks while a pull waits for a track's first packet
PACKET_POLL = 0.05


# -- shared state ----------------------------------------------------------------


def switchboard(api: RealtimeAPI) -> Switchboard:
    """Return the API's switchboard, creating it (and its collector) on first use."""
    board = getattr(api, "switchboard", None)
    if board is None:
        board = api.switchboard = Switchboard()
        api.rate_limiter = RateLimiter()
        api.session_limiter = RateLimiter(api.config.session_rate, api.config.session_burst,
                                          max_keys=10_000)
        api.clock.callLater(COLLECT_INTERVAL, collect, api)
    return board


def collect(api: RealtimeAPI) -> None:
    """End silent tracks and dead sessions, then run again in :data:`COLLECT_INTERVAL`."""
    board = api.switchboard
    for session in board.collect_garbage(api.clock.seconds()):
        forget(api, session)
    api.clock.callLater(COLLECT_INTERVAL, collect, api)


def forget(api: RealtimeAPI, session: SfuSession) -> None:
    """Stop running ``session``'s PeerConnection and its rate limit."""
    peers = api.peers
    if peers is not None:
        peers.remove(session)  # a no-op for a session it does not run
    api.rate_limiter.forget(session.session_id)


def release(api: RealtimeAPI, session_id: str) -> bool:
    """Drop this node's copy of a session another node took over; return whether it did.

    Nothing is dropped while the copy is connected here.  The PeerConnection
    goes without a word (it never connected here, so no DTLS alert is owed),
    an SFU session leaves the switchboard (its tracks are unpublished here)
    without a 410 memory: the session lives on, on the other node.
    """
    peers = api.peers
    board = switchboard(api)
    session = board.get(session_id)
    if session is None:
        return peers is not None and peers.release(session_id)
    connection = session.connection
    if connection is not None and connection.state == "connected":
        return False
    if peers is not None:
        peers.remove(session, "taken over")
    board.drop_session(session)
    api.rate_limiter.forget(session_id)
    return True


def new_session(api: RealtimeAPI, app_id: str) -> SfuSession:
    """Create a session of ``app_id`` on the media port's transport."""
    peers = api.peers
    session = switchboard(api).create_session(
        app_id, api.clock.seconds(), certificate=peers.certificate,
        address=api.config.public_ip, port=api.config.media_port, keylog=peers.keylog)
    if api.cluster is not None:
        try:
            api.cluster.session_created(session)  # the 503 while the directory is away
        except ApiError:
            switchboard(api).close_session(session, "directory unavailable")
            raise
    return session


def load_session(api: RealtimeAPI, app: Any, session_id: str) -> SfuSession:
    """Return the app's live session ``session_id``; raise 404, 410 or 429 otherwise."""
    board = switchboard(api)
    session = board.get(session_id)
    if session is None or session.app_id != app.app_id:
        if board.is_gone(session_id):
            raise ApiError(410, ErrorCode.SESSION_ERROR,
                           "The session has expired or was closed; create a new one")
        raise ApiError.not_found(f"Session {session_id} not found")
    connection = session.connection
    if connection is not None and connection.state == "closed":
        board.close_session(session, "closed")
        forget(api, session)
        raise ApiError(410, ErrorCode.SESSION_ERROR,
                       "The session's PeerConnection has closed; create a new session")
    if not api.rate_limiter.allow(session_id, api.clock.seconds()):
        raise ApiError(429, "retryable_transient_error",
                       "More than 50 API calls per second on this session")
    return session


def start(api: RealtimeAPI, session: SfuSession) -> None:
    """Hand a freshly negotiated session to the PeerHost; send what it queued."""
    peers = api.peers
    if session.connection is None or peers is None:
        return
    if api.cluster is not None:
        api.cluster.session_negotiated(session)
    if peers.sessions.get(session.session_id) is not session:
        peers.add(session)
    flush(api, session)


def expect_checks(api: RealtimeAPI, session: SfuSession) -> None:
    """Let the session's ICE agent answer checks as soon as the SFU has offered.

    The client checks once it has applied our offer and its answer; that
    answer (``PUT renegotiate``) may come later.  Only the first negotiation
    needs it: afterwards the session is running.
    """
    peers = api.peers
    if session.connection is None and peers is not None:
        peers.expect(session)


def flush(api: RealtimeAPI, session: SfuSession) -> None:
    """Send the datagrams API calls queued (upstream PLIs, retransmissions ...)."""
    peers = api.peers
    if peers is None:
        return
    for touched in session.take_touched():
        peers.flush(touched)


async def ensure_connected(api: RealtimeAPI, session: SfuSession) -> None:
    """Wait up to 5 s for an established session's transport; 425 if it stays down.

    The first negotiation of a session never waits (there is nothing to
    connect yet), docs/cloudflare-api.md §3.5.
    """
    connection = session.connection
    if connection is None or connection.state == "connected":
        return
    if not await api.peers.wait_connected(session, CONNECT_WAIT):
        raise ApiError(425, ErrorCode.SESSION_ERROR,
                       "The PeerConnection is not connected; finish setup and wait for it")


async def first_packets(api: RealtimeAPI, tracks: list[PublishedTrack],
                        timeout: float = FIRST_PACKET_WAIT) -> set[PublishedTrack]:
    """Wait for the first packet of every track at once; return those that have one.

    One deadline for the whole request: ``timeout`` seconds from now, however
    many tracks wait (five pulls of one silent track took 15 s when each
    waited 3 s in turn; 64 items could hold a request ~190 s).  Ends early
    when every track has a packet or has ended.
    """
    waiting = {track for track in tracks if track.last_packet_time is None and not track.ended}
    waited = 0.0
    while waiting and waited < timeout:
        await deferLater(api.clock, PACKET_POLL, lambda: None)
        waited += PACKET_POLL
        waiting = {t for t in waiting if t.last_packet_time is None and not t.ended}
    return {track for track in tracks if track.last_packet_time is not None and not track.ended}


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


def item_error(item: dict[str, Any], code: str, description: str) -> dict[str, Any]:
    """Return a per-item result carrying ``errorCode``/``errorDescription`` (HTTP 200)."""
    return {**item, "errorCode": code, "errorDescription": description}


# -- routes ---------------------------------------------------------------------------


@app_route(RealtimeAPI.app, "/sessions/new", "POST")
def sessions_new(self: RealtimeAPI, request: IRequest, app) -> tuple[int, dict[str, Any]]:
    """Create a session; with an offer in the body, answer it too (the older flow).

    At most ``--session-rate`` per second per app (burst ``--session-burst``),
    else 429: each abandoned session holds ~56 KB for 60 s.
    """
    body = read_json(request)
    sdp = session_description(body, "offer")
    switchboard(self)
    if not self.session_limiter.allow(app.app_id, self.clock.seconds()):
        raise ApiError(429, "retryable_transient_error",
                       f"More than {self.config.session_rate:g} new sessions per second "
                       "for this app")
    session = new_session(self, app.app_id)
    if sdp is None:
        return 201, {"sessionId": session.session_id}
    try:
        answer = session.answer_offer(sdp, self.clock.seconds())
    except DecodeError as error:
        switchboard(self).close_session(session, "bad offer")
        raise sdp_error(error) from None
    start(self, session)
    return 201, {"sessionId": session.session_id,
                 "sessionDescription": {"type": "answer", "sdp": answer.serialize()}}


@app_route(RealtimeAPI.app, "/sessions/<session_id>/renegotiate", "PUT")
def renegotiate(self: RealtimeAPI, request: IRequest, app, session_id: str) -> dict[str, Any]:
    """Apply the client's answer to the SFU's pending offer."""
    session = load_session(self, app, session_id)
    body = read_json(request)
    sdp = session_description(body, "answer", required=True)
    try:
        session.apply_answer(sdp, self.clock.seconds())
    except DecodeError as error:
        raise sdp_error(error) from None
    start(self, session)
    return {}


@app_route(RealtimeAPI.app, "/sessions/<session_id>", "GET")
def session_state(self: RealtimeAPI, request: IRequest, app, session_id: str) -> dict[str, Any]:
    """Return the session's tracks and DataChannels with their status."""
    session = load_session(self, app, session_id)
    tracks = []
    for transceiver in session.transceivers:
        if transceiver.role == APPLICATION:
            continue
        subscription = transceiver.subscription
        if transceiver.role == SUBSCRIBE or (transceiver.role == CLOSED and subscription):
            if subscription is None:
                continue
            item = {"location": "remote", "mid": transceiver.mid,
                    "sessionId": subscription.track.session.session_id,
                    "trackName": subscription.track.name}
        else:
            if transceiver.track_name is None:
                continue
            item = {"location": "local", "mid": transceiver.mid,
                    "trackName": transceiver.track_name}
        item["status"] = transceiver.status()
        tracks.append(item)
    channels = session.datachannels.listed(self.clock.seconds())
    return {"tracks": tracks, "dataChannels": [channel.describe() for channel in channels]}


# The track routes and the OpenAPI document live in their own modules; importing registers them.
from realtime.api import datachannels, openapi, tracks  # noqa: E402,F401
