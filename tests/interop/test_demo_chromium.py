"""
The demo page served by ``twistd realtime`` at ``/`` (issue 17), clicked through in headless Chromium.

``run_demo.js`` does what a person would: "Start camera" (Chromium's fake
1280x720 camera and microphone), then the simulcast buttons q, f, h, then a
message on the DataChannel echo.  The page talks only to its own origin
(``/demo/api``, realtime/api/demo.py), which acts as the server's app: the
test checks that no page the browser loads holds that app's secret, that the
video received through the SFU plays (>= 20 decoded frames/s for 3 s), that
each button moves the received width into its layer's range
(q <= 400 < h <= 800 < f), that the echo (publisher -> SFU -> subscriber with
``canReply`` -> SFU -> publisher) answers, and that the sessions it made are
the app's, visible through the authenticated API.
"""

from __future__ import annotations

import urllib.request

import pytest

from tests.interop.conftest import MIN_FPS
from tests.interop.demo_page import run_demo
from tests.interop.realtime_server import APP_SECRET

pytestmark = pytest.mark.interop

RANGES = {"q": (1, 400), "h": (401, 800), "f": (801, 10_000)}


def test_the_page_holds_no_secret(realtime_server) -> None:
    base = realtime_server.api_url()
    for path in ("/", "/demo/demo.js", "/demo/demo.css"):
        with urllib.request.urlopen(base + path, timeout=10) as response:
            assert response.status == 200
            assert APP_SECRET.encode() not in response.read(), path


def test_the_demo_plays_switches_layers_and_echoes(realtime_server, tmp_path) -> None:
    result = run_demo(realtime_server.api_url() + "/", timeout=90,
                      screenshot=tmp_path / "demo.png")
    print("playback:", result["playback"], "steps:", result["steps"],
          "echo:", {k: v for k, v in result["echo"].items() if k != "messages"})
    assert result["playback"]["fps"] >= MIN_FPS, result["playback"]
    assert result["playback"]["playedSeconds"] >= 2.0, result["playback"]
    assert [step["rid"] for step in result["steps"]] == ["q", "f", "h"]
    for step in result["steps"]:
        low, high = RANGES[step["rid"]]
        assert low <= step["videoWidth"] <= high, step
        assert step["layer"] == step["rid"] and step["active"] == step["rid"], step
    assert result["steps"][0]["widthBefore"] > RANGES["q"][1]   # it started at h, not q
    echo = result["echo"]
    assert "hello from the test" in echo["messages"], echo
    assert echo["answered"] >= 2, echo
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    # the page's sessions belong to the server's app: its owner sees them with its secret
    demo = result["demo"]
    status, pushed = realtime_server.get(f"/sessions/{demo['push']['sessionId']}")
    assert status == 200, pushed
    assert {t["trackName"] for t in pushed["tracks"] if t["status"] == "active"} >= {
        "camera", "microphone"}, pushed
    assert {(c["dataChannelName"], c["status"]) for c in pushed["dataChannels"]} >= {
        ("echo", "active")}, pushed
    assert all(call["path"].startswith("/sessions/") for call in demo["calls"]), demo["calls"]
