"""
Cross-node pulls: a track published on node A, subscribed on node B, over the relay link.

Issue 12 item 5.  The switchboard of one node knows only its own tracks.
When a pull through node B names a track whose publisher lives on node A,
B builds a **mirror** of it: a :class:`~realtime.sfu.track.PublishedTrack`
(so B's subscribers attach to it exactly as to a local track), registered in
B's switchboard and fed by the relay link rather than by a PeerConnection::

    publisher ─SRTP─> A: PublishedTrack ──┬─> A's own subscribers (Forwarder each)
                                          └─> RelayFanout (one "subscription" per track)
                                               │ one sealed frame per packet, one copy
                                               │ per subscribing node (relay.py)
                            ┌──────────────────┘
                            v
                B: MirrorTrack (PublishedTrack) ──> B's subscribers (Forwarder each)
                     │ own PublishedStream buffers: B's subscribers' NACKs answered at B
                     └ MirrorLeg (B's "publisher leg" towards A): NACKs for the gaps B
                       itself has, PLIs debounced per stream, both as RTCP over the link

Control, over the directory's pub/sub (``rt:control:{node}``, :class:`ControlMessage`):
``pull`` (B → A: relay the track to me; repeated every :data:`LEASE` seconds while the
mirror lives, so a lost message or a restarted A heals) and ``unpull`` (B → A: my last
subscriber left).  Media and its feedback go over the relay link, all under one
**stream id** per track, :func:`stream_id_of` (the same at every node, so A seals a
packet once for all destinations):

==================  ======  =====================================================
relay kind          way     payload
==================  ======  =====================================================
``RTP``             A → B   one RTP packet of the track as A received it (SRTP
                            removed, RTX unwrapped); a simulcast layer's packets
                            under the layer's own stream id
``RTP_REPAIR``      A → B   a packet A resends from its buffer for B's NACK
``RTCP``            B → A   generic NACK (RFC 4585 §6.2.1) for packets B lacks,
                            PLI (RFC 4585 §6.3.1) for key frames B's subscribers want
==================  ======  =====================================================

At A, a node's NACK is answered from the track's own
:class:`~realtime.media.nack.RetransmissionBuffer` (never forwarded to the
publisher; A's publisher leg NACKs only A's own gaps) and a node's PLI goes
to the publisher leg's :class:`~realtime.media.keyframes.KeyframeRequester`,
which already merges every subscriber's and every node's wishes into at most
one PLI per 300 ms.  At B, :class:`MirrorLeg` is a
:class:`~realtime.sfu.feedback.PublisherFeedback` whose "publisher" is A: its
NACK generator sees only what arrived at B, and its keyframe requester sends
at most one PLI per stream per 300 ms whatever the number of B's subscribers.

This module is the sans-I/O machine (DESIGN.md §1): inputs
:meth:`PullMachine.receive_relay`, :meth:`~PullMachine.receive_control`,
:meth:`~PullMachine.set_members`, :meth:`~PullMachine.handle_timer`; outputs
the ``send`` collaborator (seal and send over the relay link, called on the
per-packet path so nothing is queued twice), :meth:`~PullMachine.control_to_send`
and :meth:`~PullMachine.get_timer`.  :mod:`realtime.cluster.remote_tracks` is
its Twisted side.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from typing import Any, Callable, cast

from realtime.cluster.relay import Address, RelayKind, RelayPacketReceived
from realtime.errors import DecodeError
from realtime.rtcp.feedback import FullIntraRequest, GenericNack, PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sfu.feedback import PublisherFeedback
from realtime.sfu.track import PublishedTrack

__all__ = ["LEASE", "MirrorTrack", "PullMachine", "RelayFanout", "stream_id_of"]

#: B repeats ``pull`` for each live mirror this often (seconds): lost messages heal.
LEASE = 3.0
#: A mirror nobody subscribes to is dropped (and A told) after this long (seconds).
IDLE_GRACE = 5.0
#: B's PLIs towards A for one stream: at most one per this many seconds.
KEYFRAME_INTERVAL = 0.3
_NO_REPORTS = 1e9   # MirrorLeg sends NACK and PLI, never receiver reports


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
        self._sending = stream_id       # the id of the packet being forwarded
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
        self._addresses = list(self.nodes.values())
        return new

    def remove_node(self, node_id: str) -> None:
        """Stop relaying to ``node_id``."""
        self.nodes.pop(node_id, None)
        self._addresses = list(self.nodes.values())

    # -- what PublishedTrack.receive_rtp asks of a subscription -----------------------

    @property
    def can_send_media(self) -> bool:
        return bool(self._addresses)

    def forward(self, packet: bytes, stream: Any, keyframe: bool, now: float) -> bytes:
        self._sending = self.layer_id(stream.rid)
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
        addresses = self._addresses
        self.send(RelayKind.RTP, self._sending, packet, addresses)
        self.packets += 1
        self.frames += len(addresses)
        return True

    def current_rid(self) -> None:
        return None

    def end(self) -> None:
        """The track ended (PublishedTrack.end): forget every node."""
        self.nodes.clear()
        self._addresses = []

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

    :param owner: the node that owns the publisher.
    :param stream_id: the track's relay stream id.
    :param on_idle: called when the last subscriber detaches.
    """

    def __init__(self, session: MirrorSession, name: str, media: NegotiatedMedia, now: float,
                 owner: str, stream_id: int, on_idle: Callable[[MirrorTrack], None]) -> None:
        super().__init__(session, media.mid, name, media, now)
        self.owner = owner
        self.stream_id = stream_id
        self.on_idle = on_idle
        self.idle_since: float | None = now
        self.relayed = 0

    def attach(self, subscription: Any, now: float) -> None:
        self.idle_since = None
        super().attach(subscription, now)

    def detach(self, subscription: Any) -> None:
        super().detach(subscription)
        if not self.subscriptions and not self.ended:
            self.on_idle(self)


