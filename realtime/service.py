"""
``twistd realtime``: the service tree built from the command-line options.

The options are in :mod:`realtime.options`.

:func:`makeService` builds one :class:`RealtimeService` (a ``MultiService``)::

    RealtimeService
     ├─ sfu-collect  TimerService(SfuSessions.collect): silent tracks, dead sessions, every 5 s
     ├─ usage-flush  UsageFlush: SFU usage counters -> state store every 10 s and on stop
     ├─ turn-usage-flush  UsageFlush: TURN usage -> state store every 30 s and on stop
     ├─ media        UDPServer(--media-port, MediaPort(PeerHost.router))      all PeerConnections
     ├─ turn-udp     UDPServer(--turn-port, TurnUdpPort)                         RFC 8656 §3.1
     ├─ api          EndpointListener(--api, Site(api.app.resource()))        HTTPS/HTTP
     ├─ turn-tcp     EndpointListener(tcp:--turn-port, TurnConnectionFactory)    RFC 8656 §3.1
     ├─ turn-tls     EndpointListener(ssl:--turns-port, TurnConnectionFactory)   RFC 8656 §3.1
     ├─ turn-<kind>-alt-<port>  one per --turn-alt-port (see realtime.net.turn_service)
     └─ cluster      ClusterNodeService (with --cluster)

The :class:`~realtime.api.app.RealtimeAPI` is given every collaborator here
(PeerHost, Switchboard, rate limiters, SfuUsage, TurnKeys, the cluster's
hooks); periodic work runs only as the child services above, so it starts
and stops with the tree.

State lives in ``--state-dir`` (mode 0700): ``realtime.sqlite3`` (apps, TURN
keys, usage; see :mod:`realtime.storage`) and ``tls/`` (the self-signed certificate; see
:mod:`realtime.net.certificate`).  With no ``--app``, an app is generated on
first start and stored; its secret is printed with a ready-to-paste curl line
by that start only (later starts name the app and where its secret is stored,
so logs kept for months do not hold it).  The same goes for a generated TURN
key's token.  Port 0 means "any free port"; the bound ports are then in
:attr:`RealtimeService.config` and the ``*_port`` properties.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.application import internet
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet import endpoints
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort, IProtocolFactory, IReactorTime, IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.web.resource import IResource
from twisted.web.server import Site

from realtime.api.app import RealtimeAPI
from realtime.api.auth import authenticate
from realtime.api.sessions import COLLECT_INTERVAL
from realtime.api.usage import SfuUsage
from realtime.cluster.accounts import AccountGate, AccountSync, ClusterAccounts
from realtime.cluster.forward import build_forwarding
from realtime.cluster.jit import JustInTime
from realtime.cluster.node import ClusterNodeService
from realtime.cluster.publish import ClusterSessions
from realtime.cluster.records import ControlMessage
from realtime.cluster.remote_tracks import RemoteTracks
from realtime.cluster.datachannels import DATACHANNEL_CONTROL, DataChannelRelay
from realtime.cluster.relay import RelayKind, RelayPacketReceived
from realtime.cluster.reuseport import ReusePortUDPServer, reuse_port_endpoint
from realtime.cluster.takeover import SfuTakeOver
from realtime.cluster.workers import load_dtls_certificate, supervise
from realtime.net.certificate import TlsFiles, ensure_certificate
from realtime.net.media_port import MediaPort
from realtime.net.mmsg import BatchedUDP
from realtime.net.peers import PeerHost
from realtime.net.router import BindingRouter
from realtime.net.turn_port import TurnConnectionFactory
from realtime.net.turn_service import USAGE_FLUSH_INTERVAL, TurnRuntime, build_turn
from realtime.net.usage_flush import UsageFlush
from realtime.options import Options, has_ipv6_loopback  # noqa: F401 (has_ipv6_loopback: re-exported)
from realtime.sfu.limits import RateLimiter
from realtime.sfu.switchboard import Switchboard
from realtime.storage import ServerConfig, StateStore, generate_app

log = Logger()

def tls_endpoint(port: int, interface: str, tls: TlsFiles) -> str:
    """Return the ``ssl:`` server endpoint string for ``port`` with the state dir's certificate."""
    quote = endpoints.quoteStringArgument
    return (
        f"ssl:{port}:interface={quote(interface)}"
        f":privateKey={quote(str(tls.private_key))}:certKey={quote(str(tls.certificate))}"
    )


