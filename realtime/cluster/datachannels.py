"""
DataChannel publications across nodes: subscribe through any node, messages once per node.

Cloudflare's ``datachannels/new`` lets a session publish a channel
(``location: "local"``) and any session of the app subscribe to it
(``location: "remote"``, the publisher's ``sessionId`` + ``dataChannelName``).
With ``--cluster`` the two sessions may live on different nodes::

    publisher ──SCTP──> node A                               node B ──SCTP──> subscriber 1
                        PublishedChannel "chat"                    RemotePublication "chat"
                          │ feeds: DataChannelRelay                  ├──> subscriber 1
                          │   FeedSender: sequence, fragments        └──> subscriber 2
                          └── relay link, kind DATACHANNEL ──> FeedReceiver (order, gaps)
                              (one sealed frame per fragment,
                               sent to each subscribing node once)

1. ``datachannels/new`` local at A writes a
   :class:`~realtime.cluster.records.DataChannelRecord` (session, name, stream
   id, owner node A, status ``active``); closing the publication (API close,
   stream reset, session gone) rewrites it ``closed``.
2. ``datachannels/new`` remote at B for a session B does not hold: B reads
   the session record (same app?) and the DataChannel record (active? owner?),
   makes a :class:`~realtime.sfu.datachannels.RemotePublication` and, for the
   first local subscriber only, publishes ``datachannel_subscribe`` to A's
   control channel.  A adds B to the publication's :class:`FeedSender`.
3. Each message the publisher sends: A fans it out to its own subscribers,
   then sends it once to every subscribing node (one AES-GCM seal per
   fragment, the same frame to each node); B reassembles it, keeps order,
   counts gaps (:class:`~realtime.cluster.datachannel_frames.FeedReceiver`)
   and delivers it to every local subscriber as a local publication would.
4. B's last local subscriber gone: B publishes ``datachannel_unsubscribe``
   and A stops sending there.  The publication closed at A: A publishes
   ``datachannel_closed`` to every subscribing node, which closes its local
   subscriptions (stream reset), as a local close does.

5. ``canReply``: one replier per publication, cluster-wide.  A grant on B
   publishes ``datachannel_reply`` to A, which revokes its own replier or
   another node's (``datachannel_unreply``); a local grant at A revokes B's
   the same way.  The replier's messages go back to A over the relay link
   (payload flag ``reply``, a sequence of their own) and A delivers them to
   the publisher only.

6. **Trees** (``--cascade-fanout``, issue 13, as for tracks: :mod:`realtime.cluster.tree`
   placed through :mod:`realtime.cluster.cascade`, hash ``rt:tree:{session}:`` +
   :func:`tree_name`): a subscribing node attaches to the publication's tree and
   subscribes to its *parent*, which is the owner or another subscribing node; a
   node relays every fragment it receives from its parent, unchanged (the owner's
   sequence numbers, so order and gaps are judged end to end), to the nodes that
   subscribed to it.  The owner sends each message to at most K nodes.  Node loss is
   repaired as for media: a parent that left the registry, or that a child has not
   heard from (``KEEPALIVE`` frames, ``PARENT_SILENCE``) is moved away from in
   the tree; a node whose parent changed gets ``datachannel_reparent``, re-reads it
   and re-subscribes (every node re-reads it each ``LEASE`` too).  A node whose
   last local subscriber left detaches; it keeps relaying until its children have
   re-subscribed elsewhere.  :mod:`realtime.cluster.datachannel_tree` holds that part.

7. **Retransmission per hop** (:mod:`realtime.cluster.datachannel_repair`, moved by
   :mod:`realtime.cluster.datachannel_shield`): every hop keeps what it sent of a reliable
   publication; a receiving node holds messages behind a gap and sends its feeding hop a
   ``DATACHANNEL_NACK``; that hop resends from its buffer; a tail probe catches a lost
   last message.

Semantics across the link: ordered always; reliable for reliable channels within the
bounds of :mod:`realtime.cluster.datachannel_repair` (see
:mod:`realtime.cluster.datachannel_frames`).  The directory is touched only by API calls and
control messages, never per message (DESIGN.md §6).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Awaitable, Callable, Iterable

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from realtime.cluster.cascade import TreeBusy, TreeDirectory
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.datachannel_frames import DataChannelFragment, FeedReceiver, FeedSender
from realtime.cluster.datachannel_repair import RetransmissionBuffer
from realtime.cluster.datachannel_shield import RepairShield, unreliable
from realtime.cluster.datachannel_tree import (LEASE, PARENT_SILENCE, REPARENT, SUBSCRIBE,
                                               UNSUBSCRIBE, Follow, TreeFollowing, tree_name)
from realtime.cluster.directory import Directory, _first_error
from realtime.cluster.records import ControlMessage, DataChannelRecord
from realtime.cluster.relay import Address, RelayKind, RelayPacketReceived
from realtime.errors import DecodeError
from realtime.sfu.datachannels import PublishedChannel, RemotePublication

log = Logger()

CLOSED, REPLY, UNREPLY = "datachannel_closed", "datachannel_reply", "datachannel_unreply"
ACTIVE = "active"
#: the control actions :meth:`DataChannelRelay.control` takes
DATACHANNEL_CONTROL = frozenset({SUBSCRIBE, UNSUBSCRIBE, CLOSED, REPLY, UNREPLY, REPARENT})

SendRelay = Callable[[RelayKind, int, bytes, list[Address]], None]


class DataChannelRelay(TreeFollowing, RepairShield):
    """This node's DataChannel publications seen by other nodes, and theirs seen here.

    :param node_id: this node.
    :param directory: the cluster directory (records, control messages).
    :param clock: the reactor (``seconds()``).
    :param send_relay: seals one payload and sends it to node addresses
        (:meth:`realtime.cluster.relay_port.RelayPort.send`).
    :param addresses: returns the live members' relay addresses (node id -> address).
    :param refresh: re-reads the registry; returns the members (before a
        first exchange with a node the periodic refresh may not know yet).
    :param find_publication: returns the open local publication
        ``(session_id, name)``, or None (the switchboard).
    :param flush: sends what deliveries queued on these sessions (the PeerHost).
    :param fanout: ``--cascade-fanout``: follow publications through per-publication
        trees of at most this many children per node; None: from the owner (one hop).
    :param heard: when a node's last KEEPALIVE arrived (the pulls' record of it), or None.
    """

    def __init__(self, node_id: str, directory: Directory, clock: Any, send_relay: SendRelay,
                 addresses: Callable[[], dict[str, Address]],
                 refresh: Callable[[], Awaitable[dict[str, Address]]],
                 find_publication: Callable[[str, str], PublishedChannel | None],
                 flush: Callable[[Iterable[Any]], None], fanout: int | None = None,
                 heard: Callable[[str], float | None] = lambda node: None) -> None:
        self.node_id = node_id
        self.directory = directory
        self.clock = clock
        self.send_relay = send_relay
        self.addresses = addresses
        self.refresh = refresh
        self.find_publication = find_publication
        self.flush = flush
        self.heard = heard
        self.trees = None if fanout is None else TreeDirectory(
            directory, node_id, fanout, notify=self._notify_reparent)
        self._timer: Any = None
        self._next_lease = 0.0
        self._joined: dict[str, float] = {}
        #: publisher side: our publications other nodes subscribe to
        self._senders: dict[PublishedChannel, FeedSender] = {}
        self._published: dict[tuple[str, str], PublishedChannel] = {}
        #: subscriber side: (session id, name) -> what we follow of another node's
        self._remote: dict[tuple[str, str], Follow] = {}
        self._followed: dict[RemotePublication, Follow] = {}
        #: the receivers' counters of publications no longer followed (kept for ``receivers``)
        self._followed_before: Counter[str] = Counter()
        #: subscriber side: the sequence of a canReply subscriber's replies
        self._replies: dict[RemotePublication, FeedSender] = {}
        #: replies sent to publishers' nodes, and replies delivered to our publishers
        self.replies_sent = 0
        self.replies_delivered = 0
        #: messages relayed, per destination node (each once per node)
        self.sent: Counter[str] = Counter()
        #: messages relayed (one per message, whatever the number of nodes)
        self.relayed = 0
        #: relay frames sealed (one per fragment, whatever the number of nodes)
        self.sealed = 0
        #: messages received whole, per sending node
        self.received: Counter[str] = Counter()
        #: relay nodes: fragments passed on to child nodes, per child
        self.forwarded: Counter[str] = Counter()
        #: tree events: moves away from a parent, re-subscriptions, failed tree writes
        self.tree_events: Counter[str] = Counter()
        #: local deliveries of relayed messages (message x local subscriber)
        self.delivered = 0
        #: drops and failures by reason
        self.dropped: Counter[str] = Counter()
        self._shield_init()

    # -- the API's side (through ClusterSessions) ------------------------------------

    def published(self, channel: PublishedChannel) -> Deferred:
        """Write the record of a publication just made here (status ``active``)."""
        return self._write(self._record(channel, ACTIVE))

    def known(self, session_id: str, name: str) -> RemotePublication | None:
        """Return the remote publication this node already follows, or None."""
        follow = self._remote.get((session_id, name))
        if follow is None or follow.publication.closed:
            return None
        return follow.publication

    async def find(self, app_id: str, session_id: str, name: str) -> RemotePublication | None:
        """Return a publication of another node to subscribe to, asking its node to feed us.

        None when the directory has no active publication of that app under
        that name, or it is this node's own (then the switchboard had it).
        :raises DirectoryUnavailable: Redis is away.
        """
        publication = self.known(session_id, name)
        if publication is not None:          # another app's session never gets it
            return publication if publication.app_id == app_id else None
        reads: list[Deferred[Any]] = [
            Deferred.fromCoroutine(self.directory.get_session(session_id)),
            Deferred.fromCoroutine(self.directory.get_datachannel(session_id, name))]
        session, record = await gatherResults(reads, consumeErrors=True).addErrback(
            _first_error)
        if (session is None or record is None or session.app_id != app_id
                or record.status != ACTIVE or record.owner_node == self.node_id):
            return None
        owner = record.owner_node
        if owner not in self.addresses():
            await self.refresh()             # the owner's frames must pass our member check
        publication = self.known(session_id, name)   # another call made it meanwhile
        if publication is not None:
            return publication if publication.app_id == app_id else None
        publication = RemotePublication(session_id, app_id, name, relay=self)
        follow = self._remote.get((session_id, name))
        if follow is not None and follow.owner == owner:   # left, still relaying: back in
            follow.publication, follow.left = publication, False
            self._followed[publication] = follow
            if self.trees is not None:
                self._background(self._check(follow, "attach"))
            return publication
        follow = Follow(publication, owner, self.clock.seconds())
        self._remote[(session_id, name)] = follow
        self._followed[publication] = follow
        try:
            await self._join(follow)
            listening = await self._control(follow.parent, SUBSCRIBE, session_id, name)
            if not listening and follow.parent != owner:     # a dead parent: the owner
                self.tree_events["parent-not-listening"] += 1    # directly; the next check
                follow.parent = owner                            # places us again
                listening = await self._control(owner, SUBSCRIBE, session_id, name)
        except BaseException:
            self._forget(publication)
            publication.closed = True
            raise
        if not listening:
            # nobody listens on the owner's control channel: that node is gone
            self._forget(publication)
            publication.closed = True
            self.dropped["owner-not-listening"] += 1
            return None
        self._arm()
        return publication

    # -- publisher side: ChannelFeed of every local publication ------------------------

    def message(self, publication: PublishedChannel, data: bytes | str, now: float) -> None:
        """Send one message of ``publication`` once to every node that subscribed to it."""
        sender = self._senders.get(publication)
        if sender is None or not sender.nodes:
            return
        addresses = self.addresses()
        destinations, nodes = [], []
        for node in sender.nodes:
            address = addresses.get(node)
            if address is not None:
                destinations.append(address)
                nodes.append(node)
        if len(nodes) < len(sender.nodes):   # some left the registry (stopped, or lost)
            self.dropped["node-gone"] += len(sender.nodes) - len(nodes)
            sender.nodes.intersection_update(nodes)
        payloads = sender.fragments(data, self.clock.seconds()) if destinations else []
        for node in nodes if payloads else ():
            self.sent[node] += 1
        for payload in payloads:
            self.send_relay(RelayKind.DATACHANNEL, publication.id, payload, destinations)
        self.sealed += len(payloads)
        self.relayed += bool(payloads)
        if payloads:
            self._kept(sender.buffer)
        self.dropped.update(sender.dropped)
        sender.dropped.clear()

    def ended(self, publication: PublishedChannel, now: float) -> None:
        """Mark the record closed and tell every subscribing node.

        A publication that ends with its session is not rewritten: the
        session's records are deleted with it (``ClusterSessions.forget``), and
        a late write would bring the key back.
        """
        if not getattr(publication.session, "closed", False):
            self._write(self._record(publication, "closed"))
        sender = self._senders.pop(publication, None)
        if self._published.get((publication.session_id, publication.name)) is publication:
            del self._published[(publication.session_id, publication.name)]
        for node in sorted(sender.nodes if sender is not None else ()):
            self._background(self._control(node, CLOSED, publication.session_id,
                                           publication.name))

    # -- control messages ------------------------------------------------------------

    def control(self, message: ControlMessage) -> None:
        """Act on a ``datachannel_*`` control message from another node.

        From a subscribing node about our publication: ``subscribe``,
        ``unsubscribe``, ``reply`` (its subscription holds ``canReply`` now),
        ``unreply``.  From the owner of a publication we follow: ``closed``,
        ``unreply`` (another subscription took ``canReply``).
        """
        action, node = message.action, message.from_node
        if action == SUBSCRIBE:
            self._background(self._subscribed(node, message.session_id, message.name))
            return
        follow = self._remote.get((message.session_id, message.name))
        if follow is not None:               # about a publication we follow
            self._follow_control(follow, action, node)
            return
        publication = self._published.get((message.session_id, message.name))
        if publication is None and action == REPLY:   # may overtake the subscribe it follows
            publication = self.find_publication(message.session_id, message.name)
        if publication is None or publication.closed:
            return
        sender = self._sender(publication) if action == REPLY else \
            self._senders.get(publication)
        if sender is None:
            return
        if action == UNSUBSCRIBE:            # a subscribing node's word about our publication
            sender.nodes.discard(node)
            if sender.replier_node == node:
                sender.replier_node = None
        elif action == REPLY:
            if publication.replier is not None:  # one replier per publication, cluster-wide
                publication.replier.can_reply = False
                publication.replier = None
            previous = sender.replier_node
            if previous is not None and previous != node:
                self._background(self._control(previous, UNREPLY, message.session_id,
                                               message.name))
            sender.replier_node, sender.replies = node, FeedReceiver()
        elif action == UNREPLY and sender.replier_node == node:
            sender.replier_node = None

    def _follow_control(self, follow: Follow, action: str, node: str) -> None:
        """``closed`` / ``unreply`` from the owner (``closed`` also from our parent, which
        passes it down), ``unsubscribe`` from a child, ``reparent`` from a tree change."""
        remote = follow.publication
        if action == CLOSED and node in (follow.owner, follow.parent):
            self._forget(remote)
            for child in sorted(follow.children):
                self._background(self._control(child, CLOSED, remote.session_id, remote.name))
            sessions = [s.session for s in remote.subscribers]
            remote.end(self.clock.seconds())
            self.flush(sessions)
        elif action == UNREPLY and node == follow.owner and remote.replier is not None:
            remote.replier.can_reply = False     # a subscriber elsewhere got canReply
            remote.replier = None
        elif action == UNSUBSCRIBE:
            follow.children.discard(node)
            if follow.left and not follow.children:     # the last child moved away
                self._leave(follow)
        elif action == REPARENT:
            self._background(self._check(follow, "read"))

    async def _subscribed(self, node: str, session_id: str, name: str) -> None:
        publication = self.find_publication(session_id, name)
        follow = self._remote.get((session_id, name))
        self._joined[node] = self.clock.seconds()
        if (publication is None or publication.closed) and follow is not None:
            if node not in self.addresses():
                await self.refresh()
            follow.children.add(node)       # a child in its tree: we relay to it
            self._arm()
            return
        if publication is None or publication.closed:
            # neither ours nor followed: an owner says closed, a former relay "re-read"
            gone = self.trees is None or await self._is_closed(session_id, name)
            await self._control(node, CLOSED if gone else REPARENT, session_id, name)
            return
        if node not in self.addresses():
            await self.refresh()        # first: a member unknown to us would be pruned
        if publication.closed:
            await self._control(node, CLOSED, session_id, name)
            return
        self._sender(publication).nodes.add(node)
        self._arm()

    async def _is_closed(self, session_id: str, name: str) -> bool:
        record = await self.directory.get_datachannel(session_id, name)
        return record is None or record.status != ACTIVE

    def _sender(self, publication: PublishedChannel) -> FeedSender:
        """Return (making it on first use) what feeds ``publication`` to other nodes."""
        sender = self._senders.get(publication)
        if sender is None:
            sender = self._senders[publication] = FeedSender(
                publication.session_id, publication.name,
                unreliable=unreliable(publication.policy), buffer=RetransmissionBuffer())
            self._published[(publication.session_id, publication.name)] = publication
        return sender

    # -- subscriber side: relayed messages ---------------------------------------------

    def receive(self, packet: RelayPacketReceived) -> None:
        """Take one relayed DataChannel fragment (or a NACK: :meth:`nacked`): pass it on to
        our children if new, deliver what it completes in order to this node's subscribers."""
        if packet.kind == RelayKind.DATACHANNEL_NACK:
            self.nacked(packet)
            return
        try:
            fragment = DataChannelFragment.decode(packet.payload)
        except DecodeError:
            self.dropped["malformed"] += 1
            return
        if fragment.reply:
            self._replied(packet.sender, fragment)
            return
        follow = self._remote.get((fragment.session_id, fragment.name))
        if follow is None or follow.parent != packet.sender:
            self.dropped["not-subscribed"] += 1
            return
        now = self.clock.seconds()
        receiver = follow.receiver
        if not receiver.receive(fragment, now):
            return                          # old or a duplicate: not passed on again
        if follow.children:                 # a relay node: pass it on, sealed once
            addresses = self.addresses()
            children = [n for n in sorted(follow.children) if n in addresses]
            if children:
                self.send_relay(RelayKind.DATACHANNEL, packet.stream_id, packet.payload,
                                [addresses[n] for n in children])
                self.sealed += 1
                self.forwarded.update(children)
                if not fragment.unreliable:     # kept for the children's NACKs
                    follow.buffer.keep(fragment.sequence, fragment.index, packet.payload, now)
                    self._kept(follow.buffer)
        if receiver.ready:
            self._deliver_ready(follow, packet.sender)
        if receiver.get_timer() is not None:
            self._asked(receiver, fragment.session_id, fragment.name, follow.parent, now)

    def _deliver_ready(self, follow: Follow, node: str) -> None:
        """Deliver the messages ``follow``'s receiver has ready, in order."""
        messages = follow.receiver.take()
        publication = follow.publication
        if not messages or publication.closed:
            return
        now = self.clock.seconds()
        self.received[node] += len(messages)
        subscribers = publication.subscribers
        self.delivered += len(subscribers) * len(messages)
        for message in messages:
            publication.deliver(message, now)
        self.flush([s.session for s in subscribers])

    def released(self, publication: RemotePublication) -> None:
        """The last local subscriber of ``publication`` left: tell its node to stop (with
        trees: leave the tree; children still fed are relayed to until they moved)."""
        follow = self._followed.get(publication)
        if follow is None:
            return
        if self.trees is not None:
            follow.left = True
            self._background(self.trees.change(publication.session_id,
                                               tree_name(publication.name), follow.owner,
                                               "detach"))
            if follow.children:
                return
        self._leave(follow)

    def _leave(self, follow: Follow) -> None:
        publication = follow.publication
        if self._forget(publication) is not None:
            self._background(self._control(follow.parent, UNSUBSCRIBE,
                                           publication.session_id, publication.name))

    def _forget(self, publication: RemotePublication) -> Follow | None:
        follow = self._followed.pop(publication, None)
        key = (publication.session_id, publication.name)
        if follow is not None and self._remote.get(key) is follow:
            del self._remote[key]
            self._followed_before.update(follow.receiver.counters)
        self._replies.pop(publication, None)
        return follow

    # -- canReply across nodes -----------------------------------------------------------

    def replier_changed(self, publication: PublishedChannel | RemotePublication) -> None:
        """Keep one ``canReply`` subscription per publication across the cluster.

        A grant on a subscription following another node's publication tells
        that node (``datachannel_reply``), which revokes any other replier, its
        own or another node's (``datachannel_unreply``); a local grant on our
        own publication revokes the remote replier node, if any.
        """
        if isinstance(publication, RemotePublication):
            follow = self._followed.get(publication)
            if follow is not None and not publication.closed:
                action = REPLY if publication.replier is not None else UNREPLY
                self._background(self._control(follow.owner, action, publication.session_id,
                                               publication.name))
            return
        sender = self._senders.get(publication)
        if publication.replier is not None and sender is not None and sender.replier_node:
            node, sender.replier_node = sender.replier_node, None
            self._background(self._control(node, UNREPLY, publication.session_id,
                                           publication.name))

    def reply(self, publication: RemotePublication, data: bytes | str, now: float) -> None:
        """Send a local ``canReply`` subscriber's message to the publisher's node."""
        follow = self._followed.get(publication)
        address = None if follow is None else self.addresses().get(follow.owner)
        if follow is None or address is None:
            self.dropped["reply-owner-gone"] += 1
            return
        sender = self._replies.get(publication)
        if sender is None:
            sender = self._replies[publication] = FeedSender(
                publication.session_id, publication.name, reply=True,
                buffer=RetransmissionBuffer())
        for payload in sender.fragments(data, self.clock.seconds()):
            self.send_relay(RelayKind.DATACHANNEL, 0, payload, [address])
        self.replies_sent += 1
        self._kept(sender.buffer)

    def _replied(self, node: str, fragment: DataChannelFragment) -> None:
        publication = self._published.get((fragment.session_id, fragment.name))
        sender = None if publication is None else self._senders.get(publication)
        if publication is None or sender is None or sender.replier_node != node:
            self.dropped["reply-not-allowed"] += 1
            return
        now = self.clock.seconds()
        receiver = sender.replies
        receiver.receive(fragment, now)
        self._replies_ready(publication, sender)
        if receiver.get_timer() is not None:
            self._asked(receiver, fragment.session_id, fragment.name, node, now, reply=True)

    def _replies_ready(self, publication: PublishedChannel, sender: FeedSender) -> None:
        """Hand the replies ready in order to the publisher."""
        messages = sender.replies.take()
        if not messages:
            return
        session, now = publication.session, self.clock.seconds()
        for message in messages:
            session.datachannels._deliver(session, publication.id, message, now)
        self.replies_delivered += len(messages)
        self.flush([session])

    # -- figures -----------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Return what an operator (or a test) reads in ``GET .../diagnostics``."""
        gaps: Counter[str] = Counter(self._followed_before)
        for follow in self._remote.values():
            gaps.update(follow.receiver.counters)
        return {"sentPerNode": dict(self.sent), "messagesRelayed": self.relayed,
                "framesSealed": self.sealed,
                "receivedPerNode": dict(self.received), "delivered": self.delivered,
                "dropped": dict(self.dropped), "receivers": dict(gaps),
                "repliesSent": self.replies_sent, "repliesDelivered": self.replies_delivered,
                "publicationsFed": {f"{p.session_id}/{p.name}": sorted(s.nodes)
                                    for p, s in self._senders.items()},
                "publicationsFollowed": sorted(f"{f.owner}/{s}/{n}"
                                               for (s, n), f in self._remote.items()),
                "forwardedPerNode": dict(self.forwarded), "trees": {
                    **dict(self.tree_events),
                    **(dict(self.trees.counters) if self.trees is not None else {})},
                "parents": {f"{s}/{n}": f.parent for (s, n), f in self._remote.items()},
                "children": {f"{s}/{n}": sorted(f.children)
                             for (s, n), f in self._remote.items() if f.children},
                "repair": dict(self.repair)}

    # -- plumbing ----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the keepalive/repair timer and the retransmission timer (the service stops)."""
        TreeFollowing.stop(self)
        self.stop_repair()

    def _record(self, channel: PublishedChannel, status: str) -> Any:
        return self.directory.put_datachannel(DataChannelRecord(
            channel.session_id, channel.name, channel.id, self.node_id, status))

    async def _control(self, node: str, action: str, session_id: str, name: str) -> int:
        """Publish one control message to ``node``; return how many listeners got it."""
        return await self.directory.send_control(node, ControlMessage(
            action, self.node_id, session_id, name, self.clock.seconds()))

    def _write(self, coroutine: Any) -> Deferred:
        return self._background(coroutine)

    def _background(self, coroutine: Any) -> Deferred:
        return Deferred.fromCoroutine(coroutine).addErrback(self._failed)

    def _failed(self, failure: Any) -> None:
        if failure.check(TreeBusy):     # a tree write lost every race: the lease retries
            self.tree_events["busy"] += 1
            return
        failure.trap(DirectoryUnavailable)
        self.dropped["directory-unavailable"] += 1
        log.warn("cluster: a DataChannel directory write failed: {error}",
                 error=failure.getErrorMessage())
