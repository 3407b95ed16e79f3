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

Semantics across the link: ordered, not reliable (see
:mod:`realtime.cluster.datachannel_frames`).  ``canReply`` does not cross
nodes: a reply from a subscriber on B is dropped and counted
(``reply-across-nodes``).  The directory is touched only by API calls and
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

SUBSCRIBE, UNSUBSCRIBE, CLOSED = (
    "datachannel_subscribe", "datachannel_unsubscribe", "datachannel_closed")
ACTIVE = "active"
#: the control actions :meth:`DataChannelRelay.control` takes
DATACHANNEL_CONTROL = frozenset({SUBSCRIBE, UNSUBSCRIBE, CLOSED})

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
        #: subscriber side: (owner node, session id, name) -> publication and its receiver
        self._remote: dict[tuple[str, str, str],
                           tuple[RemotePublication, FeedReceiver]] = {}
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
        if publication is not None:
            return publication
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
            return publication
        publication = RemotePublication(session_id, app_id, name, released=self._released)
        key = (owner, session_id, name)
        self._remote[key] = (publication, FeedReceiver())
        if not await self._control(owner, SUBSCRIBE, session_id, name):
            # nobody listens on the owner's control channel: that node is gone
            if self._remote.get(key, (None,))[0] is publication:
                del self._remote[key]
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
        destinations = []
        for node in list(sender.nodes):
            address = addresses.get(node)
            if address is None:          # it left the registry (stopped, or lost)
                sender.nodes.discard(node)
                self.dropped["node-gone"] += 1
            else:
                destinations.append(address)
                self.sent[node] += 1
        payloads = sender.fragments(data)
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
        for node in sorted(sender.nodes if sender is not None else ()):
            self._background(self._control(node, CLOSED, publication.session_id,
                                           publication.name))

    # -- control messages ------------------------------------------------------------

    def control(self, message: ControlMessage) -> None:
        """Act on ``datachannel_subscribe`` / ``_unsubscribe`` / ``_closed`` from another node."""
        action, node = message.action, message.from_node
        if action == SUBSCRIBE:
            self._background(self._subscribed(node, message.session_id, message.name))
        elif action == UNSUBSCRIBE:
            for publication, sender in self._senders.items():
                if publication.session_id == message.session_id and \
                        publication.name == message.name:
                    sender.nodes.discard(node)
        elif action == CLOSED:
            entry = self._remote.pop((node, message.session_id, message.name), None)
            if entry is not None:
                remote = entry[0]
                sessions = [s.session for s in remote.subscribers]
                remote.end(self.clock.seconds())
                self.flush(sessions)

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
        sender = self._senders.get(publication)
        if sender is None:
            sender = self._senders[publication] = FeedSender(session_id, name)
        sender.nodes.add(node)

    # -- subscriber side: relayed messages ---------------------------------------------

    def receive(self, packet: RelayPacketReceived) -> None:
        """Deliver one relayed DataChannel message to this node's subscribers."""
        try:
            fragment = DataChannelFragment.decode(packet.payload)
        except DecodeError:
            self.dropped["malformed"] += 1
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

    def _released(self, publication: RemotePublication) -> None:
        for key, (known, _) in list(self._remote.items()):
            if known is publication:
                del self._remote[key]
                self._background(self._control(key[0], UNSUBSCRIBE, key[1], key[2]))

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
