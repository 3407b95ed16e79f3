"""
Issue 13's acceptance test: a cascading tree across five nodes in network namespaces.

The topology is :mod:`tests.cluster.netns`'s with nodes A-E (``--cascade-fanout 2``) and one
``redis-server``.  Headless Chromium in A's client namespace publishes its fake camera and
microphone through A (``pages/sfu-echo.html``, which also pulls its own echo at A).  Light
aiortc subscribers (``netns_counter.py``: ICE, DTLS, SRTP, NACK and PLI, no decoding) pull
the video, :data:`PER_NODE` of them in each of B, C, D, E's client namespaces, their media on
their own node, and one decoding aiortc subscriber per namespace (``netns_peer.py``).  The
nodes join the tree in the order B, C, D, E, so A feeds two nodes and the other two hang
below them.  Then:

1. A sends each video packet at most twice (A's fan-out counters);
2. nftables in the middle node's namespace drops 5 % of the relay datagrams from A
   (``numgen random``; netem is absent): every subscriber below A still receives every
   packet (no sequence hole) and the publisher is sent no NACK by A;
3. the middle node (a child of A with children) is SIGKILLed (it stays in the registry
   until its heartbeat expires): its children stop hearing its keepalives, re-attach
   elsewhere, and their subscribers receive again within 2 s (those on the stopped node lose their
   PeerConnection: see docs/cascading.md for what they would need).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.cluster.netns import in_ns, running_cluster
from tests.processes import Lines
from tests.conftest import require, require_tool
from tests.interop.realtime_server import APP_ID, APP_SECRET, ROOT, free_port

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
INTEROP = ROOT / "tests" / "interop"
#: light subscribers per client namespace (B-E): 40 in all
PER_NODE = 10
#: seconds of media under 5 % loss before the middle node is stopped
LOSSY_SECONDS = 8.0
#: the subtree of a stopped node must receive again within this long
RESUME_WITHIN = 2.0


def record(redis_server, key: str) -> dict:
    raw = redis_server.command("GET", key)
    return json.loads(raw) if raw else {}


def tree_of(redis_server, publisher: str, name: str) -> dict[str, str]:
    raw = redis_server.command("HGETALL", f"rt:tree:{publisher}:{name}")
    pairs = {k.decode(): v.decode() for k, v in zip(raw[0::2], raw[1::2])}
    return {k: v for k, v in pairs.items() if not k.startswith("~")}


def test_five_nodes_fanout_two_loss_and_a_middle_node_lost(tmp_path, redis_server, monkeypatch,
                                                           traffic_guard, namespaces) -> None:
    require_tool("nft")
    require_tool("chromium", "/usr/bin/chromium")
    node_binary = require_tool("node")
    require((INTEROP / "node_modules" / "playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    shared = tmp_path / "shared"
    shared.mkdir()
    children: list[Lines] = []
    started = time.monotonic()
    with running_cluster(tmp_path, redis_server.url, names="abcde",
                         extra=("--cascade-fanout", "2")) as (topology, nodes):
        try:
            a_api = nodes["a"].api_url(via="backbone")
            pages_port = free_port()
            children.append(Lines(["ip", "netns", "exec", topology.client_ns("a"), sys.executable,
                                   "-m", "http.server", str(pages_port), "--bind", "127.0.0.1",
                                   "--directory", str(INTEROP / "pages")]))
            time.sleep(0.5)
            query = urllib.parse.urlencode({"api": a_api, "app": APP_ID, "secret": APP_SECRET,
                                            "hold": 60000})
            chromium = Lines(["ip", "netns", "exec", topology.client_ns("a"), node_binary,
                              str(INTEROP / "run_page.js"),
                              f"http://127.0.0.1:{pages_port}/sfu-echo.html?{query}", "90000"],
                             cwd=INTEROP, env={**os.environ, "CHROMIUM": "/usr/bin/chromium",
                                               "REALTIME_EXCLUDE": ",".join(
                                                   nodes[n].backbone for n in "abcde")})
            children.append(chromium)
            published = json.loads(chromium.wait_for("CONSOLE PUBLISHED ", 40))
            publisher = published["sessionId"]
            kinds = {name: record(redis_server, f"rt:track:{publisher}:{name}").get("media_kind")
                     for name in published["trackNames"]}
            (video,) = [name for name, kind in kinds.items() if kind == "video"]
            counters = {}
            for name in "bcde":                  # one namespace at a time: the tree's order
                counters[name] = Lines(
                    ["ip", "netns", "exec", topology.client_ns(name), sys.executable,
                     str(HERE / "netns_counter.py"), str(ROOT),
                     nodes[name].api_url(via="backbone"), publisher, video, str(PER_NODE),
                     str(shared)])
                children.append(counters[name])
                counters[name].wait_for("READY", 60)
            decoders = {name: Lines(["ip", "netns", "exec", topology.client_ns(name),
                                     sys.executable, str(HERE / "netns_peer.py"), str(ROOT),
                                     "pull", nodes[name].api_url(via="backbone"), publisher,
                                     *published["trackNames"]])
                        for name in "bcde"}
            children.extend(decoders.values())
            tree = tree_of(redis_server, publisher, video)
            middle = next(n for n, p in sorted(tree.items()) if p == "node-a"
                          and any(q == n for q in tree.values()))
            below = sorted(n for n, p in tree.items() if p == middle)
            m = middle[-1]
            # 5 % of what A's relay port sends to the middle node's is lost on the way
            a_relay = record(redis_server, "rt:node:node-a")["relay_address"]
            m_relay = record(redis_server, f"rt:node:{middle}")["relay_address"]
            a_host, a_port = a_relay.rsplit(":", 1)
            m_port = m_relay.rsplit(":", 1)[1]
            ns = topology.node_ns(m)
            in_ns(ns, "nft", "add", "table", "inet", "rtloss")
            in_ns(ns, "nft", "add", "chain", "inet", "rtloss", "input",
                  "{ type filter hook input priority 0 ; }")
            in_ns(ns, "nft", "add", "rule", "inet", "rtloss", "input", "ip", "saddr", a_host,
                  "udp", "sport", a_port, "udp", "dport", m_port,
                  "numgen", "random", "mod", "100", "<", "5", "counter", "drop")
            time.sleep(LOSSY_SECONDS)
            decoded = {}
            for name, peer in decoders.items():   # they count for 5 s: done before the kill
                peer.process.wait(40)
                last = [line for line in peer.lines if line.startswith("{")]
                decoded[name] = json.loads(last[-1]) if last else {"output": peer.lines[-5:]}
            lost = nodes["a"].call("GET", "/diagnostics")[1]
            rules = json.loads(subprocess.run(
                ["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "rtloss"],
                capture_output=True, text=True, timeout=10).stdout)
            dropped = sum(x["counter"]["packets"] for e in rules["nftables"] if "rule" in e
                          for x in e["rule"]["expr"] if "counter" in x)
            # the middle node is killed (SIGKILL: it stays in the registry until its
            # heartbeat expires; its children notice its keepalives stopped)
            (shared / "kill").write_text(repr(time.time()))
            nodes[m].process.kill()
            nodes[m].process.wait(10)
            stopped = time.time() - float((shared / "kill").read_text())
            time.sleep(RESUME_WITHIN + 2.0)
            (shared / "stop").write_text("")
            results = {name: json.loads(counters[name].wait_for("RESULT ", 60))
                       for name in "bcde"}
            tree_after = tree_of(redis_server, publisher, video)
        finally:
            (shared / "stop").write_text("")
            for child in children:
                child.stop()
        logs = {name: node.output()[-2000:] for name, node in nodes.items()}
    seconds = time.monotonic() - started
    fanout = lost["cluster"]["pulls"]["fanouts"][f"{publisher}/{video}"]
    publisher_sfu = lost["sessions"][publisher]["sfu"]
    summary = {n: [(r["packets"], r["holes"], r["checked"], r["outage"] and round(r["outage"], 3),
                    r["last"] and round(r["last"], 2), r["first_holes"]) for r in rs]
               for n, rs in results.items()}
    print(f"\ncascade over 5 nodes ({seconds:.0f} s): tree {tree}, middle {middle} "
          f"(killed in {stopped:.2f} s) "
          f"(below it {below}), after {tree_after}")
    print(f"  A's fan-out: {fanout}; publisher leg: {publisher_sfu.get('nacksSentUpstream')} "
          f"NACKs; nft dropped {dropped} relay datagrams")
    for name, rows in summary.items():
        print(f"  node-{name}: (packets, holes, checked, outage s, last s after kill, first holes) {rows}")
    for name, one in decoded.items():
        print(f"  decoder at node-{name}: {one.get('state')} rates {one.get('rates')}")
    assert len(tree) == 4 and sorted(tree.values()).count("node-a") == 2, tree
    # 1. A sends each video packet at most twice
    assert sorted(fanout["nodes"]) == sorted(n for n, p in tree.items() if p == "node-a")
    assert fanout["packets"] > 100 and fanout["frames"] <= 2 * fanout["packets"], fanout
    # 2. loss on A -> middle: repaired per hop; nothing reached the publisher
    assert dropped > 10, dropped                # the loss was real
    assert fanout["repairs"] > 0, fanout
    assert publisher_sfu["nacksSentUpstream"] == 0, publisher_sfu
    for name, rows in results.items():
        for row in rows:
            assert row["checked"] > 200 and row["holes"] == 0, (name, row, logs)
    for name, one in decoded.items():
        assert one.get("state") == "connected" and one["frames"]["video"] >= 30, (name, one)
    # 3. the killed node's subtree resumed within 2 s, re-attached away from it
    for node in below:
        assert tree_after[node] != middle, (tree_after, logs)
        for row in results[node[-1]]:     # fed again, and never silent 2 s
            assert row["last"] > RESUME_WITHIN + 1.0, (node, row)
            assert row["outage"] < RESUME_WITHIN, (node, row)
