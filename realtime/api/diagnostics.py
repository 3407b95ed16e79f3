"""
``GET /v1/apps/{appId}/diagnostics``: counters an operator (or a test) reads.

Not part of Cloudflare's API.  It reports the media port's drop counters by
reason (``malformed-stun``, ``unrouted-rtp`` ...) and, for each of the app's
live PeerConnections, its state, SRTP profile and its own drop counters
(``srtp``, ``dtls-unauthenticated`` ...).  For SFU sessions it adds the
NACK shield's and keyframe requests' counters under ``sfu``:

    nacksReceived                 NACK packets the session's subscriber leg received
    retransmissionsAnswered       packets resent from our buffers in answer (RTX or plain)
    nacksSentUpstream             NACK packets we sent to the session as publisher
    keyframeRequestsSentUpstream  PLI/FIR we sent to the session as publisher
    mediaDrops                    RTP packets dropped, by reason: what the session sent
                                  us that no track takes (``rtp-unrouted``,
                                  ``rtp-malformed``, ``rtcp-malformed``), and what
                                  the forwarders towards this session did not send
                                  (``payload-type-not-negotiated``,
                                  ``awaiting-keyframe``, ``duplicate``,
                                  ``before-segment``, ``subscriber-not-connected``,
                                  ``not-sent``)

A subscriber's NACKs never show up in its publisher's ``nacksSentUpstream``:
that counts only gaps in what the publisher itself delivered.  With
``--cluster``, ``clusterDataChannels`` has this node's DataChannel relay
counters (node-wide, :meth:`realtime.cluster.datachannels.DataChannelRelay.counters`):
messages sent per subscribing node, frames sealed, messages received per
publishing node, local deliveries, drops and gaps.  Counters only; no SDP or keys.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.app import RealtimeAPI, app_route


@app_route(RealtimeAPI.app, "/diagnostics", "GET")
def diagnostics(self: RealtimeAPI, request: IRequest, app) -> dict[str, Any]:
    """Return drop counters of the media port and of the app's PeerConnections."""
    peers = self.peers
    port = getattr(peers, "port", None)
    sessions = {}
    for session_id, session in (peers.sessions.items() if peers else ()):
        if getattr(session, "app_id", None) != app.app_id:
            continue
        connection = session.connection
        entry = {
            "state": connection.state,
            "srtpProfile": connection.srtp_profile,
            "drops": dict(connection.drops),
        }
        rtcp = getattr(session, "rtcp", None)
        if rtcp is not None:
            entry["sfu"] = {**rtcp.counters(), "mediaDrops": media_drops(session)}
        sessions[session_id] = entry
    body = {"mediaPort": {"drops": dict(port.drops) if port else {}}, "sessions": sessions}
    relay = getattr(self.cluster, "datachannels", None)
    if relay is not None:   # --cluster: DataChannels across nodes (node-wide counters)
        body["clusterDataChannels"] = relay.counters()
    return body


def media_drops(session: Any) -> dict[str, int]:
    """Return the session's routing drops and its subscriptions' forwarder drops, by reason."""
    drops = dict(getattr(session, "counters", {}))
    for transceiver in getattr(session, "transceivers", ()):
        subscription = transceiver.subscription
        forwarder = subscription.forwarder if subscription is not None else None
        if forwarder is None:
            continue
        for reason, count in forwarder.drops.items():
            drops[reason] = drops.get(reason, 0) + count
    return drops
