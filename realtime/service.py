"""
``twistd realtime``: the command-line options and the service tree.

::

    twistd -n realtime [--api ENDPOINT] [--media-interface IP] [--media-port N]
                       [--public-ip IP] [--turn-port N] [--turns-port N]
                       [--state-dir DIR] [--app ID:SECRET ...]
                       [--turn-key ID:TOKEN ...] [--turn-host NAME] [--turn-alt-port udp:53 ...]
                       [--relay-ports LOW-HIGH] [--relay-ipv6 IP|none] [--allow-loopback-peers]
                       [--allow-peer CIDR ...] [--deny-peer CIDR ...] [--tls-cert PEM --tls-key PEM]
                       [--turn-peer-rate N] [--turn-packet-rate N] [--turn-bitrate BITS]
                       [--turn-user-allocations N]

:func:`makeService` builds one :class:`RealtimeService` (a ``MultiService``)::

    RealtimeService
     ├─ api          EndpointListener(--api, Site(RealtimeAPI.app.resource()))   HTTPS/HTTP
     ├─ media        UDPServer(--media-port, MediaPort(BindingRouter))           all PeerConnections
     ├─ turn-udp     UDPServer(--turn-port, TurnUdpPort)                         RFC 8656 §3.1
     ├─ turn-tcp     EndpointListener(tcp:--turn-port, TurnConnectionFactory)    RFC 8656 §3.1
     ├─ turn-tls     EndpointListener(ssl:--turns-port, TurnConnectionFactory)   RFC 8656 §3.1
     ├─ turn-<kind>-alt-<port>  one per --turn-alt-port (see realtime.net.turn_service)
     └─ usage-flush  UsageFlush: SFU usage counters -> state store every 10 s and on stop

State lives in ``--state-dir`` (mode 0700): ``realtime.sqlite3`` (apps, TURN
keys, usage; see :mod:`realtime.storage`) and ``tls/`` (the self-signed certificate; see
:mod:`realtime.net.certificate`).  With no ``--app``, an app is generated on
first start, stored, and printed at every start with a ready-to-paste curl
line.  Port 0 means "any free port"; the bound ports are then in
:attr:`RealtimeService.config` and the ``*_port`` properties.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from dataclasses import replace
from pathlib import Path

from twisted.application import internet
from twisted.application.service import MultiService
from twisted.internet import endpoints
from twisted.internet.defer import succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from realtime.api.app import RealtimeAPI
from realtime.api.usage import flush_usage, sfu_usage
from realtime.cluster.node import ClusterNodeService
from realtime.cluster.options import ClusterOptionError, cluster_options
from realtime.net.certificate import TlsFiles, ensure_certificate
from realtime.net.media_port import MediaPort
from realtime.net.mmsg import BatchedUDP
from realtime.net.peers import PeerHost
from realtime.net.router import BindingRouter
from realtime.net.turn_port import TurnConnectionFactory
from realtime.net.turn_service import (
    build_turn, parse_alt_port, parse_cidr, parse_relay_ports, parse_turn_key,
)
from realtime.net.usage_flush import UsageFlush
from realtime.storage import App, ServerConfig, StateStore, generate_app

log = Logger()

APP_ID = re.compile(r"[A-Za-z0-9$._~-]{1,128}")
APP_SECRET = re.compile(r"[\x21-\x7e]{8,512}")


class Options(usage.Options):
    """Parse and check the options of ``twistd realtime``; errors name the option."""

    synopsis = "[options]"
    longdesc = (
        "WebRTC SFU, TURN server and a Cloudflare Realtime compatible HTTPS API. "
        "All PeerConnections share one UDP media port; TURN listens on UDP+TCP and TLS."
    )
    optParameters = [
        ["api", None, None,
         "Twisted server endpoint for the HTTPS API. Default: TLS on 127.0.0.1:8443 with "
         "the self-signed certificate of the state dir; 'tcp:8080:interface=127.0.0.1' "
         "serves plain HTTP."],
        ["media-interface", None, "127.0.0.1", "IP address the UDP media and TURN ports bind."],
        ["media-port", None, "10000",
         "The one UDP port for all PeerConnections (0: any free port)."],
        ["public-ip", None, None,
         "Address announced in ICE candidates and TURN URLs. Default: the media interface."],
        ["turn-port", None, "3478", "TURN port, UDP and TCP (0: any free port)."],
        ["turns-port", None, "5349", "TURN over TLS port (0: any free port)."],
        ["state-dir", None, "./realtime-state",
         "Directory for the database and TLS certificate (created with mode 0700)."],
        ["dtls-keylog", None, None,
         "Append the NSS key log of every DTLS handshake to this file (for tshark; "
         "never in production: it decrypts DataChannels and derives SRTP keys)."],
        ["srtp-keylog", None, None,
         "Append one JSON line of SRTP master keys per connected PeerConnection to this "
         "file (for realtime-replay --srtp-keys; never in production)."],
        ["turn-host", None, None,
         "Host name put in TURN URLs (default: --public-ip); also the TURN realm."],
        ["relay-ports", None, "49152-65535", "UDP port range of TURN relayed addresses."],
        ["relay-ipv6", None, None,
         "IPv6 address for TURN relays (REQUESTED-/ADDITIONAL-ADDRESS-FAMILY IPv6), or "
         "'none'. Default: ::1 when --public-ip is an IPv4 loopback address and this host "
         "has ::1; otherwise none (IPv6 relay requests get 440)."],
        ["turn-peer-rate", None, "10",
         "New TURN peer addresses per second per allocation (burst: twice that; 508 past it)."],
        ["turn-packet-rate", None, "10000",
         "Relayed datagrams per second per TURN allocation (excess dropped and counted)."],
        ["turn-bitrate", None, "100000000",
         "Relayed bits per second per TURN allocation (excess dropped and counted)."],
        ["turn-user-allocations", None, "16",
         "TURN allocations one username may hold at once (486 past it)."],
        ["tls-cert", None, None, "PEM certificate for TURN over TLS (default: the state dir's)."],
        ["tls-key", None, None, "PEM private key of --tls-cert."],
        ["cluster", None, None,
         "Join a cluster whose directory is Redis at redis://[:PASSWORD@]HOST:PORT[/DB] "
         "(password also from REALTIME_REDIS_PASSWORD; REALTIME_CLUSTER_SECRET must hold the "
         "secret all nodes share). Default: no cluster, one process."],
        ["node-id", None, None, "This node's id in the cluster (default: the host name)."],
        ["relay-address", None, None,
         "IP:PORT where other nodes send this node media (default: --public-ip, any port)."],
    ]
    optFlags = [
        ["allow-loopback-peers", None,
         "Let TURN relay to 127.0.0.0/8 and ::1 (tests only; refused by default)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["apps"] = []
        self["turn-keys"] = []
        self["turn-alt-ports"] = []
        self["allow-peers"] = []
        self["deny-peers"] = []

    def opt_turn_key(self, value: str) -> None:
        """A TURN key as ID:TOKEN (repeatable); with none, one is generated and stored."""
        key = parse_turn_key(value)
        if any(k.key_id == key.key_id for k in self["turn-keys"]):
            raise usage.UsageError(f"--turn-key: key id {key.key_id!r} is given twice")
        self["turn-keys"].append(key)

    def opt_turn_alt_port(self, value: str) -> None:
        """An extra TURN listener, udp:PORT, tcp:PORT or tls:PORT (repeatable)."""
        self["turn-alt-ports"].append(parse_alt_port(value))

    def opt_allow_peer(self, value: str) -> None:
        """A CIDR TURN may relay to although it is not public (repeatable)."""
        self["allow-peers"].append(parse_cidr("allow-peer", value))

    def opt_deny_peer(self, value: str) -> None:
        """A CIDR TURN never relays to (repeatable; wins over --allow-peer)."""
        self["deny-peers"].append(parse_cidr("deny-peer", value))

    def opt_app(self, value: str) -> None:
        """Add an app given as ID:SECRET (repeatable); see the help text below."""
        app_id, colon, secret = value.partition(":")
        if not colon or not APP_ID.fullmatch(app_id) or not APP_SECRET.fullmatch(secret):
            raise usage.UsageError(
                f"--app: {value!r} is not ID:SECRET (ID 1-128 of A-Z a-z 0-9 $ . _ ~ -, "
                "SECRET 8-512 printable ASCII characters without spaces)"
            )
        if any(app.app_id == app_id for app in self["apps"]):
            raise usage.UsageError(f"--app: app id {app_id!r} is given twice")
        self["apps"].append(App(app_id, secret))

    opt_app.__doc__ = (
        "An app as ID:SECRET (repeatable). ID: 1-128 of [A-Za-z0-9$._~-]; SECRET: 8-512 "
        "printable ASCII characters. With none, one app is generated and stored on first start."
    )

    def postOptions(self) -> None:
        """Check every value; raise :class:`usage.UsageError` naming the bad option."""
        for name in ("media-port", "turn-port", "turns-port"):
            self[name] = _port(name, self[name])
        interface = _ip("media-interface", self["media-interface"])
        if self["public-ip"] is None:
            if interface.is_unspecified:
                raise usage.UsageError(
                    f"--public-ip is required when --media-interface is {interface} "
                    "(the address to announce in ICE candidates)"
                )
            self["public-ip"] = str(interface)
        public = _ip("public-ip", self["public-ip"])
        if public.is_unspecified or public.is_multicast:
            raise usage.UsageError(f"--public-ip: {self['public-ip']!r} cannot be announced")
        if self["media-port"] and self["media-port"] == self["turn-port"]:
            raise usage.UsageError(f"--turn-port: {self['turn-port']} is also the --media-port")
        if self["turn-port"] and self["turn-port"] == self["turns-port"]:
            raise usage.UsageError(f"--turns-port: {self['turns-port']} is also the --turn-port")
        if self["api"] is not None:
            try:
                endpoints.serverFromString(None, self["api"])
            except Exception as error:
                raise usage.UsageError(
                    f"--api: {self['api']!r} is not a server endpoint ({error})"
                ) from None
        self["relay-ports"] = parse_relay_ports(self["relay-ports"])
        self["relay-ipv6"] = _relay_ipv6(self["relay-ipv6"], public)
        for name in ("turn-peer-rate", "turn-packet-rate", "turn-bitrate",
                     "turn-user-allocations"):
            self[name] = _positive(name, self[name])
        if (self["tls-cert"] is None) != (self["tls-key"] is None):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        for name in ("tls-cert", "tls-key"):
            if self[name] is not None and not Path(self[name]).is_file():
                raise usage.UsageError(f"--{name}: {self[name]!r} is not a file")
        state = Path(self["state-dir"])
        if state.exists() and not state.is_dir():
            raise usage.UsageError(f"--state-dir: {str(state)!r} is not a directory")
        try:  # the raw URL may hold a password: keep only the parsed, redacting form
            self["cluster-options"] = cluster_options(
                self.pop("cluster"), self["node-id"], self["relay-address"],
                self["public-ip"], dict(os.environ))
        except ClusterOptionError as error:
            raise usage.UsageError(str(error)) from None


def _relay_ipv6(value: str | None, public) -> str | None:
    """Check ``--relay-ipv6``; resolve its default (``::1`` beside an IPv4 loopback)."""
    if value is None:
        if public.version == 4 and public.is_loopback and has_ipv6_loopback():
            return "::1"
        return None
    if value == "none":
        return None
    address = _ip("relay-ipv6", value)
    if address.version != 6 or address.is_unspecified or address.is_multicast:
        raise usage.UsageError(f"--relay-ipv6: {value!r} is not a unicast IPv6 address")
    if public.version == 6 and str(address) != str(public):
        raise usage.UsageError("--relay-ipv6: --public-ip is already IPv6 (it is the relay)")
    return str(address)


def has_ipv6_loopback() -> bool:
    """Return True if this host can bind UDP on ::1 (containers may have IPv6 off)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _positive(name: str, value: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise usage.UsageError(f"--{name}: {value!r} is not a positive whole number")
    return number


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"--{name}: {value!r} is not a port number (0-65535)")
    return port


