"""
The DataChannel routes of the Cloudflare-compatible API: establish, new, update, close.

docs/cloudflare-api.md §1.2 rows 6-9, §1.3 (DataChannelObject), §2.3 and §2.6::

    POST /apps/{appId}/sessions/{id}/datachannels/establish
         {dataChannel: {location: "remote", dataChannelName: "server-events"}[, sessionDescription]}
         without an offer ─> SFU offer with m=application, requiresImmediateRenegotiation: true
         with an offer ────> answer, requiresImmediateRenegotiation: false
         both ─────────────> dataChannel {location, dataChannelName: "server-events", id}
    POST /apps/{appId}/sessions/{id}/datachannels/new     {dataChannels: [...]}
         local  {dataChannelName[, ordered, maxRetransmits | maxPacketLifeTime]}  publish: id
         remote {sessionId, dataChannelName[, ordered, ..., canReply, waitForAck]}  subscribe: id
    PUT  /apps/{appId}/sessions/{id}/datachannels/update  {dataChannels: [remote, canReply]}
    PUT  /apps/{appId}/sessions/{id}/datachannels/close   {dataChannels: [{id}]}  (no SDP)

The ids are *negotiated* stream ids (RFC 8831 §6.5): the client opens
``createDataChannel(dataChannelName, {negotiated: true, id})`` with exactly
the options it sent here.  Nothing here waits for the transport: a channel
allocated before the association is up opens with it (status
``initializing`` until then), so ``datachannels/new`` straight after
``establish`` works (§3.6 item 11).  The older lifecycle, ``sessions/new``
with an offer that has an m=application section (sfu-turn-go), needs no
``establish`` at all.

Per-item failures come back with HTTP 200 (§3.1): an unknown publisher
session or channel name is ``not_found_track_error``, a second publication
of a name (or a second subscription to one channel) is
``repeated_local_track_error``, a bad item is ``invalid_params``, an
unknown id to close is ``close_track_error``.  A session without a
negotiated m=application answers 400 ``session_error`` (call
``establish`` first); ``establish`` on a session that has one already is
400 ``decoding_error`` (the contract's code for "transport setup failed").
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import read_json
from realtime.api.sessions import (
    SfuSessions, item_error, overlap_error, pending_offer, sdp_error, session_description,
)
from realtime.errors import DecodeError, LocalProtocolError
from realtime.sdp.session import SessionDescription
from realtime.sfu.datachannels import (
    SERVER_EVENTS, ChannelExists, ChannelPolicy, ChannelSubscription, NoTransport,
    Publication, PublishedChannel, RemotePublication,
)
from realtime.sfu.limits import MAX_TRACKS_PER_CALL
from realtime.sfu.session import MediaRequest, NegotiationPending, SfuSession
from realtime.sfu.transceiver import APPLICATION
from realtime.storage import App

#: the longest dataChannelName accepted (DCEP labels are 16-bit lengths; keep names short)
MAX_NAME = 1024
#: the largest maxRetransmits / maxPacketLifeTime (RFC 8831 §6.4: unsigned 16 bits)
MAX_RELIABILITY = 65535

NOT_FOUND = ("not_found_track_error",
             "DataChannel not found: check the publisher's sessionId and dataChannelName")
REPEATED = ("repeated_local_track_error", "This DataChannel allocation already exists")
CLOSE_ERROR = ("close_track_error", "DataChannel doesn't exist or was already closed")


class ItemError(Exception):
    """One dataChannels[] item is unusable; ``args`` are (code, description)."""


# -- request bodies --------------------------------------------------------------


def channel_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return ``body["dataChannels"]`` checked: a list of at most 64 objects."""
    items = body.get("dataChannels")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ApiError.decoding_error("dataChannels must be a list of objects")
    if len(items) > MAX_TRACKS_PER_CALL:
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       f"At most {MAX_TRACKS_PER_CALL} dataChannels per request")
    return items


