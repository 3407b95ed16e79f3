"""
Prometheus metrics read from the counters the service already keeps.

The media path counts what it does in plain integers and ``Counter`` s
(``PeerConnection.packets_received``, ``Forwarder.drops``,
``RtcpLegs.counters()``, ``MediaPort.drops`` ...; the same numbers
``GET .../diagnostics`` shows).  Nothing here runs per packet: a
*collector* (prometheus-client's custom-collector protocol, a ``collect()``
yielding metric families) reads those counters when Prometheus scrapes::

    Prometheus ──GET /metrics──> MetricsResource(registry)      realtime/net/metrics_service.py
                                   │ registry.collect()
                                   ├─ MediaCollector.collect()   sessions, PeerConnections,
                                   │     sweep() ─> CounterFold    tracks, packets, drops, NACKs
                                   ├─ TurnCollector.collect()    allocations, relayed bytes
                                   ├─ ClusterCollector.collect() relay link (--cluster)
                                   ├─ ApiMetrics (Histogram)     requests by route and status
                                   ├─ ReactorLag (Histogram)     how late timers fire
                                   └─ ProcessCollector           CPU seconds, RSS, open fds

Sessions, subscriptions and TURN allocations come and go, and their counters
go with them; a Prometheus counter must never go down (a drop reads as a
restart and ``rate()`` spikes).  :class:`CounterFold` therefore keeps the last
value it saw of every counter of every live object (a *mark*, as
:class:`realtime.sfu.usage.UsageMeter` does for usage) and adds only the growth
to totals that live as long as the process.  It sweeps at each scrape and
every :data:`SWEEP_INTERVAL` seconds, so what an object counted between its
last sweep and its end is the only thing lost; SFU sessions are held until the
sweep after they closed, so their last packets count too.

Labels are bounded sets (a packet kind, a drop reason, a state, a route
template, a transport, a node id): never a session id, a user name or an
address, whose cardinality grows without bound.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from realtime.peer.connection import ConnectionState

__all__ = ["SWEEP_INTERVAL", "ClusterCollector", "CounterFold", "MediaCollector",
           "TurnCollector"]

#: seconds between sweeps of the live objects' counters (besides each scrape)
SWEEP_INTERVAL = 5.0

Key = tuple[str, ...]


class CounterFold:
    """Fold the counters of objects that come and go into totals that only grow.

    One sweep is :meth:`begin`, :meth:`add` per live object, :meth:`end`.
    An object first seen counts all it has counted so far; a counter that
    went down (an object re-used its counters) is taken as restarted from zero.
    """

    def __init__(self) -> None:
        #: ``(metric, *label_values) -> total`` since the process started
        self.totals: Counter[Key] = Counter()
        self._marks: dict[int, tuple[Any, dict[Key, int]]] = {}
        self._next: dict[int, tuple[Any, dict[Key, int]]] = {}

    def begin(self) -> None:
        """Start a sweep: objects not added before :meth:`end` are forgotten."""
        self._next = {}

    def add(self, counted: Any, values: Mapping[Key, int]) -> None:
        """Fold what ``counted`` counted since the last sweep (once per sweep per object)."""
        ident = id(counted)
        if ident in self._next:
            return
        mark = self._marks.get(ident)
        previous = mark[1] if mark is not None and mark[0] is counted else {}
        totals = self.totals
        for key, value in values.items():
            grown = value - previous.get(key, 0)
            if grown > 0:
                totals[key] += grown
            elif grown < 0:
                totals[key] += value
        self._next[ident] = (counted, dict(values))

    def end(self) -> None:
        """Finish a sweep: the objects added are the ones remembered."""
        self._marks = self._next
        self._next = {}

    def families(self, metric: str, documentation: str,
                 labels: Iterable[str]) -> CounterMetricFamily:
        """Return the counter family ``metric`` with every total folded under it."""
        family = CounterMetricFamily(metric, documentation, labels=list(labels))
        for key, total in sorted(self.totals.items()):
            if key[0] == metric:
                family.add_metric(list(key[1:]), total)
        return family


#: ``(metric, documentation, labels)`` of the counters :class:`MediaCollector` folds
MEDIA_COUNTERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("realtime_peer_datagrams", "UDP datagrams of PeerConnections (every kind: STUN, DTLS, "
     "SRTP, SRTCP), by direction.", ("direction",)),
    ("realtime_peer_bytes", "UDP payload bytes of PeerConnections, by direction.",
     ("direction",)),
    ("realtime_rtp_packets", "RTP packets of published tracks: in from publishers, out to "
     "subscribers, by media kind.", ("direction", "kind")),
    ("realtime_rtp_bytes", "RTP bytes of published tracks, by direction and media kind.",
     ("direction", "kind")),
    ("realtime_peer_drops", "Datagrams a PeerConnection dropped, by reason (srtp, dtls, "
     "stun, srtp-before-keys ...).", ("reason",)),
    ("realtime_sfu_drops", "RTP/RTCP packets the SFU did not route or forward, by reason "
     "(rtp-unrouted, awaiting-keyframe, duplicate, payload-type-not-negotiated ...).",
     ("reason",)),
    ("realtime_nacks_received", "RTCP NACK packets received from subscribers.", ()),
    ("realtime_retransmissions_sent", "Packets resent from the NACK shield's buffers in "
     "answer to subscribers' NACKs.", ()),
    ("realtime_nacks_sent_upstream", "RTCP NACK packets sent to publishers for gaps in "
     "what they sent.", ()),
    ("realtime_keyframe_requests_received", "PLI/FIR received from subscribers.", ()),
    ("realtime_keyframe_requests_sent_upstream", "PLI/FIR sent to publishers (aggregated "
     "per stream).", ()),
    ("realtime_simulcast_switches", "Simulcast layer switches of subscribers.", ()),
    ("realtime_datachannel_messages", "DataChannel messages the SFU received from clients "
     "(direction=in) and delivered to clients (out).", ("direction",)),
    ("realtime_datachannel_drops", "DataChannel messages not forwarded, by reason.",
     ("reason",)),
)


#: label values whose series exist (at 0) before anything was counted
_ZEROS: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {
    ("direction",): (("in",), ("out",)),
    ("direction", "kind"): tuple((d, k) for d in ("in", "out") for k in ("audio", "video")),
    ("reason",): (),
}


class MediaCollector:
    """Sessions, PeerConnections, tracks and the media path's counters.

    :param peers: the media port's sessions (:class:`realtime.net.peers.PeerHost`:
        ``sessions``, ``port``).
    :param switchboard: the SFU's registry (:class:`realtime.sfu.switchboard.Switchboard`);
        the collector adds itself to its observers, to hold every SFU session
        until the sweep after it closed.
    :param ports: ``name -> protocol`` of UDP/TCP listeners with a ``drops`` counter.
    """

    def __init__(self, peers: Any, switchboard: Any,
                 ports: Mapping[str, Any] | None = None) -> None:
        self.peers = peers
        self.switchboard = switchboard
        self.ports = dict(ports or {})
        self.fold = CounterFold()
        for metric, _, labels in MEDIA_COUNTERS:  # every series from the first scrape on
            for values in _ZEROS.get(labels, ((),)):
                self.fold.totals[(metric, *values)] += 0
        self._sessions: dict[Any, None] = {}
        switchboard.observers.append(self.observe)
        for session in switchboard.sessions.values():
            self.observe(session)

    def observe(self, session: Any) -> None:
        """Hold ``session`` until the sweep after it closed (a switchboard observer)."""
        self._sessions[session] = None

    def sweep(self) -> None:
        """Fold every live object's counters into the totals (at scrapes and on a timer)."""
        fold = self.fold
        fold.begin()
        for session in list(self._sessions):
            _fold_sfu_session(fold, session)
            if session.closed:
                del self._sessions[session]
        for session in list(self.peers.sessions.values()):
            connection = session.connection
            if connection is not None:
                _fold_connection(fold, connection)
        fold.end()

    def collect(self) -> Iterator[Metric]:
        """Yield the current gauges and the folded counters (prometheus-client protocol)."""
        self.sweep()
        sessions = GaugeMetricFamily("realtime_sessions", "Live sessions on this process, by "
                                     "type (sfu, echo, whip ...).", labels=["type"])
        states = Counter({state.value: 0 for state in ConnectionState})
        # SFU sessions live in the switchboard from sessions/new on; the media
        # port's table has them only once negotiated, and has the echo sessions
        types: Counter[str] = Counter({"sfu": len(self.switchboard.sessions), "echo": 0})
        for session in list(self.peers.sessions.values()):
            kind = _session_type(session)
            if kind != "sfu":
                types[kind] += 1
            connection = session.connection
            if connection is not None:
                states[str(connection.state)] += 1
        for name, count in sorted(types.items()):
            sessions.add_metric([name], count)
        yield sessions
        connections = GaugeMetricFamily("realtime_peer_connections",
                                        "PeerConnections by state.", labels=["state"])
        for state, count in sorted(states.items()):
            connections.add_metric([state], count)
        yield connections
        tracks = GaugeMetricFamily("realtime_tracks_published",
                                   "Tracks pushed to the SFU, by media kind.", labels=["kind"])
        pulls = GaugeMetricFamily("realtime_tracks_pulled",
                                  "Subscriptions (pulled tracks), by media kind.",
                                  labels=["kind"])
        published: Counter[str] = Counter({"audio": 0, "video": 0})
        pulled: Counter[str] = Counter({"audio": 0, "video": 0})
        for track in list(self.switchboard.tracks.values()):
            published[track.kind] += 1
            pulled[track.kind] += len(track.subscriptions)
        for kind in sorted(published):
            tracks.add_metric([kind], published[kind])
            pulls.add_metric([kind], pulled[kind])
        yield tracks
        yield pulls
        for metric, documentation, labels in MEDIA_COUNTERS:
            yield self.fold.families(metric, documentation, labels)
        drops = CounterMetricFamily("realtime_port_drops", "Datagrams (or stream frames) a "
                                    "listener dropped before any session took them, by port "
                                    "and reason (malformed-stun, unrouted-rtp ...).",
                                    labels=["port", "reason"])
        for name, port in sorted(self.ports.items()):
            for reason, count in sorted(dict(port.drops).items()):
                drops.add_metric([name, reason], count)
        yield drops


