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

from realtime.api.cluster_hooks import ClusterHooks
from realtime.api.errors import ApiError, ErrorCode
from realtime.api.http import read_json
from realtime.api.media import Announced, MediaPeers
from realtime.errors import DecodeError
from realtime.peer.connection import DEFAULT_SRTP_PROFILES
from realtime.peer.echo import EchoSession, create_echo_session
from realtime.storage import App


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


class EchoRoutes:
    """``echo/new``: answer an offer with an echo session on the media port.

    :param peers: runs the echo sessions.
    :param announced: the address put in answers.
    :param cluster: stores each echo session before it is answered (``--cluster``), or None.
    """

    def __init__(self, peers: MediaPeers, announced: Announced,
                 cluster: ClusterHooks | None = None) -> None:
        self.peers = peers
        self.announced = announced
        self.cluster = cluster

    def echo_new(self, request: IRequest, app: App) -> Any:
        """Answer an offer with an echo session (each received stream is sent back)."""
        body = read_json(request)
        sdp = offer_sdp(body)
        profiles = body.get("srtpProfiles") or DEFAULT_SRTP_PROFILES
        if not isinstance(profiles, list | tuple) or \
                not all(p in DEFAULT_SRTP_PROFILES for p in profiles):
            raise ApiError(400, ErrorCode.INVALID_PARAMS,
                           f"srtpProfiles must be a list drawn from {list(DEFAULT_SRTP_PROFILES)}")
        dtls_role = body.get("dtlsRole", "server")
        if dtls_role not in ("server", "client"):
            raise ApiError(400, ErrorCode.INVALID_PARAMS, "dtlsRole must be 'server' or 'client'")
        peers, config = self.peers, self.announced.config
        try:
            session = create_echo_session(
                secrets.token_hex(16), sdp, certificate=peers.certificate,
                address=config.public_ip, port=config.media_port,
                srtp_profiles=tuple(profiles), keylog=peers.keylog, dtls_role=dtls_role,
            )
        except DecodeError as error:
            raise ApiError(400, ErrorCode.INVALID_SESSION_DESCRIPTION, str(error)) from None
        session.app_id = app.app_id
        answer = {
            "sessionId": session.session_id,
            "sessionDescription": {"type": "answer", "sdp": session.answer.serialize()},
        }
        if self.cluster is not None:  # stored before it is answered (a 503 if it cannot be)
            return self._stored(self.cluster, session, app.app_id, sdp, answer)
        peers.add(session)
        return 201, answer

    async def _stored(self, cluster: ClusterHooks, session: EchoSession, app_id: str, sdp: str,
                      answer: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        await cluster.echo_created(session, app_id, sdp)
        self.peers.add(session)
        return 201, answer
