"""
The track routes of the Cloudflare-compatible API: push, pull, close, update.

docs/cloudflare-api.md §1.2 rows 2, 4, 5 and §1.3-§1.4, §3.3-§3.4::

    POST /apps/{appId}/sessions/{id}/tracks/new
      with sessionDescription (offer) ─> answer, requiresImmediateRenegotiation: false
          local items  {location:"local", mid, trackName}  push the offer's m= section
          autoDiscover: true                                push every new sending section
          remote items {location:"remote", sessionId, trackName}  pull into the offer's
                                                            recvonly sections (by mid or kind)
      without sessionDescription ─────> SFU offer, requiresImmediateRenegotiation: true
          remote items                                      pull: one sendonly section each
          local items {kind[, bidirectionalMediaStream]}    push: recvonly (or sendrecv) section
          remote items {mid: "#name"}                       pull into local track "name"'s
                                                            sendrecv section: no SDP at all
    PUT  /apps/{appId}/sessions/{id}/tracks/close   {tracks:[{mid}], force, sessionDescription?}
    PUT  /apps/{appId}/sessions/{id}/tracks/update  {tracks:[{mid, simulcast|sessionId+trackName}]}

Per-item failures travel in ``tracks[]`` with HTTP 200 (§3.1): an unknown
session or track is ``not_found_track_error`` (no ``mid``), a known track
that sends nothing within 3 s is ``empty_track_error`` (one 3 s wait for
all the request's items together, not per item); ``tracks`` is
always present.  A request naming more than 64 tracks is 400
``invalid_params``.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import read_json
from realtime.api.sessions import (
    SfuSessions, item_error, overlap_error, pending_offer, sdp_error, session_description,
)
from realtime.errors import DecodeError, LocalProtocolError
from realtime.media.simulcast import SimulcastPreferences
from realtime.sdp.session import SessionDescription
from realtime.sfu.limits import MAX_TRACKS_PER_CALL
from realtime.sfu.session import MediaRequest, NegotiationPending, SfuSession
from realtime.sfu.track import PublishedTrack
from realtime.sfu.transceiver import BIDIRECTIONAL, CLOSED, PUBLISH, SUBSCRIBE
from realtime.storage import App

log = Logger()

NOT_FOUND = ("not_found_track_error",
             "Track not found: make sure the publisher is connected and sending packets")
EMPTY = ("empty_track_error", "The track did not receive source media in time")


def track_items(body: dict[str, Any], required: bool = False) -> list[dict[str, Any]]:
    """Return ``body["tracks"]`` checked: a list of at most 64 objects."""
    items = body.get("tracks")
    if items is None and not required:
        return []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ApiError.decoding_error("tracks must be a list of objects")
    if len(items) > MAX_TRACKS_PER_CALL:
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       f"At most {MAX_TRACKS_PER_CALL} tracks per request")
    return items


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) and value else None


def _preferences(item: dict[str, Any]) -> SimulcastPreferences | None:
    simulcast = item.get("simulcast")
    return SimulcastPreferences.from_json(simulcast) if isinstance(simulcast, dict) else None


_ORDERINGS = ("none", "asciibetical")


def track_echo(item: dict[str, Any]) -> dict[str, Any]:
    """Return the TrackObject fields of ``item`` that have their documented type.

    Results echo request items; unknown keys and mistyped values (a number
    for ``mid``, ``null`` for ``ridNotAvailable``, a ``kind`` that is not
    audio or video) are dropped, so an answer never holds what the
    TrackObject of the contract (and of our /openapi.json) cannot (found by
    schemathesis, tests/interop/test_schemathesis.py).
    """
    echo: dict[str, Any] = {}
    if item.get("location") in ("local", "remote"):
        echo["location"] = item["location"]
    for key in ("mid", "sessionId", "trackName"):
        if isinstance(item.get(key), str):
            echo[key] = item[key]
    if item.get("kind") in ("audio", "video"):
        echo["kind"] = item["kind"]
    if isinstance(item.get("bidirectionalMediaStream"), bool):
        echo["bidirectionalMediaStream"] = item["bidirectionalMediaStream"]
    simulcast = item.get("simulcast")
    if isinstance(simulcast, dict):
        echo["simulcast"] = {key: value for key, value in simulcast.items()
                             if (key == "preferredRid" and isinstance(value, str))
                             or (key in ("priorityOrdering", "ridNotAvailable")
                                 and isinstance(value, str) and value in _ORDERINGS)}
    return echo


def _pull_echo(item: dict[str, Any]) -> dict[str, Any]:
    echo = track_echo(item)
    return {"location": "remote", **{key: echo[key] for key in ("sessionId", "trackName",
                                                                "simulcast") if key in echo}}


async def find_track(sessions: SfuSessions, app: Any, session_id: str, name: str) -> Any | None:
    """Return the live track ``name`` of ``session_id``: this node's, else (``--cluster``)
    a mirror of the node that owns it (docs/cluster.md, "Cross-node pulls").

    With ``--cluster`` a track of a session made here whose PeerConnection never
    connected here may be a stale copy: its media may have reached another node,
    which took the session over and told this one, and the pull can arrive before
    that word does.  The directory names the track's owner; if it is another node,
    the copy is dropped now and the track pulled from its owner.
    """
    board = sessions.switchboard
    track = board.find(app.app_id, session_id, name)
    cluster = sessions.cluster
    if cluster is None:
        return track
    if track is not None:
        publisher = board.get(session_id)
        connection = None if publisher is None else publisher.connection
        if publisher is None or (connection is not None and connection.state == "connected") \
                or not await cluster.owned_elsewhere(session_id, name):
            return track                # a mirror, a session connected here, or ours
        sessions.release(session_id)
    return await cluster.find_track(board, app.app_id, session_id, name)


async def _resolve_pulls(sessions: SfuSessions, app: Any, remote: list[tuple[int, dict[str, Any]]],
                         results: dict[int, dict[str, Any]]) -> dict[int, Any]:
    """Return item index -> pulled track (after its first packet); failures go to ``results``."""
    found = {}
    for index, item in remote:
        name, owner = _text(item, "trackName"), _text(item, "sessionId")
        track = await find_track(sessions, app, owner, name) if name and owner else None
        if track is None:
            results[index] = item_error(_pull_echo(item), *NOT_FOUND)
        else:
            found[index] = track
    sending = await sessions.first_packets(list(found.values()))   # one deadline for all items
    items = dict(remote)
    for index, track in list(found.items()):
        if track not in sending:
            results[index] = item_error(_pull_echo(items[index]), *EMPTY)
            del found[index]
    return found


async def _with_offer(sessions: SfuSessions, app: Any, session: SfuSession, sdp: str,
                      items: list[dict[str, Any]], auto_discover: bool) -> dict[str, Any]:
    try:
        offer = SessionDescription.parse(sdp)
    except DecodeError as error:
        raise sdp_error(error) from None
    await sessions.ensure_connected(session)
    results: dict[int, dict[str, Any]] = {}
    publish: dict[str, str] = {}
    remote = [(i, item) for i, item in enumerate(items) if item.get("location") == "remote"]
    for index, item in enumerate(items):
        if item.get("location") == "remote":
            continue
        mid, name = _text(item, "mid"), _text(item, "trackName")
        if mid is None or name is None or offer.media_by_mid(mid) is None:
            results[index] = item_error(track_echo({"location": "local", "mid": mid,
                                                    "trackName": name}),
                                        "invalid_params", "A local track needs the mid of an "
                                        "offered m= section and a trackName")
            continue
        publish[mid] = name
    discovered = []
    if auto_discover:
        for media in offer.media:
            if media.mid and media.mid not in publish and session.transceiver(media.mid) is None \
                    and media.kind in ("audio", "video") and not media.rejected \
                    and media.direction in ("sendonly", "sendrecv"):
                publish[media.mid] = session.random(16).hex()
                discovered.append(media.mid)
        if len(items) + len(discovered) > MAX_TRACKS_PER_CALL:
            raise ApiError(400, ErrorCode.INVALID_PARAMS,
                           f"At most {MAX_TRACKS_PER_CALL} tracks per request "
                           "(autoDiscover found more)")
    found = await _resolve_pulls(sessions, app, remote, results)
    subscribe, pulled = _place_pulls(session, offer, remote, found, results)
    if session.pending_offer is not None:
        raise overlap_error(NegotiationPending("an SFU offer is waiting for its answer"))
    try:
        answer = session.answer_offer(sdp, sessions.clock.seconds(), publish, subscribe)
    except DecodeError as error:
        raise sdp_error(error) from None
    for index, item in enumerate(items):
        if index in results or item.get("location") == "remote":
            continue
        results[index] = _push_result(session, item["mid"], item["trackName"])
    for index, mid in pulled.items():
        results[index] = {**_pull_echo(items[index]), "mid": mid}
    out = [results[i] for i in range(len(items))]
    out += [_push_result(session, mid, publish[mid]) for mid in discovered]
    sessions.start(session)
    return {"requiresImmediateRenegotiation": False, "tracks": out,
            "sessionDescription": {"type": "answer", "sdp": answer.serialize()}}


def _push_result(session: SfuSession, mid: str, name: str) -> dict[str, Any]:
    transceiver = session.transceiver(mid)
    item = {"location": "local", "mid": mid, "trackName": name}
    if transceiver is None or transceiver.role not in (PUBLISH, BIDIRECTIONAL):
        return item_error(item, "invalid_params", "The m= section could not be accepted")
    return item


def _place_pulls(session: SfuSession, offer: SessionDescription,
                 remote: list[tuple[int, dict[str, Any]]], found: dict[int, PublishedTrack],
                 results: dict[int, dict[str, Any]],
                 ) -> tuple[dict[str, tuple[PublishedTrack, SimulcastPreferences | None]],
                            dict[int, str]]:
    """Match pulled tracks to the offer's new receiving sections (by mid, else by kind)."""
    free = [m for m in offer.media if m.mid and session.transceiver(m.mid) is None
            and m.direction in ("recvonly", "sendrecv") and not m.rejected]
    subscribe: dict[str, tuple[PublishedTrack, SimulcastPreferences | None]] = {}
    pulled: dict[int, str] = {}
    for index, item in remote:
        track = found.get(index)
        if track is None:
            continue
        wanted = _text(item, "mid")
        media = next((m for m in free if (m.mid == wanted if wanted else m.kind == track.kind)),
                     None)
        if media is None or media.mid is None or media.kind != track.kind:
            results[index] = item_error(_pull_echo(item), "invalid_params",
                                        "No receiving m= section of this kind in the offer")
            continue
        free.remove(media)
        subscribe[media.mid] = (track, _preferences(item))
        pulled[index] = media.mid
    return subscribe, pulled