def _session_type(session: Any) -> str:
    name = type(session).__name__
    return {"SfuSession": "sfu", "EchoSession": "echo"}.get(name, name.lower())


def _fold_connection(fold: CounterFold, connection: Any) -> None:
    values: dict[Key, int] = {
        ("realtime_peer_datagrams", "in"): connection.packets_received,
        ("realtime_peer_datagrams", "out"): connection.packets_sent,
        ("realtime_peer_bytes", "in"): connection.bytes_received,
        ("realtime_peer_bytes", "out"): connection.bytes_sent,
    }
    for reason, count in list(connection.drops.items()):
        values[("realtime_peer_drops", reason)] = count
    fold.add(connection, values)


def _fold_sfu_session(fold: CounterFold, session: Any) -> None:
    """Fold one SFU session: its connection, NACK shield, routing, tracks and subscriptions."""
    if session.connection is not None:
        _fold_connection(fold, session.connection)
    rtcp = session.rtcp.counters()
    values: dict[Key, int] = {
        ("realtime_nacks_received",): rtcp["nacksReceived"],
        ("realtime_retransmissions_sent",): rtcp["retransmissionsAnswered"],
        ("realtime_nacks_sent_upstream",): rtcp["nacksSentUpstream"],
        ("realtime_keyframe_requests_sent_upstream",): rtcp["keyframeRequestsSentUpstream"],
    }
    for reason, count in list(session.counters.items()):
        values[("realtime_sfu_drops", reason)] = count
    channels = session.datachannels
    messages = channels.messages
    values[("realtime_datachannel_messages", "in")] = messages["received"]
    values[("realtime_datachannel_messages", "out")] = messages["delivered"]
    for reason, count in list(channels.drops.items()):
        values[("realtime_datachannel_drops", reason)] = count
    fold.add(session, values)
    for transceiver in list(session.transceivers):
        track = transceiver.track
        if track is not None:
            kind = track.kind
            fold.add(track, {
                ("realtime_rtp_packets", "in", kind): track.packets,
                ("realtime_rtp_bytes", "in", kind): track.bytes,
                ("realtime_rtp_packets", "out", kind): track.egress_packets,
                ("realtime_rtp_bytes", "out", kind): track.egress_bytes,
            })
        subscription = transceiver.subscription
        if subscription is None:
            continue
        fold.add(subscription, {
            ("realtime_keyframe_requests_received",): subscription.keyframe_requests})
        forwarder = subscription.forwarder
        if forwarder is not None:
            fold.add(forwarder, {("realtime_sfu_drops", reason): count
                                 for reason, count in list(forwarder.drops.items())})
        selector = subscription.selector
        if selector is not None:
            fold.add(selector, {("realtime_simulcast_switches",): selector.switches})