class EndpointListener(internet.StreamServerEndpointService):
    """Listen on a server endpoint (like ``strports.service``) and remember the port."""

    #: the listening port once started, for tests and the start-up banner
    port: IListeningPort | None = None

    def __init__(self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory,
                 description: str) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        """Start listening; a bind failure raises at once instead of being logged."""
        super().privilegedStartService()
        assert self._waitingForPort is not None  # set by the super call
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        return port


class RealtimeService(MultiService):
    """Run the API, media and TURN listeners; announce them when started.

    Built by :func:`makeService`; tests read the bound ports from
    :attr:`config` or the ``*_port`` properties after ``startService()``.
    """

    #: the TURN parts (:class:`realtime.net.turn_service.TurnRuntime`), set by makeService
    turn: TurnRuntime | None = None
    #: ``--turn-host``, for the TURN URLs
    turn_host: str | None = None
    #: ids of the apps generated by this start (their secrets are printed this once)
    new_app_ids: frozenset[str] = frozenset()
    #: the server's own IP addresses (public, interface, IPv6 relay): TURN never relays to
    #: its own TURN UDP ports on them
    own_addresses: tuple[str, ...] = ()
    #: with ``--cluster``: the media port's just-in-time fallback (its counters), else None
    just_in_time: JustInTime | None = None

    def __init__(self, api: RealtimeAPI, store: StateStore) -> None:
        super().__init__()
        self.api = api
        self.store = store
        #: the ``--turn-alt-port`` listeners, announced in the TURN URLs
        self.turn_alternates: list = []
        self.media: MediaPort
        self.peers: PeerHost
        self.turn_udp: MediaPort
        self.turn_tcp: TurnConnectionFactory
        self.turn_tls: TurnConnectionFactory
        self.api_listener: EndpointListener
        self.turn_tcp_listener: EndpointListener
        self.turn_tls_listener: EndpointListener

    @property
    def config(self) -> ServerConfig:
        """Return the announced configuration (actual ports once started)."""
        return self.api.config

    @property
    def api_port(self) -> int | None:
        """Return the bound API port (TCP), or ``None``."""
        return _bound_port(self.api_listener.port)

    @property
    def turn_tcp_port(self) -> int | None:
        """Return the bound TURN TCP port, or ``None``."""
        return _bound_port(self.turn_tcp_listener.port)

    @property
    def turns_port(self) -> int | None:
        """Return the bound TURN-over-TLS port, or ``None``."""
        return _bound_port(self.turn_tls_listener.port)

    def privilegedStartService(self) -> None:
        """Bind every port; a port in use ends the process with one clear line."""
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            raise SystemExit(f"realtime: {error}") from None

    def startService(self) -> None:
        """Start every listener, then record the bound ports and print the banner."""
        super().startService()
        given = self.api.config
        self.api.config = replace(
            given,
            media_port=_either(self.media.port, given.media_port),
            turn_port=_either(self.turn_udp.port, given.turn_port),
            turns_port=_either(self.turns_port, given.turns_port),
            api_url=self._api_url(),
        )
        if self.turn is not None:
            self.turn.keys.set_urls(self.turn_host or self.config.public_ip,
                                    self.config.turn_port, self.config.turns_port,
                                    self.turn_alternates)
            # TURN's own UDP ports (no TURN inside TURN); not the media port: a client
            # that can only relay reaches this server's SFU through this server's TURN
            ports = [udp.port for _, _, udp in self.turn.udp if udp.port is not None]
            self.turn.server.policy.add_own_endpoints(
                (address, port) for address in self.own_addresses for port in ports)
        self._announce()

    def stopService(self) -> Deferred[None]:
        """Stop every listener (the usage flushes last), cancel TURN's timer, close the store."""
        if self.turn is not None and self.running:
            self.turn.host.stop()
        if not self.running:
            self.store.close()
            return succeed(None)
        result: Deferred[None] = super().stopService()

        def close(passed: Any) -> Any:
            self.store.close()
            return passed

        return result.addBoth(close)

    def _api_url(self) -> str:
        description = self.api_listener.description
        scheme = {"ssl": "https", "tcp": "http", "tcp6": "http"}.get(description.split(":")[0])
        port = self.api_listener.port
        address = port.getHost() if port is not None else None
        if scheme is None or not isinstance(address, IPv4Address | IPv6Address):
            return description
        host = address.host
        if ipaddress.ip_address(host).is_unspecified:
            host = self.config.public_ip
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.api_port}"

    def _announce(self) -> None:
        config = self.config
        log.info("realtime API listening on {url}", url=config.api_url)
        log.info("media: UDP {ip}:{port} (announced in ICE candidates)",
                 ip=config.public_ip, port=config.media_port)
        log.info("TURN: UDP+TCP {ip}:{turn}, TLS {ip}:{turns}",
                 ip=config.public_ip, turn=config.turn_port, turns=config.turns_port)
        database = self.store.path
        turn = self.turn
        new_keys = turn.new_key_ids if turn is not None else set()
        for key in (turn.keys.keys.values() if turn is not None else []):
            if key.generated and key.key_id not in new_keys:
                log.info("TURN key {key_id} (generated; its token is stored in {database} and "
                         "was printed only when created)", key_id=key.key_id, database=database)
            elif key.generated:
                log.info("TURN key id: {key_id}\nTURN key API token: {token}\ntry: curl {insecure}"
                         "-X POST -H \"Authorization: Bearer {token}\" -d '{{\"ttl\": 3600}}' "
                         "{url}/v1/turn/keys/{key_id}/credentials/generate-ice-servers",
                         key_id=key.key_id, token=key.token, url=config.api_url,
                         insecure="-k " if config.api_url.startswith("https:") else "")
            else:
                log.info("TURN key {key_id}", key_id=key.key_id)
        for app in config.apps:
            log.info("app {app_id} (from --app)", app_id=app.app_id)
        for app in self.store.apps():
            if not app.generated:
                log.info("app {app_id} (stored)", app_id=app.app_id)
                continue
            if app.app_id not in self.new_app_ids:
                log.info("app {app_id} (generated; its secret is stored in {database} and was "
                         "printed only when created)", app_id=app.app_id, database=database)
                continue
            insecure = "-k " if config.api_url.startswith("https:") else ""
            log.info(
                "app id: {app_id}\napp secret: {secret}\ntry: curl {insecure}-X POST "
                '-H "Authorization: Bearer {secret}" {url}/v1/apps/{app_id}/sessions/new',
                app_id=app.app_id, secret=app.secret, insecure=insecure, url=config.api_url,
            )


