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
``KEEPALIVE``       A → B   empty, every :data:`KEEPALIVE_INTERVAL` while A relays
                            anything to B; B asks to move after :data:`PARENT_SILENCE`
``KEEPALIVE``       B → A   the acknowledgement (stream id :data:`KEEPALIVE_ACK`), sent
                            for each keepalive of a node B pulls from; A stops relaying
                            to B after :data:`CHILD_SILENCE` without one
``LAYERS``          B → A   the simulcast rids B's subscribers and children want
                            (:func:`~realtime.cluster.mirror.wanted_layers`), when it
                            changes and each lease; A relays B only those layers
==================  ======  =====================================================

**Each hop forwards only the layers its subtree needs.**  A node that never
reported gets every layer.  A parent that starts relaying a layer to a child
asks for a key frame of it (its publisher leg at the root, its own
:class:`MirrorLeg` at a relay), after reporting its own new wants upward, so
the key frame that switches the child's subscriber travels the whole path.

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

from collections import Counter, deque
from typing import Any, Callable, cast

from realtime.cluster.mirror import (KEYFRAME_INTERVAL, MirrorLeg, MirrorSession, MirrorTrack,
                                     RelayFanout, decode_layers, encode_layers, stream_id_of,
                                     wanted_layers)
from realtime.cluster.relay import Address, RelayKind, RelayPacketReceived
from realtime.errors import DecodeError
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sfu.track import PublishedTrack

__all__ = ["CHILD_SILENCE", "KEEPALIVE_ACK", "KEYFRAME_INTERVAL", "LEASE", "MirrorLeg",
           "MirrorSession", "MirrorTrack", "PullMachine", "RelayFanout", "stream_id_of"]