def channel_name(item: dict[str, Any]) -> str:
    """Return the item's ``dataChannelName``; raise :class:`ItemError` if missing or too long."""
    name = item.get("dataChannelName")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise ItemError(ErrorCode.INVALID_PARAMS.value,
                        f"dataChannelName must be a string of 1 to {MAX_NAME} characters")
    return name


def channel_policy(item: dict[str, Any]) -> ChannelPolicy:
    """Return the item's delivery policy; raise :class:`ItemError` for bad values."""
    ordered = item.get("ordered", True)
    if not isinstance(ordered, bool):
        raise ItemError(ErrorCode.INVALID_PARAMS.value, "ordered must be a boolean")
    limits = []
    for key in ("maxRetransmits", "maxPacketLifeTime"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= MAX_RELIABILITY):
            raise ItemError(ErrorCode.INVALID_PARAMS.value,
                            f"{key} must be an integer from 0 to {MAX_RELIABILITY}")
        limits.append(value)
    if None not in limits:
        raise ItemError(ErrorCode.INVALID_PARAMS.value,
                        "maxRetransmits and maxPacketLifeTime are mutually exclusive")
    return ChannelPolicy(ordered, *limits)


def _flag(item: dict[str, Any], key: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise ItemError(ErrorCode.INVALID_PARAMS.value, f"{key} must be a boolean")
    return value


def _echo(item: dict[str, Any]) -> dict[str, Any]:
    """Return the DataChannelObject fields of a request item that have their documented type.

    Response items repeat the request's; unknown keys and mistyped values are
    dropped, so an answer never holds what the contract's DataChannelObject
    cannot (schemathesis found ``"id": {}`` and ``"canReply": null`` echoed;
    tests/interop/test_schemathesis.py).
    """
    echo: dict[str, Any] = {}
    if item.get("location") in ("local", "remote"):
        echo["location"] = item["location"]
    for key in ("sessionId", "dataChannelName"):
        if isinstance(item.get(key), str):
            echo[key] = item[key]
    for key in ("ordered", "canReply", "waitForAck"):
        if isinstance(item.get(key), bool):
            echo[key] = item[key]
    for key in ("maxRetransmits", "maxPacketLifeTime"):
        value = item.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
            echo[key] = value  # unsigned short in the W3C RTCDataChannelInit
    return echo


def _require_transport(session: SfuSession) -> None:
    if session.datachannels.transport is None:
        pending = any(t.role == APPLICATION and t.pending for t in session.transceivers)
        raise ApiError(400, ErrorCode.SESSION_ERROR,
                       "The DataChannel transport is offered but not answered yet: PUT "
                       "renegotiate first" if pending else
                       "The session has no DataChannel transport: call datachannels/establish "
                       "(or offer an m=application section) first")


# -- routes ------------------------------------------------------------------------


async def _remote_publication(sessions: SfuSessions, app: Any,
                              item: dict[str, Any]) -> Publication:
    """Return the publication a ``remote`` item names, here or (``--cluster``) on another node."""
    name, session_id = channel_name(item), item.get("sessionId")
    try:
        return _find_publication(sessions, app, session_id, name)
    except ItemError:
        if sessions.cluster is None or not isinstance(session_id, str) or \
                sessions.switchboard.get(session_id) is not None:
            raise
    publication = await sessions.cluster.remote_datachannel(app.app_id, session_id, name)
    if publication is None:
        raise ItemError(*NOT_FOUND)
    return publication


def _new_channel(sessions: SfuSessions, app: Any, session: SfuSession, item: dict[str, Any],
                 now: float, publication: Publication | None = None) -> dict[str, Any]:
    name, policy = channel_name(item), channel_policy(item)
    channels = session.datachannels
    channel: PublishedChannel | ChannelSubscription
    cluster = sessions.cluster
    try:
        if item.get("location") == "remote":
            can_reply, wait = _flag(item, "canReply"), _flag(item, "waitForAck")
            if publication is None:
                publication = _find_publication(sessions, app, item.get("sessionId"), name)
            try:
                channel = channels.subscribe(publication, policy, now, can_reply=can_reply,
                                             wait_for_ack=wait)
            finally:
                if isinstance(publication, RemotePublication):
                    publication.unsubscribed()   # no-op unless nobody here subscribes now
        elif item.get("location", "local") == "local":
            feeds = () if cluster is None else cluster.datachannel_feeds()
            channel = channels.publish(name, policy, now, feeds=feeds)
            if cluster is not None:
                cluster.datachannel_published(channel)
        else:
            raise ItemError(ErrorCode.INVALID_PARAMS.value,
                            'location must be "local" or "remote"')
    except ChannelExists:
        raise ItemError(*REPEATED) from None
    except NoTransport as error:
        raise ItemError(ErrorCode.SESSION_ERROR.value, str(error)) from None
    except LocalProtocolError as error:
        raise ItemError(ErrorCode.INVALID_PARAMS.value, str(error)) from None
    return {**_echo(item), "id": channel.id}


def _find_publication(sessions: SfuSessions, app: Any, session_id: Any,
                      name: str) -> PublishedChannel:
    publisher = sessions.switchboard.get(session_id) if isinstance(session_id, str) else None
    publication = None
    if publisher is not None and publisher.app_id == app.app_id:
        publication = publisher.datachannels.published(name)
    if publication is None:
        raise ItemError(*NOT_FOUND)
    return publication


def _update_channel(sessions: SfuSessions, app: Any, session: SfuSession,
                    item: dict[str, Any]) -> dict[str, Any]:
    name = channel_name(item)
    channels = session.datachannels
    if item.get("location") != "remote":
        published = channels.published(name)
        if published is None:
            raise ItemError(*NOT_FOUND)
        return {**_echo(item), "id": published.id}  # canReply is ignored for local channels
    can_reply = _flag(item, "canReply")
    session_id = item.get("sessionId")
    cluster = sessions.cluster
    known = None if cluster is None or not isinstance(session_id, str) else \
        cluster.known_remote_datachannel(session_id, name)
    publication: Publication = known if known is not None and known.app_id == app.app_id \
        else _find_publication(sessions, app, session_id, name)
    subscription = channels.subscription(publication)
    if subscription is None:
        raise ItemError(*NOT_FOUND)
    channels.grant_reply(subscription, can_reply)
    return {**_echo(item), "canReply": can_reply, "id": subscription.id}


def describe(channel: PublishedChannel | ChannelSubscription,
             with_status: bool = True) -> dict[str, Any]:
    """Return ``channel`` as the API shows it (``SessionDataChannelState``)."""
    body = channel.describe()
    if not with_status:
        del body["status"]
    return body


class DataChannelRoutes:
    """Establish the DataChannel transport; publish, subscribe to, update and close channels.

    :param sessions: the SFU's sessions.
    """

    def __init__(self, sessions: SfuSessions) -> None:
        self.sessions = sessions

    async def establish(self, request: IRequest, app: App,
                        session_id: str) -> dict[str, Any]:
        """Negotiate the session's SCTP transport and pull the ``server-events`` channel."""
        session = self.sessions.load_session(app, session_id)
        body = read_json(request)
        wanted = body.get("dataChannel", {"dataChannelName": SERVER_EVENTS})
        if not isinstance(wanted, dict) or wanted.get("dataChannelName") != SERVER_EVENTS:
            raise ApiError(400, ErrorCode.INVALID_PARAMS,
                           f"datachannels/establish only pulls the {SERVER_EVENTS} channel")
        sdp = session_description(body, "offer")
        if session.pending_offer is not None:
            raise overlap_error(NegotiationPending(
                "an SFU offer is waiting for its answer (PUT renegotiate)"))
        if any(t.role == APPLICATION for t in session.transceivers):
            raise ApiError.decoding_error("The session already has a DataChannel transport")
        reply: dict[str, Any] = {"dataChannel": {"location": "remote",
                                                 "dataChannelName": SERVER_EVENTS}}
        if sdp is None:
            session.datachannels.want_server_events = True
            session.offer_media([MediaRequest("application", APPLICATION)],
                                self.sessions.clock.seconds())
            reply["dataChannel"]["id"] = session.datachannels.planned_server_events_id()
            reply["requiresImmediateRenegotiation"] = True
            reply["sessionDescription"] = pending_offer(session)
            self.sessions.expect_checks(session)
            return reply
        try:
            offer = SessionDescription.parse(sdp)
        except DecodeError as error:
            raise sdp_error(error) from None
        if not any(m.kind == "application" and not m.rejected and m.mid is not None
                   and session.transceiver(m.mid) is None for m in offer.media):
            raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                           "The offer has no new m=application section")
        await self.sessions.ensure_connected(session)
        try:
            answer = session.answer_offer(sdp, self.sessions.clock.seconds())
        except NegotiationPending as error:
            raise overlap_error(error) from None
        except DecodeError as error:
            raise sdp_error(error) from None
        self.sessions.start(session)
        # The client's own in-band channel: as DTLS client its first id is 0 (RFC 8832 §6).
        reply["dataChannel"]["id"] = 0
        reply["requiresImmediateRenegotiation"] = False
        reply["sessionDescription"] = {"type": "answer", "sdp": answer.serialize()}
        return reply

    async def datachannels_new(self, request: IRequest, app: App,
                               session_id: str) -> dict[str, Any]:
        """Publish (``local``) or subscribe to (``remote``) channels; allocate their ids.

        With ``--cluster``, a ``remote`` item naming a session another node holds
        is looked up in the directory and fed over the relay link
        (:mod:`realtime.cluster.datachannels`); only such an item waits for Redis.
        """
        session = self.sessions.load_session(app, session_id)
        items = channel_items(read_json(request))
        _require_transport(session)
        results = []
        for item in items:
            try:
                publication = None
                if item.get("location") == "remote":
                    publication = await _remote_publication(self.sessions, app, item)
                results.append(_new_channel(self.sessions, app, session, item,
                                            self.sessions.clock.seconds(), publication))
            except ItemError as error:
                results.append(item_error(_echo(item), *error.args))
        self.sessions.flush(session)
        return {"dataChannels": results}

    def datachannels_update(self, request: IRequest, app: App,
                            session_id: str) -> dict[str, Any]:
        """Grant or revoke ``canReply`` on this session's subscriptions."""
        session = self.sessions.load_session(app, session_id)
        items = channel_items(read_json(request))
        results = []
        for item in items:
            try:
                results.append(_update_channel(self.sessions, app, session, item))
            except ItemError as error:
                results.append(item_error(_echo(item), *error.args))
        return {"dataChannels": results}

    def datachannels_close(self, request: IRequest, app: App,
                           session_id: str) -> dict[str, Any]:
        """Close channels by id (stream reset, no SDP); a publication takes its subscribers."""
        session = self.sessions.load_session(app, session_id)
        items = channel_items(read_json(request))
        now = self.sessions.clock.seconds()
        results = []
        for item in items:
            stream_id = item.get("id")
            channel = None
            if isinstance(stream_id, int) and not isinstance(stream_id, bool):
                channel = session.datachannels.close(stream_id, now)
            if channel is None:
                valid = isinstance(stream_id, int) and not isinstance(stream_id, bool) and \
                    0 <= stream_id <= 65534  # an SCTP stream id (RFC 8831 §6.5)
                echo = {"id": stream_id} if valid else {}
                results.append(item_error(echo, *CLOSE_ERROR))
            else:
                results.append(describe(channel, with_status=False))
        self.sessions.flush(session)
        return {"dataChannels": results}