def _published(board: Switchboard, session_id: str, name: str) -> Any:
    """Return the open DataChannel ``name`` published by local session ``session_id``, or None."""
    session = board.get(session_id)
    return None if session is None else session.datachannels.published(name)


def _flush_sessions(peers: PeerHost, sessions: Any) -> None:
    """Send what relayed DataChannel messages queued on ``sessions``."""
    for session in sessions:
        for touched in session.take_touched():
            peers.flush(touched)


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """Build the realtime service tree from parsed options.

    Creates the state dir (0700), the database and the TLS certificate if
    missing, and generates an app when there is none at all.

    :param reactor: the reactor to listen with (default: the global one).
    """
    if reactor is None:
        from twisted.internet import reactor
    state_dir = Path(options["state-dir"])
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    store = StateStore(state_dir / "realtime.sqlite3")
    apps = tuple(options["apps"])
    new_app_ids: frozenset[str] = frozenset()
    if not apps and not store.apps():
        new_app_ids = frozenset({store.add_app(generate_app(reactor.seconds())).app_id})
    interface, public_ip = options["media-interface"], options["public-ip"]
    tls = ensure_certificate(state_dir / "tls", (public_ip,))
    if options.get("workers", 1) > 1:   # the parent supervises; the workers serve
        store.close()
        return supervise(reactor, options, state_dir)
    config = ServerConfig(
        public_ip=public_ip,
        media_port=options["media-port"],
        turn_port=options["turn-port"],
        turns_port=options["turns-port"],
        apps=apps,
        session_rate=options.get("session-rate", 20),
        session_burst=options.get("session-burst", 100),
    )
    certificate = load_dtls_certificate(options.get("dtls-certificate"), reactor.seconds())
    keylog = _keylog_writer(options["dtls-keylog"])
    cluster = options.get("cluster-options")
    node: ClusterNodeService | None = None
    sessions: ClusterSessions | None = None
    jit: JustInTime | None = None
    accounts: ClusterAccounts | None = None
    fallback = BindingRouter()
    board = Switchboard()
    if cluster is not None:  # docs/cluster.md: what the cluster wires and what it does not yet
        if options.get("dtls-certificate") is None:
            log.warn("cluster: no --dtls-certificate: this node's DTLS certificate is its own, "
                     "so sessions made here connect only here")

        def on_control(message: ControlMessage) -> None:
            """A control message for this node: DataChannels', a cross-node pull's, else
            just in time's."""
            if message.action in DATACHANNEL_CONTROL:
                datachannels.control(message)
            elif account_sync.control(message):  # a TURN revocation made at another node
                pass
            elif not remote.on_control(message) and jit is not None:
                jit.control(message)

        def on_relay(packet: RelayPacketReceived) -> None:
            """A packet another node relayed here: a DataChannel message or a pulled track's."""
            if packet.kind == RelayKind.DATACHANNEL:
                datachannels.receive(packet)
            else:
                remote.on_relay(packet)

        node = ClusterNodeService(reactor, cluster, lambda: (
            f"{service.config.public_ip}:{service.config.media_port}"),
            on_control=on_control,
            on_relay=on_relay,
            on_members=lambda members: remote.on_members(members),
            private_api=lambda: (private_api.address, private_api.certificate))
        # cross-node pulls (docs/cluster.md): PeerHost is made below
        remote = RemoteTracks(reactor, node.directory, cluster.node_id, node.relay.send,
                              board=lambda: board,
                              flush=lambda session: peers.flush(session),
                              refresh_members=node.refresh_now)
        datachannels = DataChannelRelay(
            cluster.node_id, node.directory, reactor, node.relay.send, lambda: node.members,
            node.refresh_members, lambda session_id, name: _published(board, session_id, name),
            lambda touched: _flush_sessions(peers, touched))
        # apps, TURN keys, revocations and TURN usage shared (realtime.cluster.accounts)
        accounts = ClusterAccounts(node.directory, cluster.node_id, reactor,
                                   on_key_miss=lambda: account_sync.sync_soon())
        sessions = ClusterSessions(node.directory, cluster.node_id, reactor, remote=remote,
                                   relay_stats=node.relay_stats, datachannels=datachannels)
        # SFU take-over (docs/cluster.md): pulls of other nodes' tracks are mirrored first
        takeover = SfuTakeOver(lambda: board, sessions.track_records,
                               lambda: {"certificate": peers.certificate, "keylog": peers.keylog,
                                        "address": config.public_ip, "port": config.media_port},
                               reactor, pull=remote.find_or_pull)
        jit = JustInTime(
            node.directory, reactor, fallback, cluster.node_id, certificate,
            lambda session, held: peers.admit(session, held),
            lambda session_id: api.sessions.release(session_id), keylog=keylog,
            restore_sfu=takeover)
    peers = PeerHost(reactor, fallback, certificate=certificate, keylog=keylog,
                     srtp_keylog=_json_lines_writer(options.get("srtp-keylog")),
                     on_removed=None if sessions is None else sessions.session_removed,
                     on_connected=None if sessions is None else sessions.session_connected,
                     unknown_checks=jit)
    turn = build_turn(options, reactor, store, interface, public_ip, cluster=accounts)
    usage = SfuUsage(store)
    board.observers.append(usage.meter.observe)  # meter every session from the first one on
    api = RealtimeAPI(
        store, config, reactor, peers=peers, switchboard=board,
        rate_limiter=RateLimiter(),
        session_limiter=RateLimiter(config.session_rate, config.session_burst, max_keys=10_000),
        usage=usage, turn=turn.keys, cluster=sessions,
        shared_apps=None if accounts is None else accounts.shared_app)
    service = RealtimeService(api, store)
    service.new_app_ids = new_app_ids
    service.peers = peers
    service.turn = turn
    # periodic work: started and stopped with the service (stopped last, flushing once more)
    _every(reactor, "sfu-collect", COLLECT_INTERVAL, api.sessions.collect).setServiceParent(
        service)
    UsageFlush(usage.flush, reactor).setServiceParent(service)
    turn_flush = UsageFlush(turn.keys.flush, reactor,
                            options.get("turn-usage-flush", USAGE_FLUSH_INTERVAL))
    turn_flush.setName("turn-usage-flush")
    turn_flush.setServiceParent(service)

    api_description = options["api"] or tls_endpoint(8443, "127.0.0.1", tls)
    reuse = bool(options.get("reuse-port"))
    root: IResource = api.app.resource()
    if cluster is not None and node is not None and accounts is not None:
        # other nodes' apps and TURN keys are read from the directory before the API sees them
        account_sync = AccountSync(
            accounts, lambda: [*api.config.apps, *store.apps()], turn.keys)

        def gate(inner: Any) -> IResource:
            return AccountGate(inner, accounts, lambda app_id: (
                api.config.find_app(app_id) or store.get_app(app_id)) is not None, turn.keys)

        root, private_api = build_forwarding(      # any node answers any API call
            reactor, cluster.node_id, cluster.secret, cluster.relay_host, node.directory,
            gate(root), lambda session_id: _holds(api, session_id),
            lambda app_id, header: authenticate(app_id, header, api.config, api.store,
                                                accounts.shared_app))
        root = gate(root)
        private_api.setServiceParent(service)
    service.api_listener = _listener(reactor, api_description, Site(root), "api", reuse)
    service.media = MediaPort(peers.router, reactor, "media")
    peers.attach(service.media)
    service.turn_host = options["turn-host"]
    service.turn_alternates = list(options["turn-alt-ports"])
    service.own_addresses = tuple(
        a for a in {public_ip, interface, options.get("relay-ipv6")}
        if a and not ipaddress.ip_address(a).is_unspecified)
    service.turn_udp = turn.udp[0][2]
    for name, port, protocol in (("media", options["media-port"], service.media), *turn.udp):
        # --workers: SO_REUSEPORT sockets (not batched yet); else recvmmsg/sendmmsg
        udp = (ReusePortUDPServer(port, protocol, interface, reactor) if reuse
               else internet.UDPServer(port, protocol, interface=interface,
                                       reactor=BatchedUDP(reactor)))
        udp.setName(name)
        udp.setServiceParent(service)
    service.api_listener.setServiceParent(service)

    if options["tls-cert"]:
        tls = TlsFiles(Path(options["tls-cert"]), Path(options["tls-key"]))
    quoted = endpoints.quoteStringArgument(interface)
    for name, port, factory in turn.streams:
        description = (f"tcp:{port}:interface={quoted}" if factory.name.startswith("tcp")
                       else tls_endpoint(port, interface, tls))
        listener = _listener(reactor, description, factory, name, reuse)
        listener.setServiceParent(service)
        if name == "turn-tcp":
            service.turn_tcp, service.turn_tcp_listener = factory, listener
        elif name == "turn-tls":
            service.turn_tls, service.turn_tls_listener = factory, listener
    if node is not None:
        node.setServiceParent(service)
        account_sync.setServiceParent(service)
    service.just_in_time = jit
    return service



