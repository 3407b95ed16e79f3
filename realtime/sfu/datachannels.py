"""
DataChannels through the SFU: named publications, per-session ids, one-way fan-out.

Cloudflare-style DataChannels (docs/cloudflare-api.md §1.3) are *negotiated* channels
(RFC 8831 §6.5, no DCEP): the API allocates each channel's SCTP stream id
on one session and the client opens ``createDataChannel(name, {negotiated:
true, id})`` with it.  A session publishes a channel under a name
(``location: local``); any session of the same app subscribes to it by
(publisher ``sessionId``, ``dataChannelName``) and gets its *own* id::

    publisher session P                  subscriber sessions
    ┌──────────────────────────┐         ┌──────────────────────────┐
    │ SCTP stream 1 "chat" ────┼──┬─────>│ S1: stream 3 "chat"      │
    │  (PublishedChannel)      │  │      └──────────────────────────┘
    └──────────────────────────┘  │      ┌──────────────────────────┐
                                  └─────>│ S2: stream 1 "chat"      │
                                         └──────────────────────────┘
      every message P sends on stream 1 is sent on each subscriber's
      stream with the same PPID (string, binary, empty; RFC 8831 §8)

Stream ids: we allocate the lowest free id of *our* DTLS parity (RFC 8832
§6: the DTLS client opens even ids, the server odd ones), so the ids the
API hands out can never collide with in-band channels the browser opens,
which take the other parity.  The SFU answers ``setup:passive`` and
browsers answer our offers ``active``, so in practice the SFU is the DTLS
server and hands out 1, 3, 5 ...

Delivery policy (ordered, maxRetransmits, maxPacketLifeTime) is how *we*
send on a channel: the publisher's request configures what the publisher
sends us, each subscriber's request configures what we send it (the
contract asks every subscriber to mirror the publisher's choice).  A slow
subscriber cannot make us queue without bound: past :data:`MAX_BACKLOG`
bytes unacknowledged, further messages to it are dropped and counted.

Messages a subscriber sends on a subscription channel are dropped (the
fan-out is one-way) unless the subscription holds ``canReply``: then they
go to the publisher only, never to the other subscribers.  A ``waitForAck``
subscription receives nothing until its first own message (which is
consumed); without one within :data:`ACK_TIMEOUT` seconds the channel is
closed.  That deadline is checked lazily, when a message for it is due
and when the API lists the session.

Across nodes (``--cluster``, docs/cluster.md): a subscription may follow a
:class:`RemotePublication`, the stand-in for a publication another node
holds, which the cluster's relay feeds with each message once per node; a
local publication hands each message to its :class:`ChannelFeed` s (that
relay) besides its own subscribers.  ``canReply`` crosses nodes too: the
relay carries a remote replier's messages back and keeps one replier per
publication across the cluster.

The ``server-events`` channel of ``datachannels/establish`` is an in-band
channel (DCEP, RFC 8832) the SFU opens once the association is up; the SFU
sends nothing on it yet.

Lifecycle of one channel and the status ``GET /sessions/{id}`` reports
(docs/cloudflare-api.md §1.3, ``SessionResourceStatus``)::

    allocated ──association up──> open ──close (API, peer reset, publisher gone)──> closed
    "initializing"                "active"                                          "inactive"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from realtime.errors import LocalProtocolError
from realtime.peer.connection import PeerConnection
from realtime.peer.events import PeerEvent
from realtime.peer.sctp_transport import (
    DEFAULT_REMOTE_MAX_MESSAGE_SIZE, ChannelClosed, MessageReceived, SctpTransport,
    TransportClosed,
)
from realtime.sdp.negotiated import NegotiatedSession

__all__ = [
    "ACK_TIMEOUT", "MAX_BACKLOG", "SERVER_EVENTS", "ChannelExists", "ChannelFeed",
    "ChannelHost", "ChannelPolicy", "ChannelSubscription", "NoTransport", "PublishedChannel",
    "RemotePublication", "SessionDataChannels",
]

#: the only channel ``datachannels/establish`` pulls
SERVER_EVENTS = "server-events"
#: bytes a subscriber may leave unacknowledged before its messages are dropped
MAX_BACKLOG = 8 << 20
#: seconds a ``waitForAck`` subscription has to send its acknowledgment
ACK_TIMEOUT = 30.0
#: most channels (published + subscribed) one session may hold at once
MAX_CHANNELS = 1024


class NoTransport(LocalProtocolError):
    """The session has no negotiated SCTP association to carry DataChannels."""


class ChannelExists(LocalProtocolError):
    """The session already publishes that name, or already subscribes to that channel."""


class ChannelHost(Protocol):
    """What the DataChannels need of the session that holds them (an SFU session).

    Read-only: the channels send through the host's connection, draw stream
    ids' randomness from it, and mark it ``touched`` for the I/O side to
    flush; a subscription's messages go through the publisher's host.
    """

    @property
    def session_id(self) -> str:
        """The session's id (``GET /sessions/{id}`` lists a subscription's publisher by it)."""
        ...

    @property
    def connection(self) -> PeerConnection | None:
        """The session's PeerConnection, once an exchange completed."""
        ...

    @property
    def random(self) -> Callable[[int], bytes]:
        """The session's source of randomness (the SCTP association's tags and TSNs)."""
        ...

    @property
    def touched(self) -> set[Any]:
        """The switchboard's set of sessions with output queued outside their own input."""
        ...

    @property
    def datachannels(self) -> SessionDataChannels:
        """The host's channels (a publication's subscribers live on other hosts)."""
        ...


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """How messages are sent on one channel (RFC 8831 §6.1 reliability options).

    :param ordered: deliver in send order.
    :param max_retransmits: retransmissions after the first send (None: reliable).
    :param max_packet_life_time: milliseconds to keep trying (None: reliable).
    """

    ordered: bool = True
    max_retransmits: int | None = None
    max_packet_life_time: int | None = None

    def __post_init__(self) -> None:
        if self.max_retransmits is not None and self.max_packet_life_time is not None:
            raise LocalProtocolError("maxRetransmits and maxPacketLifeTime are exclusive")