def _ip(name: str, value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise usage.UsageError(f"--{name}: {value!r} is not an IP address") from None


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

    def __init__(self, endpoint, factory, description: str) -> None:
        super().__init__(endpoint, factory)
        self.description = description
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        """Start listening; a bind failure raises at once instead of being logged."""
        super().privilegedStartService()
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
    turn = None
    #: ``--turn-host``, for the TURN URLs
    turn_host: str | None = None

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
        port = self.api_listener.port
        return None if port is None else getattr(port.getHost(), "port", None)

    @property
    def turn_tcp_port(self) -> int | None:
        """Return the bound TURN TCP port, or ``None``."""
        port = self.turn_tcp_listener.port
        return None if port is None else port.getHost().port

    @property
    def turns_port(self) -> int | None:
        """Return the bound TURN-over-TLS port, or ``None``."""
        port = self.turn_tls_listener.port
        return None if port is None else port.getHost().port

    def privilegedStartService(self) -> None:
        """Bind every port; a port in use ends the process with one clear line."""
        try:
            super().privilegedStartService()
        except CannotListenError as error:
            raise SystemExit(f"realtime: {error}") from None

    def startService(self) -> None:
        """Start every listener, then record the bound ports and print the banner."""
        super().startService()
        self.api.config = replace(
            self.api.config,
            media_port=self.media.port,
            turn_port=self.turn_udp.port,
            turns_port=self.turns_port,
            api_url=self._api_url(),
        )
        if self.turn is not None:
            self.turn.keys.set_urls(self.turn_host or self.config.public_ip,
                                    self.config.turn_port, self.turns_port, self.turn_alternates)
            self.turn.start(self.api.clock)
        self._announce()

    def stopService(self):
        """Stop every listener and close the state store."""
        if self.turn is not None and self.running:
            self.turn.stop(self.api.clock)
        if not self.running:
            self.store.close()
            return succeed(None)
        result = super().stopService()
        result.addBoth(lambda r: (self.store.close(), r)[1])
        return result

    def _api_url(self) -> str:
        description = self.api_listener.description
        scheme = {"ssl": "https", "tcp": "http", "tcp6": "http"}.get(description.split(":")[0])
        host = getattr(self.api_listener.port.getHost(), "host", None)
        if scheme is None or host is None:
            return description
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
        for key in (self.turn.keys.keys.values() if self.turn is not None else ()):
            if key.generated:
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
            insecure = "-k " if config.api_url.startswith("https:") else ""
            log.info(
                "app id: {app_id}\napp secret: {secret}\ntry: curl {insecure}-X POST "
                '-H "Authorization: Bearer {secret}" {url}/v1/apps/{app_id}/sessions/new',
                app_id=app.app_id, secret=app.secret, insecure=insecure, url=config.api_url,
            )


def makeService(options: Options, reactor=None) -> RealtimeService:
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
    if not apps and not store.apps():
        store.add_app(generate_app(reactor.seconds()))
    interface, public_ip = options["media-interface"], options["public-ip"]
    tls = ensure_certificate(state_dir / "tls", (public_ip,))
    config = ServerConfig(
        public_ip=public_ip,
        media_port=options["media-port"],
        turn_port=options["turn-port"],
        turns_port=options["turns-port"],
        apps=apps,
    )
    api = RealtimeAPI(store, config, reactor)
    service = RealtimeService(api, store)

    api_description = options["api"] or tls_endpoint(8443, "127.0.0.1", tls)
    service.api_listener = _listener(reactor, api_description, Site(api.app.resource()), "api")
    peers = PeerHost(reactor, BindingRouter(), keylog=_keylog_writer(options["dtls-keylog"]),
                     srtp_keylog=_json_lines_writer(options.get("srtp-keylog")))
    api.peers = peers
    service.peers = peers
    sfu_usage(api)  # meter every session from the first one on
    UsageFlush(lambda now: flush_usage(api, now), reactor).setServiceParent(service)
    service.media = MediaPort(peers.router, reactor, "media")
    peers.attach(service.media)
    turn = build_turn(options, reactor, store, interface, public_ip)
    service.turn = turn
    api.turn = turn.keys
    service.turn_host = options["turn-host"]
    service.turn_alternates = list(options["turn-alt-ports"])
    service.turn_udp = turn.udp[0][2]
    for name, port, protocol in (("media", options["media-port"], service.media), *turn.udp):
        udp = internet.UDPServer(port, protocol, interface=interface, reactor=BatchedUDP(reactor))
        udp.setName(name)
        udp.setServiceParent(service)
    service.api_listener.setServiceParent(service)

    if options["tls-cert"]:
        tls = TlsFiles(Path(options["tls-cert"]), Path(options["tls-key"]))
    quoted = endpoints.quoteStringArgument(interface)
    for name, port, factory in turn.streams:
        description = (f"tcp:{port}:interface={quoted}" if factory.name.startswith("tcp")
                       else tls_endpoint(port, interface, tls))
        listener = _listener(reactor, description, factory, name)
        listener.setServiceParent(service)
        if name == "turn-tcp":
            service.turn_tcp, service.turn_tcp_listener = factory, listener
        elif name == "turn-tls":
            service.turn_tls, service.turn_tls_listener = factory, listener
    if options.get("cluster-options") is not None:  # see docs/cluster.md: membership only so far
        ClusterNodeService(reactor, options["cluster-options"], lambda: (
            f"{service.config.public_ip}:{service.config.media_port}")).setServiceParent(service)
    return service


def _keylog_writer(path: str | None):
    """Return a function appending NSS key-log lines to ``path``, or None."""
    if not path:
        return None

    def write(line: bytes) -> None:
        with open(path, "ab") as keylog:
            keylog.write(line + b"\n")

    return write


def _json_lines_writer(path: str | None):
    """Return a function appending one JSON object per line to ``path``, or None."""
    if not path:
        return None

    def write(entry: dict) -> None:
        with open(path, "a", encoding="utf-8") as keylog:
            keylog.write(json.dumps(entry, sort_keys=True) + "\n")

    return write


def _listener(reactor, description: str, factory, name: str) -> EndpointListener:
    listener = EndpointListener(
        endpoints.serverFromString(reactor, description), factory, description
    )
    listener.setName(name)
    return listener
