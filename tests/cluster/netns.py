"""
Network namespaces for the multi-node tests: nodes behind one "anycast" address.

::

    root namespace: the test (API calls on 10.98.N.2), redis-server on a Unix socket
      │ 10.98.N.1 ── 10.98.N.2  rt-X       node X: API on every address of its namespace,
      │                                     media on 10.99.99.1 (on lo, the same on every node)
      │                                     10.96.0.N on the backbone (relay link, API)
      │                          rt-X ── rt-cl-X   10.97.N.1 ── 10.97.N.2: client X, default
      │                                            route via node X; 10.96.0.(100+N) on the
      │                                            backbone, to reach every node's API
      └ rt-core: a bridge joining every node and client on 10.96.0.0/24

Every node announces the same media address, 10.99.99.1; a client's route to it leads to
the node its namespace hangs under, as anycast would lead a browser to its nearest server.
Nodes reach each other (relay link) and clients reach any node's API over the backbone
bridge, so no namespace forwards between networks and the root namespace's sysctls are
never touched.  Addresses exist only inside these namespaces and the root side of their
veths: tests declare ``10.96.0.0/16``, ``10.97.0.0/16``, ``10.98.0.0/16`` and the anycast
address to the traffic guard (:data:`NETWORKS`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from realtime.dtls.certificate import Certificate
from tests.interop.realtime_server import APP_ID, APP_SECRET, TWISTD, stop_process

ANYCAST = "10.99.99.1"
MEDIA, API = 10000, 8080
NETWORKS = ("10.96.0.0/16", "10.97.0.0/16", "10.98.0.0/16", f"{ANYCAST}/32")
_BUILT = itertools.count()


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


def in_ns(ns: str, *args: str) -> None:
    sh("ip", "netns", "exec", ns, *args)


class Topology:
    """Build (and remove) the namespaces for nodes named ``names`` ("a", "b", ...)."""

    def __init__(self, names: str = "abc", prefix: str | None = None) -> None:
        self.names = names
        # A fresh prefix per topology: the kernel removes a deleted namespace's veths
        # asynchronously, so the next test's ``ip link add`` of the same name could
        # still find the last one's root-side end ("File exists").
        self.prefix = prefix or f"rt{os.getpid() % 1000}{next(_BUILT) % 100:02d}"
        self.namespaces: list[str] = []
        self.host_links: list[str] = []

    def node_ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def client_ns(self, name: str) -> str:
        return f"{self.prefix}-cl-{name}"

    def index(self, name: str) -> int:
        return self.names.index(name) + 1

    def backbone(self, name: str, client: bool = False) -> str:
        """The backbone address of node ``name`` (or of its client namespace)."""
        return f"10.96.0.{self.index(name) + (100 if client else 0)}"

    def root_address(self, name: str) -> str:
        """Node ``name``'s address on its link to the root namespace (the test's API calls)."""
        return f"10.98.{self.index(name)}.2"

    def _namespace(self, ns: str) -> None:
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")

    def _veth(self, left: str, left_ns: str | None, right: str, right_ns: str) -> None:
        sh("ip", "link", "add", left, "type", "veth", "peer", "name", right)
        if left_ns is not None:
            sh("ip", "link", "set", left, "netns", left_ns)
        sh("ip", "link", "set", right, "netns", right_ns)

    def _join_backbone(self, ns: str, tag: str, address: str) -> None:
        core = self.node_ns("core")
        self._veth(f"{self.prefix}b{tag}", core, f"{self.prefix}B{tag}", ns)
        in_ns(core, "ip", "link", "set", f"{self.prefix}b{tag}", "master", "br0")
        in_ns(core, "ip", "link", "set", f"{self.prefix}b{tag}", "up")
        in_ns(ns, "ip", "addr", "add", f"{address}/24", "dev", f"{self.prefix}B{tag}")
        in_ns(ns, "ip", "link", "set", f"{self.prefix}B{tag}", "up")

    def build(self) -> Topology:
        core = self.node_ns("core")
        self._namespace(core)
        in_ns(core, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(core, "ip", "link", "set", "br0", "up")
        for name in self.names:
            n, ns = self.index(name), self.node_ns(name)
            self._namespace(ns)
            in_ns(ns, "ip", "addr", "add", f"{ANYCAST}/32", "dev", "lo")
            host, inner = f"{self.prefix}h{name}", f"{self.prefix}n{name}"
            self._veth(host, None, inner, ns)
            self.host_links.append(host)
            sh("ip", "addr", "add", f"10.98.{n}.1/24", "dev", host)
            sh("ip", "link", "set", host, "up")
            in_ns(ns, "ip", "addr", "add", f"10.98.{n}.2/24", "dev", inner)
            in_ns(ns, "ip", "link", "set", inner, "up")
            self._join_backbone(ns, name, self.backbone(name))
            client = self.client_ns(name)
            self._namespace(client)
            near, far = f"{self.prefix}c{name}", f"{self.prefix}k{name}"
            self._veth(near, ns, far, client)
            in_ns(ns, "ip", "addr", "add", f"10.97.{n}.1/24", "dev", near)
            in_ns(ns, "ip", "link", "set", near, "up")
            in_ns(client, "ip", "addr", "add", f"10.97.{n}.2/24", "dev", far)
            in_ns(client, "ip", "link", "set", far, "up")
            in_ns(client, "ip", "route", "add", "default", "via", f"10.97.{n}.1")
            self._join_backbone(client, name.upper(), self.backbone(name, client=True))
        return self

    def destroy(self) -> None:
        for link in self.host_links:     # at once, not when the namespace is reaped
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        self.host_links.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()


class Node:
    """``twistd realtime --cluster`` inside node ``name``'s namespace."""

    def __init__(self, topology: Topology, name: str, redis_url: str, pem: Path,
                 state: Path, *extra: str) -> None:
        self.name, self.node_id = name, f"node-{name}"
        self.api_ip = topology.root_address(name)
        self.backbone = topology.backbone(name)
        self.lines: list[str] = []
        state.mkdir(parents=True, exist_ok=True)
        command = ["ip", "netns", "exec", topology.node_ns(name), str(TWISTD), "-n",
                   "--pidfile=", "realtime", "--state-dir", str(state),
                   "--api", f"tcp:{API}", "--media-interface", ANYCAST,
                   "--media-port", str(MEDIA), "--turn-port", "3478", "--turns-port", "5349",
                   "--relay-ipv6", "none", "--cluster", redis_url, "--node-id", self.node_id,
                   "--relay-address", f"{self.backbone}:0", "--dtls-certificate", str(pem),
                   "--app", f"{APP_ID}:{APP_SECRET}", *extra]
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

    def api_url(self, via: str | None = None) -> str:
        """The API base URL from the root namespace (or, ``via="backbone"``, from a client)."""
        return f"http://{self.backbone if via == 'backbone' else self.api_ip}:{API}"

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.api_url()}/v1/apps/{APP_ID}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {APP_SECRET}"}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def post(self, path: str, body: dict) -> dict:
        status, reply = self.call("POST", path, body)
        assert status < 300, (status, reply)
        return reply

    def stop(self) -> None:
        stop_process(self.process)


def cluster_certificate(directory: Path) -> Path:
    """Write the cluster's DTLS certificate (certificate + key, one PEM, 0600); return its path."""
    certificate = Certificate.generate(time.time())
    pem = directory / "cluster-dtls.pem"
    pem.write_bytes(certificate.certificate_pem() + certificate.private_key_pem())
    pem.chmod(0o600)
    return pem


@contextlib.contextmanager
def running_cluster(directory: Path, redis_url: str, names: str = "abc",
                    extra: tuple[str, ...] = ()) -> Iterator[tuple[Topology, dict[str, Node]]]:
    """Build the namespaces, start one node in each (one cluster certificate, ``extra``
    arguments), wait until every node has registered; yield (topology, nodes by name);
    stop and remove it all."""
    pem = cluster_certificate(directory)
    topology = Topology(names)
    nodes: dict[str, Node] = {}
    try:
        topology.build()
        for name in names:
            nodes[name] = Node(topology, name, redis_url, pem, directory / name, *extra)
        for node in nodes.values():
            node.wait_ready()
        yield topology, nodes
    finally:
        for node in nodes.values():
            node.stop()
        topology.destroy()