class ChannelFeed(Protocol):
    """Something besides local subscribers that a publication's messages go to.

    With ``--cluster`` this is the node's DataChannel relay
    (:mod:`realtime.cluster.datachannels`): it sends each message once to every
    other node that has subscribers of the publication.
    """

    def message(self, publication: PublishedChannel, data: bytes | str, now: float) -> None:
        """Take one message the publisher sent."""
        ...

    def ended(self, publication: PublishedChannel, now: float) -> None:
        """The publication closed (API close, stream reset, session gone)."""
        ...

    def replier_changed(self, publication: PublishedChannel) -> None:
        """A local grant or revocation moved ``canReply`` (``publication.replier``)."""
        ...


class RemoteFeed(Protocol):
    """What a :class:`RemotePublication` asks of the cluster's relay."""

    def released(self, publication: RemotePublication) -> None:
        """Its last local subscriber is gone: stop the feed from the publisher's node."""
        ...

    def reply(self, publication: RemotePublication, data: bytes | str, now: float) -> None:
        """Send a ``canReply`` subscriber's message back to the publisher's node."""
        ...

    def replier_changed(self, publication: RemotePublication) -> None:
        """A local grant or revocation moved ``canReply`` (``publication.replier``)."""
        ...


@dataclass(eq=False)
class PublishedChannel:
    """A channel a session publishes under ``name`` (``location: local``).

    :ivar subscribers: the subscriptions its messages fan out to.
    :ivar replier: the one subscription allowed to send back (``canReply``).
    :ivar feeds: where else each message goes (other nodes), see :class:`ChannelFeed`.
    """

    session: ChannelHost
    id: int
    name: str
    policy: ChannelPolicy
    subscribers: list[ChannelSubscription] = field(default_factory=list)
    replier: ChannelSubscription | None = None
    closed: bool = False
    feeds: tuple[ChannelFeed, ...] = ()
    location = "local"

    @property
    def session_id(self) -> str:
        """Return the publisher's session id."""
        return self.session.session_id

    def status(self) -> str:
        """Return ``initializing``, ``active`` or ``inactive`` (docs/cloudflare-api.md §3.2)."""
        return self.session.datachannels.stream_status(self.id, self.closed)

    def describe(self) -> dict[str, Any]:
        """Return the channel as ``GET /sessions/{id}`` lists it."""
        return {"location": "local", "dataChannelName": self.name, "id": self.id,
                "status": self.status()}