async def _without_offer(sessions: SfuSessions, app: Any, session: SfuSession,
                         items: list[dict[str, Any]]) -> dict[str, Any]:
    results: dict[int, dict[str, Any]] = {}
    remote = [(i, item) for i, item in enumerate(items) if item.get("location") == "remote"]
    found = await _resolve_pulls(sessions, app, remote, results)
    requests: list[tuple[int, MediaRequest]] = []
    now = sessions.clock.seconds()
    for index, item in remote:
        track = found.get(index)
        if track is None:
            continue
        mid = _text(item, "mid")
        if mid is not None and mid.startswith("#"):
            results[index] = _pull_into(session, item, mid[1:], track, now)
        else:
            requests.append((index, MediaRequest(track.kind, SUBSCRIBE, track,
                                                 preferences=_preferences(item))))
    for index, item in enumerate(items):
        if item.get("location") == "remote":
            continue
        name, kind = _text(item, "trackName"), _text(item, "kind")
        if name is None or kind not in ("audio", "video"):
            results[index] = item_error(track_echo({"location": "local", "trackName": name}),
                                        "invalid_params",
                                        "Without an offer a local track needs trackName and "
                                        "kind (audio or video)")
            continue
        role = BIDIRECTIONAL if item.get("bidirectionalMediaStream") is True else PUBLISH
        requests.append((index, MediaRequest(kind, role, track_name=name)))
    requests.sort(key=lambda pair: pair[0])
    response: dict[str, Any] = {"requiresImmediateRenegotiation": False}
    if requests:
        await sessions.ensure_connected(session)
        try:
            added = session.offer_media([request for _, request in requests], now)
        except NegotiationPending as error:
            raise overlap_error(error) from None
        for (index, request), transceiver in zip(requests, added):
            item = items[index]
            if request.role == SUBSCRIBE:
                results[index] = {**_pull_echo(item), "mid": transceiver.mid}
            else:
                results[index] = {"location": "local", "trackName": request.track_name,
                                  "mid": transceiver.mid, "kind": request.kind}
                if request.role == BIDIRECTIONAL:
                    results[index]["bidirectionalMediaStream"] = True
        response["requiresImmediateRenegotiation"] = True
        response["sessionDescription"] = pending_offer(session)
        sessions.expect_checks(session)
    sessions.flush(session)
    response["tracks"] = [results[i] for i in range(len(items))]
    return response


