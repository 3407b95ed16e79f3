"""
This process as a member of the cluster: directory connection, heartbeat, control inbox.

:class:`ClusterNodeService` is the piece of ``twistd realtime --cluster``
that is wired today:

1. ``privilegedStartService`` (before the reactor runs) checks once, with a
   blocking connect + ``PING`` (:func:`probe_directory`), that Redis answers;
   if not, the process exits with one line naming the URL, password masked;
2. ``startService`` opens the non-blocking :class:`~realtime.cluster.directory.Directory`,
   registers this node (heartbeat every ``ttl / 3``) and subscribes to its
   control channel;
3. ``stopService`` leaves the registry and closes the connections.

Sessions, tracks and the relay link are not wired to the SFU yet
(``docs/cluster.md`` says what is built and what is not).
"""

from __future__ import annotations

import socket
from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from realtime.cluster.address import RedisAddress
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import NODE_TTL, Directory, NodeHeartbeat
from realtime.cluster.options import ClusterOptions
from realtime.cluster.records import ControlMessage, NodeRecord
from realtime.cluster.resp import NEED_MORE, RespError, RespReader, encode_command

log = Logger()


def probe_directory(address: RedisAddress, timeout: float = 3.0) -> None:
    """Connect, authenticate, select and ``PING`` once, blocking (start-up only).

    :raises DirectoryUnavailable: naming the redacted URL and the cause.
    """
    commands = []
    if address.password is not None:
        commands.append(("AUTH", *([address.username] if address.username else []),
                         address.password))
    if address.db:
        commands.append(("SELECT", address.db))
    commands.append(("PING",))
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


class ClusterNodeService(Service):
    """Keep this node registered in the directory and listening for control messages.

    :param load: returns this node's current load (0.0 = idle), sent with each heartbeat.
    :param on_control: called with every :class:`ControlMessage` addressed to this node.
    """

    name = "cluster"

    def __init__(self, reactor, options: ClusterOptions, media_address: Callable[[], str],
                 load: Callable[[], float] = lambda: 0.0,
                 on_control: Callable[[ControlMessage], None] | None = None,
                 ttl: float = NODE_TTL) -> None:
        self.reactor = reactor
        self.options = options
        self.directory = Directory(reactor, options.address)
        self.media_address = media_address
        self.load = load
        self.on_control = on_control or self._unhandled
        self.heartbeat = NodeHeartbeat(self.directory, self.record, ttl)
        self.started: Deferred | None = None

    def record(self) -> NodeRecord:
        """Return this node's registry entry as of now."""
        return NodeRecord(self.options.node_id, self.options.relay_address,
                          self.media_address(), float(self.load()), self.reactor.seconds())

    def privilegedStartService(self) -> None:
        """Check Redis answers before anything listens; exit with one line if not."""
        super().privilegedStartService()
        try:
            probe_directory(self.options.address)
        except DirectoryUnavailable as error:
            raise SystemExit(f"realtime: {error}") from None

    def startService(self) -> None:
        """Connect (without blocking), register, subscribe; log where the directory is."""
        super().startService()
        self.started = Deferred.fromCoroutine(self._start())
        self.started.addErrback(
            lambda f: log.error("cluster: {error}", error=f.getErrorMessage()))

    async def _start(self) -> None:
        await self.directory.start()
        await self.directory.listen_control(self.options.node_id, self.on_control)
        self.heartbeat.start()
        log.info("cluster: node {node} in directory {url}, relay address {relay}",
                 node=self.options.node_id, url=self.directory.url,
                 relay=self.options.relay_address)

    def stopService(self) -> Deferred:
        """Leave the registry and close the directory connections."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await self.heartbeat.stop()
        await self.directory.stop()

    def _unhandled(self, message: ControlMessage) -> None:
        log.debug("cluster: control {action} from {node} not handled yet",
                  action=message.action, node=message.from_node)
