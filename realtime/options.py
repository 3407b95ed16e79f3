"""
The command line of ``twistd realtime``: every option, its default and its check.

::

    twistd -n realtime [--api ENDPOINT] [--media-interface IP] [--media-port N]
                       [--public-ip IP] [--turn-port N] [--turns-port N]
                       [--state-dir DIR] [--app ID:SECRET ...]
                       [--turn-key ID:TOKEN ...] [--turn-host NAME] [--turn-alt-port udp:53 ...]
                       [--relay-ports LOW-HIGH] [--relay-ipv6 IP|none] [--allow-loopback-peers]
                       [--allow-peer CIDR ...] [--deny-peer CIDR ...] [--tls-cert PEM --tls-key PEM]
                       [--turn-peer-rate N] [--turn-packet-rate N] [--turn-bitrate BITS]
                       [--turn-user-allocations N] [--turn-max-connections N]
                       [--turn-connections-per-address N] [--turn-handshake-timeout S]
                       [--turn-auth-timeout S] [--turn-idle-timeout S]
                       [--session-rate N] [--session-burst N] [--dtls-certificate PEM]
                       [--cluster URL --node-id ID --relay-address IP:PORT]
                       [--metrics ENDPOINT] [--log-format text|json]
                       [--demo | --no-demo]

:class:`Options` is what Twisted's plugin (``twisted/plugins/realtime_plugin.py``)
hands to :func:`realtime.service.makeService`.  Each value is checked in
:meth:`Options.postOptions` (or in the ``opt_*`` method of a repeatable
option); a bad one raises :class:`~twisted.python.usage.UsageError` naming the
option, so ``twistd`` prints one line instead of a traceback.
``docs/operations.md`` lists every option with its default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path

from twisted.internet import endpoints
from twisted.python import usage

from realtime.cluster.options import ClusterOptionError, cluster_options
from realtime.cluster.workers import worker_arguments
from realtime.net.turn_service import (
    STREAM_OPTIONS, parse_alt_port, parse_cidr, parse_relay_ports, parse_turn_key,
    stream_limits,
)
from realtime.storage import App


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
        ["turn-usage-flush", None, "30",
         "Seconds between TURN usage flushes to the state store (and, with --cluster, to "
         "the directory, where the usage API reads every node's counters)."],
        ["tls-cert", None, None, "PEM certificate for TURN over TLS (default: the state dir's)."],
        ["tls-key", None, None, "PEM private key of --tls-cert."],
        ["cluster", None, None,
         "Join a cluster whose directory is Redis at redis://[:PASSWORD@]HOST:PORT[/DB] "
         "(password also from REALTIME_REDIS_PASSWORD; REALTIME_CLUSTER_SECRET must hold the "
         "secret all nodes share). Default: no cluster, one process."],
        ["node-id", None, None, "This node's id in the cluster (default: the host name)."],
        ["relay-address", None, None,
         "IP:PORT where other nodes send this node media (default: --public-ip, any port)."],
        ["cascade-fanout", None, None,
         "Child nodes each node relays a track to in its cascading tree (default 8; "
         "docs/cascading.md). Only with --cluster."],
        *STREAM_OPTIONS,
        ["session-rate", None, "20",
         "sessions/new calls per second per app (429 past it; each abandoned session holds "
         "~56 KB for 60 s)."],
        ["session-burst", None, "100", "Burst of --session-rate."],
        ["adapter-jpeg-fps", None, "1",
         "JPEG images per second a video WebSocket adapter (outputCodec jpeg) sends "
         "(Cloudflare's default: 1; at most 30)."],
        ["adapter-limit", None, "64",
         "Live WebSocket adapters one app may hold (adapter_limit_reached past it)."],
        ["workers", None, "1",
         "Processes sharing the media, TURN and API ports (SO_REUSEPORT), acting as one "
         "through the cluster directory; 'auto': one per core. With no --cluster the parent "
         "starts a private redis-server on a Unix socket in the state dir."],
        ["metrics", None, None,
         "Twisted server endpoint serving Prometheus metrics (text format, any path), e.g. "
         "'tcp:9464:interface=127.0.0.1'. Default: off."],
        ["log-format", None, "text",
         "'text' (Twisted's log lines) or 'json' (one JSON object per event and line on "
         "stdout, with session/track ids as fields)."],
        ["dtls-certificate", None, None,
         "PEM file holding the DTLS certificate and its private key; with --cluster, give "
         "every node the same one (any node then completes DTLS for any session). "
         "Default: a fresh certificate per process."],
    ]
    optFlags = [
        ["demo", None,
         "Serve the demo page at / and its same-origin proxy, which makes sessions of the "
         "default app for anyone who loads the page. Default: on only when --api listens on "
         "a loopback address (the default 127.0.0.1:8443 does)."],
        ["no-demo", None, "Never serve the demo page (overrides the loopback default)."],
        ["no-transport-cc", None,
         "Do not negotiate transport-wide congestion control (transport-cc) with clients: "
         "publishers then follow the SFU's REMB only (docs/bandwidth.md)."],
        ["no-pacer", None,
         "Do not pace the video sent to subscribers: a key frame leaves as one burst "
         "(docs/bandwidth.md, \"Pacer\")."],
        ["allow-loopback-peers", None,
         "Let TURN relay to 127.0.0.0/8 and ::1 (tests only; refused by default)."],
        ["allow-loopback-adapters", None,
         "Let WebSocket adapters connect to localhost, 127.0.0.0/8 and ::1 (tests only; "
         "refused by default with websocket_localhost_not_allowed)."],
        ["reuse-port", None,
         "Bind the media, TURN and API ports with SO_REUSEPORT (what --workers gives each "
         "worker; several processes then share them)."],
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:  # noqa: N802 (Twisted)
        """Parse, keeping the raw arguments (``--workers`` hands them to each worker)."""
        import sys
        self["argv"] = worker_arguments(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

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
        if self["metrics"] is not None:
            _endpoint("metrics", self["metrics"])
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError(f"--log-format: {self['log-format']!r} is not text or json")
        if self["demo"] and self["no-demo"]:
            raise usage.UsageError("--demo and --no-demo contradict each other")
        self["demo"] = bool(self["demo"]) or (
            not self["no-demo"] and api_on_loopback(self["api"]))
        try:
            self["adapter-jpeg-fps"] = float(self["adapter-jpeg-fps"])
        except ValueError:
            self["adapter-jpeg-fps"] = 0.0
        if not 0 < self["adapter-jpeg-fps"] <= 30:
            raise usage.UsageError("--adapter-jpeg-fps: a number of images per second, 0-30")
        try:
            self["adapter-limit"] = int(self["adapter-limit"])
        except ValueError:
            self["adapter-limit"] = 0
        if self["adapter-limit"] < 1:
            raise usage.UsageError("--adapter-limit: a whole number of adapters, at least 1")
        self["workers"] = _workers(self["workers"])
        if self["workers"] > 1:
            for name in ("media-port", "turn-port", "turns-port"):
                if not self[name]:
                    raise usage.UsageError(f"--{name}: workers share it, so it cannot be 0")
        self["relay-ports"] = parse_relay_ports(self["relay-ports"])
        self["relay-ipv6"] = _relay_ipv6(self["relay-ipv6"], public)
        for name in ("turn-peer-rate", "turn-packet-rate", "turn-bitrate",
                     "turn-user-allocations", "session-rate", "session-burst",
                     "turn-usage-flush"):
            self[name] = _positive(name, self[name])
        stream_limits(self)
        if (self["tls-cert"] is None) != (self["tls-key"] is None):
            raise usage.UsageError("--tls-cert and --tls-key go together")
        for name in ("tls-cert", "tls-key", "dtls-certificate"):
            if self[name] is not None and not Path(self[name]).is_file():
                raise usage.UsageError(f"--{name}: {self[name]!r} is not a file")
        state = Path(self["state-dir"])
        if state.exists() and not state.is_dir():
            raise usage.UsageError(f"--state-dir: {str(state)!r} is not a directory")
        try:  # the raw URL may hold a password: keep only the parsed, redacting form
            workers_name = self["workers"] > 1 and self["cluster"] is None  # the workers' base id
            self["cluster-options"] = cluster_options(
                self.pop("cluster"), None if workers_name else self["node-id"],
                self["relay-address"],
                self["public-ip"], dict(os.environ), self["cascade-fanout"])
        except ClusterOptionError as error:
            raise usage.UsageError(str(error)) from None


def _relay_ipv6(value: str | None,
                public: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
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


def api_on_loopback(description: str | None) -> bool:
    """Return whether the ``--api`` endpoint listens on a loopback address only.

    ``None`` is the default endpoint (TLS on 127.0.0.1).  ``tcp``, ``tcp6`` and
    ``ssl`` endpoints count when their ``interface=`` is a loopback address;
    without one they listen on every interface.  Any other kind (``unix:``,
    ``systemd:`` ...) does not count: who reaches it is not known here.
    """
    if description is None:
        return True
    fields = [field.replace("\\:", ":") for field in re.split(r"(?<!\\):", description)]
    if fields[0] not in ("tcp", "tcp6", "ssl"):
        return False
    interface = next((field.partition("=")[2] for field in fields[1:]
                      if field.startswith("interface=")), "")
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def has_ipv6_loopback() -> bool:
    """Return True if this host can bind UDP on ::1 (containers may have IPv6 off)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _workers(value: str) -> int:
    """``--workers N`` or ``auto`` (the number of cores)."""
    if value == "auto":
        return os.cpu_count() or 1
    return _positive("workers", value)


def _endpoint(name: str, value: str) -> None:
    try:
        endpoints.serverFromString(None, value)
    except Exception as error:
        raise usage.UsageError(f"--{name}: {value!r} is not a server endpoint ({error})") from None


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