class TurnCollector:
    """TURN allocations, permissions, channels, relayed bytes and refusals.

    Relayed bytes need no fold: an allocation's counters are reset when its
    usage is drained (every ``--turn-usage-flush``) and vanish when it is
    deleted, but the server moves what they held into ``relayed_before``
    first, so ``relayed_before`` + the live counters only grows, exactly.

    :param server: the sans-I/O :class:`realtime.turn.server.TurnServer`.
    """

    def __init__(self, server: Any) -> None:
        self.server = server

    def sweep(self) -> None:
        """Nothing to fold (see the class docstring); kept for the sweep timer's list."""

    def collect(self) -> Iterator[Metric]:
        """Yield the TURN gauges and counters (prometheus-client protocol)."""
        self.sweep()
        server = self.server
        relayed: Counter[tuple[str, str]] = Counter(
            {(t, k): 0 for t in ("udp", "tcp") for k in ("in", "out", "dropped")})
        relayed.update(dict(server.relayed_before))
        allocations: Counter[str] = Counter({"udp": 0, "tcp": 0})
        permissions: Counter[str] = Counter({"udp": 0, "tcp": 0})
        channels: Counter[str] = Counter({"udp": 0, "tcp": 0})
        for allocation in list(server.allocations.values()):
            transport = "tcp" if allocation.stream else "udp"
            allocations[transport] += 1
            permissions[transport] += len(allocation.permissions)
            channels[transport] += len(allocation.channels)
            relayed[(transport, "in")] += allocation.ingress
            relayed[(transport, "out")] += allocation.egress
            relayed[(transport, "dropped")] += allocation.dropped
        for name, documentation, values in (
                ("realtime_turn_allocations", "Live TURN allocations, by client transport "
                 "(udp; tcp: TCP or TLS).", allocations),
                ("realtime_turn_permissions", "Live TURN permissions, by client transport.",
                 permissions),
                ("realtime_turn_channels", "Live TURN channel bindings, by client transport.",
                 channels)):
            gauge = GaugeMetricFamily(name, documentation, labels=["transport"])
            for transport, count in sorted(values.items()):
                gauge.add_metric([transport], count)
            yield gauge
        family = CounterMetricFamily(
            "realtime_turn_relayed_bytes", "Bytes relayed by TURN allocations, by client "
            "transport and direction (in: from the client; out: to the client).",
            labels=["transport", "direction"])
        drops = CounterMetricFamily(
            "realtime_turn_relayed_drops", "Datagrams TURN allocations did not relay "
            "(rate limits), by client transport.", labels=["transport"])
        for (transport, kind), count in sorted(relayed.items()):
            if kind == "dropped":
                drops.add_metric([transport], count)
            else:
                family.add_metric([transport, kind], count)
        yield family
        yield drops
        drops = CounterMetricFamily("realtime_turn_drops", "TURN inputs dropped, by reason "
                                    "(no-permission, credential, unauthorized-rate-limit ...).",
                                    labels=["reason"])
        for reason, count in sorted(dict(server.drops).items()):
            drops.add_metric([reason], count)
        yield drops
        challenges = CounterMetricFamily(
            "realtime_turn_unauthorized", "TURN 401 answers: 'challenge' (a request without "
            "credentials, the normal first step) or 'integrity' (a wrong or unknown credential).",
            labels=["cause"])
        for cause, count in sorted(dict(server.unauthorized).items()):
            challenges.add_metric([cause], count)
        yield challenges


