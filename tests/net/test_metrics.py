"""
``--metrics``: the collectors over a real service built in-process (issue 17).

The service is what ``makeService`` builds (tests/test_service.py's
``build``, on a ``MemoryReactorClock``); API calls go through the same
resource tree the API listener serves (StubTreq), and each scrape is a
``GET`` of the metrics listener's own resource, parsed with prometheus-client's
text parser: what Prometheus would read.
"""

from __future__ import annotations

import io
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.application.service import Application
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

from realtime.net.json_log import JsonLinesObserver
from realtime.net.metrics import CounterFold, TurnCollector
from realtime.stun.attributes import Lifetime
from realtime.stun.message import StunMethod
from realtime.net.metrics_service import LAG_INTERVAL, ReactorLag, metrics_registry
from tests.test_service import build, parse
from tests.turn.client import Client, code, make_server

APP = ("app1", "secret-secret-1")


def started(tmp_path, *argv: str):
    service, reactor = build(tmp_path, "--metrics", "tcp:9464:interface=127.0.0.1",
                             "--api", "tcp:0", "--app", ":".join(APP), *argv)
    service.privilegedStartService()
    service.startService()
    children = {s.name: s for s in service}
    return service, reactor, children


def request(treq: StubTreq, method: str, url: str, **kwargs) -> tuple[int, bytes]:
    results: list = []
    getattr(treq, method)(url, **kwargs).addBoth(results.append)
    treq.flush()
    response = results[0]
    body: list = []
    response.content().addBoth(body.append)
    treq.flush()
    return response.code, body[0]


def scrape(children) -> dict[str, dict[tuple, float]]:
    """GET the metrics listener's resource; return {sample name: {labels: value}}."""
    treq = StubTreq(children["metrics"].factory.resource)
    status, text = request(treq, "get", "http://127.0.0.1:9464/metrics")
    assert status == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def api(children) -> StubTreq:
    return StubTreq(children["api"].factory.resource)


BEARER = {"Authorization": f"Bearer {APP[1]}"}


def test_metrics_listen_on_their_own_endpoint_with_their_timers(tmp_path) -> None:
    service, reactor, children = started(tmp_path)
    assert {"metrics", "metrics-sweep", "metrics-lag"} <= set(children)
    assert [(port, iface) for port, _, _, iface in reactor.tcpServers][:2] == [
        (9464, "127.0.0.1"), (0, "")]
    service.stopService()


def test_no_metrics_listener_by_default(tmp_path) -> None:
    service, _ = build(tmp_path)
    assert not {"metrics", "metrics-sweep", "metrics-lag"} & {s.name for s in service}


def test_api_requests_by_route_template_and_status(tmp_path) -> None:
    service, reactor, children = started(tmp_path)
    treq = api(children)
    for _ in range(2):
        status, body = request(treq, "post", "http://127.0.0.1/v1/apps/app1/sessions/new",
                               headers=BEARER)
        assert status == 201, body
    session_id = json.loads(body)["sessionId"]
    status, _ = request(treq, "post", "http://127.0.0.1/v1/apps/app1/sessions/new",
                        headers={"Authorization": "Bearer wrong-secret"})
    assert status == 401
    status, _ = request(treq, "get", f"http://127.0.0.1/v1/apps/app1/sessions/{session_id}",
                        headers=BEARER)
    assert status == 200
    status, _ = request(treq, "get", "http://127.0.0.1/wp-login.php")
    assert status == 404
    samples = scrape(children)
    requests = samples["realtime_api_requests_total"]
    new = "/v1/apps/<app_id>/sessions/new"
    assert requests[(("method", "POST"), ("route", new), ("status", "201"))] == 2
    assert requests[(("method", "POST"), ("route", new), ("status", "401"))] == 1
    state = "/v1/apps/<app_id>/sessions/<session_id>"   # the template, never the id
    assert requests[(("method", "GET"), ("route", state), ("status", "200"))] == 1
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1
    assert all(session_id not in str(labels) for labels in requests)
    counts = samples["realtime_api_request_duration_seconds_count"]
    assert counts[(("method", "POST"), ("route", new))] == 3
    assert samples["realtime_sessions"][(("type", "sfu"),)] == 2
    service.stopService()


