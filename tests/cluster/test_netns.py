"""
Three nodes behind one "anycast" address, in network namespaces this test creates.

::

    root namespace (the test: API calls, redis-server on a Unix socket all nodes share)
      │ 10.98.1.1 ── 10.98.1.2  rt-a  (node-a: API 10.98.1.2, media 10.99.99.1 on lo)
      │ 10.98.2.1 ── 10.98.2.2  rt-b  (node-b: API 10.98.2.2, media 10.99.99.1 on lo) ── rt-cl-b
      │ 10.98.3.1 ── 10.98.3.2  rt-c  (node-c: API 10.98.3.2, media 10.99.99.1 on lo) ── rt-cl-c
                                                  10.97.N.1 ── 10.97.N.2 (client, default route)

Every node announces the same media address, 10.99.99.1; a client's route to it leads
to the node its namespace is wired to.  Each aiortc client creates its echo session
through node A's API; its media reaches node B (or C), which has never heard of the
session and takes it over just in time.  The directory shows where each PeerConnection
lives.  Addresses exist only inside the namespaces (and the root side of their veths).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from realtime.cluster.options import SECRET_VARIABLE
from realtime.dtls.certificate import Certificate
from tests.conftest import require, require_module, require_tool
from tests.interop.realtime_server import APP_ID, APP_SECRET, ROOT, TWISTD, stop_process

pytestmark = pytest.mark.interop

ANYCAST = "10.99.99.1"
MEDIA, API = 10000, 8080
PREFIX = f"rt{os.getpid() % 10000}"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def in_ns(ns: str, *args: str) -> None:
    sh("ip", "netns", "exec", ns, *args)


class Node:
    def __init__(self, name: str, ns: str, api_ip: str, redis_url: str, pem: Path,
                 state: Path) -> None:
        self.name, self.api_ip, self.lines = name, api_ip, []
        command = ["ip", "netns", "exec", ns, str(TWISTD), "-n", "--pidfile=", "realtime",
                   "--state-dir", str(state), "--api", f"tcp:{API}:interface={api_ip}",
                   "--media-interface", ANYCAST, "--media-port", str(MEDIA),
                   "--turn-port", "3478", "--turns-port", "5349", "--relay-ipv6", "none",
                   "--cluster", redis_url, "--node-id", name, "--relay-address",
                   f"{api_ip}:0", "--dtls-certificate", str(pem),
                   "--app", f"{APP_ID}:{APP_SECRET}"]
        self.process = subprocess.Popen(command, cwd=state.parent, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout),
                         daemon=True).start()

    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while "cluster: node" not in self.output():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"http://{self.api_ip}:{API}/v1/apps/{APP_ID}{path}", data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {APP_SECRET}"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        stop_process(self.process)


def build(tmp: Path) -> list[str]:
    """Create the namespaces and links; return the namespace names (for deletion)."""
    made = []
    for n, node in enumerate("abc", start=1):
        ns = f"{PREFIX}-{node}"
        sh("ip", "netns", "add", ns)
        made.append(ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(ns, "ip", "addr", "add", f"{ANYCAST}/32", "dev", "lo")
        host, inner = f"{PREFIX}h{node}", f"{PREFIX}n{node}"
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "addr", "add", f"10.98.{n}.1/24", "dev", host)
        sh("ip", "link", "set", host, "up")
        in_ns(ns, "ip", "addr", "add", f"10.98.{n}.2/24", "dev", inner)
        in_ns(ns, "ip", "link", "set", inner, "up")
        if node == "a":
            continue
        client = f"{PREFIX}-cl-{node}"
        sh("ip", "netns", "add", client)
        made.append(client)
        in_ns(client, "ip", "link", "set", "lo", "up")
        near, far = f"{PREFIX}c{node}", f"{PREFIX}k{node}"
        sh("ip", "link", "add", near, "type", "veth", "peer", "name", far)
        sh("ip", "link", "set", near, "netns", ns)
        sh("ip", "link", "set", far, "netns", client)
        in_ns(ns, "ip", "addr", "add", f"10.97.{n}.1/24", "dev", near)
        in_ns(ns, "ip", "link", "set", near, "up")
        in_ns(client, "ip", "addr", "add", f"10.97.{n}.2/24", "dev", far)
        in_ns(client, "ip", "link", "set", far, "up")
        in_ns(client, "ip", "route", "add", "default", "via", f"10.97.{n}.1")
    return made


def test_three_nodes_one_anycast_address(tmp_path, redis_server, monkeypatch,
                                        traffic_guard) -> None:
    require_tool("ip")
    # the addresses of the namespaces this test builds (and removes): nothing else
    traffic_guard.allow("10.97.0.0/16", "10.98.0.0/16", "10.99.99.1/32")
    require_module("aiortc")
    require(os.geteuid() == 0, "network namespaces need root (CI runs as root)")
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")
    certificate = Certificate.generate(time.time())
    pem = tmp_path / "cluster-dtls.pem"
    pem.write_bytes(certificate.certificate_pem() + certificate.private_key_pem())
    namespaces: list[str] = []
    nodes: list[Node] = []
    results = {}
    try:
        namespaces = build(tmp_path)
        for n, name in enumerate("abc", start=1):
            nodes.append(Node(f"node-{name}", f"{PREFIX}-{name}", f"10.98.{n}.2",
                              redis_server.url, pem, tmp_path / name))
        for node in nodes:
            node.wait_ready()
        a = nodes[0]
        for client in "bc":
            script = subprocess.Popen(
                ["ip", "netns", "exec", f"{PREFIX}-cl-{client}", sys.executable,
                 str(Path(__file__).with_name("netns_client.py")), str(ROOT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            offer = json.loads(script.stdout.readline())["offer"]
            answer = a.post("/echo/new", {"sessionDescription": {"type": "offer", "sdp": offer}})
            assert f"a=candidate:" in answer["sessionDescription"]["sdp"]
            assert f" {ANYCAST} {MEDIA} typ host" in answer["sessionDescription"]["sdp"]
            script.stdin.write(json.dumps({"answer": answer["sessionDescription"]["sdp"]}) + "\n")
            script.stdin.flush()
            result = json.loads(script.stdout.readline())
            script.wait(20)
            record = json.loads(redis_server.command("GET", f"rt:session:{answer['sessionId']}"))
            results[client] = (answer["sessionId"][:8], record["owner_node"], result)
    finally:
        for node in nodes:
            node.stop()
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    print("\nclient namespace  API node  PeerConnection on  state      frames  connect")
    for client, (session, owner, result) in results.items():
        print(f"{PREFIX}-cl-{client:<8} node-a    {owner:<18} {result['connected']:<10} "
              f"{result['frames']['video']:>3}v {result['frames']['audio']:>3}a  "
              f"{result['connect_time']}")
    for client, (session, owner, result) in results.items():
        assert result["connected"] == "connected", (client, result,
                                                    [n.output()[-3000:] for n in nodes])
        assert result["frames"]["video"] >= 20 and result["frames"]["audio"] >= 30, result
        assert owner == f"node-{client}", (client, owner)
