"""
WHIP and WHEP with ``twistd realtime --workers 2``: any worker answers any WHIP/WHEP call.

An aiortc publisher sends audio and video through WHIP (``POST /ingest/cam``).  Then aiortc
players play the stream through WHEP (``POST /play/cam``), each on a new HTTP connection, so
the kernel hands each POST to either worker (SO_REUSEPORT).  A player whose POST reaches the
worker that does not hold the publisher finds the stream through the directory
(``rt:whip-stream:APP:cam``) and pulls its tracks across the relay link; its resource's
``DELETE``, and the publisher's, reach whichever worker too and are forwarded to the session's
owner.  The test plays until it has seen both kinds of player (at most :data:`MAX_PLAYS`).
"""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest

from tests.cluster.test_workers import owner
from tests.conftest import require_module, require_tool
from tests.interop.aiortc_frames import FrameCounter
from tests.interop.realtime_server import APP_ID, Server, free_port
from tests.interop.test_whip import request

pytestmark = pytest.mark.interop

#: players at most, to see one on each worker (each lands on either with probability 1/2)
MAX_PLAYS = 10


async def publish(base: str):
    """Publish audio and video as stream ``cam`` through WHIP; return (pc, resource URL)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(None, lambda: request(
        f"{base}/ingest/cam", body=pc.localDescription.sdp.encode()))
    assert status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
    return pc, urllib.parse.urljoin(base, headers["Location"])


async def play(base: str, where) -> dict:
    """One WHEP player: POST its offer, count decoded frames for 2 s, DELETE its resource."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    loop = asyncio.get_running_loop()
    try:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        status, headers, body = await loop.run_in_executor(None, lambda: request(
            f"{base}/play/cam", body=pc.localDescription.sdp.encode()))
        assert status == 201, body
        resource = urllib.parse.urljoin(base, headers["Location"])
        worker = where(resource.rsplit("/", 1)[1])
        await pc.setRemoteDescription(RTCSessionDescription(body.decode(), "answer"))
        rates = await counter.rates(["audio", "video"], seconds=2.0, warmup=0.5)
        deleted = (await loop.run_in_executor(
            None, lambda: request(resource, "DELETE", content_type=None)))[0]
        return {"worker": worker, "rates": rates, "delete": deleted}
    finally:
        await pc.close()


def test_whep_plays_a_whip_stream_from_either_worker(tmp_path) -> None:
    require_tool("redis-server")
    require_module("aiortc")
    api = free_port()
    server = Server(tmp_path / "state", "--workers", "2", "--node-id", "box",
                    "--api", f"tcp:{api}:interface=127.0.0.1", app=True)
    socket_path = tmp_path / "state" / "run" / "redis.sock"
    plays: list[dict] = []

    async def scenario() -> tuple[str, int]:
        base = f"{server.api_url()}/v1/apps/{APP_ID}"
        pc, resource = await publish(base)
        publisher_id = resource.rsplit("/", 1)[1]
        try:
            await asyncio.sleep(2.0)   # its media reaches a worker (maybe taking it over)
            home = owner(socket_path, publisher_id)
            while len(plays) < MAX_PLAYS:
                plays.append(await play(base, lambda sid: owner(socket_path, sid)))
                workers = {p["worker"] == home for p in plays}
                if workers == {True, False} and len(plays) >= 3:
                    break
            loop = asyncio.get_running_loop()
            deleted = (await loop.run_in_executor(
                None, lambda: request(resource, "DELETE", content_type=None)))[0]
            return home, deleted
        finally:
            await pc.close()

    try:
        server.wait_workers(2)
        home, deleted = asyncio.run(scenario())
        gone = request(f"{server.api_url()}/v1/apps/{APP_ID}/play/cam", content_type=None)[0]
    finally:
        server.stop()
    print(f"\npublisher on {home}")
    for p in plays:
        print(f"player on {p['worker']}: {p['rates']} DELETE {p['delete']}")
    assert {p["worker"] == home for p in plays} == {True, False}, plays  # both kinds happened
    for p in plays:
        assert p["rates"]["video"] >= 5 and p["rates"]["audio"] >= 20, p
        assert p["delete"] == 200, p
    assert deleted == 200
    assert gone == 404      # the publisher's DELETE ended the stream on every worker
