"""
``twistd realtime``: the service tree built from the command-line options.

The options are in :mod:`realtime.options`.

:func:`makeService` is the composition root: it builds every part first,
each given its collaborators through its constructor (the TURN parts in
:func:`realtime.net.turn_service.build_turn`, with ``--cluster`` the
cluster's in :func:`realtime.cluster.wiring.build_cluster`), then one
:class:`RealtimeService` (a ``MultiService``) from a frozen
:class:`ServiceParts` and its children, in start order::

    RealtimeService
     ├─ sfu-collect  TimerService(SfuSessions.collect): silent tracks, dead sessions, every 5 s
     ├─ usage-flush  UsageFlush: SFU usage counters -> state store every 10 s and on stop
     ├─ turn-usage-flush  UsageFlush: TURN usage -> state store every 30 s and on stop
     ├─ private-api  PrivateApiService (with --cluster): forwarded API calls
     ├─ media        UDPServer(--media-port, MediaPort(PeerHost.router))      all PeerConnections
     ├─ turn-udp     UDPServer(--turn-port, TurnUdpPort)                         RFC 8656 §3.1
     ├─ api          EndpointListener(--api, Site(api.app.resource()))        HTTPS/HTTP
     │                 (with --demo: Site(DemoResource(that root)), realtime.api.demo)
     ├─ turn-tcp     EndpointListener(tcp:--turn-port, TurnConnectionFactory)    RFC 8656 §3.1
     ├─ turn-tls     EndpointListener(ssl:--turns-port, TurnConnectionFactory)   RFC 8656 §3.1
     ├─ turn-<kind>-alt-<port>  one per --turn-alt-port (see realtime.net.turn_service)
     ├─ cluster      ClusterNodeService (with --cluster)
     └─ metrics, metrics-sweep, metrics-lag  (with --metrics) Prometheus text format on its
                     own endpoint, the counters' sweep and the reactor-lag probe
                     (realtime.net.metrics_service; the API's root is then wrapped by ApiMetrics)

The :class:`~realtime.api.app.RealtimeAPI` is given every collaborator here
(PeerHost, Switchboard, rate limiters, SfuUsage, TurnKeys, the cluster's
hooks); periodic work runs only as the child services above, so it starts
and stops with the tree.  docs/architecture.md draws the build order.

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
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.application import internet
from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort, IProtocolFactory, IReactorTime, IStreamServerEndpoint,
)
from twisted.logger import ILogObserver, Logger
from twisted.web.resource import IResource
from twisted.web.server import Site

from realtime.api.adapters import AdapterSettings
from realtime.api.app import RealtimeAPI
from realtime.api.demo import DemoResource
from realtime.api.sessions import COLLECT_INTERVAL
from realtime.api.usage import SfuUsage
from realtime.cluster.accounts import AccountSync
from realtime.cluster.jit import JustInTime
from realtime.cluster.reuseport import reuse_port_endpoint
from realtime.cluster.wiring import ClusterParts, build_cluster, forward_api
from realtime.cluster.workers import load_dtls_certificate, supervise
from realtime.net.certificate import TlsFiles, ensure_certificate
from realtime.net.json_log import JsonLinesObserver
from realtime.net.media_port import MediaPort
from realtime.net.metrics_service import build_metrics
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

S = TypeVar("S", bound=Service)

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


@dataclass(frozen=True)
class ServiceParts:
    """What :class:`RealtimeService` runs and announces, built by :func:`makeService` first."""

    api: RealtimeAPI
    store: StateStore
    peers: PeerHost
    #: the TURN parts (host, machine, keys, relays, listener protocols)
    turn: TurnRuntime
    #: the media port (``--media-port``): every PeerConnection's UDP socket
    media: MediaPort
    api_listener: EndpointListener
    turn_tcp_listener: EndpointListener
    turn_tls_listener: EndpointListener
    #: ``--turn-host``, for the TURN URLs
    turn_host: str | None = None
    #: the ``--turn-alt-port`` listeners, announced in the TURN URLs
    turn_alternates: tuple[tuple[str, int], ...] = ()
    #: the server's own IP addresses (public, interface, IPv6 relay): TURN never relays to
    #: its own TURN UDP ports on them
    own_addresses: tuple[str, ...] = ()
    #: ids of the apps generated by this start (their secrets are printed this once)
    new_app_ids: frozenset[str] = frozenset()
    #: with ``--cluster``: the node's parts (:mod:`realtime.cluster.wiring`), else None
    cluster: ClusterParts | None = None
    #: with ``--log-format json``: the observer twistd is to log to (realtime.net.json_log)
    log_observer: Any = None
    #: with ``--demo``: the demo page and its proxy (:mod:`realtime.api.demo`), else None
    demo: DemoResource | None = None


class RealtimeService(MultiService):
    """Run the API, media and TURN listeners; announce them when started.

    Built by :func:`makeService` from its :class:`ServiceParts` and its child
    services (started in the order given, stopped in reverse); tests read the
    bound ports from :attr:`config` or the ``*_port`` properties after
    ``startService()``.
    """

    def __init__(self, parts: ServiceParts, children: Iterable[Service] = ()) -> None:
        super().__init__()
        self.parts = parts
        self.api = parts.api
        self.store = parts.store
        self.peers = parts.peers
        self.turn = parts.turn
        self.media = parts.media
        self.api_listener = parts.api_listener
        self.turn_tcp_listener = parts.turn_tcp_listener
        self.turn_tls_listener = parts.turn_tls_listener
        self.turn_host = parts.turn_host
        self.turn_alternates = parts.turn_alternates
        self.own_addresses = parts.own_addresses
        self.new_app_ids = parts.new_app_ids
        #: the TURN listeners' protocols (their ``drops`` counters)
        self.turn_udp: MediaPort = parts.turn.udp[0][2]
        streams = {name: factory for name, _, factory in parts.turn.streams}
        self.turn_tcp: TurnConnectionFactory = streams["turn-tcp"]
        self.turn_tls: TurnConnectionFactory = streams["turn-tls"]
        #: with ``--cluster``: the media port's just-in-time fallback (its counters), else None
        self.just_in_time: JustInTime | None = (
            parts.cluster.jit if parts.cluster is not None else None)
        for child in children:
            child.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> Any:  # noqa: N802 (Twisted)
        """Join ``parent``; with ``--log-format json``, give twistd's application our observer."""
        if self.parts.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.parts.log_observer)
        return super().setServiceParent(parent)

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
        if self.running:
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
        new_keys = turn.new_key_ids
        for key in turn.keys.keys.values():
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
        demo = self.parts.demo
        if demo is not None:
            log.info("demo page: {url}/ (its proxy acts as app {app_id}; docs/operations.md)",
                     url=config.api_url, app_id=demo.app.app_id)
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
    # with --cluster: the node and what hangs off it (realtime.cluster.wiring, docs/cluster.md)
    cluster_options = options.get("cluster-options")
    fallback = BindingRouter()
    board = Switchboard(transport_cc=not options.get("no-transport-cc"),
                        pacing=not options.get("no-pacer"))
    cluster = None if cluster_options is None else build_cluster(
        reactor, cluster_options, board=board, fallback=fallback, certificate=certificate,
        config=config, keylog=keylog, own_certificate=options.get("dtls-certificate") is None)
    hooks = None if cluster is None else cluster.sessions
    peers = PeerHost(reactor, fallback, certificate=certificate, keylog=keylog,
                     srtp_keylog=_json_lines_writer(options.get("srtp-keylog")),
                     on_removed=None if hooks is None else hooks.session_removed,
                     on_connected=None if hooks is None else hooks.session_connected,
                     unknown_checks=None if cluster is None else cluster.jit)
    turn = build_turn(options, reactor, store, interface, public_ip,
                      cluster=None if cluster is None else cluster.accounts)
    usage = SfuUsage(store)
    board.observers.append(usage.meter.observe)  # meter every session from the first one on
    api = RealtimeAPI(
        store, config, reactor, peers=peers, switchboard=board,
        rate_limiter=RateLimiter(),
        session_limiter=RateLimiter(config.session_rate, config.session_burst, max_keys=10_000),
        usage=usage, turn=turn.keys, cluster=hooks,
        shared_apps=None if cluster is None else cluster.accounts.shared_app,
        adapters=AdapterSettings(allow_loopback=bool(options.get("allow-loopback-adapters")),
                                 jpeg_fps=float(options.get("adapter-jpeg-fps") or 1.0),
                                 per_app=int(options.get("adapter-limit") or 64)))
    media = MediaPort(peers.router, reactor, "media")
    peers.attach(media)

    # the child services, in start order (stopped in reverse: the usage flushes last)
    children: list[Service] = [
        _every(reactor, "sfu-collect", COLLECT_INTERVAL, api.sessions.collect),
        UsageFlush(usage.flush, reactor),
        _named(UsageFlush(turn.keys.flush, reactor,
                          options.get("turn-usage-flush", USAGE_FLUSH_INTERVAL)),
               "turn-usage-flush"),
    ]
    reuse = bool(options.get("reuse-port"))
    root: IResource = api.app.resource()
    if cluster is not None and cluster_options is not None:  # any node answers any API call
        cluster.peers.bind(peers)
        cluster.api.bind(api)
        root, private_api = forward_api(reactor, cluster_options, cluster, root, store,
                                        turn.keys)
        children.append(private_api)
    if options.get("metrics"):  # Prometheus on its own port; the API's requests timed
        root, metered = build_metrics(
            options["metrics"], reactor, peers=peers, switchboard=board,
            turn_server=turn.server, api_root=root, url_map=api.app.url_map,
            ports={"media": media, **{n: p for n, _, p in turn.udp},
                   **{n: f for n, _, f in turn.streams}},
            cluster=None if cluster is None or cluster_options is None else (
                cluster_options.node_id, cluster.node.relay.link, cluster.datachannels,
                cluster.node.rtts),
            listen=lambda description, resource: _listener(
                reactor, description, Site(resource), "metrics",
                reuse and not description.startswith("unix:")))  # --workers: its own socket
        children += metered
    demo = None
    if options.get("demo"):  # the page at / and its proxy, in front of everything else
        root = demo = DemoResource(root, apps[0] if apps else store.apps()[0])
    api_description = options["api"] or tls_endpoint(8443, "127.0.0.1", tls)
    api_listener = _listener(reactor, api_description, Site(root), "api", reuse)
    for name, port, protocol in (("media", options["media-port"], media), *turn.udp):
        # recvmmsg/sendmmsg, 4 MiB buffers; --workers: with SO_REUSEPORT
        udp = internet.UDPServer(port, protocol, interface=interface,
                                 reactor=BatchedUDP(reactor, reuse_port=reuse))
        children.append(_named(udp, name))
    children.append(api_listener)

    if options["tls-cert"]:
        tls = TlsFiles(Path(options["tls-cert"]), Path(options["tls-key"]))
    quoted = endpoints.quoteStringArgument(interface)
    streams: dict[str, EndpointListener] = {}
    for name, port, factory in turn.streams:
        description = (f"tcp:{port}:interface={quoted}" if factory.name.startswith("tcp")
                       else tls_endpoint(port, interface, tls))
        streams[name] = _listener(reactor, description, factory, name, reuse)
        children.append(streams[name])
    if cluster is not None:
        children.append(cluster.node)
        # other nodes' apps and TURN keys (realtime.cluster.accounts), synced every 5 s
        children.append(cluster.account_sync.bind(AccountSync(
            cluster.accounts, lambda: [*api.config.apps, *store.apps()], turn.keys)))
    parts = ServiceParts(
        api, store, peers, turn, media, api_listener,
        turn_tcp_listener=streams["turn-tcp"], turn_tls_listener=streams["turn-tls"],
        turn_host=options["turn-host"],
        turn_alternates=tuple(options["turn-alt-ports"]),
        own_addresses=tuple(a for a in {public_ip, interface, options.get("relay-ipv6")}
                            if a and not ipaddress.ip_address(a).is_unspecified),
        new_app_ids=new_app_ids, cluster=cluster, demo=demo,
        log_observer=JsonLinesObserver(sys.stdout) if options.get("log-format") == "json"
        else None)
    return RealtimeService(parts, children)



def _every(clock: IReactorTime, name: str, interval: float,
           work: Callable[[], object]) -> TimerService:
    """Return a service calling ``work()`` every ``interval`` seconds on ``clock`` while running."""
    timer = TimerService(interval, work)
    timer.clock = clock
    timer.setName(name)
    return timer


def _named(service: S, name: str) -> S:
    """Return ``service`` named ``name`` (its name in the service tree)."""
    service.setName(name)
    return service


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
