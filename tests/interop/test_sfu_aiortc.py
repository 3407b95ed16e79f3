"""
aiortc through the SFU: one publisher, two subscribers, each in its own session.

The publisher pushes audio and video with its own offer (``tracks/new``,
``location: local``); each subscriber makes a new session, pulls both
tracks, answers the SFU's offer (``PUT renegotiate``) and must decode
both kinds at the rate they were sent (aiortc_frames.assert_rates).  aiortc is a stack nobody here wrote, and a full ICE
agent facing our ICE-lite one.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import require_module

from tests.interop.aiortc_frames import FrameCounter, assert_rates
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")


def call(server: Server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """Send one API request; return (status, JSON body)."""
    request = urllib.request.Request(
        f"{server.api_url()}/v1/apps/{APP_ID}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {APP_SECRET}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


async def api(server: Server, method: str, path: str, body: dict | None = None) -> dict:
    """Call the API off the event loop; fail on an error status or errorCode."""
    loop = asyncio.get_running_loop()
    status, reply = await loop.run_in_executor(None, call, server, method, path, body)
    assert status in (200, 201) and "errorCode" not in reply, (method, path, status, reply)
    return reply


async def connected(pc, seconds: float = 5.0) -> str:
    """Wait for ``pc`` to connect; return its final state."""
    for _ in range(int(seconds / 0.05)):
        if pc.connectionState == "connected":
            break
        await asyncio.sleep(0.05)
    return pc.connectionState


async def publish(server: Server, audio=None, video=None, pc=None, answer_filter=None):
    """Push an audio and a video track from aiortc; return (pc, session id, track names).

    ``audio``/``video`` replace aiortc's silence and green frames (e.g. the
    identifiable tracks of aiortc_frames); ``pc`` an already made peer;
    ``answer_filter`` rewrites the SFU's answer SDP (e.g. to route the
    publisher through a relay).
    """
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = pc or RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(audio or AudioStreamTrack())
    pc.addTrack(video or VideoStreamTrack())
    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    await pc.setLocalDescription(await pc.createOffer())
    names = {t.mid: f"aiortc-{t.kind}" for t in pc.getTransceivers()}
    reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {
        "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp},
        "tracks": [{"location": "local", "mid": mid, "trackName": name}
                   for mid, name in names.items()]})
    assert reply["requiresImmediateRenegotiation"] is False
    answer = reply["sessionDescription"]
    if answer_filter is not None:
        answer = {**answer, "sdp": answer_filter(answer["sdp"])}
    await pc.setRemoteDescription(RTCSessionDescription(**answer))
    assert await connected(pc) == "connected"
    return pc, session, sorted(names.values())


async def subscribe(server: Server, publisher: str, names: list[str], seconds: float = 15.0):
    """Pull ``names`` of ``publisher`` on a new session; return frames decoded per kind.

    ``rates`` are decoded frames/s per kind over 5 s (after a first frame of
    each within ``seconds`` and a 1 s warm-up).
    """
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    frames = counter.frames

    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {
        "tracks": [{"location": "remote", "sessionId": publisher, "trackName": name}
                   for name in names]})
    assert reply["requiresImmediateRenegotiation"] is True
    assert [t["mid"] for t in reply["tracks"]] == ["0", "1"]
    await pc.setRemoteDescription(RTCSessionDescription(**reply["sessionDescription"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(server, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    state = await connected(pc)
    rates = await counter.rates(["audio", "video"], first_within=seconds)
    status = await api(server, "GET", f"/sessions/{session}")
    await pc.close()
    return {"state": state, "frames": frames, "rates": rates, "session": session,
            "status": [t["status"] for t in status["tracks"]]}


async def one_publisher_two_subscribers(server: Server) -> list[dict]:
    pc, session, names = await publish(server)
    try:
        return list(await asyncio.gather(subscribe(server, session, names),
                                         subscribe(server, session, names)))
    finally:
        await pc.close()


def test_two_aiortc_subscribers_decode_one_aiortc_publisher(realtime_server) -> None:
    results = asyncio.run(one_publisher_two_subscribers(realtime_server))
    for result in results:
        assert result["state"] == "connected", result
        assert_rates(result["rates"], result)
        assert result["status"] == ["active", "active"], result


async def pull_one_at_a_time(server: Server) -> dict:
    """Pull audio, renegotiate, then pull video on the same session (two SFU offers)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    publisher_pc, publisher, names = await publish(server)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})

    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    mids = []
    for name in names:  # "aiortc-audio", then "aiortc-video"
        reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {"tracks": [
            {"location": "remote", "sessionId": publisher, "trackName": name}]})
        mids.append(reply["tracks"][0]["mid"])
        await pc.setRemoteDescription(RTCSessionDescription(**reply["sessionDescription"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await api(server, "PUT", f"/sessions/{session}/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
        await connected(pc)
    rates = await counter.rates(["audio", "video"])
    await pc.close()
    await publisher_pc.close()
    return {"mids": mids, "frames": counter.frames, "rates": rates}


def test_pulls_one_at_a_time_on_one_session(realtime_server) -> None:
    result = asyncio.run(pull_one_at_a_time(realtime_server))
    assert result["mids"] == ["0", "1"]
    assert_rates(result["rates"], result)
