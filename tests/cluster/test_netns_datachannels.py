"""
A DataChannel published at one node reaches subscribers on the other two, across namespaces.

The topology is :mod:`tests.cluster.netns`'s: three nodes announcing one "anycast" media
address, a client namespace under each whose route to it leads to that node.  The
publisher (aiortc in client namespace a) makes its session through node A's API and its
media lands on A; two subscribers in client namespace b subscribe through node B's API,
one in c through node C's.  Neither B nor C holds the publisher: each asks A once over
the directory's pub/sub, and A relays each message once to each of them over the
backbone (the encrypted relay link).  Addresses exist only inside the namespaces.

Once every subscriber is ready, nftables in B's namespace drops :data:`LOSS_PERCENT` % of
the relay datagrams A sends to B (``numgen random``, as tests/cluster/test_netns_cascade.py
does for media): B's subscribers still get every message in order, B asking A again
(``DATACHANNEL_NACK``) for what was lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.netns import Node, Topology, in_ns, running_cluster
from tests.conftest import require_tool
from tests.interop.realtime_server import ROOT

pytestmark = pytest.mark.interop

MESSAGES = 100
#: share of A's relay datagrams to B lost in B's namespace once the subscribers are ready
LOSS_PERCENT = 10
SCRIPT = Path(__file__).with_name("netns_datachannel_client.py")


class Client:
    """One aiortc client process in a client namespace, speaking JSON lines."""

    def __init__(self, topology: Topology, client: str, node: Node, *args: str) -> None:
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", topology.client_ns(client), sys.executable, str(SCRIPT),
             str(ROOT), node.api_url(via="backbone"), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read(self) -> dict:
        line = self.process.stdout.readline()
        assert line, f"client exited with {self.process.wait(5)}"
        return json.loads(line)

    def write(self, body: dict) -> None:
        self.process.stdin.write(json.dumps(body) + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


def lose_relay_frames(topology: Topology, redis_server, sender: str, receiver: str) -> str:
    """Drop LOSS_PERCENT % of ``sender``'s relay datagrams to ``receiver`` in the latter's
    namespace; return that namespace (for :func:`dropped`)."""
    def relay(node: str) -> tuple[str, str]:
        raw = redis_server.command("GET", f"rt:node:node-{node}")
        return tuple(json.loads(raw)["relay_address"].rsplit(":", 1))
    (host, port), (_, to_port) = relay(sender), relay(receiver)
    ns = topology.node_ns(receiver)
    in_ns(ns, "nft", "add", "table", "inet", "rtloss")
    in_ns(ns, "nft", "add", "chain", "inet", "rtloss", "input",
          "{ type filter hook input priority 0 ; }")
    in_ns(ns, "nft", "add", "rule", "inet", "rtloss", "input", "ip", "saddr", host, "udp",
          "sport", port, "udp", "dport", to_port, "numgen", "random", "mod", "100", "<",
          str(LOSS_PERCENT), "counter", "drop")
    return ns


def dropped(ns: str) -> int:
    """Return how many datagrams the rule of :func:`lose_relay_frames` dropped."""
    rules = json.loads(subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "rtloss"],
        capture_output=True, text=True, timeout=10).stdout)
    return sum(x["counter"]["packets"] for e in rules["nftables"] if "rule" in e
               for x in e["rule"]["expr"] if "counter" in x)


def test_a_datachannel_published_at_a_reaches_subscribers_at_b_and_c(
        tmp_path, redis_server, monkeypatch, traffic_guard, namespaces) -> None:
    require_tool("nft")
    clients: list[Client] = []
    with running_cluster(tmp_path, redis_server.url) as (topology, nodes):
        try:
            started = time.monotonic()
            publisher = Client(topology, "a", nodes["a"], "publisher")
            clients.append(publisher)
            publisher_id = publisher.read()["session"]
            subscribers = [Client(topology, n, nodes[n], "subscriber", publisher_id)
                           for n in "bbc"]
            clients += subscribers
            ready = [{**s.read(), **s.read()} for s in subscribers]   # in either order:
            for r in ready:                       # channel open, and the warm-up crossed
                assert r["ready"] and r["warm"], ready
            lossy = lose_relay_frames(topology, redis_server, "a", "b")
            publisher.write({"count": MESSAGES})
            results = [s.read() for s in subscribers]
            assert publisher.read() == {"sent": MESSAGES}
            elapsed = time.monotonic() - started
            lost = dropped(lossy)
            counters = {n: node.call("GET", "/diagnostics")[1]["clusterDataChannels"]
                        for n, node in nodes.items()}
            owners = {session: json.loads(redis_server.command(
                "GET", f"rt:session:{session}"))["owner_node"]
                for session in [publisher_id, *(r["session"] for r in ready)]}
        finally:
            for client in clients:
                client.stop()
    wanted = [f"m{i}" for i in range(MESSAGES)]
    for result in results:
        assert result == {"messages": wanted, "ended": True}
    at_a, at_b, at_c = counters["a"], counters["b"], counters["c"]
    assert at_b["receivedPerNode"] == {"node-a": at_a["sentPerNode"]["node-b"]}
    assert at_c["receivedPerNode"] == {"node-a": at_a["sentPerNode"]["node-c"]}
    assert at_a["sentPerNode"]["node-b"] >= MESSAGES + 1        # once to B, not twice
    # B handed each numbered message (and "end") to both its subscribers; warm-ups that
    # crossed while B's second subscriber was still being made went to the first alone
    assert 2 * (MESSAGES + 1) <= at_b["delivered"] <= 2 * at_b["receivedPerNode"]["node-a"]
    assert at_a["messagesRelayed"] == max(at_a["sentPerNode"].values())
    # datagrams were lost on the way to B (each 1 in 10: none in 100+ has p < 3e-5), and
    # B asked A again; C's link lost nothing
    assert lost > 0 and at_b["repair"]["nacksSent"] > 0 and at_a["repair"]["resent"] > 0
    assert at_b["receivers"].get("lost", 0) == 0 and at_b["receivers"]["recovered"] > 0
    # each PeerConnection lives on the node its namespace's route leads to
    assert list(owners.values()) == ["node-a", "node-b", "node-b", "node-c"], owners
    print("\nclient namespace  API node  PeerConnection on  role")
    for (session, owner), (client, role) in zip(owners.items(), [
            ("a", "publisher"), ("b", "subscriber"), ("b", "subscriber"),
            ("c", "subscriber")]):
        print(f"{topology.client_ns(client):<17} node-{client}    {owner:<18} {role}")
    print(f"{MESSAGES} messages to 3 subscribers on 2 other nodes; A sent "
          f"{at_a['sentPerNode']}, {at_a['messagesRelayed']} relayed; B delivered "
          f"{at_b['delivered']}, C {at_c['delivered']}; {elapsed:.1f} s in all; "
          f"{lost} relay datagrams to B dropped by nft: B {at_b['repair']}, "
          f"A {at_a['repair']}, B's receiver {at_b['receivers']}")
