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
import json
import os
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator


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



@dataclass
class ShapedScene:
    """A shaped link, ``twistd realtime`` on its root side and a Chromium publisher
    (tests/interop/pages/sfu-simulcast-publish.html) pushing three simulcast layers."""

    link: ShapedLink
    server: Any                 # tests.interop.realtime_server.Server
    node: str                   # the node binary that runs the pages
    env: dict[str, str]         # the pages' environment (Chromium, excluded interfaces)
    publisher: Any              # tests.processes.Lines of the publishing page
    published: dict[str, Any]   # what the page printed: sessionId, trackName, ...


def serve_pages_inside(link: ShapedLink, children: list) -> str:
    """Serve tests/interop/pages on 127.0.0.1 inside ``link``'s namespace, for a browser
    that runs there; the server joins ``children`` (stopped with them).  Return its URL."""
    import sys
    import time

    from tests.interop.realtime_server import free_port
    from tests.processes import Lines

    port = free_port()
    children.append(Lines(["ip", "netns", "exec", link.ns, sys.executable, "-m", "http.server",
                           str(port), "--bind", "127.0.0.1",
                           "--directory", str(Path(__file__).resolve().parent / "pages")]))
    time.sleep(0.5)
    return f"http://127.0.0.1:{port}"


def require_shaping_tools() -> str:
    """Check what a shaped Chromium test needs (root, ip, tc, Chromium, playwright-core);
    return the node binary that runs the pages."""
    from tests.conftest import require, require_tool

    require_tool("ip")
    require_tool("tc")
    require_tool("chromium", "/usr/bin/chromium")
    node = require_tool("node")
    require((Path(__file__).resolve().parent / "node_modules" / "playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    require(os.geteuid() == 0, "network namespaces need root (CI runs as root)")
    return node


def shaped_scene(stack: contextlib.ExitStack, tmp_path: Path, pages: str, traffic_guard: Any,
                 children: list, downlink: str, page: str = "sfu-simulcast-publish.html",
                 **publish: Any) -> ShapedScene:
    """Check the tools, make the shaped link (downlink ``downlink``), start the server and
    the publishing ``page`` with query ``publish`` (``hold``, ``scalability`` ...); everything
    stops with ``stack`` (pages through ``children``)."""
    from tests.interop.realtime_server import APP_ID, APP_SECRET, Server
    from tests.processes import Lines

    here = Path(__file__).resolve().parent
    node = require_shaping_tools()
    link = stack.enter_context(shaped_link())
    stack.callback(lambda: [child.stop() for child in children])
    traffic_guard.allow(link.network())
    link.shape_downlink(downlink)
    server = Server(tmp_path / "state", "--media-interface", link.ours,
                    "--api", f"tcp:0:interface={link.ours}", app=True)
    stack.callback(server.stop)
    stack.callback(lambda: server.process.poll() is not None and print(
        "twistd exited:\n" + server.output()[-6000:]))
    server.wait_ready()
    env = {**os.environ, "CHROMIUM": "/usr/bin/chromium", "REALTIME_EXCLUDE": link.ours}
    query = urllib.parse.urlencode({"api": server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET, "audio": 1, **publish})
    publisher = Lines([node, str(here / "run_page.js"),
                       f"{pages}/{page}?{query}", "90000"],
                      cwd=here, env=env)
    children.append(publisher)
    published = json.loads(publisher.wait_for("CONSOLE PUBLISHED ", 40))
    return ShapedScene(link, server, node, env, publisher, published)


def pull_shaped(scene: ShapedScene, children: list, hold_s: float) -> tuple[dict, list[dict]]:
    """Pull the scene's published video and audio from a Chromium in the namespace (behind
    the shaped downlink) for ``hold_s`` seconds (tests/interop/pages/sfu-adaptive-subscribe.html).

    Return the page's result (its samples) and the SFU's view of the subscriber every
    0.5 s meanwhile: ``GET`` session's ``layer`` merged with ``/diagnostics``'s estimate.
    """
    import time

    from tests.interop.realtime_server import APP_ID, APP_SECRET
    from tests.processes import Lines

    server, published = scene.server, scene.published
    inside = serve_pages_inside(scene.link, children)
    query = urllib.parse.urlencode({
        "api": server.api_url(), "app": APP_ID, "secret": APP_SECRET,
        "session": published["sessionId"], "track": published["trackName"],
        "audio": published["audioTrackName"], "hold": int(hold_s * 1000)})
    subscriber = Lines(["ip", "netns", "exec", scene.link.ns, scene.node,
                        str(Path(__file__).resolve().parent / "run_page.js"),
                        f"{inside}/sfu-adaptive-subscribe.html?{query}",
                        str(int((hold_s + 40) * 1000))],
                       cwd=Path(__file__).resolve().parent, env=scene.env)
    children.append(subscriber)
    pulled = json.loads(subscriber.wait_for("CONSOLE PULLED ", 40))["sessionId"]
    start = time.monotonic()
    trace: list[dict] = []
    while time.monotonic() - start < hold_s - 1:
        _, state = server.get(f"/sessions/{pulled}")
        _, diagnostics = server.get("/diagnostics")
        sfu = diagnostics["sessions"].get(pulled, {}).get("sfu", {})
        layer = next((t["layer"] for t in state.get("tracks", []) if "layer" in t), {})
        trace.append({"t": round(time.monotonic() - start, 1), **layer,
                      **(sfu.get("estimate") or {})})
        time.sleep(0.5)
    result = json.loads(subscriber.wait_for("RESULT ", 60))
    logged = server.output()
    if "Traceback" in logged:
        print("twistd logged:\n" + logged[logged.index("Traceback") - 200:][:4000])
    return result, trace


def pull_thinned(scene: ShapedScene, children: list, thin: int, hold_s: float,
                 layer_rates: Callable[[], Any]) -> tuple[list[dict], list[dict]]:
    """Shape the scene's downlink to ``thin`` bit/s (between a reduced temporal layer's
    rate and the whole stream's), pull through it (:func:`pull_shaped`) and return the
    subscriber's samples and the SFU's trace; ``layer_rates()`` is printed at the end."""
    print(f"tbf: {thin} bit/s")
    scene.link.shape_downlink(f"{thin}bit", change=True)
    result, trace = pull_shaped(scene, children, hold_s)
    print("SFU layer rates at the end:", layer_rates())
    assert "error" not in result, result
    return result["samples"], trace


def print_received(samples: list[dict]) -> None:
    """Print the subscriber page's samples: width, fps, frames, freezes, kbit/s."""
    print("t(s)  width  fps  frames  freezes  kbit/s")
    previous = None
    for s in samples:
        rate = 0 if previous is None else (s["bytes"] - previous["bytes"]) * 8 / (  # ms: kbit/s
            s["t"] - previous["t"])
        previous = s
        print(f"{s['t'] / 1000:5.1f} {s['width']:6} {s.get('fps', 0):4} {s['frames']:7}"
              f" {s['freezes']:8} {rate:7.0f}")


def print_trace(trace: list[dict], rids: bool = True) -> None:
    """Print :func:`pull_shaped`'s view of the SFU: layer (``rids``), temporal layer sent
    and wanted, frame-rate fraction, reason, estimate, acknowledged rate, probes."""
    print("SFU  t(s)" + (" rid target" if rids else "")
          + " tid(sent/want) fraction reason  estimate  acked  probes/ok")
    for v in trace:
        layer = f" {v.get('rid')!s:>3} {v.get('target')!s:>6}" if rids else ""
        print(f"{v['t']:9.1f}{layer}"
              f" {v.get('temporalLayer')!s:>4}/{v.get('targetTemporalLayer')!s:<4}"
              f" {v.get('frameRateFraction')!s:>5} {v.get('reason')!s:<10}"
              f" {v.get('estimate')!s:>8} {v.get('ackedBitrate')!s:>7}"
              f" {v.get('probes')!s:>4}/{v.get('probesSucceeded')!s:<4}")


def assert_thinned(samples: list[dict], trace: list[dict], settle_s: float, publisher_fps: float,
                   max_share: float, mostly: float) -> list[dict]:
    """The temporal-layer tests' common verdict, from ``settle_s`` on: the subscriber's frame
    rate at most ``max_share`` of the publisher's in ``mostly`` of the samples, yet >= 8
    frames a second; no freeze after the first 5 s; the SFU saying a reduced temporal layer
    in ``mostly`` of its views.  Return the judged samples (the caller checks the width)."""
    judged = [s for s in samples if s["t"] >= settle_s * 1000]
    assert judged, samples
    fps = sorted(s["fps"] for s in judged if s.get("fps"))
    # mostly at a reduced frame rate: a brief return to the whole layer when the estimate
    # overshoots the link is allowed (it is the better picture; a freeze would be caught)
    reduced = [f for f in fps if f <= max_share * publisher_fps]
    assert fps and len(reduced) >= mostly * len(fps), (fps, publisher_fps)
    assert judged[-1]["frames"] - judged[0]["frames"] >= 8 * (
        judged[-1]["t"] - judged[0]["t"]) / 1000, judged  # ~15 fps: not a slide show
    after5 = [s for s in samples if s["t"] >= 5000]
    assert after5[-1]["freezes"] == after5[0]["freezes"], after5
    late = [v for v in trace if v["t"] >= settle_s]
    thinned = [v for v in late if v.get("temporalLayer") is not None
               and v.get("frameRateFraction", 1) < 1]
    assert late and len(thinned) >= mostly * len(late), late
    return judged
