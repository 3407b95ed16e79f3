"""
The demo page served by ``twistd realtime`` at ``/`` (issue 17), clicked through in headless Chromium.

The server runs as ``make run`` runs it: HTTPS with the state directory's self-signed
certificate (Chromium is told to accept it), the API on loopback, so the demo is on
by default, and the app given with ``--app``.

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

import json
import ssl
import urllib.request

import pytest

from realtime.net.certificate import ensure_certificate
from tests.interop.conftest import MIN_FPS
from tests.interop.demo_page import run_demo
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server

pytestmark = pytest.mark.interop

RANGES = {"q": (1, 400), "h": (401, 800), "f": (801, 10_000)}


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    """``twistd -n realtime`` with the API on HTTPS (port 0), as ``make run`` serves it."""
    state = tmp_path_factory.mktemp("realtime") / "state"
    state.mkdir(mode=0o700)
    tls = state / "tls"
    ensure_certificate(tls, ("127.0.0.1",))  # what the default endpoint uses; --api checks it
    server = Server(state, "--api", f"ssl:0:interface=127.0.0.1:privateKey={tls / 'key.pem'}"
                    f":certKey={tls / 'cert.pem'}", app=True)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def fetch(url: str, secret: str | None = None) -> tuple[int, bytes]:
    """GET ``url``, accepting the self-signed certificate; return (status, body)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10,
                                context=insecure) as response:
        return response.status, response.read()


def test_the_page_holds_no_secret(https_server) -> None:
    base = https_server.api_url()
    assert base.startswith("https://127.0.0.1:")
    for path in ("/", "/demo/demo.js", "/demo/demo.css"):
        status, body = fetch(base + path)
        assert status == 200
        assert APP_SECRET.encode() not in body, path


def test_the_demo_plays_switches_layers_and_echoes(https_server, tmp_path) -> None:
    result = run_demo(https_server.api_url() + "/", timeout=90,
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
    status, raw = fetch(f"{https_server.api_url()}/v1/apps/{APP_ID}/sessions/"
                        f"{demo['push']['sessionId']}", APP_SECRET)
    pushed = json.loads(raw)
    assert status == 200, pushed
    assert {t["trackName"] for t in pushed["tracks"] if t["status"] == "active"} >= {
        "camera", "microphone"}, pushed
    assert {(c["dataChannelName"], c["status"]) for c in pushed["dataChannels"]} >= {
        ("echo", "active")}, pushed
    assert all(call["path"].startswith("/sessions/") for call in demo["calls"]), demo["calls"]
