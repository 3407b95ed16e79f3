"""
One ``twistd realtime --cluster`` node's cluster parts, composed in one place.

:func:`realtime.service.makeService` is the composition root; this module
is the cluster's share of it (docs/cluster.md says what each part does).
The parts are built in this order, each given what it needs::

    ClusterNodeService(--cluster)        directory, relay link, heartbeat; inbound
     │                                   control/relay/members go to a ClusterInbound
     ├─> RemoteTracks                    cross-node pulls       (node.directory, node.relay)
     ├─> DataChannelRelay                DataChannels over the relay link, through trees
     ├─> ClusterSessions                 the API's cluster hooks: publish tracks, sessions
     ├─> SfuTakeOver                     rebuild an SFU session whose media reached this node
     └─> JustInTime                      the media port's fallback for unknown ICE checks
    ClusterInbound.bind(parts)           now the node's inbound messages have somewhere to go

then, in makeService, the :class:`~realtime.net.peers.PeerHost` (given
``sessions`` and ``jit``) and the :class:`~realtime.api.app.RealtimeAPI`
(given ``sessions``), and last :func:`forward_api`: any node answers any API
call (:mod:`realtime.cluster.forward`).

Three of the parts call into objects built after them, because those take
the parts as collaborators: RemoteTracks, DataChannelRelay and JustInTime
flush and admit through the PeerHost; JustInTime releases through the API;
the node announces the private API listener that :func:`forward_api` makes.
Each such reference is a :class:`Late`: named, bound exactly once by the
composition root, and an error (not a silent ``None``) if used before.
None is used on the per-packet path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from twisted.logger import Logger
from twisted.web.resource import IResource

from realtime.api.app import RealtimeAPI
from realtime.api.auth import authenticate
from realtime.api.turn import TurnKeys
from realtime.cluster.accounts import AccountGate, AccountSync, ClusterAccounts
from realtime.cluster.datachannels import DATACHANNEL_CONTROL, DataChannelRelay
from realtime.cluster.forward import PrivateApiService, build_forwarding
from realtime.cluster.jit import JustInTime
from realtime.cluster.node import ClusterNodeService
from realtime.cluster.options import ClusterOptions
from realtime.cluster.publish import ClusterSessions
from realtime.cluster.records import ControlMessage
from realtime.cluster.relay import RelayKind, RelayPacketReceived
from realtime.cluster.remote_tracks import RemoteTracks
from realtime.cluster.sealing import Sealer
from realtime.cluster.takeover import SfuTakeOver
from realtime.sfu.switchboard import Switchboard
from realtime.storage import ServerConfig, StateStore

log = Logger()


class PeerHost(Protocol):
    """What the cluster asks of the media port's :class:`realtime.net.peers.PeerHost`."""

    def admit(self, session: Any, checks: Any) -> None:
        """Add a session learnt after its first ICE checks arrived; route those checks."""

    def flush(self, session: Any) -> None:
        """Send what ``session``'s connection queued outside its own input."""

T = TypeVar("T")


class Late(Generic[T]):
    """A collaborator built after the part that calls it: bound exactly once, then read.

    :param name: what it stands for, for the error if it is read unbound.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._value: T | None = None

    def bind(self, value: T) -> T:
        """Bind ``value`` (once) and return it."""
        if self._value is not None:
            raise RuntimeError(f"{self.name} is bound already")
        self._value = value
        return value

    def get(self) -> T:
        """Return the bound value; raise if the composition root has not bound it yet."""
        value = self._value
        if value is None:
            raise RuntimeError(f"{self.name} used before it was built")
        return value


@dataclass(frozen=True)
class ClusterParts:
    """A cluster node's parts, for the service tree, the PeerHost, the API and tests."""

    node: ClusterNodeService
    remote: RemoteTracks
    datachannels: DataChannelRelay
    #: the API's and the PeerHost's cluster hooks
    sessions: ClusterSessions
    takeover: SfuTakeOver
    #: the media port's just-in-time fallback (its counters are the service's ``just_in_time``)
    jit: JustInTime
    #: bound by makeService once built
    peers: Late[PeerHost]
    api: Late[RealtimeAPI]
    #: bound by :func:`forward_api`
    private_api: Late[PrivateApiService]
    #: apps, TURN keys, revocations and TURN usage shared through the directory
    accounts: ClusterAccounts
    #: bound by makeService once the API and the TURN keys are built
    account_sync: Late[AccountSync]


class ClusterInbound:
    """Route what the node receives: built before the parts it routes to, bound to them once."""

    def __init__(self) -> None:
        self.parts: Late[ClusterParts] = Late("the cluster parts")

    def control(self, message: ControlMessage) -> None:
        """A control message for this node: DataChannels', a cross-node pull's, else
        just in time's."""
        parts = self.parts.get()
        if message.action in DATACHANNEL_CONTROL:
            parts.datachannels.control(message)
        elif parts.account_sync.get().control(message):
            pass                    # a TURN revocation made at another node
        elif not parts.remote.on_control(message):
            parts.jit.control(message)

    def relay(self, packet: RelayPacketReceived) -> None:
        """A packet another node relayed here: a DataChannel message or a pulled track's."""
        parts = self.parts.get()
        if packet.kind == RelayKind.DATACHANNEL or packet.kind == RelayKind.DATACHANNEL_NACK:
            parts.datachannels.receive(packet)
        else:
            parts.remote.on_relay(packet)

    def members(self, members: dict[str, Any]) -> None:
        """The live members' relay addresses, at each refresh."""
        self.parts.get().remote.on_members(members)


