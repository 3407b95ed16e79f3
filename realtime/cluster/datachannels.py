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

Semantics across the link: ordered, not reliable (see
:mod:`realtime.cluster.datachannel_frames`).  The directory is touched only by API calls and
control messages, never per message (DESIGN.md §6).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Awaitable, Callable, Iterable

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.datachannel_frames import DataChannelFragment, FeedReceiver, FeedSender
from realtime.cluster.directory import Directory, _first_error
from realtime.cluster.records import ControlMessage, DataChannelRecord
from realtime.cluster.relay import Address, RelayKind, RelayPacketReceived
from realtime.errors import DecodeError
from realtime.sfu.datachannels import PublishedChannel, RemotePublication

log = Logger()

SUBSCRIBE, UNSUBSCRIBE, CLOSED, REPLY, UNREPLY = (
    "datachannel_subscribe", "datachannel_unsubscribe", "datachannel_closed",
    "datachannel_reply", "datachannel_unreply")
ACTIVE = "active"
#: the control actions :meth:`DataChannelRelay.control` takes
DATACHANNEL_CONTROL = frozenset({SUBSCRIBE, UNSUBSCRIBE, CLOSED, REPLY, UNREPLY})

SendRelay = Callable[[RelayKind, int, bytes, list[Address]], None]


