"""
transport-cc with a real Chromium publisher (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Headless Chromium pushes its fake camera (1280x720) and microphone.  With
transport-cc on (the default) the SFU's answer keeps the transport-wide
sequence-number extension and ``transport-cc`` feedback, sends feedback every
100 ms (``transportFeedbackSent`` in ``/diagnostics``), and Chromium's
send-side estimate -- ``availableOutgoingBitrate`` of its candidate pair
(W3C webrtc-stats) -- is present, sane and climbs past its start value on
loopback, and is not our REMB's value.  With ``--no-transport-cc`` the answer
has neither line and no feedback is sent: Chromium's estimate is then our
REMB to the bit (10 Mbit/s), not driven by transport-wide feedback.
With its uplink shaped to 1 Mbit/s (``tc tbf`` in a namespace of the test's
own, tests/interop/shaped.py) the estimate follows the shaping only with our
feedback.

Measured (headless Chromium, loopback, 8 s): with transport-cc 1309 kbit/s for
5 s, then 1381, 3001, 3445 kbit/s (its probes answered by our feedback), 68
feedback packets sent; without it 300 kbit/s at the start, then 10000 kbit/s.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from realtime.sfu.rtcp_legs import DEFAULT_MAX_BITRATE
from tests.interop.conftest import run_page
from tests.conftest import require, require_tool
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server
from tests.interop.shaped import serve_pages_inside, shaped_link
from tests.processes import Lines

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent


def publish(tmp_path, pages, *extra: str) -> tuple[dict, dict]:
    """Run the page against a server of its own; return its result and the session's
    ``sfu`` diagnostics as last seen while it ran (polled: the session ends with the page)."""
    server = Server(tmp_path / "state", *extra, app=True)
    try:
        server.wait_ready()
        query = urllib.parse.urlencode({"api": server.api_url(), "app": APP_ID,
                                        "secret": APP_SECRET, "hold": 8000})
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            page = pool.submit(run_page, f"{pages}/sfu-twcc.html?{query}", 60)
            seen: dict[str, dict] = {}
            while not page.done():
                status, diagnostics = server.get("/diagnostics")
                assert status == 200, diagnostics
                for session_id, entry in diagnostics["sessions"].items():
                    if "sfu" in entry:
                        seen[session_id] = entry["sfu"]
                time.sleep(0.5)
            result = page.result()
        assert "error" not in result, result
        return result, seen[result["sessionId"]]
    finally:
        server.stop()


def test_chromium_estimates_from_our_transport_feedback(tmp_path, pages) -> None:
    result, sfu = publish(tmp_path, pages)
    rates = [s["availableOutgoingBitrate"] for s in result["samples"]]
    print("answer:", result["answerLines"], "feedback sent:", sfu["transportFeedbackSent"])
    print("availableOutgoingBitrate (kbit/s):", [r and round(r / 1000) for r in rates])
    assert any("transport-wide-cc" in line for line in result["answerLines"]), result
    assert any("rtcp-fb" in line and "transport-cc" in line for line in result["answerLines"])
    # 8 s at one report per 100 ms while packets flow (some slack for a loaded machine)
    assert sfu["transportFeedbackSent"] >= 40, sfu
    assert all(r is not None for r in rates[2:]), rates
    # sane: between Chromium's floor and loopback's ceiling, and it grew from its start
    assert all(30_000 <= r <= 100_000_000 for r in rates[2:]), rates
    assert max(rates[-4:]) > 1_000_000, rates
    # driven by the feedback, not by our REMB (which it follows to the bit without it)
    assert rates[-1] != DEFAULT_MAX_BITRATE, rates


def test_without_transport_cc_no_feedback_is_negotiated_or_sent(tmp_path, pages) -> None:
    result, sfu = publish(tmp_path, pages, "--no-transport-cc")
    rates = [s["availableOutgoingBitrate"] for s in result["samples"]]
    print("availableOutgoingBitrate without transport-cc (kbit/s):",
          [r and round(r / 1000) for r in rates])
    assert result["answerLines"] == [], result
    assert sfu["transportFeedbackSent"] == 0, sfu
    assert rates[-1] == DEFAULT_MAX_BITRATE, rates  # our REMB is all it goes by


def publish_shaped(tmp_path, *extra: str) -> list[float | None]:
    """Run sfu-twcc.html from a namespace whose uplink is shaped to 1 Mbit/s (tbf);
    return Chromium's availableOutgoingBitrate samples."""
    node = require_tool("node")
    with contextlib.ExitStack() as stack:
        link = stack.enter_context(shaped_link())
        link.shape_uplink("1mbit")
        server = Server(tmp_path / ("state" + "".join(extra)), "--media-interface", link.ours,
                        "--api", f"tcp:0:interface={link.ours}", *extra, app=True)
        stack.callback(server.stop)
        server.wait_ready()
        children: list[Lines] = []
        stack.callback(lambda: [child.stop() for child in children])
        inside = serve_pages_inside(link, children)
        query = urllib.parse.urlencode({"api": server.api_url(), "app": APP_ID,
                                        "secret": APP_SECRET, "hold": 12000})
        page = Lines(["ip", "netns", "exec", link.ns, node, str(HERE / "run_page.js"),
                      f"{inside}/sfu-twcc.html?{query}", "60000"],
                     cwd=HERE, env={**os.environ, "CHROMIUM": "/usr/bin/chromium",
                                    "REALTIME_EXCLUDE": link.ours})
        stack.callback(page.stop)
        result = json.loads(page.wait_for("RESULT ", 75))
    assert "error" not in result, result
    return [s["availableOutgoingBitrate"] for s in result["samples"]]


def test_a_shaped_uplink_is_followed_only_with_our_feedback(tmp_path, traffic_guard) -> None:
    """Chromium's uplink shaped to 1 Mbit/s: with transport-cc its estimate follows the
    shaping; without (REMB only) it believes our 10 Mbit/s."""
    require_tool("ip")
    require_tool("tc")
    require(os.geteuid() == 0, "network namespaces need root (CI runs as root)")
    traffic_guard.allow("10.95.0.0/16")
    with_feedback = publish_shaped(tmp_path)
    without = publish_shaped(tmp_path, "--no-transport-cc")
    print("1 Mbit/s uplink, availableOutgoingBitrate (kbit/s) with transport-cc:",
          [r and round(r / 1000) for r in with_feedback])
    print("                                            without:",
          [r and round(r / 1000) for r in without])
    # Chromium's fake camera sends ~0.4 Mbit/s on this machine, so only its probes meet the
    # tbf; our arrival times are read per recvmmsg batch in user space, which makes a probe
    # look somewhat faster than the link (measured 0.96-1.5 Mbit/s; unshaped 3.3-3.9)
    settled = [r for r in with_feedback[-8:] if r is not None]
    assert settled and all(200_000 <= r <= 2_000_000 for r in settled), with_feedback
    assert without[-1] == DEFAULT_MAX_BITRATE, without
