"""
``POST /v1/apps/{appId}/echo/new``: a diagnostic echo PeerConnection.

Not part of Cloudflare's API (their clients never call it): a route of our
own that answers an offer with a session sending every received stream back
(:mod:`realtime.peer.echo`).  It proves the whole transport from a browser
or a script before any track is published, and the interop tests use it.

Request::

    {"sessionDescription": {"type": "offer", "sdp": "..."},
     "srtpProfiles": ["SRTP_AEAD_AES_128_GCM", ...],     (optional)
     "dtlsRole": "server" | "client"}                     (optional, default server)

Response ``201``::

    {"sessionId": "<32 hex>", "sessionDescription": {"type": "answer", "sdp": "..."}}
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.app import RealtimeAPI, app_route, read_json
from realtime.api.errors import ApiError, ErrorCode
from realtime.errors import DecodeError
from realtime.peer.connection import DEFAULT_SRTP_PROFILES
from realtime.peer.echo import create_echo_session


def offer_sdp(body: dict[str, Any]) -> str:
    """Return the SDP of the body's ``sessionDescription`` offer, or raise a 400."""
    description = body.get("sessionDescription")
    if not isinstance(description, dict) or not isinstance(description.get("sdp"), str):
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       "sessionDescription with an sdp string is required")
    if description.get("type") != "offer":
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION,
                       "sessionDescription.type must be 'offer'")
    return description["sdp"]


@app_route(RealtimeAPI.app, "/echo/new", "POST")
def echo_new(self: RealtimeAPI, request: IRequest, app) -> tuple[int, dict[str, Any]]:
    """Answer an offer with an echo session (each received stream is sent back)."""
    body = read_json(request)
    sdp = offer_sdp(body)
    profiles = body.get("srtpProfiles") or DEFAULT_SRTP_PROFILES
    if not isinstance(profiles, list | tuple) or not all(p in DEFAULT_SRTP_PROFILES for p in profiles):
        raise ApiError(400, ErrorCode.INVALID_PARAMS,
                       f"srtpProfiles must be a list drawn from {list(DEFAULT_SRTP_PROFILES)}")
    dtls_role = body.get("dtlsRole", "server")
    if dtls_role not in ("server", "client"):
        raise ApiError(400, ErrorCode.INVALID_PARAMS, "dtlsRole must be 'server' or 'client'")
    peers = self.peers
    try:
        session = create_echo_session(
            secrets.token_hex(16), sdp, certificate=peers.certificate,
            address=self.config.public_ip, port=self.config.media_port,
            srtp_profiles=tuple(profiles), keylog=peers.keylog, dtls_role=dtls_role,
        )
    except DecodeError as error:
        raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION, str(error)) from None
    session.app_id = app.app_id
    body = {
        "sessionId": session.session_id,
        "sessionDescription": {"type": "answer", "sdp": session.answer.serialize()},
    }
    if self.cluster is not None:  # stored before it is answered (a 503 if it cannot be)
        return _stored(self, session, app.app_id, sdp, body)
    peers.add(session)
    return 201, body


async def _stored(api: RealtimeAPI, session, app_id: str, sdp: str,
                  body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    await api.cluster.echo_created(session, app_id, sdp)
    api.peers.add(session)
    return 201, body
