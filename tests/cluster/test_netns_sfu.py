"""
Issue 12's acceptance test: three nodes behind one anycast address act as one SFU.

The topology is :mod:`tests.cluster.netns`'s: nodes A, B, C in namespaces of their own, all
announcing the media address 10.99.99.1, a client namespace under each whose route to that
address leads to its node, and a backbone bridge (relay link between nodes; every node's API
reachable from every client).  One ``redis-server`` (a Unix socket) is the directory.

1. Headless Chromium in B's client namespace runs Cloudflare's echo flow
   (``pages/sfu-echo.html``): it creates both its sessions through **node A's API**, while
   its media reaches **node B**, which has never heard of them and takes them over just in
   time; it pushes its fake camera and microphone and its echo (a pull of its own tracks)
   must play.
2. While Chromium holds the call, aiortc subscribers in C's client namespace pull
   Chromium's tracks (one through node C's API, one through node A's): their media lands
   on node C, which pulls the tracks from node B over the relay link; both decode video.
3. The directory shows on which node each PeerConnection lives; the test prints it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.cluster.netns import running_cluster
from tests.conftest import require, require_tool
from tests.interop.conftest import assert_plays
from tests.interop.realtime_server import APP_ID, APP_SECRET, ROOT, free_port
from tests.processes import Lines

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
INTEROP = ROOT / "tests" / "interop"
HOLD_MS = 12000  # how long Chromium keeps its call up after measuring its own echo


def owner(redis_server, session_id: str) -> str | None:
    raw = redis_server.command("GET", f"rt:session:{session_id}")
    return json.loads(raw)["owner_node"] if raw else None


def test_chromium_at_b_via_a_and_aiortc_pullers_at_c(tmp_path, redis_server, monkeypatch,
                                                    traffic_guard, namespaces) -> None:
    require_tool("chromium", "/usr/bin/chromium")
    node_binary = require_tool("node")
    require((INTEROP / "node_modules" / "playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    children: list[Lines] = []
    with running_cluster(tmp_path, redis_server.url) as (topology, nodes):
        try:
            a_api = nodes["a"].api_url(via="backbone")
            c_api = nodes["c"].api_url(via="backbone")
            # the pages, served inside B's client namespace (Chromium resolves only localhost)
            pages_port = free_port()
            children.append(Lines(["ip", "netns", "exec", topology.client_ns("b"), sys.executable,
                                   "-m", "http.server", str(pages_port), "--bind", "127.0.0.1",
                                   "--directory", str(INTEROP / "pages")]))
            time.sleep(0.5)
            query = urllib.parse.urlencode({"api": a_api, "app": APP_ID, "secret": APP_SECRET,
                                            "hold": HOLD_MS})
            chromium = Lines(["ip", "netns", "exec", topology.client_ns("b"), node_binary,
                              str(INTEROP / "run_page.js"),
                              f"http://127.0.0.1:{pages_port}/sfu-echo.html?{query}",
                              str(HOLD_MS + 40000)],
                             cwd=INTEROP, env={**os.environ, "CHROMIUM": "/usr/bin/chromium",
                                               "REALTIME_EXCLUDE": ",".join(
                                                   nodes[n].backbone for n in "abc")})
            children.append(chromium)
            published = json.loads(chromium.wait_for("CONSOLE PUBLISHED ", 40))
            pullers = []
            for api_url in (c_api, a_api):
                pullers.append(Lines(
                    ["ip", "netns", "exec", topology.client_ns("c"), sys.executable,
                     str(HERE / "netns_peer.py"), str(ROOT), "pull", api_url,
                     published["sessionId"], *published["trackNames"]]))
            children.extend(pullers)
            # while every PeerConnection is up: where does each live?
            live = [json.loads('{"session"' + puller.wait_for('{"session"', 60))
                    for puller in pullers]
            echo = json.loads(chromium.wait_for("CONSOLE ECHO ", 30))
            placement = {
                "chromium push (API node-a)": owner(redis_server, published["sessionId"]),
                "chromium echo pull (API node-a)": owner(redis_server, echo["sessionId"]),
                "aiortc pull 1 (API node-c)": owner(redis_server, live[0]["session"]),
                "aiortc pull 2 (API node-a)": owner(redis_server, live[1]["session"]),
            }
            pulled = []
            for puller in pullers:
                puller.process.wait(60)
                pulled.append(json.loads(puller.lines[-1]) if puller.lines else {})
            result = json.loads(chromium.wait_for("RESULT ", HOLD_MS / 1000 + 40))
        finally:
            for child in children:
                child.stop()
    print("\nPeerConnection                      lives on")
    for what, where in placement.items():
        print(f"  {what:<34} {where}")
    for n, one in enumerate(pulled, start=1):
        print(f"  aiortc pull {n}: {one.get('state')} frames {one.get('frames')} "
              f"rates {one.get('rates')}")
    logs = {name: node.output()[-3000:] for name, node in nodes.items()}
    assert "error" not in result, (result, logs)
    assert_plays(result["playback"], width=640)
    for one in pulled:
        assert one.get("state") == "connected", (one, logs)
        assert one["frames"]["video"] >= 30, (one, logs)
        assert one["status"] == ["active", "active"], one
    assert placement == {
        "chromium push (API node-a)": "node-b",
        "chromium echo pull (API node-a)": "node-b",
        "aiortc pull 1 (API node-c)": "node-c",
        "aiortc pull 2 (API node-a)": "node-c",
    }, (placement, logs)
