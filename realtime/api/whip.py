"""
WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) over the SFU's sessions and tracks.

A broadcaster *ingests* a stream by name; a player *plays* it by name.  Both are
ordinary SFU sessions (:class:`~realtime.api.sessions.SfuSessions`): a WHIP
publisher's tracks are pushed tracks any sessions-API client can pull, and a
WHEP player pulls tracks like ``tracks/new`` does (docs/whip-whep.md)::

    POST   /v1/apps/{appId}/ingest/{name}        application/sdp offer -> 201 answer  (§4.2)
    PATCH  /v1/apps/{appId}/ingest/{name}/{id}   trickle-ice-sdpfrag -> 204, ICE restart 200
    DELETE /v1/apps/{appId}/ingest/{name}/{id}   -> 200, the session ends              (§4.2)
    POST   /v1/apps/{appId}/play/{name}          recvonly offer -> 201 answer;
                                                 empty body -> 201 the server's offer
    PATCH  /v1/apps/{appId}/play/{name}/{id}     application/sdp answer to that offer -> 204
                                                 (or a trickle/restart fragment, as above)
    DELETE /v1/apps/{appId}/play/{name}/{id}     -> 200

The ``{id}`` of a resource (its ``Location``) is the SFU session id.  Every
request carries the app's bearer token (RFC 9725 §4.5); ``OPTIONS`` is the
API's unauthenticated CORS preflight (§4.2).

Resource rules (RFC 9725 §4.3, RFC 8840): every 201 carries a strong ``ETag``
naming the ICE session; a ``PATCH`` with an ``If-Match`` that names another is
412.  We are ICE-lite (RFC 8445 §2.5): we never check the client's
candidates, so a trickled fragment is taken and answered 204.  A fragment
with a new ``a=ice-ufrag``/``a=ice-pwd`` is an ICE restart (§4.3.2): we take
the client's credentials, make new ones of ours and answer 200 with our
fragment and a new ``ETag``.  Errors (§4.2, §4.3): 415 for another content
type, 400 for SDP we cannot use, 404 for an unknown resource, 405 for a
method the URL does not take, 409 when a stream already has a live
publisher, 412 for a stale ``If-Match``, 413 for a body over 1 MiB.

When our TURN service has keys, each 201 carries ``Link: rel="ice-server"``
headers (RFC 9725 §4.6) with a credential minted like
``credentials/generate-ice-servers`` (TTL :data:`ICE_SERVER_TTL`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import MAX_BODY
from realtime.api.sessions import SfuSessions, sdp_error
from realtime.api.tracks import find_track
from realtime.api.turn import TurnKeys
from realtime.errors import DecodeError
from realtime.ice.credentials import ice_credentials
from realtime.sdp import SessionDescription
from realtime.sfu.limits import MAX_MEDIA_SECTIONS
from realtime.sfu.session import MediaRequest, SfuSession
from realtime.sfu.track import PublishedTrack
from realtime.sfu.transceiver import BIDIRECTIONAL, PUBLISH, SUBSCRIBE
from realtime.storage import App

SDP = b"application/sdp"
SDPFRAG = b"application/trickle-ice-sdpfrag"

#: seconds the TURN credential of a ``Link: rel="ice-server"`` header is valid
ICE_SERVER_TTL = 86400

#: headers a cross-origin player page must be able to read (Fetch's CORS rules)
EXPOSED = b"location, etag, link, accept-patch"

INGEST, PLAY = "ingest", "play"

#: ice-char = ALPHA / DIGIT / "+" / "/" (RFC 8839 §5.4, RFC 8445 §5.3 lengths)
_ICE_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_ICE_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")


@dataclass
class Resource:
    """One WHIP or WHEP session resource (RFC 9725 §3: the "WHIP session").

    :param kind: ``ingest`` (WHIP) or ``play`` (WHEP).
    :param app_id: the app it belongs to; ``name`` the stream.
    :param session_id: the SFU session (and the resource's id in its URL).
    :param etag: the current entity tag, quoted (RFC 9110 §8.8.3).
    """

    kind: str
    app_id: str
    name: str
    session_id: str
    etag: str


class WhipRoutes:
    """The WHIP and WHEP endpoints and their session resources.

    :param sessions: the SFU's sessions.
    :param turn: our TURN service's keys (``None``: no ``Link`` ice-server headers).
    :param random: randomness for entity tags.
    """

    def __init__(self, sessions: SfuSessions, turn: TurnKeys | None = None,
                 random: Any = os.urandom) -> None:
        self.sessions = sessions
        self.turn = turn
        self.random = random
        #: session id -> resource
        self.resources: dict[str, Resource] = {}
        #: (app id, stream name) -> the session id of its WHIP publisher
        self.publishers: dict[tuple[str, str], str] = {}

    # -- WHIP ------------------------------------------------------------------------

    async def ingest(self, request: IRequest, app: App, name: str) -> tuple[int, bytes]:
        """Publish the offer's audio and video as stream ``name`` (RFC 9725 §4.2).

        Each sending m= section becomes a pushed track named by its kind:
        ``audio``, ``video``, then ``audio-2``, ``video-2`` ... in offer order.
        """
        self._sweep()
        sdp = _sdp_body(request)
        offer = _parse(sdp)
        live = self.publishers.get((app.app_id, name))
        if live is not None and self.sessions.switchboard.get(live) is not None:
            raise ApiError(409, "conflict", f"Stream {name!r} already has a live WHIP publisher")
        cluster = self.sessions.cluster
        if cluster is not None and await cluster.stream_tracks(app.app_id, name, False):
            raise ApiError(409, "conflict", f"Stream {name!r} already has a live WHIP publisher")
        publish: dict[str, str] = {}
        counts: dict[str, int] = {}
        for media in offer.media:
            if media.mid and media.kind in ("audio", "video") and not media.rejected \
                    and media.direction in ("sendonly", "sendrecv"):
                counts[media.kind] = counts.get(media.kind, 0) + 1
                number = counts[media.kind]
                publish[media.mid] = media.kind if number == 1 else f"{media.kind}-{number}"
        if not publish:
            raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                           "A WHIP offer must send audio or video")
        session = await self._new_session(app)
        try:
            answer = session.answer_offer(sdp, self.sessions.clock.seconds(), publish)
        except DecodeError as error:
            self._end(session, "bad offer")
            raise sdp_error(error) from None
        self.sessions.start(session)
        self.publishers[(app.app_id, name)] = session.session_id
        if cluster is not None:           # WHEP on any node finds the stream by its name
            await cluster.stream_published(app.app_id, name, session.session_id)
        return self._created(request, Resource(INGEST, app.app_id, name, session.session_id,
                                               self._etag()), answer.serialize())

    # -- WHEP ------------------------------------------------------------------------

    async def play(self, request: IRequest, app: App, name: str) -> tuple[int, bytes]:
        """Play stream ``name``: answer the player's offer, or offer (empty body).

        The stream is the live WHIP publisher of ``name``, else the session
        whose id is ``name`` (tracks pushed through the sessions API).
        """
        self._sweep()
        raw = _body(request)
        if raw.strip():
            _require_type(request, SDP)
            sdp = _decode(raw)
            offer = _parse(sdp)
        else:
            sdp, offer = None, None
        tracks = await self._live_tracks(app, name)
        session = await self._new_session(app)
        now = self.sessions.clock.seconds()
        if offer is None:
            session.offer_media([MediaRequest(track.kind, SUBSCRIBE, track) for track in tracks],
                                now)
            assert session.pending_offer is not None
            self.sessions.expect_checks(session)
            self.sessions.flush(session)
            body = session.pending_offer.serialize()
        else:
            subscribe: dict[str, tuple[PublishedTrack, None]] = {}
            free = list(tracks)
            for media in offer.media:
                if media.mid and not media.rejected \
                        and media.direction in ("recvonly", "sendrecv"):
                    track = next((t for t in free if t.kind == media.kind), None)
                    if track is not None:
                        free.remove(track)
                        subscribe[media.mid] = (track, None)
            if not subscribe:
                self._end(session, "nothing to play")
                raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                               "The offer receives none of the stream's kinds of media")
            try:
                answer = session.answer_offer(sdp or "", now, None, subscribe)
            except DecodeError as error:
                self._end(session, "bad offer")
                raise sdp_error(error) from None
            self.sessions.start(session)
            body = answer.serialize()
        return self._created(request, Resource(PLAY, app.app_id, name, session.session_id,
                                               self._etag()), body)

    # -- the session resources -----------------------------------------------------

    def ingest_patch(self, request: IRequest, app: App, name: str,
                     resource_id: str) -> tuple[int, bytes | None]:
        """``PATCH`` a WHIP resource: trickle or ICE restart (RFC 9725 §4.3)."""
        return self._patch(request, app, self._resource(INGEST, app, name, resource_id))

    def play_patch(self, request: IRequest, app: App, name: str,
                   resource_id: str) -> tuple[int, bytes | None]:
        """``PATCH`` a WHEP resource: the answer to our offer, trickle or ICE restart."""
        return self._patch(request, app, self._resource(PLAY, app, name, resource_id))

    def ingest_delete(self, request: IRequest, app: App, name: str,
                      resource_id: str) -> tuple[int, bytes]:
        """``DELETE`` a WHIP resource: the session ends, its tracks end (RFC 9725 §4.2)."""
        return self._delete(self._resource(INGEST, app, name, resource_id))

    def play_delete(self, request: IRequest, app: App, name: str,
                    resource_id: str) -> tuple[int, bytes]:
        """``DELETE`` a WHEP resource: the player's session ends."""
        return self._delete(self._resource(PLAY, app, name, resource_id))

    def _resource(self, kind: str, app: App, name: str, resource_id: str) -> Resource:
        resource = self.resources.get(resource_id)
        if resource is None and self.sessions.cluster is not None:
            resource = self._adopted(kind, app, name, resource_id)
        if resource is None or (resource.kind, resource.app_id, resource.name) \
                != (kind, app.app_id, name):
            raise ApiError.not_found("No such WHIP/WHEP session")
        if self.sessions.switchboard.get(resource_id) is None:
            self._forget(resource)
            raise ApiError.not_found("The session has ended")
        return resource

    def _adopted(self, kind: str, app: App, name: str, resource_id: str) -> Resource | None:
        """The resource of a session this node holds but another node's POST made.

        Under ``--cluster`` a WHIP/WHEP session may be made by one node and
        taken over by the node its media reached; the directory then forwards
        the resource's ``PATCH``/``DELETE`` here (realtime/cluster/forward.py).
        Its entity tag stayed with the first node: a fresh one is issued, and
        the next ``If-Match`` names it (RFC 9725 §4.3 lets the server change it).
        """
        session = self.sessions.switchboard.get(resource_id)
        if session is None or session.app_id != app.app_id:
            return None
        resource = Resource(kind, app.app_id, name, resource_id, "")  # "": any If-Match
        self.resources[resource_id] = resource
        if kind == INGEST:
            self.publishers.setdefault((app.app_id, name), resource_id)
        return resource

    def _patch(self, request: IRequest, app: App,
               resource: Resource) -> tuple[int, bytes | None]:
        session = self.sessions.load_session(app, resource.session_id)
        kind = _content_type(request)
        match = request.getHeader(b"if-match")
        if match is not None and resource.etag \
                and match.strip() not in (b"*", resource.etag.encode()):
            raise ApiError(412, "precondition_failed", "If-Match names another ICE session")
        if kind == SDP and resource.kind == PLAY:
            try:
                session.apply_answer(_decode(_body(request)), self.sessions.clock.seconds())
            except DecodeError as error:
                raise sdp_error(error) from None
            self.sessions.start(session)
            return 204, None
        if kind != SDPFRAG:
            raise ApiError(415, "unsupported_media_type",
                           "PATCH takes application/trickle-ice-sdpfrag (RFC 8840)")
        ufrag, pwd = _credentials(_decode(_body(request)))
        if ufrag is None or ufrag == session.ice.remote_ufrag:
            return 204, None  # trickle: an ICE-lite agent uses no remote candidates
        if pwd is None or not _ICE_UFRAG.fullmatch(ufrag) or not _ICE_PWD.fullmatch(pwd):
            raise ApiError(400, ErrorCode.INVALID_PARAMS, "An ICE restart needs a=ice-ufrag "
                           "(4-256 ice-chars) and a=ice-pwd (22-256), RFC 8839 §5.4")
        return 200, self._restart(request, session, resource, ufrag, pwd)

    def _restart(self, request: IRequest, session: SfuSession, resource: Resource,
                 ufrag: str, pwd: str) -> bytes:
        """Restart ICE with the client's new credentials and new ones of ours (RFC 8445 §9)."""
        local_ufrag, local_pwd = ice_credentials(session.random)
        session.ice.restart(local_ufrag, local_pwd, ufrag, pwd)
        session.local = replace(session.local, ice_ufrag=local_ufrag, ice_pwd=local_pwd)
        self.sessions.peers.rekey(session)
        resource.etag = self._etag()
        request.setHeader(b"etag", resource.etag.encode())
        request.setHeader(b"content-type", SDPFRAG)
        request.setHeader(b"access-control-expose-headers", EXPOSED)
        mid = next((t.mid for t in session.transceivers), "0")
        lines = ["a=ice-lite", f"a=ice-ufrag:{local_ufrag}", f"a=ice-pwd:{local_pwd}",
                 "m=audio 9 UDP/TLS/RTP/SAVPF 0", f"a=mid:{mid}"]
        lines += [candidate.line() for candidate in session.local.candidates]
        lines.append("a=end-of-candidates")
        return ("\r\n".join(lines) + "\r\n").encode()

    def _delete(self, resource: Resource) -> tuple[int, bytes]:
        session = self.sessions.switchboard.get(resource.session_id)
        if session is not None:
            self._end(session, "deleted")
        self._forget(resource)
        return 200, b""

    # -- helpers -------------------------------------------------------------------

    async def _new_session(self, app: App) -> SfuSession:
        sessions, now = self.sessions, self.sessions.clock.seconds()
        limiter = sessions.session_limiter
        if not limiter.allow(app.app_id, now):
            raise ApiError(429, "retryable_transient_error",
                           f"More than {limiter.rate:g} new sessions per second for this app")
        session, stored = sessions.new_session(app.app_id)
        if stored is not None:
            await stored
        return session

    async def _live_tracks(self, app: App, name: str) -> list[PublishedTrack]:
        """Return the stream's tracks that carry packets (waiting up to 3 s for a first one)."""
        board = self.sessions.switchboard
        session_id = self.publishers.get((app.app_id, name), name)
        session = board.get(session_id)
        tracks = []
        if session is not None and session.app_id == app.app_id:
            for transceiver in session.transceivers:
                if transceiver.role in (PUBLISH, BIDIRECTIONAL) and transceiver.track_name:
                    track = board.find(app.app_id, session_id, transceiver.track_name)
                    if track is not None:
                        tracks.append(track)
        cluster = self.sessions.cluster
        if not tracks and cluster is not None:   # published through another node
            found = await cluster.stream_tracks(app.app_id, name)
            if found is not None:
                remote_id, names = found
                for track_name in names:
                    track = await find_track(self.sessions, app, remote_id, track_name)
                    if track is not None:
                        tracks.append(track)
        if tracks:
            sending = await self.sessions.first_packets(tracks)
            tracks = [track for track in tracks if track in sending]
        if not tracks:
            raise ApiError.not_found(f"Stream {name!r} has no live tracks")
        return tracks

    def _created(self, request: IRequest, resource: Resource, sdp: str) -> tuple[int, bytes]:
        self.resources[resource.session_id] = resource
        path = (request.path or b"").rstrip(b"/")
        request.setHeader(b"location", path + b"/" + resource.session_id.encode())
        request.setHeader(b"etag", resource.etag.encode())
        request.setHeader(b"content-type", SDP)
        request.setHeader(b"accept-patch", SDPFRAG)
        request.setHeader(b"access-control-expose-headers", EXPOSED)
        for link in self._ice_server_links():
            request.responseHeaders.addRawHeader(b"link", link)
        return 201, sdp.encode()

    def _ice_server_links(self) -> list[bytes]:
        """Return ``Link`` values for our STUN/TURN URLs with a fresh credential (§4.6)."""
        turn = self.turn
        if turn is None or not turn.keys or not turn.turn_urls:
            return []
        key_id = min(turn.keys)
        issued = turn.credentials.issue(key_id, ICE_SERVER_TTL, self.sessions.clock.seconds(),
                                        "whip")
        turn.store.record_turn_credential(issued.username, key_id, "whip", issued.expires)
        links = [f'<{url}>; rel="ice-server"'.encode() for url in turn.stun_urls]
        links += [f'<{url}>; rel="ice-server"; username="{issued.username}"; '
                  f'credential="{issued.credential}"; credential-type="password"'.encode()
                  for url in turn.turn_urls]
        return links

    def _etag(self) -> str:
        return '"' + self.random(12).hex() + '"'

    def _end(self, session: SfuSession, reason: str) -> None:
        self.sessions.switchboard.close_session(session, reason)
        self.sessions.forget(session)

    def _forget(self, resource: Resource) -> None:
        """Forget ``resource`` here; if its session *ended* (not moved to the node that took
        it over), free its stream name cluster-wide too."""
        self.resources.pop(resource.session_id, None)
        key = (resource.app_id, resource.name)
        if resource.kind == INGEST and self.publishers.get(key) == resource.session_id:
            del self.publishers[key]
            if self.sessions.cluster is not None \
                    and self.sessions.switchboard.is_gone(resource.session_id):
                self.sessions.cluster.stream_ended(resource.app_id, resource.name,
                                                   resource.session_id)

    def _sweep(self) -> None:
        """Forget resources whose session ended on its own (timeouts, closed transport)."""
        board = self.sessions.switchboard
        for resource in [r for r in self.resources.values() if board.get(r.session_id) is None]:
            self._forget(resource)


# -- request bodies ---------------------------------------------------------------------


def _content_type(request: IRequest) -> bytes:
    value = request.getHeader(b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower()


def _require_type(request: IRequest, wanted: bytes) -> None:
    if _content_type(request) != wanted:
        raise ApiError(415, "unsupported_media_type",
                       f"The body must be {wanted.decode()} (RFC 9725 §4.2)")


def _body(request: IRequest) -> bytes:
    content = request.content
    content.seek(0)
    raw = content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError.payload_too_large(MAX_BODY)
    return raw


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       "The body is not UTF-8") from None


def _sdp_body(request: IRequest) -> str:
    _require_type(request, SDP)
    return _decode(_body(request))


def _parse(sdp: str) -> SessionDescription:
    if sdp.startswith("m=") + sdp.count("\nm=") > MAX_MEDIA_SECTIONS:
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       f"At most {MAX_MEDIA_SECTIONS} m= sections per session description")
    try:
        offer = SessionDescription.parse(sdp)
    except DecodeError as error:
        raise sdp_error(error) from None
    if offer.media and any(m.mid is None for m in offer.media):
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION, "Every m= section needs a=mid")
    return offer


def _credentials(fragment: str) -> tuple[str | None, str | None]:
    """Return the ``a=ice-ufrag`` and ``a=ice-pwd`` of an SDP fragment (RFC 8840 §4.1)."""
    ufrag = pwd = None
    for line in fragment.splitlines():
        if line.startswith("a=ice-ufrag:"):
            ufrag = line[12:].strip() or None
        elif line.startswith("a=ice-pwd:"):
            pwd = line[10:].strip() or None
    return ufrag, pwd

