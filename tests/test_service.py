"""
``twistd realtime`` options and service tree, on a MemoryReactor (no sockets).
"""

from __future__ import annotations

import dataclasses
import re

import stat

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python import usage

from realtime.net.media_port import MediaPort
from realtime.net.turn_port import TurnConnectionFactory
from realtime.service import EndpointListener, Options, RealtimeService, makeService
from realtime.storage import App


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_defaults() -> None:
    options = parse()
    assert options["api"] is None
    assert options["media-interface"] == "127.0.0.1"
    assert options["public-ip"] == "127.0.0.1"
    assert (options["media-port"], options["turn-port"], options["turns-port"]) == (
        10000, 3478, 5349)
    assert options["state-dir"] == "./realtime-state"
    assert options["apps"] == []


@pytest.mark.parametrize(
    ("argv", "key", "value"),
    [
        (["--api", "tcp:8080:interface=127.0.0.1"], "api", "tcp:8080:interface=127.0.0.1"),
        (["--api", "tcp:0"], "api", "tcp:0"),
        (["--media-port", "0"], "media-port", 0),
        (["--media-port", "65535"], "media-port", 65535),
        (["--turn-port", "3479"], "turn-port", 3479),
        (["--turns-port", "443"], "turns-port", 443),
        (["--media-interface", "::1"], "public-ip", "::1"),
        (["--media-interface", "0.0.0.0", "--public-ip", "203.0.113.9"], "public-ip",
         "203.0.113.9"),
        (["--public-ip", "198.51.100.2"], "public-ip", "198.51.100.2"),
        (["--app", "my-app:s3cret-value"], "apps", [App("my-app", "s3cret-value")]),
        (["--app", "$APP_ID:$APP_TOKEN", "--app", "b:pass:with:colons"], "apps",
         [App("$APP_ID", "$APP_TOKEN"), App("b", "pass:with:colons")]),
        (["--state-dir", "/tmp/somewhere"], "state-dir", "/tmp/somewhere"),
        (["--media-port", "0", "--turn-port", "0", "--turns-port", "0"], "turn-port", 0),
        (["--relay-ipv6", "2001:db8::5"], "relay-ipv6", "2001:db8::5"),
        (["--relay-ipv6", "none"], "relay-ipv6", None),
        (["--public-ip", "198.51.100.2"], "relay-ipv6", None),
        (["--media-interface", "::1"], "relay-ipv6", None),
        (["--turn-bitrate", "2000000"], "turn-bitrate", 2_000_000),
        (["--turn-user-allocations", "1"], "turn-user-allocations", 1),
        ([], "turn-packet-rate", 10000),
        ([], "turn-usage-flush", 30),
        (["--turn-usage-flush", "1"], "turn-usage-flush", 1),
    ],
)
def test_good_values(argv, key, value) -> None:
    assert parse(*argv)[key] == value


