"""
Debian's ``simple-whip-client`` (``/usr/bin/whip-client``), run for real.

Two things stand between the packaged binary and a publish on a test machine,
and this module removes both without touching the binary:

* **libsoup 2 and 3 in one process.**  On bookworm whip-client links
  libsoup 2.4; its ICE library, libnice, links ``libgupnp-igd-1.0.so.4``
  (UPnP port mapping), which pulls in gupnp 1.6 and so libsoup 3, and libsoup
  aborts a process that holds both ("libsoup2 symbols detected").  libnice
  imports four symbols of gupnp-igd; :func:`build_igd_stub` compiles
  ``scripts/gupnp-igd-stub.c`` (a GObject type with the two signals libnice
  connects, refusing every mapping) into a temp dir, and the client runs with
  ``LD_LIBRARY_PATH`` there.  Only the UPnP library under libnice is replaced;
  asking a home router for port mappings has no use on a test machine.
* **libnice gathers no loopback candidates**, and whip-client has no option
  to add one, so on the host it would send its checks out of ``eth0``.
  :class:`Namespace` gives it a network namespace of its own joined to the
  root namespace by one veth pair (``10.93.N.2`` inside, ``10.93.N.1``
  outside): its only candidate is the veth address, the server's media port
  and API are bound on the root end, and every packet stays on that veth.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUB_SOURCE = ROOT / "scripts" / "gupnp-igd-stub.c"


def build_igd_stub(directory: Path) -> Path:
    """Compile the stand-in ``libgupnp-igd-1.0.so.4`` into ``directory``; return the directory."""
    subprocess.run([str(ROOT / "scripts" / "build-gupnp-igd-stub"), str(directory)],
                   check=True, capture_output=True, timeout=60)
    return directory


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


class Namespace:
    """A network namespace joined to the root one by a veth /30; :meth:`build`, :meth:`destroy`."""

    def __init__(self, tag: str = "wc") -> None:
        n = os.getpid() % 250 + 1
        self.name = f"rt{tag}{os.getpid() % 10000}"
        self.network = f"10.93.{n}.0/30"
        self.outside, self.inside = f"10.93.{n}.1", f"10.93.{n}.2"
        self.built = False

    def build(self) -> Namespace:
        host, inner = f"{self.name}h", f"{self.name}n"
        _sh("ip", "netns", "add", self.name)
        self.built = True
        self.run("ip", "link", "set", "lo", "up")
        _sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner)
        _sh("ip", "link", "set", inner, "netns", self.name)
        _sh("ip", "addr", "add", f"{self.outside}/30", "dev", host)
        _sh("ip", "link", "set", host, "up")
        self.run("ip", "addr", "add", f"{self.inside}/30", "dev", inner)
        self.run("ip", "link", "set", inner, "up")
        return self

    def run(self, *args: str) -> None:
        _sh("ip", "netns", "exec", self.name, *args)

    def destroy(self) -> None:
        if self.built:          # the root side at once; the rest goes with the namespace
            subprocess.run(["ip", "link", "del", f"{self.name}h"], capture_output=True, timeout=20)
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=20)
            self.built = False


class WhipClient:
    """``whip-client`` publishing ``video``/``audio`` pipelines to ``url`` inside ``namespace``."""

    def __init__(self, binary: str, stub: Path, namespace: Namespace, url: str, token: str,
                 video: str | None, audio: str | None, stamp: bool = False) -> None:
        """``stamp``: keep the monotonic arrival time of each output line (:meth:`stamp_of`)."""
        command = ["ip", "netns", "exec", namespace.name, binary, "-u", url, "-t", token,
                   "-l", "4", "-o", "-L"]
        if video:
            command += ["-V", video]
        if audio:
            command += ["-A", audio]
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.stamps: list[float] = []
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "LD_LIBRARY_PATH": str(stub)})
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.stamps.append(time.monotonic())
            self.lines.append(line)

    def stamp_of(self, text: str) -> float:
        """When the first output line containing ``text`` was read (monotonic)."""
        for stamp, line in zip(self.stamps, self.lines):
            if text in line:
                return stamp
        raise AssertionError(f"{text!r} not in whip-client's output:\n" + self.output())

    def output(self) -> str:
        return "".join(self.lines)

    def resource(self, timeout: float = 15.0) -> str:
        """Wait for the WHIP resource URL the client printed (its POST was answered 201)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"Resource URL: (\S+)", self.output())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("whip-client published nothing:\n" + self.output())

    def stop(self) -> int:
        """SIGINT (the client DELETEs its resource), then kill after 10 s; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
