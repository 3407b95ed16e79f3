"""
The cluster directory: typed reads and writes of :mod:`realtime.cluster.records` in Redis.

:class:`Directory` turns each operation into a few Redis commands on a
:class:`~realtime.cluster.client.RedisConnection` (pipelined, so a
multi-key write costs one round trip) and decodes what it reads, trusting
nothing: a record that does not decode is treated as absent and counted in
:attr:`Directory.corrupt_records`.  Control messages between nodes travel
over pub/sub on a second, subscriber connection.

Every method is a coroutine that awaits Redis; while Redis is away they raise
:class:`~realtime.cluster.client.DirectoryUnavailable` at once.  They are for
the edges of the system (API calls, the first packet of an unknown session,
membership), never for the per-packet path (DESIGN.md §6).

:class:`NodeHeartbeat` keeps this node in the registry: ``SET node PX ttl``
every ``ttl / 3``, so a node that stops (crash, partition) disappears after
at most ``ttl`` (10 s by default) without anyone having to notice.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine

from twisted.internet.defer import Deferred, DeferredList, FirstError, gatherResults
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from realtime.cluster.address import RedisAddress
from realtime.cluster.client import DirectoryUnavailable, RedisConnection
from realtime.cluster.keys import Keys
from realtime.cluster.records import (
    AppRecord, ControlMessage, DataChannelRecord, NodeRecord, RecordDecodeError,
    SessionRecord, TrackRecord, TurnKeyRecord, TurnUsage,
)

log = Logger()

#: Seconds a node stays in the registry after its last heartbeat.
NODE_TTL = 10.0

ControlCallback = Callable[[ControlMessage], None]

#: Lua: delete KEYS[1] only if it holds ARGV[1] (one round trip, atomic in Redis).
_DELETE_IF_EQUAL = ("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                    "return redis.call('DEL', KEYS[1]) end return 0")


class Directory:
    """Read and write the cluster's shared state in Redis.

    :param reactor: the Twisted reactor (time, TCP/Unix connections).
    :param address: the parsed ``--cluster`` URL.
    :param keys: key names (namespace ``rt`` by default).
    """

    def __init__(self, reactor, address: RedisAddress, keys: Keys = Keys(),
                 command_timeout: float = 2.0) -> None:
        self.reactor = reactor
        self.keys = keys
        self.redis = RedisConnection(reactor, address, command_timeout=command_timeout)
        self.subscriber = RedisConnection(reactor, address, on_message=self._message,
                                          command_timeout=command_timeout)
        self._control: dict[bytes, ControlCallback] = {}
        #: Records read from Redis that did not decode (treated as absent).
        self.corrupt_records = 0
        #: Control messages that did not decode (dropped).
        self.dropped_control = 0

    @property
    def url(self) -> str:
        """The directory's URL with any password masked."""
        return self.redis.url

    @property
    def available(self) -> bool:
        """True while the command connection is up."""
        return self.redis.ready

    async def start(self) -> None:
        """Connect both connections; raise :class:`DirectoryUnavailable` naming the URL."""
        await self.redis.start()
        try:
            await self.subscriber.start()
        except DirectoryUnavailable:
            await self.redis.stop()
            raise

    async def stop(self) -> None:
        """Close both connections."""
        await gatherResults([self.redis.stop(), self.subscriber.stop()])

    # -- plumbing ---------------------------------------------------------

    async def _pipeline(self, *commands: tuple) -> list:
        """Send ``commands`` back to back (one round trip); return their replies."""
        return await gatherResults([self.redis.execute(*c) for c in commands],
                                   consumeErrors=True).addErrback(_first_error)

    def _decode(self, cls, data: bytes | None):
        if data is None:
            return None
        try:
            return cls.decode(data)
        except RecordDecodeError as error:
            self.corrupt_records += 1
            log.warn("cluster directory holds a bad {kind} record: {error}",
                     kind=cls.kind, error=str(error))
            return None

    async def _get(self, cls, key: str):
        return self._decode(cls, await self.redis.execute("GET", key))

    # -- apps and TURN keys -------------------------------------------------

    async def put_app(self, app: AppRecord) -> None:
        """Store ``app`` (kept until deleted: nothing is lost when a node restarts)."""
        await self._pipeline(("SET", self.keys.app(app.app_id), app.encode()),
                             ("SADD", self.keys.apps, app.app_id))

    async def get_app(self, app_id: str) -> AppRecord | None:
        """Return app ``app_id`` or ``None``."""
        return await self._get(AppRecord, self.keys.app(app_id))

    async def app_ids(self) -> list[str]:
        """Return the ids of every stored app, sorted."""
        return sorted(m.decode() for m in await self.redis.execute("SMEMBERS", self.keys.apps))

    async def put_turn_key(self, key: TurnKeyRecord) -> None:
        """Store TURN key ``key``."""
        await self._pipeline(("SET", self.keys.turn_key(key.key_id), key.encode()),
                             ("SADD", self.keys.turn_keys, key.key_id))

    async def get_turn_key(self, key_id: str) -> TurnKeyRecord | None:
        """Return TURN key ``key_id`` or ``None``."""
        return await self._get(TurnKeyRecord, self.keys.turn_key(key_id))

    async def revoke_turn(self, username: str, lifetime: float) -> None:
        """Mark TURN credential ``username`` revoked for the ``lifetime`` it had left."""
        await self.redis.execute("SET", self.keys.turn_revoked(username), "1",
                                 "PX", max(1, int(lifetime * 1000)))

    async def is_turn_revoked(self, username: str) -> bool:
        """Return whether TURN credential ``username`` was revoked."""
        return bool(await self.redis.execute("EXISTS", self.keys.turn_revoked(username)))

    async def add_turn_usage(self, key_id: str, ingress: int, egress: int) -> None:
        """Add byte counts to TURN key ``key_id``'s usage (atomic per counter)."""
        key = self.keys.turn_usage(key_id)
        await self._pipeline(("HINCRBY", key, "ingress", ingress),
                             ("HINCRBY", key, "egress", egress))

    async def turn_usage(self, key_id: str) -> TurnUsage:
        """Return the TURN usage counted for ``key_id`` by every node."""
        ingress, egress = await self.redis.execute(
            "HMGET", self.keys.turn_usage(key_id), "ingress", "egress")
        return TurnUsage(key_id, int(ingress or 0), int(egress or 0))

    # -- sessions, tracks, DataChannels ------------------------------------

    async def put_session(self, session: SessionRecord) -> None:
        """Store ``session`` and its ufrag index (the first-STUN lookup)."""
        await self._pipeline(
            ("SET", self.keys.session(session.session_id), session.encode()),
            ("SET", self.keys.ufrag(session.ice_ufrag), session.session_id))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """Return session ``session_id`` or ``None``."""
        return await self._get(SessionRecord, self.keys.session(session_id))

    async def session_for_ufrag(self, ice_ufrag: str) -> SessionRecord | None:
        """Return the session whose answer carried ``ice_ufrag`` (two round trips)."""
        session_id = await self.redis.execute("GET", self.keys.ufrag(ice_ufrag))
        if session_id is None:
            return None
        session = await self.get_session(session_id.decode(errors="replace"))
        return session if session is not None and session.ice_ufrag == ice_ufrag else None

    async def delete_session(self, session_id: str) -> None:
        """Remove ``session_id`` with its ufrag index, tracks and DataChannels."""
        session = await self.get_session(session_id)
        tracks, channels = await self._pipeline(
            ("SMEMBERS", self.keys.session_tracks(session_id)),
            ("SMEMBERS", self.keys.session_datachannels(session_id)))
        doomed = [self.keys.session(session_id), self.keys.session_tracks(session_id),
                  self.keys.session_datachannels(session_id)]
        doomed += [self.keys.track(session_id, t.decode()) for t in tracks]
        doomed += [self.keys.datachannel(session_id, c.decode()) for c in channels]
        if session is not None:
            doomed.append(self.keys.ufrag(session.ice_ufrag))
        await self.redis.execute("DEL", *doomed)

    async def put_track(self, track: TrackRecord) -> None:
        """Store ``track`` and list it under its session."""
        await self._pipeline(
            ("SET", self.keys.track(track.session_id, track.track_name), track.encode()),
            ("SADD", self.keys.session_tracks(track.session_id), track.track_name))

    async def get_track(self, session_id: str, track_name: str) -> TrackRecord | None:
        """Return track ``track_name`` of ``session_id`` or ``None``."""
        return await self._get(TrackRecord, self.keys.track(session_id, track_name))

    async def session_tracks(self, session_id: str) -> list[TrackRecord]:
        """Return every track ``session_id`` pushed, sorted by name."""
        names = await self.redis.execute("SMEMBERS", self.keys.session_tracks(session_id))
        if not names:
            return []
        values = await self.redis.execute(
            "MGET", *[self.keys.track(session_id, n.decode()) for n in sorted(names)])
        return [t for t in (self._decode(TrackRecord, v) for v in values) if t is not None]

    async def put_datachannel(self, channel: DataChannelRecord) -> None:
        """Store DataChannel publication ``channel`` and list it under its session."""
        await self._pipeline(
            ("SET", self.keys.datachannel(channel.session_id, channel.name), channel.encode()),
            ("SADD", self.keys.session_datachannels(channel.session_id), channel.name))

    async def get_datachannel(self, session_id: str, name: str) -> DataChannelRecord | None:
        """Return DataChannel ``name`` published by ``session_id`` or ``None``."""
        return await self._get(DataChannelRecord, self.keys.datachannel(session_id, name))

    async def put_stream(self, app_id: str, name: str, session_id: str) -> None:
        """Name ``session_id`` as the publisher of app ``app_id``'s WHIP stream ``name``."""
        await self.redis.execute("SET", self.keys.whip_stream(app_id, name), session_id)

    async def get_stream(self, app_id: str, name: str) -> str | None:
        """Return the session id publishing WHIP stream ``name``, or ``None``."""
        value = await self.redis.execute("GET", self.keys.whip_stream(app_id, name))
        return None if value is None else value.decode(errors="replace")

    async def delete_stream(self, app_id: str, name: str, session_id: str) -> None:
        """Forget WHIP stream ``name`` if ``session_id`` still publishes it (compare-and-delete:
        a newer publisher of the same name is left alone)."""
        await self.redis.execute("EVAL", _DELETE_IF_EQUAL, 1,
                                 self.keys.whip_stream(app_id, name), session_id)

    async def count_api_call(self, session_id: str, second: int) -> int:
        """Count one API call for ``session_id`` in ``second``; return the cluster-wide count."""
        key = self.keys.rate(session_id, second)
        count, _ = await self._pipeline(("INCR", key), ("EXPIRE", key, 2))
        return count

    # -- node registry -------------------------------------------------------

    async def heartbeat(self, node: NodeRecord, ttl: float = NODE_TTL) -> None:
        """(Re)register ``node`` for ``ttl`` seconds."""
        await self._pipeline(
            ("SET", self.keys.node(node.node_id), node.encode(), "PX", max(1, int(ttl * 1000))),
            ("SADD", self.keys.nodes, node.node_id))

    async def leave(self, node_id: str) -> None:
        """Remove ``node_id`` from the registry at once (orderly shutdown)."""
        await self._pipeline(("DEL", self.keys.node(node_id)),
                             ("SREM", self.keys.nodes, node_id))

    async def get_node(self, node_id: str) -> NodeRecord | None:
        """Return live node ``node_id`` (its heartbeat has not expired) or ``None``."""
        return await self._get(NodeRecord, self.keys.node(node_id))

    async def live_nodes(self) -> list[NodeRecord]:
        """Return the nodes whose heartbeat has not expired, by id; prune the rest."""
        ids = sorted(m.decode() for m in await self.redis.execute("SMEMBERS", self.keys.nodes))
        if not ids:
            return []
        values = await self.redis.execute("MGET", *[self.keys.node(i) for i in ids])
        gone = [i for i, v in zip(ids, values) if v is None]
        if gone:
            await self.redis.execute("SREM", self.keys.nodes, *gone)
        return [n for n in (self._decode(NodeRecord, v) for v in values) if n is not None]

    # -- control between nodes -------------------------------------------

    async def listen_control(self, node_id: str, callback: ControlCallback) -> None:
        """Deliver control messages addressed to ``node_id`` to ``callback``."""
        channel = self.keys.control(node_id).encode()
        self._control[channel] = callback
        await self.subscriber.subscribe(channel)

    async def send_control(self, to_node: str, message: ControlMessage) -> int:
        """Publish ``message`` to ``to_node``; return how many listeners received it."""
        return await self.redis.execute("PUBLISH", self.keys.control(to_node), message.encode())

    def _message(self, channel: bytes, payload: bytes) -> None:
        callback = self._control.get(channel)
        try:
            message = ControlMessage.decode(payload)
        except RecordDecodeError:
            self.dropped_control += 1
            return
        if callback is not None:
            callback(message)