def test_port_drops_by_reason(tmp_path) -> None:
    service, reactor, children = started(tmp_path)
    service.media.datagramReceived(b"\x00\x01\x00\x04\x21\x12", ("127.0.0.1", 5000))
    service.media.datagramReceived(b"\x00\x01\x00\x04\x21\x12", ("127.0.0.1", 5001))
    drops = scrape(children)["realtime_port_drops_total"]
    assert drops[(("port", "media"), ("reason", "malformed-stun"))] == 2
    service.stopService()


def test_sfu_counters_outlive_the_session(tmp_path) -> None:
    """A closed session's counts stay in the totals (a Prometheus counter never goes down)."""
    service, reactor, children = started(tmp_path)
    status, body = request(api(children), "post",
                           "http://127.0.0.1/v1/apps/app1/sessions/new", headers=BEARER)
    board = service.api.switchboard
    session = board.get(json.loads(body)["sessionId"])
    session.counters["rtp-unrouted"] += 3                 # what MediaRouting counts
    session.datachannels.messages["received"] += 2
    samples = scrape(children)
    reason = (("reason", "rtp-unrouted"),)
    assert samples["realtime_sfu_drops_total"][reason] == 3
    assert samples["realtime_datachannel_messages_total"][(("direction", "in"),)] == 2
    session.counters["rtp-unrouted"] += 1
    board.close_session(session)
    assert scrape(children)["realtime_sfu_drops_total"][reason] == 4   # its last growth
    assert scrape(children)["realtime_sfu_drops_total"][reason] == 4   # and no more
    assert scrape(children)["realtime_sessions"][(("type", "sfu"),)] == 0
    collector = next(c for c in children["metrics"].factory.resource.registry._collector_to_names
                     if type(c).__name__ == "MediaCollector")
    assert session not in collector._sessions              # released after that sweep
    service.stopService()


def test_turn_counts_unauthorized_answers(tmp_path) -> None:
    service, reactor, children = started(tmp_path)
    assert scrape(children)["realtime_turn_allocations"][(("transport", "udp"),)] == 0
    # an Allocate without credentials: the normal first step, answered 401 (RFC 8656 §7.2)
    allocate = (b"\x00\x03\x00\x08\x21\x12\xa4\x42" + bytes(12)
                + b"\x00\x19\x00\x04\x11\x00\x00\x00")
    service.turn.server.receive_datagram(allocate, ("turn-udp", ("198.51.100.7", 4000)),
                                         reactor.seconds())
    assert scrape(children)["realtime_turn_unauthorized_total"][(("cause", "challenge"),)] == 1
    service.stopService()


class Counted:
    def __init__(self, value: int) -> None:
        self.value = value


def test_counter_fold_keeps_totals_as_objects_come_and_go() -> None:
    fold = CounterFold()

    def sweep(*objects: Counted) -> int:
        fold.begin()
        for counted in objects:
            fold.add(counted, {("m",): counted.value})
            fold.add(counted, {("m",): counted.value})   # twice in one sweep: once
        fold.end()
        return fold.totals[("m",)]

    a, b = Counted(5), Counted(1)
    assert sweep(a, b) == 6
    a.value = 7
    assert sweep(a) == 8           # b is gone: its 1 stays
    assert sweep(a) == 8
    c = Counted(2)
    assert sweep(a, c) == 10       # a newcomer counts from zero
    a.value = 1                    # a counter that went down restarted
    assert sweep(a, c) == 11


def test_reactor_lag_is_how_late_the_timer_ran() -> None:
    clock = Clock()
    registry = metrics_registry([], process=False)
    lag = ReactorLag(clock, registry)
    lag.probe()
    clock.advance(LAG_INTERVAL + 0.1)       # a callback held the reactor 100 ms
    lag.probe()
    clock.advance(LAG_INTERVAL)
    lag.probe()
    assert registry.get_sample_value("realtime_reactor_lag_seconds_count") == 2
    assert registry.get_sample_value("realtime_reactor_lag_seconds_sum") == pytest.approx(0.1)
    assert registry.get_sample_value("realtime_reactor_lag_seconds_bucket",
                                     {"le": "0.05"}) == 1