class PullMachine:
    """Both ends of cross-node pulls for one node (see the module docstring).

    :param node_id: this node.
    :param board: returns this node's :class:`~realtime.sfu.switchboard.Switchboard`.
    :param send: ``send(kind, stream_id, payload, addresses)``: seal once, send to each address.
    :param wake: called when :meth:`get_timer` may have moved earlier outside this
        machine's own inputs (a mirror's new gap or keyframe request): the I/O
        side re-reads it.  Inputs through this machine's methods need no wake.
    """

    def __init__(self, node_id: str, board: Callable[[], Any],
                 send: Callable[[RelayKind, int, bytes, list[Address]], None],
                 wake: Callable[[], None] = lambda: None) -> None:
        self.node_id = node_id
        self.board = board
        self.send = send
        self.wake = wake
        #: live node id -> relay address (the registry, via the relay link's refresh)
        self.members: dict[str, Address] = {}
        #: B side: stream id -> mirror of a remote track
        self.mirrors: dict[int, MirrorTrack] = {}
        #: B side: every stream id a mirror receives (the track's, one per simulcast
        #: layer) -> (mirror, rid): one lookup per relayed packet
        self.feeds: dict[int, tuple[MirrorTrack, str | None]] = {}
        #: A side: stream id -> fan-out of a local track to subscribing nodes
        self.fanouts: dict[int, RelayFanout] = {}
        self._control: deque[tuple[str, str, str, str]] = deque()
        self._next_lease: float | None = None
        #: drops and events by reason (never logged per packet)
        self.counters: Counter[str] = Counter()

    # -- B: pulling --------------------------------------------------------------------

    def mirror(self, app_id: str, session_id: str, name: str, owner: str,
               media: NegotiatedMedia, now: float) -> MirrorTrack | None:
        """Publish a mirror of ``owner``'s track here and ask ``owner`` to feed it.

        Returns the existing mirror if there is one; None if ``owner`` is not
        a live member or another mirror holds the stream id (a 32-bit collision).
        """
        stream_id = stream_id_of(session_id, name)
        mirror = self.mirrors.get(stream_id)
        if mirror is not None and not mirror.ended \
                and (mirror.session.session_id, mirror.name) == (session_id, name):
            return mirror
        ids = {stream_id: None, **{stream_id_of(session_id, name, rid): rid
                                   for rid in media.remote_rids}}
        taken = [i for i in ids if i in self.feeds and not self.feeds[i][0].ended]
        if taken or len(ids) != 1 + len(media.remote_rids):
            self.counters["stream-id-collision"] += 1
            return None
        address = self.members.get(owner)
        if address is None or owner == self.node_id:
            self.counters["owner-not-member"] += 1
            return None

        def send_rtcp(packet: bytes) -> None:
            target = self.members.get(owner)
            if target is not None:
                self.send(RelayKind.RTCP, stream_id, packet, [target])

        leg = MirrorLeg(send_rtcp, stream_id, self.wake)
        mirror = MirrorTrack(MirrorSession(app_id, session_id, leg), name, media, now,
                             owner, stream_id, self._idle)
        self.mirrors[stream_id] = mirror
        for feed, rid in ids.items():
            self.feeds[feed] = (mirror, rid)
        self.board().publish(mirror)
        self._control.append((owner, "pull", session_id, name))
        self.counters["mirrors-made"] += 1
        if self._next_lease is None:
            self._next_lease = now + LEASE
        return mirror

    def _idle(self, mirror: MirrorTrack) -> None:
        # Called from detach (no ``now`` there): the sweep in handle_timer drops it.
        mirror.idle_since = mirror.last_packet_time or mirror.created

    def drop_mirror(self, mirror: MirrorTrack, tell_owner: bool = True) -> None:
        """Unpublish ``mirror`` (its subscribers' sections go quiet) and tell its owner to stop."""
        if self.mirrors.get(mirror.stream_id) is mirror:
            del self.mirrors[mirror.stream_id]
        for feed in [i for i, (m, _) in self.feeds.items() if m is mirror]:
            del self.feeds[feed]
        self.board().unpublish(mirror)
        if tell_owner:
            self._control.append((mirror.owner, "unpull", mirror.session.session_id,
                                  mirror.name))
        self.counters["mirrors-dropped"] += 1

    def receive_relay(self, packet: RelayPacketReceived, now: float) -> None:
        """Take one authenticated relay packet (RTP into a mirror, RTCP into a fan-out)."""
        kind = packet.kind
        if kind == RelayKind.RTP or kind == RelayKind.RTP_REPAIR:
            feed = self.feeds.get(packet.stream_id)
            if feed is None or feed[0].owner != packet.sender:
                self.counters["rtp-no-mirror"] += 1
                return
            mirror, rid = feed
            data = packet.payload
            if len(data) < 12:
                self.counters["rtp-malformed"] += 1
                return
            ssrc = int.from_bytes(data[8:12], "big")
            stream = mirror.streams.get(ssrc) or mirror.learn(ssrc, rid)
            if stream is None:
                self.counters["rtp-too-many-streams"] += 1
                return
            if stream.rid is None and rid is not None and rid not in mirror.by_rid:
                stream.rid = rid            # a signalled SSRC: its layer named by the frame
                mirror.by_rid[rid] = stream
            try:
                mirror.receive_rtp(data, stream, now, kind == RelayKind.RTP_REPAIR)
            except DecodeError:
                self.counters["rtp-malformed"] += 1
                return
            mirror.relayed += 1
        elif kind == RelayKind.RTCP:
            fanout = self.fanouts.get(packet.stream_id)
            if fanout is None:
                self.counters["rtcp-no-fanout"] += 1
                return
            try:
                fanout.receive_rtcp(packet.sender, packet.payload, now)
            except DecodeError:
                self.counters["rtcp-malformed"] += 1
        else:
            self.counters["kind-not-handled"] += 1

    # -- A: serving pulls ---------------------------------------------------------------

    def receive_control(self, action: str, from_node: str, session_id: str, name: str,
                        now: float) -> None:
        """Handle ``pull`` / ``unpull`` from another node."""
        stream_id = stream_id_of(session_id, name)
        if action == "pull":
            address = self.members.get(from_node)
            if address is None:
                self.counters["pull-from-non-member"] += 1
                return
            fanout = self.fanouts.get(stream_id)
            if fanout is None or fanout.track.ended:
                track = self._local_track(session_id, name)
                if track is None:
                    self.counters["pull-unknown-track"] += 1
                    return
                fanout = self.fanouts[stream_id] = RelayFanout(track, stream_id, self.send)
                fanout.add_node(from_node, address)
                # a RelayFanout has the interface of a Subscription that receive_rtp uses
                track.attach(cast(Any, fanout), now)   # asks for a key frame (video)
                self.counters["pulls-served"] += 1
            elif fanout.add_node(from_node, address):
                self.counters["pulls-served"] += 1
                if fanout.track.kind == "video":   # the new node starts on a key frame
                    fanout.track.request_keyframe(None, now)
        elif action == "unpull":
            fanout = self.fanouts.get(stream_id)
            if fanout is not None:
                fanout.remove_node(from_node)
                if not fanout.nodes:
                    self._drop_fanout(fanout)
                self.counters["unpulls"] += 1

    def _local_track(self, session_id: str, name: str) -> PublishedTrack | None:
        board = self.board()
        session = board.get(session_id)
        if session is None:
            return None
        track = board.find(session.app_id, session_id, name)
        return None if isinstance(track, MirrorTrack) else track

    def _drop_fanout(self, fanout: RelayFanout) -> None:
        if self.fanouts.get(fanout.stream_id) is fanout:
            del self.fanouts[fanout.stream_id]
        fanout.track.detach(cast(Any, fanout))
        fanout.end()

    # -- both ---------------------------------------------------------------------------

    def set_members(self, members: dict[str, Address]) -> None:
        """Take the registry's live nodes: feeds to and from departed nodes stop."""
        self.members = dict(members)
        for fanout in list(self.fanouts.values()):
            for node_id, address in list(fanout.nodes.items()):
                if members.get(node_id) != address:
                    fanout.remove_node(node_id)
                    self.counters["fanout-node-left"] += 1
            if not fanout.nodes:
                self._drop_fanout(fanout)
        for mirror in list(self.mirrors.values()):
            if mirror.owner not in members:
                self.counters["mirror-owner-left"] += 1
                self.drop_mirror(mirror, tell_owner=False)

    def handle_timer(self, now: float) -> None:
        """Send B's due NACKs and PLIs; renew pulls (lease); drop idle and ended mirrors."""
        for mirror in list(self.mirrors.values()):
            if mirror.ended:
                self.drop_mirror(mirror)
                continue
            idle = mirror.idle_since
            if idle is not None and not mirror.subscriptions and now - idle >= IDLE_GRACE:
                self.drop_mirror(mirror)
                continue
            mirror.session.rtcp.handle_timer(now)
        for fanout in list(self.fanouts.values()):
            if fanout.track.ended:
                self._drop_fanout(fanout)
        lease = self._next_lease
        if lease is not None and now >= lease:
            for mirror in self.mirrors.values():
                self._control.append((mirror.owner, "pull", mirror.session.session_id,
                                      mirror.name))
            self._next_lease = now + LEASE if self.mirrors else None

    def get_timer(self) -> float | None:
        """Return the earliest deadline: a mirror's NACK or PLI, an idle sweep, the lease."""
        deadlines = [self._next_lease] if self._next_lease is not None else []
        for mirror in self.mirrors.values():
            deadline = mirror.session.rtcp.get_timer()
            if deadline is not None:
                deadlines.append(deadline)
            if mirror.idle_since is not None and not mirror.subscriptions:
                deadlines.append(mirror.idle_since + IDLE_GRACE)
        for fanout in self.fanouts.values():
            if fanout.track.ended:
                deadlines.append(0.0)
        return min(deadlines) if deadlines else None

    @property
    def has_control(self) -> bool:
        """Return whether control messages wait (:meth:`control_to_send`)."""
        return bool(self._control)

    def control_to_send(self) -> list[tuple[str, str, str, str]]:
        """Return and forget ``(to_node, action, session_id, track_name)`` messages to publish."""
        out = list(self._control)
        self._control.clear()
        return out

    def stats(self, app_id: str | None = None) -> dict[str, Any]:
        """Return the counters an operator (or a test) reads, per mirror and per fan-out.

        ``app_id``: only that app's mirrors and fan-outs (``/diagnostics`` is per app).
        """
        return {
            "counters": dict(self.counters),
            "mirrors": {f"{m.session.session_id}/{m.name}": {
                "owner": m.owner, "relayed": m.relayed,
                "subscribers": len(m.subscriptions), **m.session.rtcp.counters()}
                for m in self.mirrors.values() if app_id in (None, m.session.app_id)},
            "fanouts": {f"{f.track.session.session_id}/{f.track.name}": {
                "nodes": sorted(f.nodes), "packets": f.packets, "frames": f.frames,
                "nacked": f.nacked, "repairs": f.repairs, "unanswered": f.unanswered,
                "keyframeRequests": f.keyframe_requests}
                for f in self.fanouts.values()
                if app_id in (None, f.track.session.app_id)},
        }
