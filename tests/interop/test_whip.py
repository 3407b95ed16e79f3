"""
WHIP and WHEP with real clients against ``twistd realtime`` (docs/whip-whep.md).

* GStreamer webrtcbin (tests/interop/gst_peer.py, mode ``whip``) publishes a
  VP8 test pattern and an Opus tone to ``/v1/apps/{app}/ingest/pattern``
  and ``DELETE``s its resource when it stops.  Debian's ``simple-whip-client``
  (webrtcbin + libsoup 2.4) is the client the issue names, but on bookworm it
  aborts at start: libnice links libsoup 3 (gupnp-igd), and libsoup refuses
  both in one process; :func:`test_simple_whip_client_publishes` records that
  (xfail only on that exact message) and will check it publishes once fixed.
* aiortc plays it through ``/play/pattern`` twice: with its own recvonly
  offer, and with an empty ``POST`` whose 201 carries the server's offer,
  answered by ``PATCH application/sdp``; each decodes both kinds at a
  viewer's rate (aiortc_frames.assert_rates).
* Chromium plays it with pages/whep.html, a player written from the WHEP
  draft alone (CORS: the page is on another origin than the API).
* Stopping the WHIP publisher ``DELETE``s its resource: the stream is gone (404).

The publisher is one webrtcbin per module (~1 s to connect; gathering on
127.0.0.1 only); each test is bounded (< 30 s).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import require_module, require_tool
from tests.interop.aiortc_frames import FrameCounter, assert_rates
from tests.interop.conftest import assert_plays, run_page
from tests.interop.gstreamer import GstPeer, require_gstreamer
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop

STREAM = "pattern"
VIDEO = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
         "framerate=30/1 ! videoconvert ! queue ! vp8enc deadline=1 cpu-used=8 "
         "! rtpvp8pay pt=96 ssrc=2 ! queue ! application/x-rtp,media=video,encoding-name=VP8,"
         "payload=96")
AUDIO = ("audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue "
         "! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,"
         "encoding-name=OPUS,payload=111")


def request(url: str, method: str = "POST", body: bytes | None = None,
            content_type: str | None = "application/sdp") -> tuple[int, dict, bytes]:
    """One HTTP request with the app's token; return (status, headers, body)."""
    headers = {"Authorization": f"Bearer {APP_SECRET}"}
    if content_type:
        headers["Content-Type"] = content_type
    sent = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(sent, timeout=15) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_playable(base: str, seconds: float = 15.0) -> None:
    """Wait until a WHEP POST of :data:`STREAM` succeeds (its tracks carry packets)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, headers, _ = request(f"{base}/play/{STREAM}", content_type=None)
        if status == 201:
            request(urllib.parse.urljoin(base, headers["Location"]), "DELETE", content_type=None)
            return
        time.sleep(0.3)
    raise AssertionError("the WHIP stream never became playable")


@pytest.fixture(scope="module")
def publisher(realtime_server):
    """GStreamer webrtcbin publishing :data:`STREAM` through WHIP; yield (base URL, peer)."""
    require_gstreamer()
    base = f"{realtime_server.api_url()}/v1/apps/{APP_ID}"
    peer = GstPeer(realtime_server, mode="whip", stream=STREAM, seconds=120)
    try:
        published = peer.wait_for("published", 20)
        assert published["status"] == 201 and published["etag"], published
        assert published["content_type"] == "application/sdp", published
        assert published["location"].startswith(f"{base}/ingest/{STREAM}/"), published
        wait_playable(base)
        yield base, peer
    finally:
        peer.stop()


async def aiortc_play(base: str, server_offer: bool) -> tuple[dict[str, float], dict]:
    """Play :data:`STREAM` with aiortc; return decode rates and what the server said."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    loop = asyncio.get_running_loop()
    seen: dict = {}
    try:
        if server_offer:
            status, headers, body = await loop.run_in_executor(
                None, lambda: request(f"{base}/play/{STREAM}", content_type=None))
            assert status == 201, body
            await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            resource = urllib.parse.urljoin(base, headers["Location"])
            patched = await loop.run_in_executor(None, lambda: request(
                resource, "PATCH", pc.localDescription.sdp.encode()))
            seen["patch"] = patched[0]
        else:
            pc.addTransceiver("video", direction="recvonly")
            pc.addTransceiver("audio", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            status, headers, body = await loop.run_in_executor(
                None, lambda: request(f"{base}/play/{STREAM}", body=pc.localDescription.sdp.encode()))
            assert status == 201, body
            await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
            resource = urllib.parse.urljoin(base, headers["Location"])
        seen["content_type"] = headers.get("Content-Type")
        seen["etag"] = headers.get("ETag")
        rates = await counter.rates(["audio", "video"], seconds=4.0, warmup=1.0)
        seen["delete"] = (await loop.run_in_executor(
            None, lambda: request(resource, "DELETE", content_type=None)))[0]
        return rates, seen
    finally:
        await pc.close()


@pytest.mark.parametrize("server_offer", [False, True], ids=["client-offer", "server-offer"])
def test_aiortc_plays_a_whip_client_stream_through_whep(publisher, server_offer) -> None:
    require_module("aiortc")
    base, _ = publisher
    rates, seen = asyncio.run(aiortc_play(base, server_offer))
    print("aiortc", "server offer" if server_offer else "client offer", rates, seen)
    assert seen["content_type"] == "application/sdp" and seen["etag"], seen
    if server_offer:
        assert seen["patch"] == 204, seen
    assert_rates(rates, seen)
    assert seen["delete"] == 200, seen


def test_chromium_plays_a_whip_client_stream_through_whep(publisher, pages) -> None:
    base, _ = publisher
    query = urllib.parse.urlencode({"url": f"{base}/play/{STREAM}", "token": APP_SECRET})
    result = run_page(f"{pages}/whep.html?{query}", timeout=30)
    assert "error" not in result, result
    print("Chromium WHEP: first frame after", round(result["firstFrameMs"] or -1), "ms;",
          result["playback"])
    assert result["contentType"] == "application/sdp" and result["etag"], result
    assert result["kinds"] == ["audio", "video"], result
    assert result["firstFrameMs"] is not None and result["firstFrameMs"] < 5000, result
    assert_plays(result["playback"], width=320)
    assert result["deleteStatus"] == 200, result


def test_chromium_restarts_ice_through_a_whep_patch(publisher, pages) -> None:
    """RFC 9725 §4.3.2 with a real agent: new credentials both ways, media goes on."""
    base, _ = publisher
    query = urllib.parse.urlencode({"url": f"{base}/play/{STREAM}", "token": APP_SECRET,
                                    "restart": "1"})
    result = run_page(f"{pages}/whep.html?{query}", timeout=30)
    assert "error" not in result, result
    restart = result["restart"]
    print("Chromium ICE restart:", restart)
    assert restart["status"] == 200 and restart["newEtag"] != result["etag"], restart
    assert restart["serverUfragChanged"], restart
    assert restart["pairChanged"], restart     # a new-generation pair answered and selected
    assert restart["state"] == "connected", restart
    assert restart["framesAfter"] >= 30, restart        # 2 s at 30 fps: >= 15 fps on
    assert result["deleteStatus"] == 200, result


def test_the_whip_publisher_deletes_its_stream_at_the_end(publisher) -> None:
    base, peer = publisher
    assert request(f"{base}/ingest/{STREAM}", body=b"v=0\r\n")[0] in (400, 409)
    peer.process.terminate()                            # gst_peer: SIGTERM -> DELETE
    assert peer.wait_for("deleted", 15)["status"] == 200
    assert request(f"{base}/play/{STREAM}", content_type=None)[0] == 404


def test_simple_whip_client_publishes(realtime_server) -> None:
    """Debian's simple-whip-client: fails to start on bookworm (libsoup2 vs libsoup3).

    Its binary links libsoup 2.4 while libnice (gupnp-igd) links libsoup 3;
    libsoup aborts a process holding both.  The test runs it and, while that
    packaging conflict is what stops it, records the known failure (xfail);
    once the client starts it must publish a stream a WHEP player can play.
    """
    whip_client = require_tool("whip-client")
    base = f"{realtime_server.api_url()}/v1/apps/{APP_ID}"
    process = subprocess.Popen(
        [whip_client, "-u", f"{base}/ingest/swc", "-t", APP_SECRET, "-V", VIDEO, "-A", AUDIO,
         "-l", "4", "-o"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            process.wait(2)
        except subprocess.TimeoutExpired:
            pass
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            if "libsoup2 symbols detected" in output:
                pytest.xfail("simple-whip-client aborts: libsoup2 and libsoup3 in one process "
                             "(Debian bookworm packaging)")
            raise AssertionError(output)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, headers, _ = request(f"{base}/play/swc", content_type=None)
            if status == 201:
                break
            time.sleep(0.3)
        assert status == 201
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