def test_relay_ipv6_defaults_to_the_ipv6_loopback_beside_an_ipv4_loopback(monkeypatch) -> None:
    import realtime.options as options
    monkeypatch.setattr(options, "has_ipv6_loopback", lambda: True)
    assert parse()["relay-ipv6"] == "::1"
    monkeypatch.setattr(options, "has_ipv6_loopback", lambda: False)
    assert parse()["relay-ipv6"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--media-port", "70000"], "--media-port: '70000' is not a port number (0-65535)"),
        (["--media-port", "-1"], "--media-port: '-1' is not a port number (0-65535)"),
        (["--turn-port", "x"], "--turn-port: 'x' is not a port number (0-65535)"),
        (["--turns-port", "5349.0"], "--turns-port: '5349.0' is not a port number (0-65535)"),
        (["--turn-usage-flush", "0"], "--turn-usage-flush: '0' is not a positive whole number"),
        (["--media-interface", "localhost"],
         "--media-interface: 'localhost' is not an IP address"),
        (["--public-ip", "1.2.3"], "--public-ip: '1.2.3' is not an IP address"),
        (["--public-ip", "0.0.0.0"], "--public-ip: '0.0.0.0' cannot be announced"),
        (["--public-ip", "224.0.0.1"], "--public-ip: '224.0.0.1' cannot be announced"),
        (["--media-interface", "0.0.0.0"],
         "--public-ip is required when --media-interface is 0.0.0.0 "
         "(the address to announce in ICE candidates)"),
        (["--media-port", "3478"], "--turn-port: 3478 is also the --media-port"),
        (["--turn-port", "5349"], "--turns-port: 5349 is also the --turn-port"),
        (["--app", "nocolon"], "--app: 'nocolon' is not ID:SECRET"),
        (["--app", ":secret123"], "--app: ':secret123' is not ID:SECRET"),
        (["--app", "id:short"], "--app: 'id:short' is not ID:SECRET"),
        (["--app", "a/b:secret123"], "--app: 'a/b:secret123' is not ID:SECRET"),
        (["--app", "id:has space"], "--app: 'id:has space' is not ID:SECRET"),
        (["--app", "a:secret123", "--app", "a:secret456"], "--app: app id 'a' is given twice"),
        (["--turn-peer-rate", "0"], "--turn-peer-rate: '0' is not a positive whole number"),
        (["--turn-bitrate", "1e6"], "--turn-bitrate: '1e6' is not a positive whole number"),
        (["--relay-ipv6", "192.0.2.1"], "--relay-ipv6: '192.0.2.1' is not a unicast IPv6"),
        (["--relay-ipv6", "::"], "--relay-ipv6: '::' is not a unicast IPv6 address"),
        (["--relay-ipv6", "nope"], "--relay-ipv6: 'nope' is not an IP address"),
        (["--media-interface", "::1", "--relay-ipv6", "2001:db8::5"],
         "--relay-ipv6: --public-ip is already IPv6"),
        (["--adapter-jpeg-fps", "0"], "--adapter-jpeg-fps: a number of images per second"),
        (["--adapter-jpeg-fps", "fast"], "--adapter-jpeg-fps: a number of images per second"),
        (["--adapter-jpeg-fps", "31"], "--adapter-jpeg-fps: a number of images per second"),
    ],
)
def test_bad_values_name_the_option(argv, message) -> None:
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("endpoint", ["nonsense:1", "tcp:notaport", "tcp", "ssl:1:privateKey=/no"])
def test_bad_api_endpoint(endpoint) -> None:
    with pytest.raises(usage.UsageError, match=f"^--api: '{endpoint}' is not a server endpoint"):
        parse("--api", endpoint)