def _every(clock: IReactorTime, name: str, interval: float,
           work: Callable[[], object]) -> TimerService:
    """Return a service calling ``work()`` every ``interval`` seconds on ``clock`` while running."""
    timer = TimerService(interval, work)
    timer.clock = clock
    timer.setName(name)
    return timer


def _holds(api: RealtimeAPI, session_id: str) -> bool:
    """Return whether ``session_id`` lives here: in the switchboard or the media port's peers."""
    return (api.switchboard.get(session_id) is not None
            or session_id in api.peers.sessions)


def _keylog_writer(path: str | None) -> Callable[[bytes], None] | None:
    """Return a function appending NSS key-log lines to ``path``, or None."""
    if not path:
        return None

    def write(line: bytes) -> None:
        with open(path, "ab") as keylog:
            keylog.write(line + b"\n")

    return write


def _json_lines_writer(path: str | None) -> Callable[[dict[str, Any]], None] | None:
    """Return a function appending one JSON object per line to ``path``, or None."""
    if not path:
        return None

    def write(entry: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as keylog:
            keylog.write(json.dumps(entry, sort_keys=True) + "\n")

    return write


def _either(bound: int | None, given: int) -> int:
    """Return the bound port, or the one asked for if it is not known."""
    return given if bound is None else bound


def _bound_port(port: IListeningPort | None) -> int | None:
    """Return the TCP port ``port`` listens on, or ``None`` before it listens."""
    address = port.getHost() if port is not None else None
    return address.port if isinstance(address, IPv4Address | IPv6Address) else None


def _listener(reactor: Any, description: str, factory: IProtocolFactory, name: str,
              reuse_port: bool = False) -> EndpointListener:
    endpoint = endpoints.serverFromString(reactor, description)
    if reuse_port:
        try:
            endpoint = reuse_port_endpoint(reactor, endpoint)
        except ValueError as error:
            raise SystemExit(f"realtime: --{name}: {error}") from None
    listener = EndpointListener(endpoint, factory, description)
    listener.setName(name)
    return listener