class ClusterCollector:
    """The node's identity and its relay link's counters (``--cluster``).

    :param node_id: this node's id (a bounded label: the cluster's members).
    :param relay: the :class:`realtime.cluster.relay.RelayLink`.
    :param datachannels: the :class:`realtime.cluster.datachannels.DataChannelRelay`, or None.
    :param rtts: returns the measured RTT (ms) to each other node
        (``ClusterNodeService.rtts``), or None.
    """

    def __init__(self, node_id: str, relay: Any, datachannels: Any = None,
                 rtts: Callable[[], dict[str, float]] | None = None) -> None:
        self.node_id = node_id
        self.relay = relay
        self.datachannels = datachannels
        self.rtts = rtts

    def collect(self) -> Iterator[Metric]:
        """Yield the node info and relay link counters (prometheus-client protocol)."""
        info = GaugeMetricFamily("realtime_node_info", "1, labelled with this node's id.",
                                 labels=["node"])
        info.add_metric([self.node_id], 1)
        yield info
        relay = self.relay
        frames = CounterMetricFamily(
            "realtime_relay_frames", "Relay link frames: sealed (one per packet), sent (one "
            "per destination node), opened (received and authenticated).",
            labels=["node", "event"])
        for event in ("sealed", "sent", "opened"):
            frames.add_metric([self.node_id, event], getattr(relay, event))
        yield frames
        drops = CounterMetricFamily("realtime_relay_drops", "Relay link frames dropped, by "
                                    "reason (non_member, authentication, replay ...).",
                                    labels=["node", "reason"])
        for reason, count in sorted(dict(relay.dropped).items()):
            drops.add_metric([self.node_id, reason], count)
        yield drops
        link_frames = CounterMetricFamily(
            "realtime_relay_link_frames", "Relay link frames per link (the other node) and "
            "direction: out = sent to it, in = opened from it.",
            labels=["node", "peer", "direction"])
        link_bytes = CounterMetricFamily(
            "realtime_relay_link_bytes", "Relay link bytes (whole frames, sealed) per link "
            "and direction.", labels=["node", "peer", "direction"])
        for family, per_direction in ((link_frames, (("out", relay.frames_out),
                                                     ("in", relay.frames_in))),
                                      (link_bytes, (("out", relay.bytes_out),
                                                    ("in", relay.bytes_in)))):
            for direction, per_peer in per_direction:
                for peer, count in sorted(dict(per_peer).items()):
                    family.add_metric([self.node_id, peer, direction], count)
        yield link_frames
        yield link_bytes
        if self.rtts is not None:
            rtt = GaugeMetricFamily(
                "realtime_relay_link_rtt_seconds", "Smoothed round-trip time to the other "
                "node measured on the relay link (PING/PONG every 2 s, RFC 6298 SRTT).",
                labels=["node", "peer"])
            for peer, ms in sorted(self.rtts().items()):
                rtt.add_metric([self.node_id, peer], ms / 1000)
            yield rtt
        if self.datachannels is None:
            return
        messages = CounterMetricFamily(
            "realtime_relay_datachannel_messages", "DataChannel messages over the relay link, "
            "per link (the other node) and direction.", labels=["node", "peer", "direction"])
        for direction, per_node in (("out", self.datachannels.sent),
                                    ("in", self.datachannels.received)):
            for peer, count in sorted(dict(per_node).items()):
                messages.add_metric([self.node_id, peer, direction], count)
        yield messages