def test_json_log_lines_carry_the_fields(tmp_path) -> None:
    out = io.StringIO()
    observer = JsonLinesObserver(out)
    log = Logger(namespace="realtime.test", observer=observer)
    log.info("session {session_id} connected", session_id="5f0c" * 8, app_id="app1")
    log.info("second\nline {n}", n=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["session_id"] == "5f0c" * 8 and first["app_id"] == "app1"
    assert first["text"] == f"session {'5f0c' * 8} connected"
    assert first["log_level"]["name"] == "info"
    assert json.loads(lines[1])["text"] == "second\nline 2"


def test_log_format_json_gives_twistd_the_observer(tmp_path) -> None:
    service, _ = build(tmp_path, "--log-format", "json")
    application = Application("realtime")
    service.setServiceParent(application)
    assert isinstance(application.getComponent(ILogObserver), JsonLinesObserver)
    text, _ = build(tmp_path / "text")
    plain = Application("realtime")
    text.setServiceParent(plain)
    assert plain.getComponent(ILogObserver, None) is None


@pytest.mark.parametrize("argv, message", [
    (["--log-format", "xml"], "--log-format: 'xml' is not text or json"),
    (["--metrics", "nonsense:1"], "--metrics: 'nonsense:1' is not a server endpoint"),
])
def test_bad_options(argv, message) -> None:
    with pytest.raises(usage.UsageError, match=message):
        parse(*argv)


def test_a_cluster_node_exports_its_id_and_relay_link(tmp_path, monkeypatch) -> None:
    """With --cluster: realtime_node_info{node} and the relay link's counters (built, not
    started: nothing connects to Redis before start, and a scrape needs none)."""
    monkeypatch.setenv("REALTIME_CLUSTER_SECRET", "s" * 32)
    service, _ = build(tmp_path, "--cluster", "redis://127.0.0.1:9", "--node-id", "node-a",
                       "--relay-address", "127.0.0.1:0", "--metrics", "tcp:0", "--api", "tcp:0")
    metrics = service.getServiceNamed("metrics")
    samples = scrape({"metrics": metrics})
    assert samples["realtime_node_info"] == {(("node", "node-a"),): 1}
    link = service.parts.cluster.node.relay.link
    link.dropped["authentication"] += 2
    samples = scrape({"metrics": metrics})
    frames = samples["realtime_relay_frames_total"]
    assert set(frames) == {(("event", e), ("node", "node-a")) for e in ("sealed", "sent", "opened")}
    assert samples["realtime_relay_drops_total"] == {
        (("node", "node-a"), ("reason", "authentication")): 2}
    assert "realtime_relay_link_frames_total" not in samples    # no link has carried a frame
    assert "realtime_relay_link_rtt_seconds" not in samples     # nothing measured yet
    node = service.parts.cluster.node
    node.members = {"node-b": ("127.0.0.1", 9)}
    node.rtt.pong_received("node-b", node.rtt.probe("node-b", 0.0), 0.0015)
    node.rtt._peers["node-b"].updated = node.reactor.seconds()   # sampled just now
    samples = scrape({"metrics": metrics})
    assert samples["realtime_relay_link_rtt_seconds"] == {
        (("node", "node-a"), ("peer", "node-b")): 0.0015}
    service.store.close()


def test_turn_relayed_bytes_only_grow_through_drains_and_deletes() -> None:
    """An allocation's byte counters are reset by each usage drain and vanish with it;
    the totals keep every byte (the server keeps what the counters lose)."""
    server = make_server()[0]
    collector = TurnCollector(server)
    registry = metrics_registry([collector], process=False)

    def relayed(direction: str) -> float:
        return registry.get_sample_value("realtime_turn_relayed_bytes_total",
                                         {"transport": "udp", "direction": direction})

    alice = Client(server)
    assert code(alice.allocate()) == "success"
    assert registry.get_sample_value("realtime_turn_allocations", {"transport": "udp"}) == 1
    after_allocate = relayed("in")
    assert after_allocate > 0 and relayed("out") > 0       # the Allocate and its answer
    server.drain_usage()                                    # resets the live counters
    assert relayed("in") == after_allocate
    alice.request(StunMethod.REFRESH, [Lifetime(0)], 1.0)  # deletes it (its bytes count)
    assert server.allocations == {}
    assert relayed("in") > after_allocate
    assert registry.get_sample_value("realtime_turn_allocations", {"transport": "udp"}) == 0