#: B repeats ``pull`` for each live mirror this often (seconds): lost messages heal.
LEASE = 3.0
#: A mirror nobody subscribes to is dropped (and A told) after this long (seconds).
IDLE_GRACE = 5.0
#: A node relaying to others sends each of them a KEEPALIVE this often (seconds) ...
KEEPALIVE_INTERVAL = 0.25
#: ... and a mirror that heard nothing from its parent for this long asks to move (seconds):
#: the parent died without leaving the registry, or the link between them is cut.
PARENT_SILENCE = 1.0
#: A KEEPALIVE under this stream id is a child's acknowledgement of its parent's (never
#: answered in turn); a parent's own keepalives carry stream id 0.
KEEPALIVE_ACK = 1
#: A parent stops relaying to a child node it has heard nothing from (no acknowledgement,
#: no ``pull``) for this long (seconds): the child was killed without leaving the registry,
#: whose heartbeat would keep it "live" for up to its TTL (10 s) of wasted relay frames.
#: Checked at each keepalive tick, so a dead child is cut off after 1.0-1.25 s.
CHILD_SILENCE = 1.0
#: A mirror of a simulcast track re-reads what its subtree wants this often (seconds) and
#: reports a change to its parent (a child's report is passed up at once).
LAYERS_INTERVAL = 0.25


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
        self._tree: deque[tuple[str, MirrorTrack]] = deque()
        #: node id -> when its last KEEPALIVE arrived
        self.heard: dict[str, float] = {}
        self._next_keepalive: float | None = None
        self._next_layers: float | None = None
        #: drops and events by reason (never logged per packet)
        self.counters: Counter[str] = Counter()

    # -- B: pulling --------------------------------------------------------------------

    def mirror(self, app_id: str, session_id: str, name: str, owner: str,
               media: NegotiatedMedia, now: float,
               parent: str | None = None) -> MirrorTrack | None:
        """Publish a mirror of ``owner``'s track here and ask ``parent`` to feed it.

        ``parent`` is this node's parent in the track's cascading tree
        (:mod:`realtime.cluster.tree`; default ``owner``, one hop).  Returns
        the existing mirror if there is one; None if ``owner`` or ``parent`` is
        not a live member or another mirror holds the stream id (a 32-bit collision).
        """
        parent = owner if parent is None else parent
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
        if owner not in self.members or parent not in self.members \
                or self.node_id in (owner, parent):
            self.counters["owner-not-member"] += 1
            return None
        leg = MirrorLeg(lambda packet: self._send_rtcp(stream_id, packet), stream_id, self.wake)
        mirror = MirrorTrack(MirrorSession(app_id, session_id, leg), name, media, now,
                             parent, stream_id, self._idle, root=owner)
        self.mirrors[stream_id] = mirror
        for feed, rid in ids.items():
            self.feeds[feed] = (mirror, rid)
        self.board().publish(mirror)
        self._control.append((parent, "pull", session_id, name))
        self.counters["mirrors-made"] += 1
        if self._next_lease is None:
            self._next_lease = now + LEASE
        if mirror.layers is not None and self._next_layers is None:
            self._next_layers = now
        return mirror

    def _report_layers(self, mirror: MirrorTrack) -> None:
        """Tell ``mirror``'s parent which layers its subtree wants, if that changed."""
        if mirror.layers is None or mirror.ended:
            return
        wants = wanted_layers(mirror)
        if mirror.reported is not False and wants == mirror.reported:
            return
        address = self.members.get(mirror.owner)
        if address is not None:
            mirror.reported = wants
            self.send(RelayKind.LAYERS, mirror.stream_id, encode_layers(wants), [address])
            self.counters["layers-reported"] += 1

    def _send_rtcp(self, stream_id: int, packet: bytes) -> None:
        """Send a mirror's NACK/PLI to the node it pulls from (its parent)."""
        mirror = self.mirrors.get(stream_id)
        target = None if mirror is None else self.members.get(mirror.owner)
        if target is not None:
            self.send(RelayKind.RTCP, stream_id, packet, [target])

    def repoint(self, mirror: MirrorTrack, parent: str, now: float) -> bool:
        """Pull ``mirror`` from ``parent`` from now on (the tree moved this node); return
        whether anything changed.  The old parent, if still a member, is told ``unpull``;
        the new one ``pull`` (it starts this node on a key frame, as for any new node)."""
        if parent == mirror.owner or parent == self.node_id or parent not in self.members \
                or self.mirrors.get(mirror.stream_id) is not mirror:
            return False
        if mirror.owner in self.members:
            self._control.append((mirror.owner, "unpull", mirror.session.session_id,
                                  mirror.name))
        mirror.owner = parent
        mirror.pulled_at = now
        mirror.reported = False         # the new parent hears our layers at the next tick
        self._control.append((parent, "pull", mirror.session.session_id, mirror.name))
        self.counters["repoints"] += 1
        return True

    @property
    def has_tree_events(self) -> bool:
        """Return whether tree events wait (:meth:`tree_events`)."""
        return bool(self._tree)

    def tree_events(self) -> list[tuple[str, MirrorTrack]]:
        """Return and forget ``(event, mirror)``: ``"leave"`` (no local subscriber any more:
        detach this node from the track's tree), ``"orphan"`` (its parent left the
        registry, the owner has not: repair the tree), ``"check"`` (each lease: is the
        parent the tree holds still the one pulled from?), ``"silent"`` (no KEEPALIVE
        from the parent for :data:`PARENT_SILENCE`: move away from it)."""
        out = list(self._tree)
        self._tree.clear()
        return out

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
        if not mirror.left:
            mirror.left = True
            self._tree.append(("leave", mirror))
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
        elif kind == RelayKind.LAYERS:
            self._receive_layers(packet, now)
        elif kind == RelayKind.KEEPALIVE:
            sender = packet.sender
            self.heard[sender] = now
            if packet.stream_id != KEEPALIVE_ACK:   # a parent's: acknowledge if we pull from it
                address = self.members.get(sender)
                if address is not None \
                        and any(m.owner == sender for m in self.mirrors.values()):
                    self.send(RelayKind.KEEPALIVE, KEEPALIVE_ACK, b"", [address])
        else:
            self.counters["kind-not-handled"] += 1

    # -- A: serving pulls ---------------------------------------------------------------

    def _receive_layers(self, packet: RelayPacketReceived, now: float) -> None:
        """A child node's LAYERS: relay it only those; pass the change up; key frames."""
        fanout = self.fanouts.get(packet.stream_id)
        if fanout is None:
            self.counters["layers-no-fanout"] += 1
            return
        try:
            wants = decode_layers(packet.payload)
        except DecodeError:
            self.counters["layers-malformed"] += 1
            return
        newly = fanout.set_wants(packet.sender, wants)
        track = fanout.track
        if isinstance(track, MirrorTrack):
            self._report_layers(track)      # our parent relays the layer before we ask
        for rid in newly:
            track.request_keyframe(rid, now)
        self.counters["layers-received"] += 1

    def receive_control(self, action: str, from_node: str, session_id: str, name: str,
                        now: float) -> None:
        """Handle ``pull`` / ``unpull`` from another node."""
        stream_id = stream_id_of(session_id, name)
        if action == "pull":
            address = self.members.get(from_node)
            if address is None:
                self.counters["pull-from-non-member"] += 1
                return
            self.heard[from_node] = max(self.heard.get(from_node, now), now)   # a sign of life
            fanout = self.fanouts.get(stream_id)
            if fanout is None or fanout.track.ended:
                track = self._local_track(session_id, name, from_node)
                if track is None:
                    self.counters["pull-unknown-track"] += 1
                    return
                fanout = self.fanouts[stream_id] = RelayFanout(track, stream_id, self.send)
                fanout.add_node(from_node, address)
                # a RelayFanout has the interface of a Subscription that receive_rtp uses
                track.attach(cast(Any, fanout), now)   # asks for a key frame (video)
                self.counters["pulls-served"] += 1
                if self._next_keepalive is None:
                    self._next_keepalive = now
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

    def _local_track(self, session_id: str, name: str,
                     for_node: str) -> PublishedTrack | None:
        """Return the track to relay to ``for_node``: the publisher's here, else this
        node's mirror of it (a relay node in a cascading tree), never a mirror fed
        by ``for_node`` itself (a cycle)."""
        board = self.board()
        session = board.get(session_id)
        if session is not None:
            track = board.find(session.app_id, session_id, name)
            if track is not None and not isinstance(track, MirrorTrack):
                return track
        mirror = self.mirrors.get(stream_id_of(session_id, name))
        if mirror is None or mirror.ended or mirror.owner == for_node \
                or (mirror.session.session_id, mirror.name) != (session_id, name):
            return None
        return mirror

    def _drop_fanout(self, fanout: RelayFanout) -> None:
        if self.fanouts.get(fanout.stream_id) is fanout:
            del self.fanouts[fanout.stream_id]
        fanout.track.detach(cast(Any, fanout))
        fanout.end()

    # -- both ---------------------------------------------------------------------------

    def set_members(self, members: dict[str, Address]) -> None:
        """Take the registry's live nodes: feeds to and from departed nodes stop."""
        self.members = dict(members)
        for node_id in [n for n in self.heard if n not in members]:
            del self.heard[node_id]
        for fanout in list(self.fanouts.values()):
            for node_id, address in list(fanout.nodes.items()):
                if members.get(node_id) != address:
                    fanout.remove_node(node_id)
                    self.counters["fanout-node-left"] += 1
            if not fanout.nodes:
                self._drop_fanout(fanout)
        for mirror in list(self.mirrors.values()):
            if mirror.root not in members:
                self.counters["mirror-owner-left"] += 1
                mirror.left = True          # the tree ended with its root
                self.drop_mirror(mirror, tell_owner=False)
            elif mirror.owner not in members:
                self.counters["mirror-parent-left"] += 1
                self._tree.append(("orphan", mirror))

    def handle_timer(self, now: float) -> None:
        """Send B's due NACKs and PLIs; renew pulls (lease); drop idle and ended mirrors."""
        for mirror in list(self.mirrors.values()):
            if mirror.ended:
                self.drop_mirror(mirror)
                continue
            idle = mirror.idle_since
            if idle is not None and now - idle >= IDLE_GRACE \
                    and not mirror.local_subscribers():
                if not mirror.subscriptions:
                    self.drop_mirror(mirror)
                    continue
                if not mirror.left:         # children only: leave the tree, they move
                    mirror.left = True
                    self._tree.append(("leave", mirror))
            mirror.session.rtcp.handle_timer(now)
            if not mirror.left and now - max(self.heard.get(mirror.owner, 0.0),
                                             mirror.pulled_at) >= PARENT_SILENCE:
                mirror.pulled_at = now          # asked again after another silence
                self.counters["parent-silent"] += 1
                self._tree.append(("silent", mirror))
        for fanout in list(self.fanouts.values()):
            if fanout.track.ended:
                self._drop_fanout(fanout)
        keepalive = self._next_keepalive
        if keepalive is not None and now >= keepalive:
            self._drop_silent_children(now)
            addresses = list({a for f in self.fanouts.values() for a in f.nodes.values()})
            if addresses:
                self.send(RelayKind.KEEPALIVE, 0, b"", addresses)
            self._next_keepalive = now + KEEPALIVE_INTERVAL if self.fanouts else None
        lease = self._next_lease
        if lease is not None and now >= lease:
            for mirror in self.mirrors.values():
                self._control.append((mirror.owner, "pull", mirror.session.session_id,
                                      mirror.name))
                mirror.reported = False         # report again: a lost LAYERS heals
                if not mirror.left:
                    self._tree.append(("check", mirror))
            self._next_lease = now + LEASE if self.mirrors else None
        layers = self._next_layers
        if layers is not None and now >= layers:
            for mirror in self.mirrors.values():
                self._report_layers(mirror)
            self._next_layers = now + LAYERS_INTERVAL if self.mirrors else None

    def _drop_silent_children(self, now: float) -> None:
        """Stop relaying to child nodes silent for :data:`CHILD_SILENCE` (no acknowledgement
        of our keepalives, no ``pull``).  A child that is alive after all (a burst of loss)
        pulls again at its next lease and is fed again from a key frame."""
        heard = self.heard
        for fanout in list(self.fanouts.values()):
            for node_id in [n for n in fanout.nodes if now - heard.get(n, -1e9) >= CHILD_SILENCE]:
                fanout.remove_node(node_id)
                self.counters["child-silent"] += 1
            if not fanout.nodes:
                self._drop_fanout(fanout)

    def get_timer(self) -> float | None:
        """Return the earliest deadline: a mirror's NACK or PLI, an idle sweep, the lease."""
        deadlines = [t for t in (self._next_lease, self._next_keepalive, self._next_layers)
                     if t is not None]
        for mirror in self.mirrors.values():
            if not mirror.left:
                deadlines.append(max(self.heard.get(mirror.owner, 0.0), mirror.pulled_at)
                                 + PARENT_SILENCE)
            deadline = mirror.session.rtcp.get_timer()
            if deadline is not None:
                deadlines.append(deadline)
            if mirror.idle_since is not None and not (mirror.left and mirror.subscriptions) \
                    and not mirror.local_subscribers():
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
                "owner": m.root, "parent": m.owner, "relayed": m.relayed, "left": m.left,
                "subscribers": len(m.subscriptions), **m.session.rtcp.counters()}
                for m in self.mirrors.values() if app_id in (None, m.session.app_id)},
            "fanouts": {f"{f.track.session.session_id}/{f.track.name}": {
                "nodes": sorted(f.nodes), "packets": f.packets, "frames": f.frames,
                "nacked": f.nacked, "repairs": f.repairs, "unanswered": f.unanswered,
                "keyframeRequests": f.keyframe_requests}
                for f in self.fanouts.values()
                if app_id in (None, f.track.session.app_id)},
        }
