"""
WHIP and WHEP with real clients against ``twistd realtime`` (docs/whip-whep.md).

* GStreamer webrtcbin (tests/interop/gst_peer.py, mode ``whip``) publishes a
  VP8 test pattern and an Opus tone to ``/v1/apps/{app}/ingest/pattern``
  and ``DELETE``s its resource when it stops.
* Debian's ``simple-whip-client`` (the packaged binary) publishes too
  (:func:`test_simple_whip_client_publishes`): with a stand-in for the UPnP
  library under libnice (its real one drags libsoup 3 into a libsoup 2.4
  client, which aborts) and in a network namespace of its own (libnice
  gathers no loopback candidates); see tests/interop/whip_client.py.
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
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.conftest import require, require_module, require_tool
from tests.interop.aiortc_frames import FrameCounter, assert_rates
from tests.interop.conftest import assert_plays, run_page
from tests.interop.gstreamer import GstPeer, require_gstreamer
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server
from tests.interop.whip_client import Namespace, WhipClient, build_igd_stub

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


def wait_playable(base: str, stream: str = STREAM, publisher=None, seconds: float = 15.0) -> None:
    """Wait until a WHEP POST of ``stream`` succeeds (its tracks carry packets)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, headers, _ = request(f"{base}/play/{stream}", content_type=None)
        if status == 201:
            request(urllib.parse.urljoin(base, headers["Location"]), "DELETE", content_type=None)
            return
        time.sleep(0.3)
    raise AssertionError("the WHIP stream never became playable"
                         + (":\n" + publisher.output() if publisher else ""))


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


async def aiortc_play(base: str, server_offer: bool,
                      stream: str = STREAM) -> tuple[dict[str, float], dict]:
    """Play ``stream`` with aiortc; return decode rates and what the server said."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    loop = asyncio.get_running_loop()
    seen: dict = {}
    try:
        if server_offer:
            status, headers, body = await loop.run_in_executor(
                None, lambda: request(f"{base}/play/{stream}", content_type=None))
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
                None, lambda: request(f"{base}/play/{stream}", body=pc.localDescription.sdp.encode()))
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


@pytest.fixture
def whip_namespace(traffic_guard, tmp_path):
    """A namespace for whip-client, and a ``twistd realtime`` on its root end (media and API)."""
    require(shutil.which("ip") is not None and os.geteuid() == 0,
            "whip-client's test makes a network namespace: needs root and iproute2")
    namespace = Namespace().build()
    server = None
    try:
        traffic_guard.allow(namespace.network)
        server = Server(tmp_path / "state", "--api", f"tcp:0:interface={namespace.outside}",
                        "--media-interface", namespace.outside, app=True)
        server.wait_ready()
        yield namespace, server
    finally:
        if server is not None:
            server.stop()
        namespace.destroy()


def usage_packets(base: str, session_id: str) -> dict[str, int]:
    """Packets the server received on each track of ``session_id`` (``GET /usage``)."""
    status, _, body = request(f"{base}/usage?sessionId={session_id}", "GET", content_type=None)
    assert status == 200, body
    return {row["trackName"]: row["ingressPackets"] for row in json.loads(body)["tracks"]}


def test_simple_whip_client_publishes(whip_namespace, tmp_path) -> None:
    """Debian's simple-whip-client publishes VP8 + Opus, and aiortc plays it through WHEP.

    It is the packaged binary (``/usr/bin/whip-client``, bookworm
    0.0~git20230131-1); only the UPnP library under libnice is replaced, by
    ``scripts/gupnp-igd-stub.c`` on ``LD_LIBRARY_PATH``: the real one loads
    libsoup 3 into a client built on libsoup 2.4, and libsoup aborts such a
    process.  libnice gathers no loopback candidates, so the client runs in a
    namespace of its own, joined to the server by a veth pair
    (tests/interop/whip_client.py; docs/whip-whep.md, "simple-whip-client").
    Proof of the publish: the server counts packets on both of the stream's
    tracks (``GET /usage``), and aiortc decodes both kinds at a viewer's rate
    through ``/play/swc``; the client's SIGINT ``DELETE``s the stream.
    """
    require_module("aiortc")
    binary = require_tool("whip-client")
    namespace, server = whip_namespace
    stub = build_igd_stub(tmp_path / "igd")
    base = f"{server.api_url()}/v1/apps/{APP_ID}"
    assert namespace.outside in base, base
    client = WhipClient(binary, stub, namespace, f"{base}/ingest/swc", APP_SECRET, VIDEO, AUDIO)
    try:
        resource = client.resource()
        assert resource.startswith(f"{base}/ingest/swc/"), client.output()
        session_id = resource.rsplit("/", 1)[1]
        wait_playable(base, "swc", client)
        rates, seen = asyncio.run(aiortc_play(base, server_offer=False, stream="swc"))
        packets = usage_packets(base, session_id)
        print("simple-whip-client -> aiortc:", rates, seen, "packets in:", packets)
        assert sorted(packets) == ["audio", "video"], packets
        assert min(packets.values()) > 100, packets        # > 2 s of audio, > 1 s of video
        assert_rates(rates, seen)
        assert seen["delete"] == 200, seen
        assert "libsoup2 symbols detected" not in client.output()
    finally:
        code = client.stop()
    assert code == 0, client.output()
    assert request(f"{base}/play/swc", content_type=None)[0] == 404, client.output()