class NodeHeartbeat:
    """Keep ``node`` registered: a heartbeat every ``ttl / 3`` seconds, ``leave`` on stop.

    :param record: returns the current :class:`NodeRecord` (fresh load and time).
    """

    def __init__(self, directory: Directory, record: Callable[[], NodeRecord],
                 ttl: float = NODE_TTL) -> None:
        self.directory = directory
        self.record = record
        self.ttl = ttl
        self.failures = 0
        self._loop = LoopingCall(self._beat)
        self._loop.clock = directory.reactor

    def start(self) -> None:
        """Send the first heartbeat now and then every ``ttl / 3`` seconds."""
        self._loop.start(self.ttl / 3, now=True)

    async def stop(self) -> None:
        """Stop heartbeating and leave the registry (best effort if Redis is away)."""
        if self._loop.running:
            self._loop.stop()
        try:
            await self.directory.leave(self.record().node_id)
        except DirectoryUnavailable:
            pass

    def _beat(self):
        d = DeferredList([_deferred(self.directory.heartbeat(self.record(), self.ttl))],
                         consumeErrors=True)

        def counted(results):
            if not results[0][0]:
                self.failures += 1

        return d.addCallback(counted)


def _deferred(coroutine: Coroutine[Any, Any, Any]) -> Deferred:
    return Deferred.fromCoroutine(coroutine)


def _first_error(failure):
    """Unwrap the first failure of a ``gatherResults`` (a ``FirstError``)."""
    if failure.check(FirstError):
        return failure.value.subFailure
    return failure
