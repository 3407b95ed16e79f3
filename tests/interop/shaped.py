"""
A network namespace with a shaped link, for tests of adaptive delivery (docs/bandwidth.md).

::

    root namespace: twistd realtime on 10.95.N.1 (the veth's root side)
      │ rtbwNh 10.95.N.1/30 ── rtbwNn 10.95.N.2/30   namespace rtbwN: a browser
      │   tbf on rtbwNh's egress shapes the namespace's downlink,
      │   tbf on rtbwNn's egress (inside the namespace) its uplink

``tc tbf`` is what this kernel offers (netem is absent).  The namespace and the
veth are removed on exit; tests declare 10.95.N.0/30 to the traffic guard.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from typing import Iterator


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


@dataclass
class ShapedLink:
    """The namespace ``ns`` joined by veth ``host`` (root side, ``ours``) / ``inner`` (``theirs``)."""

    ns: str
    host: str
    inner: str
    ours: str
    theirs: str

    def network(self) -> str:
        return f"{self.ours.rsplit('.', 1)[0]}.0/30"

    def shape_downlink(self, rate: str, change: bool = False) -> None:
        """tbf on the root side's egress: ``rate``, a 15 kB bucket, at most 300 ms queued."""
        sh("tc", "qdisc", "change" if change else "add", "dev", self.host, "root", "tbf",
           "rate", rate, "burst", "15000", "latency", "300ms")

    def shape_uplink(self, rate: str, change: bool = False, burst: int = 3000) -> None:
        """tbf on the namespace side's egress (what the namespace sends).

        A small bucket by default: Chromium probes its uplink with short bursts of
        padding (a few kB), which a 15 kB bucket passes at line rate whatever the rate.
        """
        sh("ip", "netns", "exec", self.ns, "tc", "qdisc", "change" if change else "add", "dev",
           self.inner, "root", "tbf", "rate", rate, "burst", str(burst), "latency", "300ms")


@contextlib.contextmanager
def shaped_link() -> Iterator[ShapedLink]:
    """Make the namespace and its veth; remove both on exit."""
    n = os.getpid() % 250 + 1
    link = ShapedLink(f"rtbw{n}", f"rtbw{n}h", f"rtbw{n}n", f"10.95.{n}.1", f"10.95.{n}.2")
    sh("ip", "netns", "add", link.ns)
    try:
        sh("ip", "link", "add", link.host, "type", "veth", "peer", "name", link.inner)
        sh("ip", "link", "set", link.inner, "netns", link.ns)
        sh("ip", "addr", "add", f"{link.ours}/30", "dev", link.host)
        sh("ip", "link", "set", link.host, "up")
        sh("ip", "netns", "exec", link.ns, "ip", "addr", "add", f"{link.theirs}/30", "dev",
           link.inner)
        sh("ip", "netns", "exec", link.ns, "ip", "link", "set", link.inner, "up")
        sh("ip", "netns", "exec", link.ns, "ip", "link", "set", "lo", "up")
        yield link
    finally:
        subprocess.run(["ip", "netns", "del", link.ns], capture_output=True)
        subprocess.run(["ip", "link", "del", link.host], capture_output=True)

