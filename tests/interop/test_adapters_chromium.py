"""
Cloudflare's WebSocket adapters between headless Chromium and WebSocket endpoints of the test.

The real ``twistd realtime`` (with ``--allow-loopback-adapters``: the
endpoints are autobahn servers of this process, on 127.0.0.1) and Chromium
driving the API the way Cloudflare's examples do (pages/adapters.html):

* egress: Chromium publishes a 660 Hz WebAudio oscillator and its fake
  camera (640x360); two ``remote`` adapters stream them out.  The audio
  endpoint receives 20 ms messages of 48 kHz stereo s16 PCM whose spectrum
  peaks at 660 Hz; the video endpoint receives JPEG images that decode
  (PyAV) at 640x360.
* ingest: the test's endpoint sends a 440 Hz tone as PCM into a ``local``
  adapter; Chromium pulls the track it publishes and plays it: packets
  arrive, the inbound audio level is above zero, and after a 3 s warm-up
  at most 5 % of the samples played were concealed.
"""

from __future__ import annotations

import urllib.parse

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from tests.adapters.wsserver import Endpoint, peak_frequency
from tests.interop.conftest import MAX_CONCEALMENT, run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server

pytestmark = pytest.mark.interop

TONE = 660.0


@pytest.fixture(scope="module")
def adapter_server(tmp_path_factory):
    """``twistd realtime`` that lets adapters connect to loopback endpoints."""
    state = tmp_path_factory.mktemp("realtime") / "state"
    server = Server(state, "--allow-loopback-adapters", app=True)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def page_url(pages: str, server: Server, **query: str) -> str:
    return f"{pages}/adapters.html?" + urllib.parse.urlencode(
        {"api": server.api_url(), "app": APP_ID, "secret": APP_SECRET, **query})


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Decode one JPEG image with PyAV; return its (width, height)."""
    import av

    decoder = av.CodecContext.create("mjpeg", "r")
    pictures = decoder.decode(av.Packet(data))
    assert pictures, "the JPEG did not decode"
    return pictures[0].width, pictures[0].height


@pytest_twisted.ensureDeferred
async def test_chromium_tone_and_camera_stream_out_as_pcm_and_jpeg(adapter_server, pages):
    audio, video = Endpoint(reactor), Endpoint(reactor)
    try:
        result = await deferToThread(run_page, page_url(
            pages, adapter_server, mode="egress", tone=str(TONE), audio=audio.url,
            video=video.url, hold="5000"), 60)
    finally:
        await audio.stop()
        await video.stop()
    assert "error" not in result, result
    made, closed = result["made"]["tracks"], result["closed"]["tracks"]
    assert [("errorCode" in t) for t in made] == [False, False], made
    assert all(t["bytesProcessed"] > 0 for t in closed), closed
    pcm = audio.messages
    seconds = len(pcm) * 0.02
    print(f"egress: {len(pcm)} PCM messages ({seconds:.1f} s), {len(video.messages)} JPEG;"
          f" closed {closed}")
    assert {len(m.payload) for m in pcm} == {3840}, "20 ms of 48 kHz stereo s16 per message"
    assert seconds >= 3.0, len(pcm)
    frequency = peak_frequency(audio.pcm())
    assert abs(frequency - TONE) <= 10, frequency
    images = video.messages
    assert len(images) >= 3, len(images)             # 1 fps over 5 s
    assert all(m.payload[:2] == b"\xff\xd8" for m in images)   # JPEG SOI
    assert {jpeg_size(m.payload) for m in images} == {(640, 360)}


@pytest_twisted.ensureDeferred
async def test_pcm_into_a_local_adapter_plays_in_chromium(adapter_server, pages):
    source = Endpoint(reactor, send_tone=(440.0, 15.0))
    try:
        result = await deferToThread(run_page, page_url(
            pages, adapter_server, mode="ingest", source=source.url, hold="7000"), 60)
    finally:
        await source.stop()
    assert "error" not in result, result
    made = result["made"]["tracks"][0]
    assert "errorCode" not in made and len(made["sessionId"]) == 32, made
    inbound = result["inbound"]
    warm = result["warm"]
    samples = inbound["totalSamplesReceived"] - warm["totalSamplesReceived"]
    concealed = (inbound["concealedSamples"] - warm["concealedSamples"]) / max(samples, 1)
    print("ingest: inbound", inbound, "after 1.5 s", warm, "concealed since:",
          round(concealed, 3), "peak audioLevel", result["peakAudioLevel"],
          "closed", result["closed"])
    print("\n".join(line for line in adapter_server.lines if "adapter" in line))
    assert inbound["packetsReceived"] >= 200, inbound     # 7 s of 20 ms packets, with margin
    # what a listener needs once it plays (tests/interop/conftest.py MAX_CONCEALMENT): this was
    # 0.25 while playout started with no jitter buffer and each late message made a gap
    assert concealed <= MAX_CONCEALMENT, (concealed, warm, inbound)
    assert result["peakAudioLevel"] > 0.05, result
    assert result["closed"]["tracks"][0]["bytesProcessed"] > 0, result["closed"]
