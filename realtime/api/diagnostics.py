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
    transportFeedbackSent         transport-cc feedback packets we sent it (0: not negotiated)
    estimate                      (a session we send media to) what reaches it: ``source``
                                  (transport-cc | remb | none), ``estimate`` and
                                  ``ackedBitrate`` (bit/s), ``lossFraction``, ``delaySignal``,
                                  ``wanted`` (what a better layer needs), ``probes``,
                                  ``probesSucceeded``, ``feedbackReceived`` (docs/bandwidth.md)
    pacer                         (with an estimate) the video pacer: ``rate`` (bit/s, 0: not
                                  pacing), ``queued``, ``deferred`` and ``dropped`` packets
    mediaDrops                    RTP packets dropped, by reason: what the session sent
                                  us that no track takes (``rtp-unrouted``,
                                  ``rtp-malformed``, ``rtcp-malformed``), and what
                                  the forwarders towards this session did not send
                                  (``payload-type-not-negotiated``,
                                  ``awaiting-keyframe``, ``duplicate``,
                                  ``before-segment``, ``subscriber-not-connected``,
                                  ``not-sent``)

With ``--cluster``, ``cluster`` holds the node id, the relay link's counters
(``sealed``: frames sealed, one per packet; ``sent``: one per destination node;
``opened``; ``dropped`` by reason: ``non_member``, ``authentication`` ...) and
the cross-node pulls' (``pulls``: per mirror and per fan-out, docs/cluster.md).

A subscriber's NACKs never show up in its publisher's ``nacksSentUpstream``:
that counts only gaps in what the publisher itself delivered.  With
``--cluster``, ``clusterDataChannels`` has this node's DataChannel relay
counters (node-wide, :meth:`realtime.cluster.datachannels.DataChannelRelay.counters`):
messages sent per subscribing node, frames sealed, messages received per
publishing node, local deliveries, drops and gaps, and the per-hop
retransmission's (``repair``: NACKs, resent fragments, tail probes).  Counters
only; no SDP or keys.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from realtime.api.cluster_hooks import ClusterHooks
from realtime.api.media import MediaPeers
from realtime.peer.echo import EchoSession
from realtime.sfu.session import SfuSession
from realtime.storage import App


class DiagnosticsRoutes:
    """``diagnostics``: the counters of the media port and of one app's PeerConnections.

    :param peers: the media port's running sessions.
    :param cluster: the cluster's hooks (``--cluster``: relay link and pull counters), or None.
    """

    def __init__(self, peers: MediaPeers, cluster: ClusterHooks | None = None) -> None:
        self.peers = peers
        self.cluster = cluster

    def diagnostics(self, request: IRequest, app: App) -> dict[str, Any]:
        """Return drop counters of the media port and of the app's PeerConnections."""
        sessions = {}
        for session_id, session in self.peers.sessions.items():
            if not isinstance(session, SfuSession | EchoSession) or session.app_id != app.app_id:
                continue
            connection = session.connection
            if connection is None:
                continue
            entry: dict[str, Any] = {
                "state": connection.state,
                "srtpProfile": connection.srtp_profile,
                "drops": dict(connection.drops),
            }
            if isinstance(session, SfuSession):
                entry["sfu"] = {**session.rtcp.counters(), "mediaDrops": media_drops(session)}
                if session.rtcp.estimate is not None:
                    entry["sfu"]["estimate"] = session.rtcp.estimate.diagnostics()
                    if session.pacer is not None:
                        entry["sfu"]["pacer"] = session.pacer.diagnostics()
                layers = simulcast_layers(session)
                if layers:
                    entry["sfu"]["layers"] = layers
            sessions[session_id] = entry
        port = self.peers.port
        out: dict[str, Any] = {
            "mediaPort": {"drops": dict(port.drops) if port is not None else {}},
            "sessions": sessions}
        if self.cluster is not None:
            out["cluster"] = self.cluster.stats(app.app_id)
            datachannels = self.cluster.datachannel_stats()
            if datachannels is not None:  # DataChannels across nodes (node-wide counters)
                out["clusterDataChannels"] = datachannels
        return out


def media_drops(session: SfuSession) -> dict[str, int]:
    """Return the session's routing drops and its subscriptions' forwarder drops, by reason."""
    drops = dict(session.counters)
    for transceiver in session.transceivers:
        subscription = transceiver.subscription
        forwarder = subscription.forwarder if subscription is not None else None
        if forwarder is None:
            continue
        for reason, count in forwarder.drops.items():
            drops[reason] = drops.get(reason, 0) + count
    return drops


def simulcast_layers(session: SfuSession) -> dict[str, Any]:
    """Return, by mid, each published simulcast track's measured layer rates (a video
    track without simulcast: its one layer, rid ``""``) and each pulled
    one's layer state (GET session's ``layer``: rid, temporal layer, frame-rate fraction).

    ``rates``: rid -> bit/s of TID <= 0, 1, ... (one entry: no temporal layers), the
    inputs of the allocator's choice (realtime/media/simulcast.py).
    """
    out: dict[str, Any] = {}
    for transceiver in session.transceivers:
        track = transceiver.track
        layers = None if track is None else track.layers or track.single
        if track is not None and layers is not None:  # single: the one rid "" (SINGLE)
            out[transceiver.mid] = {"trackName": track.name, "rates": {
                rid: [int(r) for r in rates] for rid in layers.ordered()
                if (rates := layers.rates(rid)) is not None}}
        subscription = transceiver.subscription
        if subscription is not None:
            state = subscription.layer_state()
            if state is not None:
                out[transceiver.mid] = state
    return out