@dataclass(eq=False)
class RemotePublication:
    """A publication another node holds, fed to this node's subscribers over the relay link.

    Stands where a :class:`PublishedChannel` would for a subscription whose
    publisher lives elsewhere (``--cluster``, docs/cluster.md): the relay calls
    :meth:`deliver` with each message, once for this node, and this object
    fans it out to the local subscribers exactly as a local publication does.

    :param relay: the cluster's relay: told once when the last local subscriber
        is gone (it then tells the publisher's node to stop sending here), and
        carries ``canReply`` replies and grants back to the publisher's node.
    """

    session_id: str
    app_id: str
    name: str
    relay: RemoteFeed
    subscribers: list[ChannelSubscription] = field(default_factory=list)
    replier: ChannelSubscription | None = None
    closed: bool = False

    def deliver(self, data: bytes | str, now: float) -> None:
        """Send one relayed message to every local subscriber (waitForAck gates apply)."""
        send_to_subscribers(self.subscribers, data, now)

    def end(self, now: float) -> None:
        """The publisher's node says the publication closed: close every local subscription."""
        self.closed = True
        for subscription in list(self.subscribers):
            if not subscription.closed:
                subscription.session.datachannels._end(subscription, now)

    def unsubscribed(self) -> None:
        """A subscription left; tell the relay once when none is left."""
        if not self.subscribers and not self.closed:
            self.closed = True
            self.relay.released(self)


Publication = PublishedChannel | RemotePublication


def _replier_changed(publication: Publication) -> None:
    """Tell the cluster's relay that ``canReply`` moved on ``publication`` (if it has one)."""
    if isinstance(publication, RemotePublication):
        publication.relay.replier_changed(publication)
    else:
        for feed in publication.feeds:
            feed.replier_changed(publication)


def send_to_subscribers(subscribers: list[ChannelSubscription], data: bytes | str,
                        now: float, counted: SessionDataChannels | None = None) -> None:
    """Send one publisher message on every subscription in ``subscribers``.

    A ``waitForAck`` subscription still waiting gets nothing (counted
    ``awaiting-ack``); one past its deadline is closed, after the loop, since
    closing it takes it out of ``subscribers``.  Drops are counted on
    ``counted`` (the publisher's session), else on each subscriber's.
    """
    late = None
    for subscription in subscribers:
        channels = counted if counted is not None else subscription.session.datachannels
        if subscription.ack_deadline is not None:
            if now >= subscription.ack_deadline:
                late = [subscription] if late is None else [*late, subscription]
            channels.drops["awaiting-ack"] += 1
            continue
        channels._deliver(subscription.session, subscription.id, data, now)
    for subscription in late or ():
        subscription.session.datachannels._end(subscription, now)


@dataclass(eq=False)
class ChannelSubscription:
    """One session's copy of another session's :class:`PublishedChannel` (``location: remote``).

    :ivar ack_deadline: while waiting for the ``waitForAck`` acknowledgment,
        the time it must arrive by; None once acknowledged (or not asked).
    """

    session: ChannelHost
    id: int
    publication: Publication
    policy: ChannelPolicy
    can_reply: bool = False
    ack_deadline: float | None = None
    closed: bool = False
    location = "remote"

    @property
    def name(self) -> str:
        """Return the publication's ``dataChannelName``."""
        return self.publication.name

    def status(self) -> str:
        """Return ``initializing``, ``active`` or ``inactive`` (docs/cloudflare-api.md §3.2)."""
        closed = self.closed or self.publication.closed
        return self.session.datachannels.stream_status(self.id, closed)

    def describe(self) -> dict[str, Any]:
        """Return the channel as ``GET /sessions/{id}`` lists it."""
        return {"location": "remote", "sessionId": self.publication.session_id,
                "dataChannelName": self.name, "id": self.id, "status": self.status()}


Channel = PublishedChannel | ChannelSubscription


