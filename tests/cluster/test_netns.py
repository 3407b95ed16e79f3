"""
Three nodes behind one "anycast" address, in network namespaces this test creates.

The topology is :mod:`tests.cluster.netns`'s (three nodes, a client namespace under each,
a backbone bridge).  Every node announces the same media address, 10.99.99.1; a client's
route to it leads to the node its namespace is wired to.  Each aiortc client creates its
echo session through node A's API; its media reaches node B (or C), which has never heard of the
session and takes it over just in time.  The directory shows where each PeerConnection
lives.  Addresses exist only inside the namespaces (and the root side of their veths).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.netns import ANYCAST, MEDIA, running_cluster
from tests.interop.realtime_server import ROOT

pytestmark = pytest.mark.interop

def test_three_nodes_one_anycast_address(tmp_path, redis_server, monkeypatch,
                                        traffic_guard, namespaces) -> None:
    results = {}
    with running_cluster(tmp_path, redis_server.url) as (topology, nodes):
        a = nodes["a"]
        for client in "bc":
            script = subprocess.Popen(
                ["ip", "netns", "exec", topology.client_ns(client), sys.executable,
                 str(Path(__file__).with_name("netns_client.py")), str(ROOT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            offer = json.loads(script.stdout.readline())["offer"]
            answer = a.post("/echo/new", {"sessionDescription": {"type": "offer", "sdp": offer}})
            assert f"a=candidate:" in answer["sessionDescription"]["sdp"]
            assert f" {ANYCAST} {MEDIA} typ host" in answer["sessionDescription"]["sdp"]
            script.stdin.write(json.dumps({"answer": answer["sessionDescription"]["sdp"]}) + "\n")
            script.stdin.flush()
            result = json.loads(script.stdout.readline())
            raw = redis_server.command("GET", f"rt:session:{answer['sessionId']}")
            script.stdin.write("close\n")        # the call was up while its record was read
            script.stdin.flush()
            script.wait(20)
            assert raw is not None, [n.output()[-2000:] for n in nodes.values()]
            record = json.loads(raw)
            results[client] = (answer["sessionId"][:8], record["owner_node"], result)
    print("\nclient namespace  API node  PeerConnection on  state      frames  connect")
    for client, (session, owner, result) in results.items():
        print(f"{topology.client_ns(client):<17} node-a    {owner:<18} {result['connected']:<10} "
              f"{result['frames']['video']:>3}v {result['frames']['audio']:>3}a  "
              f"{result['connect_time']}")
    for client, (session, owner, result) in results.items():
        assert result["connected"] == "connected", (client, result,
                                                    [n.output()[-3000:] for n in nodes.values()])
        assert result["frames"]["video"] >= 20 and result["frames"]["audio"] >= 30, result
        assert owner == f"node-{client}", (client, owner)
