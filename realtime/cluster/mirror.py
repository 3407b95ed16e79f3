"""
The two ends of one relay hop for one track: :class:`RelayFanout` (the sending node) and
:class:`MirrorTrack` with its :class:`MirrorLeg` (the receiving node).

Split out of :mod:`realtime.cluster.pulls` (whose module docstring draws the
picture) when cascading trees (issue 13, :mod:`realtime.cluster.tree`) made a
mirror able to feed further nodes: a :class:`RelayFanout` now stands in the
subscription list of a local track *or of a mirror*, so a relay node answers
its children's NACKs from its own mirror's buffers and passes their key frame
requests to its :class:`MirrorLeg`, which NACKs its own parent only for its own
gaps and sends at most one PLI per stream per :data:`KEYFRAME_INTERVAL`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Callable

from realtime.cluster.relay import Address, RelayKind
from realtime.errors import DecodeError
from realtime.media.simulcast import NONE
from realtime.rtcp.feedback import FullIntraRequest, GenericNack, PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sfu.feedback import PublisherFeedback
from realtime.sfu.track import PublishedTrack

__all__ = ["KEYFRAME_INTERVAL", "MirrorLeg", "MirrorSession", "MirrorTrack", "RelayFanout",
           "decode_layers", "encode_layers", "stream_id_of", "wanted_layers"]

#: B's PLIs towards A for one stream: at most one per this many seconds.
KEYFRAME_INTERVAL = 0.3
_NO_REPORTS = 1e9   # MirrorLeg sends NACK and PLI, never receiver reports
#: A LAYERS payload meaning "every layer" (a subscriber whose choice depends on which layers
#: are active, which only the root knows); otherwise the rids, comma-separated.
ALL_LAYERS = b"*"
_MAX_LAYERS = 16     # RFC 8853 allows any number; browsers send 3: more is hostile
_MAX_RID = 32        # RFC 8852 §3.1 rids are short tokens (browsers: 1 character)


# -- which layers a subtree wants (issue 13: each hop forwards only those) ---------------


def subscription_wants(subscription: Any) -> frozenset[str] | None:
    """Return the rids a subscription may need from a simulcast track, None for "any".

    From its preferences (``tracks/new`` / ``tracks/update``), not from the
    layer its :class:`~realtime.media.simulcast.LayerSelector` picked: the
    selector picks among the layers *active here*, which are only those
    relayed here, so deriving the report from its choice would never let a
    better layer back in.  A subscriber preferring ``h`` with no fallback
    wants ``h``; stepping down a-z under bandwidth (``priorityOrdering``)
    adds the layers below it; "the best active layer" (no preference) or a
    fallback to another active one (``ridNotAvailable``) needs every layer.
    The layer it shows now stays wanted until a switch away from it is done.
    """
    if isinstance(subscription, RelayFanout):
        return subscription.wanted()
    selector = getattr(subscription, "selector", None)
    if selector is None:
        return None if getattr(subscription, "forwarder", None) is not None else frozenset()
    prefs = selector.preferences
    preferred = prefs.preferred_rid
    if preferred is None or prefs.rid_not_available != NONE:
        return None
    wants = {preferred}
    if prefs.priority_ordering != NONE:
        wants.update(rid for rid in selector.layers.ordered() if rid > preferred)
    if selector.current is not None:
        wants.add(selector.current)
    return frozenset(wants)


def wanted_layers(track: PublishedTrack) -> frozenset[str] | None:
    """Return the union of what every subscription of ``track`` wants (None: every layer)."""
    union: set[str] = set()
    for subscription in track.subscriptions:
        wants = subscription_wants(subscription)
        if wants is None:
            return None
        union |= wants
    return frozenset(union)


def encode_layers(wants: frozenset[str] | None) -> bytes:
    """Return a LAYERS payload: ``*`` or the rids, sorted, comma-separated (ASCII)."""
    return ALL_LAYERS if wants is None else ",".join(sorted(wants)).encode("ascii")


def decode_layers(payload: bytes) -> frozenset[str] | None:
    """Parse a LAYERS payload from another node.

    :raises DecodeError: not ASCII, too many rids, or a rid that is not a short
        alphanumeric token (RFC 8851 §10 ``rid-id``: ALPHA / DIGIT / ``-`` / ``_``).
    """
    if payload == ALL_LAYERS:
        return None
    if not payload:
        return frozenset()
    try:
        rids = bytes(payload).decode("ascii").split(",")
    except UnicodeDecodeError:
        raise DecodeError("LAYERS payload is not ASCII") from None
    if len(rids) > _MAX_LAYERS:
        raise DecodeError(f"LAYERS payload names {len(rids)} rids")
    for rid in rids:
        if not 0 < len(rid) <= _MAX_RID or not rid.replace("-", "").replace("_", "").isalnum():
            raise DecodeError("LAYERS payload holds a malformed rid")
    return frozenset(rids)


def stream_id_of(session_id: str, track_name: str, rid: str | None = None) -> int:
    """Return the relay stream id of a track (or of its simulcast layer ``rid``).

    32 bits of SHA-256 over the names, so every node agrees without asking.
    Each layer has its own id so that the receiving node knows a packet's
    layer from the frame alone: browsers name the layer (RFC 8852
    RtpStreamId) on a stream's first packets only, which a node that starts
    mirroring later never sees.
    """
    text = f"{session_id}\0{track_name}" if rid is None else f"{session_id}\0{track_name}\0{rid}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


# -- A's side: one relay "subscription" per track ---------------------------------------


class RelayFanout:
    """Send one local track's packets to every subscribing node: one sealed frame per packet.

    It stands in the track's subscription list like a
    :class:`~realtime.sfu.track.Subscription` (PublishedTrack's per-packet loop
    needs ``session.can_send_media``, ``selector``, ``forwarder.forward`` and
    ``session.send_rtp``): it is its own session and its own forwarder, and
    forwards every packet unchanged (no rewriting: B's forwarders do that).

    :param send: ``send(kind, stream_id, payload, addresses)``, the relay port's.
    """

    selector = None
    mid = ""

    def __init__(self, track: PublishedTrack, stream_id: int,
                 send: Callable[[RelayKind, int, bytes, list[Address]], None]) -> None:
        self.track = track
        self.stream_id = stream_id
        self.send = send
        #: simulcast rid -> its layer's stream id (filled as layers show up)
        self._layer_ids: dict[str, int] = {}
        #: rid (None: not simulcast) -> (stream id, addresses of the nodes that want it):
        #: the one lookup per packet; rebuilt when a node or its wants change
        self._routes: dict[str | None, tuple[int, list[Address]]] = {}
        self._sending = stream_id       # the id of the packet being forwarded ...
        self._targets: list[Address] = []   # ... and the nodes it goes to
        #: node id -> the rids its subtree wants (LAYERS); absent or None: every layer
        self.wants: dict[str, frozenset[str] | None] = {}
        self.session = self
        self.forwarder = self
        #: subscribing node id -> its relay address
        self.nodes: dict[str, Address] = {}
        self._addresses: list[Address] = []
        self.drops: Counter[str] = Counter()
        #: packets sealed (one per RTP packet) and frames sent (packets x nodes)
        self.packets = 0
        self.frames = 0
        #: sequence numbers nodes asked for, resent from the buffer, not buffered any more
        self.nacked = 0
        self.repairs = 0
        self.unanswered = 0
        self.keyframe_requests = 0

    # -- nodes --------------------------------------------------------------------

    def add_node(self, node_id: str, address: Address) -> bool:
        """Relay to ``node_id`` too; return whether it is new."""
        new = self.nodes.get(node_id) != address
        self.nodes[node_id] = address
        if new:
            self.wants.pop(node_id, None)   # every layer until it reports
        self._addresses = list(self.nodes.values())
        self._routes.clear()
        return new

    def remove_node(self, node_id: str) -> None:
        """Stop relaying to ``node_id``."""
        self.nodes.pop(node_id, None)
        self.wants.pop(node_id, None)
        self._addresses = list(self.nodes.values())
        self._routes.clear()

    def set_wants(self, node_id: str, wants: frozenset[str] | None) -> list[str]:
        """Relay to ``node_id`` only the layers ``wants`` names (None: all); return the rids
        it newly wants, whose key frames the caller asks for (the child switches on one)."""
        if node_id not in self.nodes:
            self.drops["layers-from-non-subscriber"] += 1
            return []
        old = self.wants.get(node_id)
        self.wants[node_id] = wants
        self._routes.clear()
        layers = self.track.layers
        if wants is None or old is None or layers is None:
            return [] if old is None or layers is None else sorted(set(layers.layers) - old)
        return sorted(wants - old)

    def wanted(self) -> frozenset[str] | None:
        """Return the union of the nodes' wants (None: some node wants every layer)."""
        union: set[str] = set()
        for node_id in self.nodes:
            wants = self.wants.get(node_id)
            if wants is None:
                return None
            union |= wants
        return frozenset(union)

    def _route(self, rid: str | None) -> tuple[int, list[Address]]:
        route = (self.layer_id(rid), self._addresses if rid is None else [
            address for node_id, address in self.nodes.items()
            if (wants := self.wants.get(node_id)) is None or rid in wants])
        self._routes[rid] = route
        return route

    # -- what PublishedTrack.receive_rtp asks of a subscription -----------------------

    @property
    def can_send_media(self) -> bool:
        return bool(self._addresses)

    def forward(self, packet: bytes, stream: Any, keyframe: bool, now: float) -> bytes:
        rid = stream.rid
        self._sending, self._targets = self._routes.get(rid) or self._route(rid)
        return packet

    def layer_id(self, rid: str | None) -> int:
        """Return the stream id a packet of layer ``rid`` travels under (the track's if None)."""
        if rid is None:
            return self.stream_id
        layer = self._layer_ids.get(rid)
        if layer is None:
            layer = self._layer_ids[rid] = stream_id_of(self.track.session.session_id,
                                                         self.track.name, rid)
        return layer

    def take_keyframe_wanted(self) -> bool:
        return False

    def send_rtp(self, packet: bytes) -> bool:
        addresses = self._targets
        if not addresses:
            return True         # a layer no node below wants
        self.send(RelayKind.RTP, self._sending, packet, addresses)
        self.packets += 1
        self.frames += len(addresses)
        return True

    def current_rid(self) -> None:
        return None

    def end(self) -> None:
        """The track ended (PublishedTrack.end): forget every node."""
        self.nodes.clear()
        self.wants.clear()
        self._addresses = []
        self._routes.clear()

    # -- feedback from a node ----------------------------------------------------------

    def receive_rtcp(self, node_id: str, payload: bytes, now: float) -> None:
        """Answer a node's NACK from the track's buffers; pass its PLI/FIR to the publisher leg.

        :raises DecodeError: the compound is malformed (the caller counts it).
        """
        address = self.nodes.get(node_id)
        if address is None:
            self.drops["rtcp-from-non-subscriber"] += 1
            return
        track = self.track
        for packet in decode_compound(payload):
            if isinstance(packet, GenericNack):
                stream = track.streams.get(packet.media_ssrc)
                lost = packet.lost_sequence_numbers()
                self.nacked += len(lost)
                for seq in lost:
                    original = None if stream is None else stream.buffer.get(seq)
                    if original is None:
                        self.unanswered += 1
                        continue
                    layer = self.layer_id(stream.rid if stream is not None else None)
                    self.send(RelayKind.RTP_REPAIR, layer, original, [address])
                    self.repairs += 1
            elif isinstance(packet, (PictureLossIndication, FullIntraRequest)):
                ssrcs = [packet.media_ssrc] if isinstance(packet, PictureLossIndication) \
                    else [entry.ssrc for entry in packet.entries]
                for ssrc in ssrcs:
                    if ssrc in track.streams:
                        self.keyframe_requests += 1
                        track.session.rtcp.request_keyframe(ssrc, now)


# -- B's side: the mirror ---------------------------------------------------------------


class MirrorSession:
    """The publisher a mirror names: the remote session's ids, and B's feedback leg towards A."""

    def __init__(self, app_id: str, session_id: str, rtcp: MirrorLeg) -> None:
        self.app_id = app_id
        self.session_id = session_id
        self.rtcp = rtcp


class MirrorLeg:
    """B's RTCP towards the owner node for one mirror: NACKs for B's own gaps, debounced PLIs.

    Has the interface :class:`~realtime.sfu.track.PublishedTrack` uses of its
    publisher session's :class:`~realtime.sfu.rtcp_legs.RtcpLegs`.

    :param send_rtcp: sends one RTCP datagram to the owner node.
    :param wake: called when this leg has a deadline the I/O side may not know
        (a new gap, a keyframe request made from a subscriber's RTCP).
    """

    def __init__(self, send_rtcp: Callable[[bytes], None], ssrc: int,
                 wake: Callable[[], None]) -> None:
        self.feedback = PublisherFeedback(ssrc, report_interval=_NO_REPORTS,
                                          keyframe_interval=KEYFRAME_INTERVAL)
        self.send_rtcp = send_rtcp
        self.wake = wake

    def add_source(self, ssrc: int, clock_rate: int, codecs: Any) -> None:
        if ssrc not in self.feedback.sources:
            nack = any(("nack", None) in c.feedback for c in codecs if not c.is_rtx)
            self.feedback.add_source(ssrc, clock_rate, nack=nack)

    def remove_source(self, ssrc: int) -> None:
        self.feedback.remove_source(ssrc)

    def receive_rtp(self, ssrc: int, sequence_number: int, timestamp: int, keyframe: bool,
                    now: float, retransmission: bool = False) -> None:
        feedback = self.feedback
        feedback.receive_rtp(ssrc, sequence_number, timestamp, keyframe, now, retransmission)
        source = feedback.sources.get(ssrc)
        if source is not None and source.nacks is not None \
                and source.nacks.get_timer() is not None:   # None at once when nothing is missing
            self.wake()

    def request_keyframe(self, ssrc: int, now: float) -> None:
        self.feedback.request_keyframe(ssrc, now)
        self.handle_timer(now)
        self.wake()     # the request repeats each second until a key frame arrives

    def handle_timer(self, now: float) -> None:
        self.feedback.handle_timer(now)
        for packet in self.feedback.rtcp_to_send():
            self.send_rtcp(packet)

    def get_timer(self) -> float | None:
        return self.feedback.get_timer()

    def counters(self) -> dict[str, int]:
        return {"nacksSent": self.feedback.nacks_sent,
                "keyframeRequestsSent": self.feedback.keyframe_requests_sent}


class MirrorTrack(PublishedTrack):
    """A track of another node, published here, fed by the relay link.

    In a cascading tree (:mod:`realtime.cluster.tree`) the node it pulls from,
    ``owner``, is its parent, which may itself hold a mirror; ``root`` is the
    node holding the publisher.  Its subscriptions are this node's subscribers
    and, on a relay node, one :class:`RelayFanout` towards its children.

    :param owner: the node this mirror pulls from (its parent; the owner of the
        publisher in a one-hop pull).
    :param stream_id: the track's relay stream id.
    :param on_idle: called when the last *local* subscriber detaches.
    :param root: the node that owns the publisher (default: ``owner``).
    """

    def __init__(self, session: MirrorSession, name: str, media: NegotiatedMedia, now: float,
                 owner: str, stream_id: int, on_idle: Callable[[MirrorTrack], None],
                 root: str | None = None) -> None:
        super().__init__(session, media.mid, name, media, now)
        self.owner = owner
        self.root = owner if root is None else root
        self.stream_id = stream_id
        self.on_idle = on_idle
        self.idle_since: float | None = now
        #: out of the tree (no local subscriber for the grace): relays only to
        #: children that are moving to other parents, then is dropped
        self.left = False
        #: when it last asked ``owner`` to feed it, or last suspected it (parent silence)
        self.pulled_at = now
        self.relayed = 0
        #: the layers last reported to the parent (LAYERS); ``False``: not reported yet
        self.reported: frozenset[str] | None | bool = False

    def local_subscribers(self) -> int:
        """Return how many of this node's subscribers (not relay fan-outs) are attached."""
        return sum(1 for s in self.subscriptions if not isinstance(s, RelayFanout))

    def attach(self, subscription: Any, now: float) -> None:
        if not isinstance(subscription, RelayFanout):
            self.idle_since = None
        super().attach(subscription, now)

    def detach(self, subscription: Any) -> None:
        super().detach(subscription)
        if not self.ended and self.idle_since is None and not self.local_subscribers():
            self.on_idle(self)