def test_state_dir_that_is_a_file(tmp_path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(usage.UsageError, match="^--state-dir: '.*/f' is not a directory"):
        parse("--state-dir", str(tmp_path / "f"))


def test_help_explains_every_option() -> None:
    text = re.sub(r"-\n\s+", "-", str(Options()))  # undo line breaks after hyphens
    for name in ("--api", "--media-interface", "--media-port", "--public-ip", "--turn-port",
                 "--turns-port", "--state-dir", "--app", "--turn-key", "--relay-ports",
                 "--relay-ipv6", "--turn-peer-rate", "--turn-packet-rate", "--turn-bitrate",
                 "--turn-user-allocations", "--allow-loopback-peers", "--allow-peer", "--deny-peer",
                 "--turn-alt-port", "--turn-usage-flush"):
        assert name in text
    assert "ID:SECRET" in text and "self-signed" in text


# -- makeService ---------------------------------------------------------------


class UdpReactor(MemoryReactorClock):
    """MemoryReactorClock with the ``listenUDP`` it lacks: records ports, binds 0 to 40000+."""

    def __init__(self) -> None:
        super().__init__()
        self.udp: list[tuple[int, str]] = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        self.udp.append((port, interface))
        transport = FakeUdpPort(port or 40000 + len(self.udp), interface)
        protocol.makeConnection(transport)
        return transport


class FakeUdpPort:
    def __init__(self, port: int, interface: str) -> None:
        self.address = IPv4Address("UDP", interface, port)

    def getHost(self):
        return self.address

    def stopListening(self):
        return None


def build(tmp_path, *argv: str) -> tuple[RealtimeService, MemoryReactorClock]:
    reactor = UdpReactor()
    reactor.advance(1_700_000_000)
    options = parse("--state-dir", str(tmp_path / "state"), *argv)
    return makeService(options, reactor=reactor), reactor


@pytest.fixture
def log_events():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def test_tree(tmp_path) -> None:
    service, reactor = build(tmp_path, "--media-port", "10001", "--turn-port", "3479",
                             "--turns-port", "5350")
    children = {s.name: s for s in service}
    assert set(children) == {"api", "media", "turn-udp", "turn-tcp", "turn-tls", "usage-flush",
                             "sfu-collect", "turn-usage-flush"}
    assert isinstance(children["api"], EndpointListener)
    assert isinstance(service.media, MediaPort) and isinstance(service.turn_udp, MediaPort)
    assert isinstance(service.turn_tcp, TurnConnectionFactory)
    service.privilegedStartService()
    service.startService()
    assert reactor.udp == [(10001, "127.0.0.1"), (3479, "127.0.0.1")]
    assert [(port, iface) for port, _, _, iface in reactor.tcpServers] == [(3479, "127.0.0.1")]
    ssl = [(port, iface) for port, _, _, _, iface in reactor.sslServers]
    assert ssl == [(8443, "127.0.0.1"), (5350, "127.0.0.1")]
    config = service.config
    assert (config.media_port, config.turn_port, config.turns_port) == (10001, 3479, 5350)
    assert config.api_url == "https://127.0.0.1:8443"
    service.stopService()


def test_periodic_work_starts_and_stops_with_the_service(tmp_path) -> None:
    """Issue 11: the SFU collector and both usage flushes are child services, not callLaters.

    The switchboard's collector used to reschedule itself with ``callLater``
    forever: it was still pending after ``stopService``.
    """
    service, reactor = build(tmp_path, "--media-port", "0", "--turn-port", "0",
                             "--turns-port", "0", "--api", "tcp:0")
    assert reactor.getDelayedCalls() == []           # nothing runs before the service starts
    service.privilegedStartService()
    service.startService()
    board = service.api.switchboard
    collected = []
    board.collect_garbage = lambda now, *a, **k: collected.append(now) or []
    reactor.pump([5] * 6)
    assert collected == [1_700_000_005.0 + 5 * i for i in range(6)]
    assert reactor.getDelayedCalls()                  # the loops are armed while running
    service.stopService()
    assert reactor.getDelayedCalls() == []
    reactor.pump([5] * 6)
    assert len(collected) == 6                        # no collection after the stop


def test_turn_options_reach_the_turn_machine(tmp_path) -> None:
    service, _ = build(tmp_path, "--turn-peer-rate", "3", "--turn-packet-rate", "500",
                       "--turn-bitrate", "8000000", "--turn-user-allocations", "2",
                       "--relay-ipv6", "2001:db8::7", "--public-ip", "203.0.113.7")
    config = service.turn.server.config
    assert config.max_allocations_per_user == 2
    limits = config.limits
    assert (limits.peers_per_second, limits.packets_per_second, limits.bytes_per_second) == (
        3, 500, 1_000_000)
    assert service.turn.relays.pool.hosts == {1: "203.0.113.7", 2: "2001:db8::7"}


def test_port_zero_reports_bound_ports(tmp_path) -> None:
    service, _ = build(tmp_path, "--media-port", "0", "--turn-port", "0")
    service.startService()
    assert (service.config.media_port, service.config.turn_port) == (40001, 40002)
    assert service.media.port == 40001
    service.stopService()


def test_plain_http_api(tmp_path, log_events) -> None:
    service, reactor = build(tmp_path, "--api", "tcp:8080:interface=127.0.0.1")
    service.startService()
    assert [(port, iface) for port, _, _, iface in reactor.tcpServers] == [
        (8080, "127.0.0.1"), (3478, "127.0.0.1")]
    assert [port for port, *_ in reactor.sslServers] == [5349]
    assert service.config.api_url.startswith("http://")
    service.stopService()


def test_generated_app_persists_and_is_announced(tmp_path, log_events) -> None:
    first, _ = build(tmp_path)
    [app] = first.store.apps()
    assert app.generated and len(app.app_id) == 32 and len(app.secret) == 64
    first.startService()
    text = "\n".join(e.get("log_format", "").format(**e) for e in log_events
                     if e.get("log_namespace") == "realtime.service")
    assert f"app id: {app.app_id}" in text and f"app secret: {app.secret}" in text
    assert (f'curl -k -X POST -H "Authorization: Bearer {app.secret}" '
            f"https://127.0.0.1:8443/v1/apps/{app.app_id}/sessions/new") in text
    [key] = first.turn.keys.keys.values()
    assert key.generated and f"TURN key API token: {key.token}" in text
    first.stopService()

    log_events.clear()
    second, _ = build(tmp_path)
    assert second.store.apps() == [app]
    second.startService()
    text = "\n".join(e.get("log_format", "").format(**e) for e in log_events
                     if e.get("log_namespace") == "realtime.service")
    # issue 10 item 8: a generated secret is printed once, when created, never again
    assert app.secret not in text and key.token not in text
    database = tmp_path / "state" / "realtime.sqlite3"
    assert (f"app {app.app_id} (generated; its secret is stored in {database} and was "
            "printed only when created)") in text
    assert f"TURN key {key.key_id} (generated; its token is stored in {database}" in text
    second.stopService()


def test_command_line_apps_are_not_stored(tmp_path) -> None:
    service, _ = build(tmp_path, "--app", "cli:cli-secret")
    assert service.store.apps() == []
    assert service.config.apps == (App("cli", "cli-secret"),)
    service.stopService()


def test_state_dir_and_certificate(tmp_path) -> None:
    first, _ = build(tmp_path)
    first.stopService()
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert {p.name for p in state.iterdir()} >= {"realtime.sqlite3", "tls"}
    pem = (state / "tls" / "cert.pem").read_bytes(), (state / "tls" / "key.pem").read_bytes()
    second, _ = build(tmp_path)
    second.stopService()
    assert ((state / "tls" / "cert.pem").read_bytes(),
            (state / "tls" / "key.pem").read_bytes()) == pem


def test_port_in_use_is_one_clear_line(tmp_path) -> None:
    from twisted.internet.error import CannotListenError

    service, reactor = build(tmp_path)

    def busy(port, protocol, interface="", maxPacketSize=8192):
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))

    reactor.listenUDP = busy
    with pytest.raises(SystemExit) as raised:
        service.privilegedStartService()
    assert str(raised.value) == (
        "realtime: Couldn't listen on 127.0.0.1:10000: [Errno 98] Address already in use.")
    service.store.close()


