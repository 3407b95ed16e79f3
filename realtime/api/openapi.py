"""
``GET /openapi.json``: this server's own OpenAPI 3.0 description of its routes.

Written for this project from its routes (not derived from Cloudflare's
document): the Cloudflare-compatible SFU routes of :mod:`realtime.api.sessions`,
:mod:`realtime.api.tracks` and :mod:`realtime.api.datachannels`, plus our own ``/echo/new`` and
``/diagnostics``.  Served without authentication (it holds no secrets), with
the same CORS headers as every other response::

    openapi: 3.0.3
    servers: /v1 ─┬─ /apps/{appId}/sessions/new ........... 201
                  ├─ /apps/{appId}/sessions/{id}/tracks/new  200 (per-item errors)
                  ├─ ... renegotiate, tracks/close, tracks/update, GET session
                  ├─ ... datachannels/establish, datachannels/new|update|close
                  ├─ /apps/{appId}/echo/new, /diagnostics, /usage (ours)
                  ├─ /apps/{appId}/ingest/{name} (WHIP), /play/{name} (WHEP), and
                  │  .../{resourceId} (PATCH, DELETE): SDP bodies (api/whip.py)
                  └─ /apps/{appId}/adapters/websocket/new|close: 200, or 503 when
                     every item failed (api/adapters.py)

Every path also answers without the ``/v1`` prefix (``/apps/{appId}/...``).
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.http import apply_cors, json_response


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "headers": {"vary": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_SESSION_ERRORS = {
    "401": _error("Missing or wrong bearer token, or an unknown app: the same answer, so "
                  "app ids cannot be enumerated (`unauthorized`)."),
    "404": _error("Unknown session or route (`not_found`)."),
    "410": _error("The session expired or its PeerConnection closed (`session_error`)."),
    "429": _error("More than 50 calls per second on this session "
                  "(`retryable_transient_error`)."),
}


def _operation(summary: str, request: str | None, response: str, status: str = "200",
               errors: dict[str, str] | None = None, session: bool = True) -> dict[str, Any]:
    parameters = [{"in": "path", "name": "appId", "required": True, "schema": {"type": "string"}}]
    if session:
        parameters.append({"in": "path", "name": "sessionId", "required": True,
                           "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}})
    responses: dict[str, Any] = {status: _json(_ref(response), "Success")}
    responses.update(_SESSION_ERRORS if session else {k: v for k, v in _SESSION_ERRORS.items()
                                                      if k in ("401", "404")})
    for code, text in (errors or {}).items():
        responses[code] = _error(text)
    operation: dict[str, Any] = {"summary": summary, "security": [{"secret": []}],
                                 "parameters": parameters, "responses": responses}
    if request is not None:
        operation["requestBody"] = {"required": False, "content": {
            "application/json": {"schema": _ref(request)}}}
    return operation


_SDP_ERRORS = {"400": "Bad SDP, or an answer without a pending offer "
                      "(`invalid_session_description`); bad JSON (`decoding_error`); more "
                      "than 64 tracks (`invalid_params`)."}
_NEGOTIATION_ERRORS = {
    **_SDP_ERRORS,
    "406": "An SFU offer is waiting for its answer (`session_error`).",
    "425": "The PeerConnection did not connect within 5 s (`session_error`).",
}

_STRING = {"type": "string"}
_ITEM_ERROR = {"errorCode": _STRING, "errorDescription": _STRING}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": dict(_ITEM_ERROR)},
    "SessionDescription": {"type": "object", "required": ["sdp", "type"], "properties": {
        "sdp": _STRING, "type": {"type": "string", "enum": ["offer", "answer"]}}},
    "Simulcast": {"type": "object", "description":
                  "Also accepted: ridUnavailableStrategy (none|nextPriority), fallbackStrategy "
                  "(auto|leastBandwidth|none); preferredRid \"\" means no preference.",
                  "properties": {
                      "preferredRid": _STRING,
                      "priorityOrdering": {"type": "string", "enum": ["none", "asciibetical"]},
                      "ridNotAvailable": {"type": "string", "enum": ["none", "asciibetical"]}}},
    "Track": {"type": "object", "properties": {
        "location": {"type": "string", "enum": ["local", "remote"]},
        "mid": {"type": "string", "description": "`#trackName` pulls into that local "
                                                 "track's sendrecv section"},
        "sessionId": _STRING, "trackName": _STRING,
        "kind": {"type": "string", "enum": ["audio", "video"]},
        "bidirectionalMediaStream": {"type": "boolean"},
        "simulcast": _ref("Simulcast"), **_ITEM_ERROR}},
    "TrackState": {"allOf": [_ref("Track"), {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["active", "inactive"]},
        "layer": {"type": "object", "description":
                  "A pulled simulcast track: the layer sent (rid), the layer wanted (target) "
                  "and why (auto|preferred|fallback|bandwidth|degraded), the layers starved "
                  "(arriving at under half the best one's frame rate), the VP8 temporal layer "
                  "forwarded and wanted (null: every frame) and the share of frames sent, "
                  "docs/bandwidth.md.",
                  "properties": {
                      "rid": {"type": "string", "nullable": True},
                      "target": {"type": "string", "nullable": True},
                      "reason": {"type": "string",
                                 "enum": ["auto", "preferred", "fallback", "bandwidth",
                                          "degraded"]},
                      "availableBitrate": {"type": "integer", "nullable": True},
                      "temporalLayer": {"type": "integer", "nullable": True},
                      "targetTemporalLayer": {"type": "integer", "nullable": True},
                      "frameRateFraction": {"type": "number"},
                      "starvedLayers": {"type": "array", "items": {"type": "string"}}}}}}]},
    "NewSessionRequest": {"type": "object", "properties": {
        "sessionDescription": _ref("SessionDescription")}},
    "NewSessionResponse": {"type": "object", "required": ["sessionId"], "properties": {
        "sessionId": _STRING, "sessionDescription": _ref("SessionDescription"),
        **_ITEM_ERROR}},
    "TracksRequest": {"type": "object", "properties": {
        "sessionDescription": _ref("SessionDescription"), "autoDiscover": {"type": "boolean"},
        "tracks": {"type": "array", "maxItems": 64, "items": _ref("Track")}}},
    "TracksResponse": {"type": "object", "required": ["tracks"], "properties": {
        "requiresImmediateRenegotiation": {"type": "boolean"},
        "sessionDescription": _ref("SessionDescription"),
        "tracks": {"type": "array", "items": _ref("Track")}, **_ITEM_ERROR}},
    "RenegotiateRequest": {"type": "object", "required": ["sessionDescription"],
                           "properties": {"sessionDescription": _ref("SessionDescription")}},
    "RenegotiateResponse": {"type": "object", "properties": {
        "sessionDescription": _ref("SessionDescription"), **_ITEM_ERROR}},
    "CloseTracksRequest": {"type": "object", "required": ["tracks"], "properties": {
        "tracks": {"type": "array", "minItems": 1, "maxItems": 64, "items": {
            "type": "object", "required": ["mid"], "properties": {"mid": _STRING}}},
        "force": {"type": "boolean"}, "sessionDescription": _ref("SessionDescription")}},
    "UpdateTracksRequest": {"type": "object", "required": ["tracks"], "properties": {
        "tracks": {"type": "array", "maxItems": 64, "items": _ref("Track")}}},
    "SessionStateResponse": {"type": "object", "required": ["tracks", "dataChannels"],
                             "properties": {
                                 "tracks": {"type": "array", "items": _ref("TrackState")},
                                 "dataChannels": {"type": "array",
                                                  "items": _ref("DataChannelState")},
                                 **_ITEM_ERROR}},
    "DataChannel": {"type": "object", "description":
                    "A negotiated channel: open it with createDataChannel(dataChannelName, "
                    "{negotiated: true, id, ordered, maxRetransmits | maxPacketLifeTime}).",
                    "properties": {
                        "location": {"type": "string", "enum": ["local", "remote"]},
                        "sessionId": {"type": "string", "description": "publisher (remote)"},
                        "dataChannelName": _STRING,
                        "ordered": {"type": "boolean", "default": True},
                        "maxRetransmits": {"type": "integer", "minimum": 0, "maximum": 65535},
                        "maxPacketLifeTime": {"type": "integer", "minimum": 0,
                                              "maximum": 65535},
                        "canReply": {"type": "boolean", "default": False},
                        "waitForAck": {"type": "boolean", "default": False},
                        "id": {"type": "integer", "minimum": 0, "maximum": 65534,
                               "description": "stream id on this session"},
                        **_ITEM_ERROR}},
    "DataChannelState": {"type": "object", "properties": {
        "location": {"type": "string", "enum": ["local", "remote"]},
        "sessionId": _STRING, "dataChannelName": _STRING, "id": {"type": "integer"},
        "status": {"type": "string", "enum": ["active", "inactive", "initializing"]}}},
    "DataChannelsRequest": {"type": "object", "required": ["dataChannels"], "properties": {
        "dataChannels": {"type": "array", "maxItems": 64, "items": _ref("DataChannel")}}},
    "DataChannelsResponse": {"type": "object", "required": ["dataChannels"], "properties": {
        "dataChannels": {"type": "array", "items": _ref("DataChannel")}, **_ITEM_ERROR}},
    "CloseDataChannelsRequest": {"type": "object", "required": ["dataChannels"], "properties": {
        "dataChannels": {"type": "array", "maxItems": 64, "items": {
            "type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}}}},
    "EstablishRequest": {"type": "object", "properties": {
        "dataChannel": _ref("DataChannel"), "sessionDescription": _ref("SessionDescription")}},
    "EstablishResponse": {"type": "object", "properties": {
        "requiresImmediateRenegotiation": {"type": "boolean"},
        "sessionDescription": _ref("SessionDescription"),
        "dataChannel": _ref("DataChannel"), **_ITEM_ERROR}},
    "EchoRequest": {"type": "object", "required": ["sessionDescription"], "properties": {
        "sessionDescription": _ref("SessionDescription"),
        "srtpProfiles": {"type": "array", "items": {"type": "string", "enum": [
            "SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_256_GCM", "SRTP_AES128_CM_SHA1_80"]}}}},
    "Diagnostics": {"type": "object", "properties": {
        "mediaPort": {"type": "object"}, "sessions": {"type": "object"}}},
    "UsageCounts": {"type": "object", "properties": {
        "ingressBytes": {"type": "integer", "minimum": 0},
        "egressBytes": {"type": "integer", "minimum": 0},
        "ingressPackets": {"type": "integer", "minimum": 0},
        "egressPackets": {"type": "integer", "minimum": 0}}},
    "Usage": {"allOf": [_ref("UsageCounts"), {
        "type": "object", "required": ["appId", "since", "until", "series"], "properties": {
            "appId": _STRING, "since": {"type": "number"}, "until": {"type": "number"},
            "sessionId": _STRING, "trackName": _STRING,
            "series": {"type": "array", "items": {"allOf": [_ref("UsageCounts"), {
                "type": "object", "required": ["minute"], "properties": {
                    "minute": {"type": "string", "format": "date-time"}}}]}},
            "tracks": {"type": "array", "items": {"allOf": [_ref("UsageCounts"), {
                "type": "object", "properties": {"trackName": _STRING}}]}}}}]},
}


def _usage_operation() -> dict[str, Any]:
    operation = _operation(
        "Ours: SFU bytes and packets in [since, until), totals and per minute; egress = "
        "bytes sent to clients (see docs/api.md, Usage)", None, "Usage",
        errors={"400": "since/until not a time, since after until, or a filter over 1024 "
                       "characters (`invalid_params`)."}, session=False)
    time = {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
    operation["parameters"] += [
        {"in": "query", "name": "since", "schema": time,
         "description": "unix seconds or ISO 8601; default: until - 24 h"},
        {"in": "query", "name": "until", "schema": time,
         "description": "unix seconds or ISO 8601 (exclusive); default: now + 60 s"},
        {"in": "query", "name": "sessionId", "schema": _STRING,
         "description": "one session's wire bytes, plus the tracks it published"},
        {"in": "query", "name": "trackName", "schema": _STRING,
         "description": "RTP of tracks with this name (of sessionId when given)"}]
    return operation

_SESSION = "/apps/{appId}/sessions/{sessionId}"

_ADAPTER_SCHEMAS = {
    "Adapter": {"type": "object", "properties": {
        "location": {"type": "string", "enum": ["local", "remote"]},
        "sessionId": {"type": "string", "description": "remote: the publisher; local "
                      "(response): the session made to publish the track"},
        "trackName": {"type": "string", "minLength": 1},
        "endpoint": {"type": "string", "pattern": "^wss?://"},
        "outputCodec": {"type": "string", "enum": ["pcm", "jpeg"]},
        "inputCodec": {"type": "string", "enum": ["pcm"]},
        "mode": {"type": "string", "enum": ["stream", "buffer"]},
        "adapterId": _STRING, **_ITEM_ERROR}},
    "NewAdapterRequest": {"type": "object", "required": ["tracks"], "properties": {
        "tracks": {"type": "array", "minItems": 1, "maxItems": 4, "items": _ref("Adapter")}}},
    "NewAdapterResponse": {"type": "object", "properties": {
        "tracks": {"type": "array", "items": _ref("Adapter")}, **_ITEM_ERROR}},
    "CloseAdapterRequest": {"type": "object", "required": ["tracks"], "properties": {
        "tracks": {"type": "array", "minItems": 1, "maxItems": 4, "items": {
            "type": "object", "required": ["adapterId"], "properties": {
                "adapterId": {"type": "string", "minLength": 1}}}}}},
    "CloseAdapterResponse": {"type": "object", "properties": {
        "tracks": {"type": "array", "items": {"type": "object", "properties": {
            "adapterId": _STRING, "bytesProcessed": {"type": "number"}, **_ITEM_ERROR}}},
        **_ITEM_ERROR}},
}
SCHEMAS.update(_ADAPTER_SCHEMAS)


def _adapter_operation(summary: str, request: str, response: str) -> dict[str, Any]:
    """``adapters/websocket/new|close``: 200, 503 (every item failed), 400, 406."""
    operation = _operation(summary, request, response, session=False, errors={
        "400": "The body or a field's type could not be decoded (`decoding_error`).",
        "406": "A required field missing, a bad endpoint or value, or not 1-4 items "
               "(`invalid_params`)."})
    operation["responses"]["503"] = _json(_ref(response), "Every item failed: see each "
                                                          "item's errorCode")
    return operation


_ADAPTER_PATHS = {
    "/apps/{appId}/adapters/websocket/new": {"post": _adapter_operation(
        "WebSocket adapters: stream a track to a WebSocket as PCM or JPEG (remote), or "
        "publish PCM from a WebSocket as an Opus track (local)", "NewAdapterRequest",
        "NewAdapterResponse")},
    "/apps/{appId}/adapters/websocket/close": {"post": _adapter_operation(
        "Close WebSocket adapters (idempotent); bytesProcessed per closed adapter",
        "CloseAdapterRequest", "CloseAdapterResponse")},
}


def _whip(summary: str, status: str, body: str | None, errors: dict[str, str],
          resource: bool = False) -> dict[str, Any]:
    """One WHIP/WHEP operation (realtime/api/whip.py): SDP in and out, JSON errors."""
    names = ["appId", "name"] + (["resourceId"] if resource else [])
    parameters = [{"in": "path", "name": name, "required": True, "schema": _STRING}
                  for name in names]
    responses: dict[str, Any] = {
        status: {"description": "Success", "headers": {"vary": {"schema": _STRING}}}}
    if body is not None:
        responses[status]["content"] = {body: {"schema": _STRING}}
    for code, text in {"401": "Missing or wrong bearer token (`unauthorized`).",
                       "404": "Unknown stream or session resource (`not_found`).",
                       **errors}.items():
        responses[code] = _error(text)
    operation: dict[str, Any] = {"summary": summary, "security": [{"secret": []}],
                                 "parameters": parameters, "responses": responses}
    if not resource or status != "200":
        kinds = ["application/sdp"] if not resource else \
            ["application/trickle-ice-sdpfrag", "application/sdp"]
        if body is not None or resource:
            operation["requestBody"] = {"required": False, "content": {
                kind: {"schema": _STRING} for kind in kinds}}
    return operation


_WHIP_ERRORS = {"400": "Bad SDP (`invalid_session_description`).",
                "415": "Not application/sdp (`unsupported_media_type`).",
                "429": "More than --session-rate new sessions per second."}
_PATCH_ERRORS = {"400": "Bad SDP or fragment.", "412": "If-Match names another ICE session.",
                 "415": "Not application/trickle-ice-sdpfrag (or application/sdp on WHEP)."}
_WHIP_PATHS = {
    "/apps/{appId}/ingest/{name}": {"post": _whip(
        "WHIP (RFC 9725): publish an SDP offer as stream {name}; 201 with the answer, "
        "Location, ETag", "201", "application/sdp",
        {**_WHIP_ERRORS, "409": "The stream already has a live WHIP publisher (`conflict`)."})},
    "/apps/{appId}/ingest/{name}/{resourceId}": {
        "patch": _whip("WHIP trickle (204) or ICE restart (200 with our fragment)", "204", None,
                       _PATCH_ERRORS, resource=True),
        "delete": _whip("End the WHIP session", "200", None, {}, resource=True)},
    "/apps/{appId}/play/{name}": {"post": _whip(
        "WHEP: answer a player's offer, or (empty body) the server's offer, for stream "
        "{name} (a WHIP stream name or a session id)", "201", "application/sdp", _WHIP_ERRORS)},
    "/apps/{appId}/play/{name}/{resourceId}": {
        "patch": _whip("WHEP: the answer to the server's offer (application/sdp), trickle or "
                       "ICE restart", "204", None, _PATCH_ERRORS, resource=True),
        "delete": _whip("End the WHEP session", "200", None, {}, resource=True)},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "realtime", "version": "1", "description":
             "A self-hosted SFU whose HTTPS API is compatible with Cloudflare Realtime: "
             "sessions (one PeerConnection each) push and pull named tracks. Paths also "
             "answer without the /v1 prefix. Per-item failures come back with HTTP 200 in "
             "tracks[].errorCode / dataChannels[].errorCode: not_found_track_error, "
             "empty_track_error, close_track_error, update_track_error, "
             "repeated_local_track_error, invalid_params."},
    "servers": [{"url": "/v1"}],
    "components": {"securitySchemes": {"secret": {"type": "http", "scheme": "bearer"}},
                   "schemas": SCHEMAS},
    "paths": {
        "/apps/{appId}/sessions/new": {"post": _operation(
            "Create a session; with an offer, answer it", "NewSessionRequest",
            "NewSessionResponse", "201",
            {**_SDP_ERRORS, "429": "More than --session-rate new sessions per second for "
                                   "this app (`retryable_transient_error`)."}, session=False)},
        f"{_SESSION}/tracks/new": {"post": _operation(
            "Push tracks (with the client's offer, autoDiscover, or kind) or pull tracks "
            "(SFU offer with requiresImmediateRenegotiation, client offer, or mid #name)",
            "TracksRequest", "TracksResponse", errors=_NEGOTIATION_ERRORS)},
        f"{_SESSION}/renegotiate": {"put": _operation(
            "Answer the SFU's pending offer", "RenegotiateRequest", "RenegotiateResponse",
            errors=_SDP_ERRORS)},
        f"{_SESSION}/tracks/close": {"put": _operation(
            "Close tracks by mid: with the client's offer (answer returned) or force",
            "CloseTracksRequest", "TracksResponse", errors=_NEGOTIATION_ERRORS)},
        f"{_SESSION}/tracks/update": {"put": _operation(
            "Change simulcast preferences or which remote track a mid carries",
            "UpdateTracksRequest", "TracksResponse", errors=_SDP_ERRORS)},
        _SESSION: {"get": _operation(
            "The session's tracks and DataChannels and their status", None,
            "SessionStateResponse")},
        f"{_SESSION}/datachannels/establish": {"post": _operation(
            "Negotiate the SCTP transport and pull server-events: an SFU offer "
            "(requiresImmediateRenegotiation) or an answer to the client's offer",
            "EstablishRequest", "EstablishResponse", errors={
                **_NEGOTIATION_ERRORS, "400": "Not server-events (`invalid_params`), bad SDP "
                "(`invalid_session_description`), transport already there (`decoding_error`)."})},
        f"{_SESSION}/datachannels/new": {"post": _operation(
            "Publish (local) or subscribe to (remote) named DataChannels; ids allocated on "
            "this session", "DataChannelsRequest", "DataChannelsResponse", errors={
                "400": "No negotiated m=application (`session_error`); bad JSON "
                       "(`decoding_error`); more than 64 items (`invalid_params`)."})},
        f"{_SESSION}/datachannels/update": {"put": _operation(
            "Grant or revoke canReply on subscribed DataChannels", "DataChannelsRequest",
            "DataChannelsResponse", errors={"400": "Bad JSON (`decoding_error`)."})},
        f"{_SESSION}/datachannels/close": {"put": _operation(
            "Close DataChannels by id without SDP (a publication closes its subscriptions)",
            "CloseDataChannelsRequest", "DataChannelsResponse",
            errors={"400": "Bad JSON (`decoding_error`)."})},
        "/apps/{appId}/echo/new": {"post": _operation(
            "Ours: a PeerConnection that sends every received stream back", "EchoRequest",
            "NewSessionResponse", "201", _SDP_ERRORS, session=False)},
        "/apps/{appId}/diagnostics": {"get": _operation(
            "Ours: drop counters of the media port and the app's PeerConnections", None,
            "Diagnostics", session=False)},
        "/apps/{appId}/usage": {"get": _usage_operation()},
        **_WHIP_PATHS,
        **_ADAPTER_PATHS,
    },
}


def openapi(request: IRequest) -> bytes:
    """Return this server's OpenAPI document (no authentication)."""
    apply_cors(request)
    return json_response(request, 200, DOCUMENT)
