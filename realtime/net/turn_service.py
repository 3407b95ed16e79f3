"""
Wiring the TURN service: option parsing, keys, the machine, relays, usage flushing.

:func:`build_turn` assembles, from parsed ``twistd realtime`` options::

    TurnKeys (API) ── credentials: TurnKeyCredentials(keys from --turn-key + state dir)
         │               revocations and customIdentifiers restored from the state dir
         │ drain / revoke
         v
    TurnServer ──relays──> BoundRelayPorts(RelayPortPool(--relay-ports, --public-ip), sink)
         ^                       │ RelaySocket per relayed address
         │ receive / send        v delivers through RelaySink (bound once by TurnHost)
    TurnHost (one MachineDriver = one timer) <── TurnUdpPort("udp"), TurnUdpPort("udp-alt-53")
                                             <── TurnConnectionFactory("tcp"), ("tls"), alternates
                                            (all admitted by one ConnectionGate, stream_gate.py)

Built in that order: RelaySink, BoundRelayPorts, TurnServer, then
``TurnHost(reactor, server, sink)``, which binds the sink to its ``receive``
and ``receive_batch`` (the relays need the host, the host needs the machine,
the machine needs the relays).  ``service.py`` puts the listeners in its service tree; this module holds
what is TURN-specific so the service module stays a table of listeners.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from twisted.python import usage

from realtime.api.turn import TurnCluster, TurnKeys
from realtime.net.mmsg import BatchedUDP
from realtime.net.stream_gate import ConnectionGate, StreamLimits
from realtime.net.turn_port import TurnConnectionFactory, TurnHost, TurnUdpPort
from realtime.net.turn_relay import BoundRelayPorts, RelaySink
from realtime.storage import StateStore, TurnKey, generate_turn_key
from realtime.stun.attributes import IPV4, IPV6
from realtime.turn.allocation import Limits, RelayPortPool
from realtime.turn.credentials import TurnKeyCredentials
from realtime.turn.policy import PeerPolicy
from realtime.turn.server import TurnConfig, TurnServer

KEY_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
KEY_TOKEN = re.compile(r"[\x21-\x7e]{16,512}")

#: Seconds between TURN usage flushes to the state store (the service's ``turn-usage-flush``).
USAGE_FLUSH_INTERVAL = 30.0


_DEFAULT_LIMITS = StreamLimits()

#: ``twistd realtime`` options bounding TURN stream connections (see stream_gate.py)
STREAM_OPTIONS = [
    ["turn-max-connections", None, str(_DEFAULT_LIMITS.max_connections),
     "TURN TCP+TLS connections in all; past it the oldest unauthenticated one is closed "
     "(or, if every one has authenticated, the new one is refused)."],
    ["turn-connections-per-address", None, str(_DEFAULT_LIMITS.per_address),
     "TURN TCP+TLS connections from one IP address (same shedding rule)."],
    ["turn-handshake-timeout", None, f"{_DEFAULT_LIMITS.handshake_timeout:g}",
     "Seconds a TURN TLS connection has to finish its handshake."],
    ["turn-auth-timeout", None, f"{_DEFAULT_LIMITS.auth_timeout:g}",
     "Seconds a TURN TCP/TLS connection has, from accept, to get an authenticated "
     "Allocate through; else it is closed."],
    ["turn-idle-timeout", None, f"{_DEFAULT_LIMITS.idle_timeout:g}",
     "Seconds of silence after which a TURN TCP/TLS connection holding no allocation "
     "is closed."],
]


def stream_limits(options: Mapping[str, Any]) -> StreamLimits:
    """Check the :data:`STREAM_OPTIONS` values; return them as :class:`StreamLimits`."""
    values: dict[str, Any] = {}
    for name, field_name, kind in (
            ("turn-max-connections", "max_connections", int),
            ("turn-connections-per-address", "per_address", int),
            ("turn-handshake-timeout", "handshake_timeout", float),
            ("turn-auth-timeout", "auth_timeout", float),
            ("turn-idle-timeout", "idle_timeout", float)):
        raw = options.get(name, getattr(_DEFAULT_LIMITS, field_name))
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            value = 0
        if not 0 < value < 1e9:
            raise usage.UsageError(f"--{name}: {raw!r} is not a positive number")
        values[field_name] = value
    return StreamLimits(**values)


def parse_turn_key(value: str) -> TurnKey:
    """Return the key of ``--turn-key ID:TOKEN`` or raise :class:`usage.UsageError`."""
    key_id, colon, token = value.partition(":")
    if not colon or not KEY_ID.fullmatch(key_id) or not KEY_TOKEN.fullmatch(token):
        raise usage.UsageError(
            f"--turn-key: {value!r} is not ID:TOKEN (ID 1-128 of A-Z a-z 0-9 . _ ~ -, "
            "TOKEN 16-512 printable ASCII characters without spaces)")
    return TurnKey(key_id, token)


def parse_alt_port(value: str) -> tuple[str, int]:
    """Return ``(kind, port)`` of ``--turn-alt-port udp:53|tcp:80|tls:443``."""
    kind, colon, port = value.partition(":")
    if (not colon or kind not in ("udp", "tcp", "tls") or not port.isdigit()
            or not 0 < int(port) < 65536):
        raise usage.UsageError(f"--turn-alt-port: {value!r} is not udp:PORT, tcp:PORT or tls:PORT")
    return kind, int(port)


def parse_relay_ports(value: str) -> tuple[int, int]:
    """Return ``(low, high)`` of ``--relay-ports LOW-HIGH``."""
    low, dash, high = value.partition("-")
    if not (dash and low.isdigit() and high.isdigit() and 1024 <= int(low) <= int(high) <= 65535):
        raise usage.UsageError(f"--relay-ports: {value!r} is not LOW-HIGH within 1024-65535")
    return int(low), int(high)


def parse_cidr(option: str, value: str) -> str:
    """Return ``value`` if it is a CIDR (or bare address), else raise :class:`usage.UsageError`."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise usage.UsageError(f"--{option}: {value!r} is not an address or CIDR") from None
    return value