def build_cluster(reactor: Any, options: ClusterOptions, *, board: Switchboard,
                  fallback: Any, certificate: Any, config: ServerConfig,
                  keylog: Callable[[bytes], None] | None = None,
                  own_certificate: bool = False) -> ClusterParts:
    """Build the cluster node and what hangs off it, in order (see the module docstring).

    :param board: the node's switchboard (its SFU sessions).
    :param fallback: the router the media port falls back to; JustInTime wraps it.
    :param certificate: the DTLS certificate (``--dtls-certificate``, shared by the nodes).
    :param config: the configuration given (its public address and media port).
    :param own_certificate: no ``--dtls-certificate`` was given (sessions connect only here).
    """
    if own_certificate:
        log.warn("cluster: no --dtls-certificate: this node's DTLS certificate is its own, "
                 "so sessions made here connect only here")
    peers: Late[PeerHost] = Late("the PeerHost")
    api: Late[RealtimeAPI] = Late("the RealtimeAPI")
    private_api: Late[PrivateApiService] = Late("the private API listener")
    account_sync: Late[AccountSync] = Late("the account sync")
    inbound = ClusterInbound()

    def media_address() -> str:
        announced = api.get().config  # the bound port once started
        return f"{announced.public_ip}:{announced.media_port}"

    def private_address() -> tuple[str, str]:
        listener = private_api.get()
        return listener.address, listener.certificate

    node = ClusterNodeService(reactor, options, media_address, on_control=inbound.control,
                              on_relay=inbound.relay, on_members=inbound.members,
                              private_api=private_address)
    remote = RemoteTracks(reactor, node.directory, options.node_id, node.relay.send,
                          board=lambda: board, flush=lambda session: peers.get().flush(session),
                          refresh_members=node.refresh_now, fanout=options.cascade_fanout)
    datachannels = DataChannelRelay(
        options.node_id, node.directory, reactor, node.relay.send, lambda: node.members,
        node.refresh_members, lambda session_id, name: _published(board, session_id, name),
        lambda touched: _flush_sessions(peers.get(), touched),
        fanout=options.cascade_fanout, heard=remote.machine.heard.get)
    # apps, TURN keys, revocations and TURN usage shared (realtime.cluster.accounts)
    accounts = ClusterAccounts(node.directory, options.node_id, reactor,
                               on_key_miss=lambda: account_sync.get().sync_soon())
    # connected sessions' SRTP keys, sealed under the cluster secret (realtime.cluster.sealing)
    sealer = Sealer(options.secret)
    sessions = ClusterSessions(node.directory, options.node_id, reactor, remote=remote,
                               relay_stats=node.relay_stats, datachannels=datachannels,
                               sealer=sealer)
    # SFU take-over (docs/cluster.md): pulls of other nodes' tracks are mirrored first
    takeover = SfuTakeOver(lambda: board, sessions.track_records,
                           lambda: {"certificate": certificate, "keylog": keylog,
                                    "address": config.public_ip, "port": config.media_port},
                           reactor, pull=remote.find_or_pull, sealer=sealer)
    jit = JustInTime(
        node.directory, reactor, fallback, options.node_id, certificate,
        lambda session, held: peers.get().admit(session, held),
        lambda session_id: api.get().sessions.release(session_id), keylog=keylog,
        restore_sfu=takeover)
    parts = ClusterParts(node, remote, datachannels, sessions, takeover, jit,
                         peers, api, private_api, accounts, account_sync)
    inbound.parts.bind(parts)
    return parts


def forward_api(reactor: Any, options: ClusterOptions, parts: ClusterParts,
                root: IResource, store: StateStore,
                turn_keys: TurnKeys) -> tuple[IResource, PrivateApiService]:
    """Let any node answer any API call: return the public resource and the private listener.

    Other nodes' apps and TURN keys are read from the directory before the API sees a call
    naming them (:class:`~realtime.cluster.accounts.AccountGate`, on both listeners).
    Called once the API is built and bound to ``parts.api``; binds ``parts.private_api``.
    """
    api = parts.api.get()
    accounts = parts.accounts

    def gate(inner: IResource) -> IResource:
        return AccountGate(inner, accounts, lambda app_id: (
            api.config.find_app(app_id) or store.get_app(app_id)) is not None, turn_keys)

    public, private = build_forwarding(
        reactor, options.node_id, options.secret, options.relay_host, parts.node.directory,
        gate(root), lambda session_id: _holds(api, session_id),
        lambda app_id, header: authenticate(app_id, header, api.config, api.store,
                                            accounts.shared_app))
    return gate(public), parts.private_api.bind(private)


def _holds(api: RealtimeAPI, session_id: str) -> bool:
    """Return whether ``session_id`` lives here: in the switchboard or the media port's peers."""
    return (api.switchboard.get(session_id) is not None
            or session_id in api.peers.sessions)


def _published(board: Switchboard, session_id: str, name: str) -> Any:
    """Return the open DataChannel ``name`` published by local session ``session_id``, or None."""
    session = board.get(session_id)
    return None if session is None else session.datachannels.published(name)


def _flush_sessions(peers: PeerHost, sessions: Iterable[Any]) -> None:
    """Send what relayed DataChannel messages queued on ``sessions``."""
    for session in sessions:
        for touched in session.take_touched():
            peers.flush(touched)