class SessionDataChannels:
    """The API DataChannels of one session (a :class:`ChannelHost`), and the fan-out between them.

    :ivar channels: stream id -> channel, closed ones kept (listed ``inactive``)
        until their id is reused.
    :ivar drops: messages not forwarded, by reason.
    """

    def __init__(self, session: ChannelHost) -> None:
        self.session = session
        self.channels: dict[int, Channel] = {}
        self.drops: Counter[str] = Counter()
        #: messages ``received`` from this session's client and ``delivered`` to it
        self.messages: Counter[str] = Counter()
        #: open the in-band ``server-events`` channel once the transport exists
        self.want_server_events = False
        #: stream id of the ``server-events`` channel, once opened
        self.server_events_id: int | None = None

    # -- transport ---------------------------------------------------------------

    @property
    def transport(self) -> SctpTransport | None:
        """Return the session's SCTP transport, or None before it is negotiated."""
        connection = self.session.connection
        return connection.sctp if connection is not None else None

    def settle(self, negotiated: NegotiatedSession, now: float) -> None:
        """Attach an SCTP transport the first time an exchange accepts an m=application."""
        connection = self.session.connection
        if connection is None:
            return
        transport = connection.sctp
        if transport is None:
            application = next((m for m in negotiated.media
                                if m.kind == "application" and m.accepted), None)
            if application is None:
                return
            limit = application.max_message_size
            transport = SctpTransport(
                connection.dtls_role, random=self.session.random,
                remote_max_message_size=DEFAULT_REMOTE_MAX_MESSAGE_SIZE if limit is None
                else limit)
            connection.attach_sctp(transport)
            if connection.state == "connected":  # DataChannels added to a live session
                transport.start(now)
        if self.want_server_events and self.server_events_id is None:
            self.server_events_id = transport.open_channel(SERVER_EVENTS).id
        self.flush(self.session, now)

    def planned_server_events_id(self) -> int:
        """Return the id ``server-events`` has or will get (we expect to be the DTLS server)."""
        if self.server_events_id is not None:
            return self.server_events_id
        transport = self.transport
        return transport.channels.allocate() if transport is not None else 1

    def stream_status(self, stream_id: int, closed: bool) -> str:
        """Return the API status of our channel on ``stream_id``."""
        transport = self.transport
        entry = transport.channels.get(stream_id) if transport is not None else None
        if closed or entry is None or entry.state in ("closing", "closed"):
            return "inactive"
        return "active" if entry.state == "open" else "initializing"

    # -- API commands ------------------------------------------------------------

    def publish(self, name: str, policy: ChannelPolicy, now: float,
                feeds: tuple[ChannelFeed, ...] = ()) -> PublishedChannel:
        """Allocate an id and publish a negotiated channel under ``name``.

        ``feeds`` also get every message (the cluster's relay to other nodes).

        :raises NoTransport: no m=application has been negotiated.
        :raises ChannelExists: an open channel of that name is already published.
        """
        if self.published(name) is not None:
            raise ChannelExists(f"DataChannel {name!r} is already published on this session")
        stream_id = self._open(name, policy, now)
        channel = self.channels[stream_id] = PublishedChannel(self.session, stream_id, name,
                                                              policy, feeds=feeds)
        return channel

    def subscribe(self, publication: Publication, policy: ChannelPolicy, now: float, *,
                  can_reply: bool = False, wait_for_ack: bool = False) -> ChannelSubscription:
        """Allocate an id on this session carrying ``publication``'s messages.

        :raises NoTransport: no m=application has been negotiated.
        :raises ChannelExists: this session already subscribes to ``publication``.
        """
        if self.subscription(publication) is not None:
            raise ChannelExists(f"DataChannel {publication.name!r} is already subscribed")
        stream_id = self._open(publication.name, policy, now)
        channel = ChannelSubscription(self.session, stream_id, publication, policy,
                                      ack_deadline=now + ACK_TIMEOUT if wait_for_ack else None)
        self.channels[stream_id] = channel
        publication.subscribers.append(channel)
        if can_reply:
            self.grant_reply(channel, True)
        return channel

    def grant_reply(self, subscription: ChannelSubscription, allowed: bool) -> None:
        """Give ``subscription`` (alone) or take from it the right to send to the publisher."""
        publication = subscription.publication
        before = publication.replier
        if allowed:
            if publication.replier is not None:
                publication.replier.can_reply = False
            publication.replier = subscription
        elif publication.replier is subscription:
            publication.replier = None
        subscription.can_reply = allowed
        if publication.replier is not before:
            _replier_changed(publication)

    def close(self, stream_id: int, now: float) -> Channel | None:
        """Close our channel ``stream_id`` (a publication closes its subscriptions too).

        Return the channel, or None if there is no open one with that id.
        """
        channel = self.channels.get(stream_id)
        if channel is None or channel.closed:
            return None
        self._end(channel, now)
        return channel

    def close_all(self, now: float = 0.0) -> None:
        """End every channel of the session (the session is closing)."""
        for channel in list(self.channels.values()):
            if not channel.closed:
                self._end(channel, now, reset=False)

    def published(self, name: str) -> PublishedChannel | None:
        """Return the open channel published under ``name``, or None."""
        return next((c for c in self.channels.values() if isinstance(c, PublishedChannel)
                     and c.name == name and not c.closed), None)

    def subscription(self, publication: Publication) -> ChannelSubscription | None:
        """Return this session's open subscription to ``publication``, or None."""
        return next((c for c in self.channels.values() if isinstance(c, ChannelSubscription)
                     and c.publication is publication and not c.closed), None)

    def listed(self, now: float) -> list[Channel]:
        """Return the channels to list, in id order, after expiring late ``waitForAck``s."""
        for channel in list(self.channels.values()):
            if isinstance(channel, ChannelSubscription) and not channel.closed and \
                    channel.ack_deadline is not None and now >= channel.ack_deadline:
                self._end(channel, now)
        return [self.channels[i] for i in sorted(self.channels)]

    # -- events from the PeerConnection -------------------------------------------------

    def handle_event(self, event: PeerEvent, now: float) -> None:
        """Fan out a publisher's message, route a reply, or note a closed channel."""
        if type(event) is MessageReceived:
            self.messages["received"] += 1
            channel = self.channels.get(event.channel_id)
            if channel is None or channel.closed:
                self.drops["message-on-unknown-channel"] += 1
            elif type(channel) is PublishedChannel:
                self._fan_out(channel, event, now)
            elif type(channel) is ChannelSubscription:
                self._from_subscriber(channel, event, now)
        elif type(event) is ChannelClosed:
            channel = self.channels.get(event.channel_id)
            if channel is not None and not channel.closed:
                self._end(channel, now, reset=False)
            if event.channel_id == self.server_events_id:
                self.server_events_id = None
        elif type(event) is TransportClosed:
            self.close_all(now)

    def _fan_out(self, publication: PublishedChannel, event: MessageReceived,
                 now: float) -> None:
        data = event.data
        send_to_subscribers(publication.subscribers, data, now, self)
        for feed in publication.feeds:
            feed.message(publication, data, now)

    def _from_subscriber(self, subscription: ChannelSubscription, event: MessageReceived,
                         now: float) -> None:
        if subscription.ack_deadline is not None:
            subscription.ack_deadline = None  # the acknowledgment: consumed
        elif subscription.can_reply and not subscription.publication.closed:
            publication = subscription.publication
            if isinstance(publication, RemotePublication):
                publication.relay.reply(publication, event.data, now)   # to the owner node
                return
            self._deliver(publication.session, publication.id, event.data, now)
        else:
            self.drops["one-way"] += 1

    def _deliver(self, target: ChannelHost, stream_id: int, data: bytes | str,
                 now: float) -> None:
        """Send one message on ``target``'s stream and mark it for the I/O side to flush."""
        connection = target.connection
        transport = connection.sctp if connection is not None else None
        if transport is None:
            self.drops["no-transport"] += 1
            return
        if transport.buffered_amount > MAX_BACKLOG:
            self.drops["subscriber-backlog"] += 1
            return
        try:
            transport.send(stream_id, data, now)
        except LocalProtocolError:
            self.drops["channel-not-open"] += 1
            return
        target.datachannels.messages["delivered"] += 1
        self.flush(target, now)

    # -- internals ------------------------------------------------------------------------

    def _open(self, name: str, policy: ChannelPolicy, now: float) -> int:
        transport = self.transport
        if transport is None:
            raise NoTransport("no DataChannel transport: negotiate an m=application section "
                              "first (datachannels/establish)")
        if sum(not c.closed for c in self.channels.values()) >= MAX_CHANNELS:
            raise LocalProtocolError("too many DataChannels on this session")
        stream_id = transport.channels.allocate()
        transport.open_channel(name, id=stream_id, negotiated=True, ordered=policy.ordered,
                               max_retransmits=policy.max_retransmits,
                               max_packet_life_time=policy.max_packet_life_time)
        self.flush(self.session, now)
        return stream_id

    def _end(self, channel: Channel, now: float, reset: bool = True) -> None:
        """Mark ``channel`` closed, unlink it, and reset its stream unless the peer did."""
        channel.closed = True
        if isinstance(channel, PublishedChannel):
            for subscription in list(channel.subscribers):
                if not subscription.closed:
                    subscription.session.datachannels._end(subscription, now)
            channel.subscribers.clear()
            channel.replier = None
            for feed in channel.feeds:
                feed.ended(channel, now)
        else:
            publication = channel.publication
            if channel in publication.subscribers:
                publication.subscribers.remove(channel)
            if publication.replier is channel:
                publication.replier = None
                _replier_changed(publication)
            if isinstance(publication, RemotePublication):
                publication.unsubscribed()
        transport = self.transport
        if reset and transport is not None:
            transport.close_channel(channel.id)
            self.flush(self.session, now)

    @staticmethod
    def flush(target: ChannelHost, now: float) -> None:
        """Move ``target``'s queued SCTP packets into DTLS and mark it touched."""
        connection = target.connection
        if connection is not None and connection.sctp is not None:
            connection.flush_sctp(now)
            target.touched.add(target)