def _pull_into(session: SfuSession, item: dict[str, Any], name: str, track: Any,
               now: float) -> dict[str, Any]:
    """Pull ``track`` into the sendrecv section of local track ``name`` (no SDP)."""
    transceiver = session.transceiver_of_track(name)
    if transceiver is None or transceiver.role != BIDIRECTIONAL:
        return item_error(_pull_echo(item), "invalid_params",
                          f"No bidirectional local track named {name!r} in this session")
    try:
        session.attach(transceiver.mid, track, _preferences(item), now)
    except LocalProtocolError as error:
        return item_error(_pull_echo(item), "invalid_params", str(error))
    return {**_pull_echo(item), "mid": transceiver.mid}


class TrackRoutes:
    """Push, pull, close and update tracks.

    :param sessions: the SFU's sessions.
    """

    def __init__(self, sessions: SfuSessions) -> None:
        self.sessions = sessions

    async def tracks_new(self, request: IRequest, app: App,
                         session_id: str) -> dict[str, Any]:
        """Push and/or pull tracks (with the client's offer, or producing the SFU's)."""
        session = self.sessions.load_session(app, session_id)
        body = read_json(request)
        items = track_items(body)
        sdp = session_description(body, "offer")
        if session.pending_offer is not None:
            raise overlap_error(NegotiationPending(
                "an SFU offer is waiting for its answer (PUT renegotiate)"))
        if sdp is not None:
            result = await _with_offer(self.sessions, app, session, sdp, items,
                                       body.get("autoDiscover") is True)
        else:
            result = await _without_offer(self.sessions, app, session, items)
        for track in result.get("tracks", ()):
            if "errorCode" not in track:  # --log-format json: the ids are fields
                log.info("session {session_id} track {track_name} on mid {mid}",
                         session_id=session.session_id, app_id=app.app_id,
                         track_name=track.get("trackName"), mid=track.get("mid"),
                         publisher_session_id=track.get("sessionId"))
        return result

    def tracks_close(self, request: IRequest, app: App, session_id: str) -> dict[str, Any]:
        """Close tracks by mid: negotiated (client offer -> our answer) or forced (no SDP)."""
        session = self.sessions.load_session(app, session_id)
        body = read_json(request)
        items = track_items(body, required=True)
        force = body.get("force") is True
        sdp = None if force else session_description(body, "offer")
        if sdp is not None and session.pending_offer is not None:
            raise overlap_error(NegotiationPending("an SFU offer is waiting for its answer"))
        results: list[dict[str, Any]] = []
        mids: list[str] = []
        for item in items:
            mid = _text(item, "mid")
            transceiver = session.transceiver(mid) if mid else None
            if mid is None or transceiver is None or transceiver.role == CLOSED:
                results.append(item_error({} if mid is None else {"mid": mid}, "close_track_error",
                                          "Track doesn't exist or was already closed"))
            else:
                results.append({"mid": mid})
                mids.append(mid)
        session.close_transceivers(mids)
        response: dict[str, Any] = {"requiresImmediateRenegotiation": False, "tracks": results}
        if sdp is not None:
            try:
                answer = session.answer_offer(sdp, self.sessions.clock.seconds())
            except DecodeError as error:
                raise sdp_error(error) from None
            response["sessionDescription"] = {"type": "answer", "sdp": answer.serialize()}
            self.sessions.start(session)
        return response

    async def tracks_update(self, request: IRequest, app: App,
                            session_id: str) -> dict[str, Any]:
        """Change simulcast preferences or the remote track a subscribed mid carries (no SDP)."""
        session = self.sessions.load_session(app, session_id)
        body = read_json(request)
        items = track_items(body, required=True)
        now = self.sessions.clock.seconds()
        results = []
        for item in items:
            mid = _text(item, "mid")
            transceiver = session.transceiver(mid) if mid else None
            subscription = transceiver.subscription if transceiver is not None else None
            echo = track_echo(item)
            if mid is None or transceiver is None or subscription is None \
                    or transceiver.role == CLOSED:
                results.append(item_error(echo, "update_track_error",
                                          "No pulled track on this mid"))
                continue
            name, owner = _text(item, "trackName"), _text(item, "sessionId")
            preferences = _preferences(item)
            current = subscription.track
            if name and owner and (name, owner) != (current.name, current.session.session_id):
                track = await find_track(self.sessions, app, owner, name)
                if track is None:
                    results.append(item_error(echo, *NOT_FOUND))
                    continue
                try:
                    session.attach(mid, track, preferences or subscription.preferences, now)
                except LocalProtocolError as error:
                    results.append(item_error(echo, "update_track_error", str(error)))
                    continue
            elif preferences is not None:
                if current.layers is None:
                    results.append(item_error(echo, "update_track_error",
                                              "The track is not simulcast"))
                    continue
                subscription.update_preferences(preferences, now)
            results.append(echo)
        cluster = self.sessions.cluster
        if cluster is not None and session.connection is not None:
            cluster.session_negotiated(session)  # the plan changed (realtime/sfu/restore.py)
        self.sessions.flush(session)
        return {"requiresImmediateRenegotiation": False, "tracks": results}
