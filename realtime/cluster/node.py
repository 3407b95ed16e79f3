"""
This process as a member of the cluster: directory connection, heartbeat, control inbox.

:class:`ClusterNodeService` is the piece of ``twistd realtime --cluster``
that is wired today:

1. ``privilegedStartService`` (before the reactor runs) checks once, with a
   blocking connect + ``PING`` (:func:`probe_directory`), that Redis answers;
   if not, the process exits with one line naming the URL, password masked.
   It then binds the relay link's UDP port on ``--relay-address``;
2. ``startService`` opens the non-blocking :class:`~realtime.cluster.directory.Directory`,
   registers this node with the bound relay address (heartbeat every
   ``ttl / 3``), subscribes to its control channel, and refreshes the relay
   link's members from the registry at the same pace;
3. ``stopService`` leaves the registry and closes the connections and the port.

The relay link carries the tracks other nodes pull from this one and the
tracks this one pulls from others (:mod:`realtime.cluster.remote_tracks`, given
as ``on_relay`` / ``on_members``), and the link's own ``PING``/``PONG``: every
:data:`~realtime.cluster.rtt.PROBE_INTERVAL` the node probes each live member (a
new one once it has surely learnt of this node: a refresh period later), keeps
the smoothed RTTs in an :class:`~realtime.cluster.rtt.RttTable` and writes them
into its registry record with each heartbeat (``NodeRecord.rtts``), where the
cascading trees read them (:mod:`realtime.cluster.cascade`).
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from realtime.cluster.address import RedisAddress
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import NODE_TTL, Directory, NodeHeartbeat
from realtime.cluster.options import ClusterOptionError, ClusterOptions, parse_relay_address
from realtime.cluster.records import ControlMessage, NodeRecord
from realtime.cluster.relay import Address, RelayKind, RelayLink, RelayPacketReceived
from realtime.cluster.relay_port import RelayPort
from realtime.cluster.rtt import PROBE_INTERVAL, RttTable
from realtime.cluster.resp import NEED_MORE, RespError, RespReader, encode_command

log = Logger()

#: Seconds added to a member's refresh period before it is probed (Redis and timer jitter).
SETTLE_MARGIN = 0.5


def probe_directory(address: RedisAddress, timeout: float = 3.0) -> None:
    """Connect, authenticate, select and ``PING`` once, blocking (start-up only).

    :raises DirectoryUnavailable: naming the redacted URL and the cause.
    """
    commands: list[tuple[str | int, ...]] = []
    if address.password is not None:
        commands.append(("AUTH", *([address.username] if address.username else []),
                         address.password))
    if address.db:
        commands.append(("SELECT", address.db))
    commands.append(("PING",))
    target: Any
    try:
        if address.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = address.unix_path
        else:
            info = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            target = info[4]
        with sock:
            sock.settimeout(timeout)
            sock.connect(target)
            reader = RespReader()
            for command in commands:
                sock.sendall(encode_command(*command))
                while (reply := reader.next_reply()) is NEED_MORE:
                    data = sock.recv(4096)
                    if not data:
                        raise ConnectionError("connection closed by the server")
                    reader.feed(data)
                if isinstance(reply, RespError):
                    raise ConnectionError(f"Redis refused {command[0]}: {reply.kind}")
    except (OSError, ValueError) as error:
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise DirectoryUnavailable(
            f"cannot reach the cluster directory at {address.redacted()}: {cause}") from None


def _directory_away(failure: Failure) -> None:
    """Swallow :class:`DirectoryUnavailable` (the loop keeps going); anything else propagates."""
    failure.trap(DirectoryUnavailable)


class ClusterNodeService(Service):
    """Keep this node registered in the directory and listening for control messages.

    :param load: returns this node's current load (0.0 = idle), sent with each heartbeat.
    :param on_control: called with every :class:`ControlMessage` addressed to this node.
    :param on_relay: called with every packet another node relays here.
    :param on_members: called with the live members' relay addresses at each refresh.
    :param private_api: returns where this node takes forwarded API calls (``HOST:PORT``)
        and the certificate (PEM) it presents there.
    :param rtt: the table of round-trip times to the members (a fresh one by default).
    """

    name = "cluster"

    def __init__(self, reactor, options: ClusterOptions, media_address: Callable[[], str],
                 load: Callable[[], float] = lambda: 0.0,
                 on_control: Callable[[ControlMessage], None] | None = None,
                 on_relay: Callable[[RelayPacketReceived], None] | None = None,
                 ttl: float = NODE_TTL,
                 on_members: Callable[[dict[str, Address]], None] | None = None,
                 private_api: Callable[[], tuple[str, str]] = lambda: ("", ""),
                 rtt: RttTable | None = None) -> None:
        self.reactor = reactor
        self.private_api = private_api
        self.options = options
        self.directory = Directory(reactor, options.address)
        self.media_address = media_address
        self.load = load
        self.on_control = on_control or self._unhandled
        self.heartbeat = NodeHeartbeat(self.directory, self.record, ttl)
        self.relay = RelayPort(
            RelayLink(options.node_id, options.secret, int(reactor.seconds() * 1000)),
            reactor, on_relay or (lambda packet: None), on_link=self._link_frame)
        self.relay_listener = None
        self._members = LoopingCall(self._refresh_tick)
        self._members.clock = reactor
        #: smoothed RTT to each member, probed every PROBE_INTERVAL (realtime.cluster.rtt)
        self.rtt = rtt if rtt is not None else RttTable()
        self._probes = LoopingCall(self._probe_round)
        self._probes.clock = reactor
        #: member -> when this node first saw it in the registry (probed from TTL/3 later)
        self._learnt: dict[str, float] = {}
        #: link frames of a kind this node does not know (dropped)
        self.unknown_link_frames = 0
        #: PINGs and PONGs sent (each sealed once: part of the link's ``sealed``), and
        #: those ``sendto`` refused (an unreachable member's address)
        self.link_frames_sent = 0
        self.link_send_errors = 0
        self.ttl = ttl
        self.on_members = on_members
        self.started: Deferred | None = None
        #: Registry entries whose relay address did not parse (skipped).
        self.bad_members = 0
        #: The live members' relay addresses as last read (node id -> address).
        self.members: dict[str, tuple[str, int]] = {}

    @property
    def relay_address(self) -> str:
        """Return ``HOST:PORT`` of the relay link as bound (the configured one before)."""
        if self.relay_listener is None:
            return self.options.relay_address
        host, port = self.options.relay_host, self.relay_listener.getHost().port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def record(self) -> NodeRecord:
        """Return this node's registry entry as of now."""
        return NodeRecord(self.options.node_id, self.relay_address,
                          self.media_address(), float(self.load()), self.reactor.seconds(),
                          *self.private_api(), rtts=self.rtts())

    def rtts(self) -> dict[str, float]:
        """Return the smoothed RTT (ms) to each live member measured lately (what the record
        carries; ``--metrics`` exports it too)."""
        members = self.members
        return {peer: ms for peer, ms in self.rtt.snapshot(self.reactor.seconds()).items()
                if peer in members}

    async def refresh_members(self) -> dict[str, tuple[str, int]]:
        """Give the relay link the live nodes of the registry (skipping unparsable entries).

        Return them (node id -> relay address), also kept in :attr:`members`.
        """
        members = {}
        for node in await self.directory.live_nodes():
            try:
                members[node.node_id] = parse_relay_address(node.relay_address)
            except ClusterOptionError:
                self.bad_members += 1
        self.relay.link.set_members(members)
        if self.on_members is not None:
            self.on_members(members)
        now, learnt, me = self.reactor.seconds(), self._learnt, self.options.node_id
        self._learnt = {m: learnt.get(m, now) for m in members if m != me}
        self.members = members
        self.rtt.retain(self._learnt)
        return members

    def _probe_round(self) -> None:
        """Send a PING to every live member known for one refresh period and a margin
        (one per member per PROBE_INTERVAL).

        The wait: a member learns of a new node at its own next refresh (TTL/3 at
        most); a PING sent earlier would reach a link that does not know this node
        yet and be dropped there as ``non_member``, blurring what that counter says
        (outsiders).
        """
        now = self.reactor.seconds()
        settle = self.ttl / 3 + SETTLE_MARGIN
        ready = [m for m, since in self._learnt.items() if now - since >= settle]
        for member, nonce in self.rtt.probes(ready, now):
            self._ping(member, nonce)

    def _ping(self, member: str, nonce: bytes) -> None:
        self._send_link(RelayKind.PING, nonce, self.members.get(member))

    def _send_link(self, kind: RelayKind, payload: bytes, address: Address | None) -> None:
        """Send a PING or PONG; an unreachable member (an OSError of ``sendto``) is counted,
        so one bad address in the registry cannot stop the probe loop."""
        if address is None or self.relay.transport is None:
            return
        try:
            self.relay.send(kind, 0, payload, [address])
        except OSError:
            self.link_send_errors += 1
        else:
            self.link_frames_sent += 1

    def _link_frame(self, packet: RelayPacketReceived) -> None:
        """A PING (answer it) or a PONG (a sample) from a member; anything else dropped."""
        if packet.kind == RelayKind.PING:
            pong = self.rtt.ping_received(packet.payload)
            if pong is not None:
                self._send_link(RelayKind.PONG, pong, self.members.get(packet.sender))
        elif packet.kind == RelayKind.PONG:
            self.rtt.pong_received(packet.sender, packet.payload, self.reactor.seconds())
        else:
            self.unknown_link_frames += 1

    def relay_stats(self) -> dict[str, Any]:
        """Return the relay link's counters: frames sealed, opened and dropped by reason."""
        link = self.relay.link
        return {"sealed": link.sealed, "opened": link.opened, "sent": link.sent,
                "dropped": dict(link.dropped), "members": link.member_ids(),
                "rtt": self.rtt.stats(self.reactor.seconds()),
                "link_frames_sent": self.link_frames_sent,
                "unknown_link_frames": self.unknown_link_frames,
                "link_send_errors": self.link_send_errors}

    def refresh_now(self) -> Deferred:
        """Re-read the registry now (a Deferred that never fails: Redis away keeps the old list)."""
        return self._refresh_tick()

    def _refresh_tick(self) -> Deferred:
        # While Redis is away the last known members stay; the loop keeps going.
        d = Deferred.fromCoroutine(self.refresh_members())
        return d.addErrback(_directory_away)

    def privilegedStartService(self) -> None:
        """Check Redis answers before anything listens; exit with one line if not."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        try:
            probe_directory(self.options.address)
        except DirectoryUnavailable as error:
            raise SystemExit(f"realtime: {error}") from None
        try:
            self.relay_listener = self.reactor.listenUDP(
                self.options.relay_port, self.relay, interface=self.options.relay_host)
        except CannotListenError as error:
            raise SystemExit(f"realtime: --relay-address {self.options.relay_address}: "
                             f"{error.socketError}") from None

    def startService(self) -> None:
        """Connect (without blocking), register, subscribe; log where the directory is."""
        super().startService()  # type: ignore[no-untyped-call]
        self.started = Deferred.fromCoroutine(self._start())
        self.started.addErrback(
            lambda f: log.error("cluster: {error}", error=f.getErrorMessage()))

    async def _start(self) -> None:
        await self.directory.start()
        await self.directory.listen_control(self.options.node_id, self.on_control)
        self.heartbeat.start()
        self._members.start(self.ttl / 3, now=True).addErrback(
            lambda f: log.error("cluster: member refresh stopped: {e}", e=f.getErrorMessage()))
        self._probes.start(PROBE_INTERVAL, now=False).addErrback(
            lambda f: log.error("cluster: RTT probes stopped: {e}", e=f.getErrorMessage()))
        log.info("cluster: node {node} in directory {url}, relay address {relay}",
                 node=self.options.node_id, url=self.directory.url, relay=self.relay_address)

    def stopService(self) -> Deferred:
        """Leave the registry and close the directory connections."""
        super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._members.running:
            self._members.stop()
        if self._probes.running:
            self._probes.stop()
        await self.heartbeat.stop()
        await self.directory.stop()
        if self.relay_listener is not None:
            await self.relay_listener.stopListening()

    def _unhandled(self, message: ControlMessage) -> None:
        log.debug("cluster: control {action} from {node} not handled yet",
                  action=message.action, node=message.from_node)
