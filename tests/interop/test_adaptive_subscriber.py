"""
Issue 15's shaped test: a Chromium subscriber on a thin downlink gets the layer that fits.

A network namespace of the test's own holds the subscriber (headless Chromium);
a veth pair joins it to the root namespace, where ``twistd realtime`` listens on
the veth's address and a second headless Chromium publishes its fake camera
(1280x720) as three-layer simulcast (f, h = 1/2, q = 1/4).  ``tc tbf`` on the
root side of the veth shapes the subscriber's downlink (netem is absent here).

1. Shaped to 400 kbit/s, the subscriber pulls the track with no preference
   (``preferredRid: ""``: the SFU chooses, docs/bandwidth.md): after 5 s it
   receives q (frame width <= 400) and its ``freezeCount`` does not grow over
   the next 7 s; ``GET`` session says ``reason: bandwidth``.
2. The shaping lifted to 3 Mbit/s: within 10 s it receives f (width > 800).

The SFU's own view (``/diagnostics``: the subscriber's estimate and probes) is
printed with the samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import require, require_tool
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server, free_port

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
SHAPED_S, LIFTED_S = 12.0, 12.0
THIN, WIDE = "400kbit", "3mbit"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=20)


class Child:
    """A child process whose stdout lines a thread collects."""

    def __init__(self, command: list[str], **kwargs) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, **kwargs)
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout),
                         daemon=True).start()

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{prefix!r} not seen:\n" + "".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def shape(device: str, rate: str, change: bool = False) -> None:
    """tbf on ``device``'s egress: ``rate``, a 15 kB bucket, at most 300 ms queued."""
    sh("tc", "qdisc", "change" if change else "add", "dev", device, "root", "tbf",
       "rate", rate, "burst", "15000", "latency", "300ms")


def test_thin_downlink_gets_q_and_f_once_lifted(tmp_path, pages, traffic_guard) -> None:
    require_tool("ip")
    require_tool("tc")
    require_tool("chromium", "/usr/bin/chromium")
    node = require_tool("node")
    require((HERE / "node_modules" / "playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    require(os.geteuid() == 0, "network namespaces need root (CI runs as root)")
    n = os.getpid() % 250 + 1
    ns, host, inner = f"rtbw{n}", f"rtbw{n}h", f"rtbw{n}n"
    ours, theirs = f"10.95.{n}.1", f"10.95.{n}.2"
    traffic_guard.allow(f"10.95.{n}.0/30")
    children: list[Child] = []
    server = None
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "addr", "add", f"{ours}/30", "dev", host)
        sh("ip", "link", "set", host, "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{theirs}/30", "dev", inner)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        shape(host, THIN)
        server = Server(tmp_path / "state", "--media-interface", ours,
                        "--api", f"tcp:0:interface={ours}", app=True)
        server.wait_ready()
        api = server.api_url()
        env = {**os.environ, "CHROMIUM": "/usr/bin/chromium", "REALTIME_EXCLUDE": ours}
        query = urllib.parse.urlencode({"api": api, "app": APP_ID, "secret": APP_SECRET,
                                        "hold": int((SHAPED_S + LIFTED_S + 20) * 1000)})
        publisher = Child([node, str(HERE / "run_page.js"),
                           f"{pages}/sfu-simulcast-publish.html?{query}", "90000"],
                          cwd=HERE, env=env)
        children.append(publisher)
        published = json.loads(publisher.wait_for("CONSOLE PUBLISHED ", 40))
        time.sleep(2)  # the layers start
        pages_port = free_port()
        children.append(Child(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server",
                               str(pages_port), "--bind", "127.0.0.1",
                               "--directory", str(HERE / "pages")]))
        time.sleep(0.5)
        query = urllib.parse.urlencode({
            "api": api, "app": APP_ID, "secret": APP_SECRET, "session": published["sessionId"],
            "track": published["trackName"], "hold": int((SHAPED_S + LIFTED_S) * 1000)})
        subscriber = Child(["ip", "netns", "exec", ns, node, str(HERE / "run_page.js"),
                            f"http://127.0.0.1:{pages_port}/sfu-adaptive-subscribe.html?{query}",
                            str(int((SHAPED_S + LIFTED_S + 40) * 1000))], cwd=HERE, env=env)
        children.append(subscriber)
        pulled = json.loads(subscriber.wait_for("CONSOLE PULLED ", 40))
        start = time.monotonic()
        trace: list[dict] = []  # the SFU's view every 0.5 s: GET session + /diagnostics

        def view() -> dict:
            _, state = server.get(f"/sessions/{pulled['sessionId']}")
            _, diagnostics = server.get("/diagnostics")
            sfu = diagnostics["sessions"].get(pulled["sessionId"], {}).get("sfu", {})
            layer = next((t["layer"] for t in state.get("tracks", []) if "layer" in t), {})
            return {"t": round(time.monotonic() - start, 1), **layer,
                    **(sfu.get("estimate") or {})}

        lifted = None
        while time.monotonic() - start < SHAPED_S + LIFTED_S - 1:
            if lifted is None and time.monotonic() - start >= SHAPED_S:
                shape(host, WIDE, change=True)
                lifted = time.monotonic() - start
            trace.append(view())
            time.sleep(0.5)
        result = json.loads(subscriber.wait_for("RESULT ", 60))
    finally:
        for child in children:
            child.stop()
        if server is not None:
            server.stop()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host], capture_output=True)
    assert "error" not in result, result
    samples = result["samples"]
    print("\nt(s)  width  frames  freezes  kbit/s")
    previous = None
    for s in samples:
        rate = 0 if previous is None else (s["bytes"] - previous["bytes"]) * 8 / (
            s["t"] - previous["t"])
        previous = s
        print(f"{s['t'] / 1000:5.1f} {s['width']:6} {s['frames']:7} {s['freezes']:8} {rate:7.0f}")
    print("SFU  t(s) rid target reason      estimate   acked  probes/ok  wanted")
    for v in trace:
        print(f"{v['t']:9.1f} {v.get('rid')!s:>3} {v.get('target')!s:>6} {v.get('reason')!s:<10}"
              f" {v.get('estimate')!s:>9} {v.get('ackedBitrate')!s:>7}"
              f" {v.get('probes')!s:>4}/{v.get('probesSucceeded')!s:<4} {v.get('wanted')}")
    shaped = [s for s in samples if 5000 <= s["t"] <= SHAPED_S * 1000 - 500]
    assert shaped and all(0 < s["width"] <= 400 for s in shaped), shaped
    assert shaped[-1]["freezes"] == shaped[0]["freezes"], shaped
    assert shaped[-1]["frames"] - shaped[0]["frames"] >= 10 * (shaped[-1]["t"] - shaped[0]["t"]) / 1000
    assert [v["reason"] for v in trace if 5 <= v["t"] < SHAPED_S] and all(
        v["reason"] == "bandwidth" for v in trace if 5 <= v["t"] < SHAPED_S), trace
    assert lifted is not None
    after = [s for s in samples if lifted * 1000 < s["t"] <= (lifted + 10) * 1000]
    assert any(s["width"] > 800 for s in after), after
