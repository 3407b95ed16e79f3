"""
aiortc through the SFU at a small scale: two publishers, four subscribers, six sessions.

Each publisher pushes audio and video with its own offer (``tracks/new``,
``location: local``).  Each subscriber pulls both tracks of each publisher on
a session of its own per publisher (eight subscriber sessions in all: the SFU
offers mids "0" and "1", the client answers with ``PUT renegotiate``) and
must decode frames of every track; frames are counted per publisher and
kind, so a subscriber that decodes only one publisher fails.

Why one session per publisher: aiortc 1.x (the version installed here)
demultiplexes two *video* m= sections of one BUNDLE group that share a
payload type onto one receiver, ignoring their signalled SSRCs and MID
header extensions (observed: both VP8 streams reach the first video
receiver, decoding fails).  Chromium has no such problem; audio sections
demultiplex correctly.  Giving each pulled section its own payload types
(SessionNumbering in realtime/sfu/transceiver.py) would let one aiortc
session pull several videos.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import require_module

from tests.interop.aiortc_frames import FrameCounter, by_mid
from tests.interop.test_sfu_aiortc import api, connected, publish

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")

VIDEO_FRAMES, AUDIO_FRAMES = 20, 40


async def subscribe_all(server, tracks: list[tuple[str, str]], seconds: float = 20.0) -> dict:
    """Pull every ``(session, trackName)`` on one new session; return frames per track."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    counter = FrameCounter(pc, key=by_mid, wanted=lambda frames: len(frames) == len(tracks) and all(
        n >= (VIDEO_FRAMES if "video" in key else AUDIO_FRAMES) for key, n in frames.items()))
    frames = counter.frames

    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {
        "tracks": [{"location": "remote", "sessionId": publisher, "trackName": name}
                   for publisher, name in tracks]})
    assert reply["requiresImmediateRenegotiation"] is True
    mids = [t["mid"] for t in reply["tracks"]]
    await pc.setRemoteDescription(RTCSessionDescription(**reply["sessionDescription"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(server, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    state = await connected(pc)
    try:
        await asyncio.wait_for(counter.enough.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    await pc.close()
    return {"state": state, "mids": mids, "frames": frames}


async def subscriber(server, publishers: list[tuple[str, list[str]]]) -> dict:
    """Pull every publisher's tracks, one session each; return the results by publisher."""
    results = await asyncio.gather(*(
        subscribe_all(server, [(session, name) for name in names])
        for session, names in publishers))
    return dict(zip((session for session, _ in publishers), results))


async def two_publishers_four_subscribers(server) -> list[dict]:
    publishers = [await publish(server), await publish(server)]
    wanted = [(session, names) for _, session, names in publishers]
    try:
        return list(await asyncio.gather(*(subscriber(server, wanted) for _ in range(4))))
    finally:
        for pc, _, _ in publishers:
            await pc.close()


def test_every_subscriber_decodes_every_publisher(realtime_server) -> None:
    subscribers = asyncio.run(two_publishers_four_subscribers(realtime_server))
    assert len(subscribers) == 4
    for by_publisher in subscribers:
        assert len(by_publisher) == 2
        for result in by_publisher.values():
            assert result["state"] == "connected", result
            assert result["mids"] == ["0", "1"], result
            assert sorted(result["frames"]) == ["0:audio", "1:video"], result
            for key, count in result["frames"].items():
                assert count >= (VIDEO_FRAMES if "video" in key else AUDIO_FRAMES), result