def test_turn_alternates_belong_to_one_service(tmp_path) -> None:
    """Each service has its own alternate TURN listeners, from its options (an immutable
    tuple, not a shared class list)."""
    first, _ = build(tmp_path / "a", "--turn-alt-port", "udp:5353")
    second, _ = build(tmp_path / "b")
    assert first.turn_alternates == (("udp", 5353),) and second.turn_alternates == ()
    for service in (first, second):
        service.store.close()


def test_the_service_is_given_its_parts_when_built(tmp_path) -> None:
    """Issue 11: makeService builds the parts, then RealtimeService(parts, children);
    nothing is set on the service afterwards and its class holds no stand-in defaults."""
    service, _ = build(tmp_path)
    for name in ("turn", "peers", "media", "turn_host", "new_app_ids", "just_in_time",
                 "own_addresses", "turn_alternates", "api_listener"):
        assert name not in vars(RealtimeService), name
    parts = service.parts
    with pytest.raises(dataclasses.FrozenInstanceError):
        parts.turn_host = "elsewhere"  # type: ignore[misc]
    assert (service.api, service.peers, service.turn, service.media) == (
        parts.api, parts.peers, parts.turn, parts.media)
    assert service.turn_udp is parts.turn.udp[0][2] and parts.cluster is None
    assert service.just_in_time is None
    assert [child.name for child in service][:3] == [
        "sfu-collect", "usage-flush", "turn-usage-flush"]
    assert [child.name for child in service][-3:] == ["api", "turn-tcp", "turn-tls"]
    service.store.close()


def test_with_cluster_the_service_is_given_the_cluster_parts(tmp_path, monkeypatch) -> None:
    """With --cluster, makeService composes realtime.cluster.wiring's parts: the PeerHost
    falls back to JustInTime, the API and PeerHost are bound to the parts once, the API is
    forwarded through the private listener the node announces, and the tree gains
    private-api and cluster (nothing connects before start)."""
    monkeypatch.setenv("REALTIME_CLUSTER_SECRET", "s" * 32)
    service, _ = build(tmp_path, "--media-port", "10001", "--cluster", "redis://127.0.0.1:9",
                       "--node-id", "node-a", "--relay-address", "127.0.0.1:0")
    cluster = service.parts.cluster
    assert cluster is not None and service.just_in_time is cluster.jit
    assert cluster.peers.get() is service.peers and cluster.api.get() is service.api
    assert service.peers.router.unknown_checks is cluster.jit
    names = [child.name for child in service]
    assert names[3] == "private-api" and names[-2:] == ["cluster", "cluster-accounts"]
    assert service.getServiceNamed("private-api") is cluster.private_api.get()
    assert cluster.node.media_address() == "127.0.0.1:10001"
    service.store.close()


def test_turn_never_relays_to_the_servers_own_listening_ports(tmp_path) -> None:
    """Issue 10 item 5: once bound, the TURN UDP ports on the server's own addresses are
    refused as peers (through its own relay a client reached its TURN port); the media
    port is not: a relay-only client reaches this server's SFU through its TURN."""
    service, _ = build(tmp_path, "--media-port", "0", "--turn-port", "0",
                       "--turn-alt-port", "udp:5353", "--allow-loopback-peers")
    service.startService()
    policy = service.turn.server.policy
    media, turn = service.media.port, service.config.turn_port
    for port in (turn, 5353):
        assert not policy.permits_endpoint("127.0.0.1", port)
    assert policy.permits_endpoint("127.0.0.1", media)     # the SFU, through TURN
    assert policy.permits_endpoint("127.0.0.1", 40999)     # a peer beside it (tests' peers)
    service.stopService()