@dataclass
class TurnRuntime:
    """The running TURN service's parts, for the service tree and tests."""

    host: TurnHost
    server: TurnServer
    keys: TurnKeys
    relays: BoundRelayPorts
    #: ids of the keys generated by this start (their tokens are printed this once)
    new_key_ids: set[str] = field(default_factory=set)
    udp: list[tuple[str, int, TurnUdpPort]] = field(default_factory=list)
    streams: list[tuple[str, int, TurnConnectionFactory]] = field(default_factory=list)


def turn_keys(store: StateStore, given: list[TurnKey], now: float) -> list[TurnKey]:
    """Return the usable keys: ``--turn-key`` ones, then stored ones; generate one if none."""
    stored = store.turn.keys()
    if not given and not stored:
        stored = [store.turn.add_key(generate_turn_key(now))]
    names = {key.key_id for key in given}
    return list(given) + [key for key in stored if key.key_id not in names]


def build_turn(options: Mapping[str, Any], reactor: Any, store: StateStore, interface: str,
               public_ip: str, cluster: TurnCluster | None = None) -> TurnRuntime:
    """Build the TURN host, machine, relays, keys and listener protocols from ``options``.

    :param cluster: with ``--cluster``: where usage and revocations are shared.
    """
    now = reactor.seconds()
    stored_before = {key.key_id for key in store.turn_keys()}
    keys = turn_keys(store, options["turn-keys"], now)
    credentials = TurnKeyCredentials({key.key_id: key.token for key in keys},
                                     unknown_key=None if cluster is None else cluster.key_missed)
    for username, _key_id, custom, _expires, revoked in store.turn.credentials(now):
        if custom:
            credentials.remember_custom_identifier(username, custom)
        if revoked:
            credentials.revoke(username, now)
    low, high = options["relay-ports"]
    hosts = {IPV6 if ":" in public_ip else IPV4: public_ip}
    if options.get("relay-ipv6"):
        hosts[IPV6] = options["relay-ipv6"]
    pool = RelayPortPool(hosts, low, high)
    sink = RelaySink()  # the relays deliver to the host, which is built around the machine
    relays = BoundRelayPorts(pool, BatchedUDP(reactor), sink, bind_interface=interface)
    policy = PeerPolicy(options["allow-loopback-peers"], options["allow-peers"],
                        options["deny-peers"])
    realm = options.get("turn-realm") or options.get("turn-host") or "realtime"
    config = TurnConfig(
        realm=realm, max_allocations_per_user=options.get("turn-user-allocations", 16),
        limits=Limits(peers_per_second=options.get("turn-peer-rate", 10),
                      packets_per_second=options.get("turn-packet-rate", 10000),
                      bytes_per_second=options.get("turn-bitrate", 100_000_000) / 8))
    server = TurnServer(credentials, relays, config=config, policy=policy)
    host = TurnHost(reactor, server, sink)  # binds the sink: relays deliver to host.receive*

    def revoke(username: str, when: float) -> None:
        server.revoke(username, when)
        host.pump()

    api_keys = TurnKeys(store, keys, credentials, drain=server.drain_usage, revoke=revoke,
                        cluster=cluster)
    runtime = TurnRuntime(host, server, api_keys, relays,
                          {key.key_id for key in keys if key.generated} - stored_before)
    gate = ConnectionGate(stream_limits(options))
    runtime.udp.append(("turn-udp", options["turn-port"], TurnUdpPort(host, reactor, "udp")))
    runtime.streams.append(("turn-tcp", options["turn-port"],
                            TurnConnectionFactory(host, reactor, "tcp", gate)))
    runtime.streams.append(("turn-tls", options["turns-port"],
                            TurnConnectionFactory(host, reactor, "tls", gate)))
    for kind, port in options["turn-alt-ports"]:
        name = f"turn-{kind}-alt-{port}"
        if kind == "udp":
            runtime.udp.append((name, port, TurnUdpPort(host, reactor, f"udp-alt-{port}")))
        else:
            factory = TurnConnectionFactory(host, reactor, f"{kind}-alt-{port}", gate)
            runtime.streams.append((name, port, factory))
    return runtime