class DataChannelRelay:
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
    """

    def __init__(self, node_id: str, directory: Directory, clock: Any, send_relay: SendRelay,
                 addresses: Callable[[], dict[str, Address]],
                 refresh: Callable[[], Awaitable[dict[str, Address]]],
                 find_publication: Callable[[str, str], PublishedChannel | None],
                 flush: Callable[[Iterable[Any]], None]) -> None:
        self.node_id = node_id
        self.directory = directory
        self.clock = clock
        self.send_relay = send_relay
        self.addresses = addresses
        self.refresh = refresh
        self.find_publication = find_publication
        self.flush = flush
        #: publisher side: our publications other nodes subscribe to
        self._senders: dict[PublishedChannel, FeedSender] = {}
        self._published: dict[tuple[str, str], PublishedChannel] = {}
        #: subscriber side: (owner node, session id, name) -> publication and its receiver
        self._remote: dict[tuple[str, str, str],
                           tuple[RemotePublication, FeedReceiver]] = {}
        self._followed: dict[RemotePublication, tuple[str, str, str]] = {}
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
        #: local deliveries of relayed messages (message x local subscriber)
        self.delivered = 0
        #: drops and failures by reason
        self.dropped: Counter[str] = Counter()

    # -- the API's side (through ClusterSessions) ------------------------------------

    def published(self, channel: PublishedChannel) -> Deferred:
        """Write the record of a publication just made here (status ``active``)."""
        return self._write(self._record(channel, ACTIVE))

    def known(self, session_id: str, name: str) -> RemotePublication | None:
        """Return the remote publication this node already follows, or None."""
        for (_, sid, n), (publication, _) in self._remote.items():
            if sid == session_id and n == name and not publication.closed:
                return publication
        return None

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
        key = (owner, session_id, name)
        self._remote[key] = (publication, FeedReceiver())
        self._followed[publication] = key
        if not await self._control(owner, SUBSCRIBE, session_id, name):
            # nobody listens on the owner's control channel: that node is gone
            self._forget(publication)
            publication.closed = True
            self.dropped["owner-not-listening"] += 1
            return None
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
        payloads = sender.fragments(data) if destinations else []
        for node in nodes if payloads else ():
            self.sent[node] += 1
        for payload in payloads:
            self.send_relay(RelayKind.DATACHANNEL, publication.id, payload, destinations)
        self.sealed += len(payloads)
        self.relayed += bool(payloads)
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
        key = (node, message.session_id, message.name)
        entry = self._remote.get(key)
        if entry is not None:                # about a publication we follow: the owner's word
            remote = entry[0]
            if action == CLOSED:
                self._forget(remote)
                sessions = [s.session for s in remote.subscribers]
                remote.end(self.clock.seconds())
                self.flush(sessions)
            elif action == UNREPLY and remote.replier is not None:
                remote.replier.can_reply = False     # a subscriber elsewhere got canReply
                remote.replier = None
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

    async def _subscribed(self, node: str, session_id: str, name: str) -> None:
        publication = self.find_publication(session_id, name)
        if publication is None or publication.closed:
            await self._control(node, CLOSED, session_id, name)
            return
        if node not in self.addresses():
            await self.refresh()        # first: a member unknown to us would be pruned
        if publication.closed:
            await self._control(node, CLOSED, session_id, name)
            return
        self._sender(publication).nodes.add(node)

    def _sender(self, publication: PublishedChannel) -> FeedSender:
        """Return (making it on first use) what feeds ``publication`` to other nodes."""
        sender = self._senders.get(publication)
        if sender is None:
            sender = self._senders[publication] = FeedSender(publication.session_id,
                                                             publication.name)
            self._published[(publication.session_id, publication.name)] = publication
        return sender

    # -- subscriber side: relayed messages ---------------------------------------------

    def receive(self, packet: RelayPacketReceived) -> None:
        """Deliver one relayed DataChannel message to this node's subscribers."""
        try:
            fragment = DataChannelFragment.decode(packet.payload)
        except DecodeError:
            self.dropped["malformed"] += 1
            return
        if fragment.reply:
            self._replied(packet.sender, fragment)
            return
        entry = self._remote.get((packet.sender, fragment.session_id, fragment.name))
        if entry is None:
            self.dropped["not-subscribed"] += 1
            return
        publication, receiver = entry
        message = receiver.receive(fragment)
        if message is None:
            return
        self.received[packet.sender] += 1
        subscribers = publication.subscribers
        self.delivered += len(subscribers)
        publication.deliver(message, self.clock.seconds())
        self.flush([s.session for s in subscribers])

    def released(self, publication: RemotePublication) -> None:
        """The last local subscriber of ``publication`` left: tell its node to stop."""
        key = self._forget(publication)
        if key is not None:
            self._background(self._control(key[0], UNSUBSCRIBE, key[1], key[2]))

    def _forget(self, publication: RemotePublication) -> tuple[str, str, str] | None:
        key = self._followed.pop(publication, None)
        if key is not None and self._remote.get(key, (None,))[0] is publication:
            del self._remote[key]
        self._replies.pop(publication, None)
        return key

    # -- canReply across nodes -----------------------------------------------------------

    def replier_changed(self, publication: PublishedChannel | RemotePublication) -> None:
        """Keep one ``canReply`` subscription per publication across the cluster.

        A grant on a subscription following another node's publication tells
        that node (``datachannel_reply``), which revokes any other replier, its
        own or another node's (``datachannel_unreply``); a local grant on our
        own publication revokes the remote replier node, if any.
        """
        if isinstance(publication, RemotePublication):
            key = self._followed.get(publication)
            if key is not None and not publication.closed:
                action = REPLY if publication.replier is not None else UNREPLY
                self._background(self._control(key[0], action, key[1], key[2]))
            return
        sender = self._senders.get(publication)
        if publication.replier is not None and sender is not None and sender.replier_node:
            node, sender.replier_node = sender.replier_node, None
            self._background(self._control(node, UNREPLY, publication.session_id,
                                           publication.name))

    def reply(self, publication: RemotePublication, data: bytes | str, now: float) -> None:
        """Send a local ``canReply`` subscriber's message to the publisher's node."""
        key = self._followed.get(publication)
        address = None if key is None else self.addresses().get(key[0])
        if key is None or address is None:
            self.dropped["reply-owner-gone"] += 1
            return
        sender = self._replies.get(publication)
        if sender is None:
            sender = self._replies[publication] = FeedSender(key[1], key[2], reply=True)
        for payload in sender.fragments(data):
            self.send_relay(RelayKind.DATACHANNEL, 0, payload, [address])
        self.replies_sent += 1

    def _replied(self, node: str, fragment: DataChannelFragment) -> None:
        publication = self._published.get((fragment.session_id, fragment.name))
        sender = None if publication is None else self._senders.get(publication)
        if publication is None or sender is None or sender.replier_node != node:
            self.dropped["reply-not-allowed"] += 1
            return
        message = sender.replies.receive(fragment)
        if message is None:
            return
        session = publication.session
        session.datachannels._deliver(session, publication.id, message, self.clock.seconds())
        self.replies_delivered += 1
        self.flush([session])

    # -- figures -----------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        """Return what an operator (or a test) reads in ``GET .../diagnostics``."""
        gaps: Counter[str] = Counter()
        for _, receiver in self._remote.values():
            gaps.update(receiver.counters)
        return {"sentPerNode": dict(self.sent), "messagesRelayed": self.relayed,
                "framesSealed": self.sealed,
                "receivedPerNode": dict(self.received), "delivered": self.delivered,
                "dropped": dict(self.dropped), "receivers": dict(gaps),
                "repliesSent": self.replies_sent, "repliesDelivered": self.replies_delivered,
                "publicationsFed": {f"{p.session_id}/{p.name}": sorted(s.nodes)
                                    for p, s in self._senders.items()},
                "publicationsFollowed": sorted(f"{o}/{s}/{n}" for o, s, n in self._remote)}

    # -- plumbing ----------------------------------------------------------------------

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
        failure.trap(DirectoryUnavailable)
        self.dropped["directory-unavailable"] += 1
        log.warn("cluster: a DataChannel directory write failed: {error}",
                 error=failure.getErrorMessage())
