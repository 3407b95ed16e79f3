"""
Just in time, end to end: aiortc creates an echo session through node A's API while its media
lands on node B (the answer's candidate is pointed at B, as an anycast route would do).  B has
never heard of the session: its first STUN check makes B look the session up in Redis, answer
with MESSAGE-INTEGRITY, finish DTLS with the cluster certificate both nodes were given, echo
the media, and record itself as the owner.  A session that lands on A is the control.

Also: with Redis killed, the API calls that need the directory answer a JSON 503 naming the
cause, and they work again once Redis is back, with no node restarted.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from realtime.cluster.options import SECRET_VARIABLE
from realtime.dtls.certificate import Certificate
from tests.conftest import require_module
from tests.interop.aiortc_frames import FrameCounter
from tests.interop.realtime_server import Server
from tests.peer.test_connection import OFFER

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")


def node(tmp_path, redis_server, name: str, *extra: str) -> Server:
    return Server(tmp_path / name, "--cluster", redis_server.url, "--node-id", name,
                  "--relay-address", "127.0.0.1:0", *extra, app=True)


def pointed_at(sdp: str, from_port: int, to_port: int) -> str:
    """Return the answer with its host candidates moved from one media port to another."""
    return re.sub(rf"^(a=candidate:.* 127\.0\.0\.1 ){from_port}( typ host.*)$",
                  rf"\g<1>{to_port}\g<2>", sdp, flags=re.MULTILINE)


async def echo_call(api: Server, media_port: int | None, seconds: float = 10.0,
                    wanted_video: int = 20, answered=None, during=None) -> dict:
    """Create an echo session through ``api``; send its media to ``media_port`` (None: as answered).

    ``answered(session_id)``, if given, runs before any check is sent (its value: "created_by").
    """
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0},
                           wanted=lambda f: f["video"] >= wanted_video and f["audio"] >= 30)
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, api.post, "/echo/new", {
        "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp}})
    assert status == 201, body
    sdp = body["sessionDescription"]["sdp"]
    created_by = None if answered is None else answered(body["sessionId"])
    if media_port is not None:
        moved = pointed_at(sdp, api.media, media_port)
        assert moved != sdp, sdp
        sdp = moved
    started = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    connect_time = None
    for _ in range(300):
        if pc.connectionState == "connected":
            connect_time = time.monotonic() - started
            break
        await asyncio.sleep(0.02)
    after = None
    if during is not None and pc.connectionState == "connected":
        await loop.run_in_executor(None, during)
        before = dict(counter.frames)
        await asyncio.sleep(2.0)
        after = {k: counter.frames[k] - before[k] for k in before}
    await counter.wait(seconds)
    result = {"connected": pc.connectionState, "frames": dict(counter.frames), "after": after,
              "session": body["sessionId"], "connect_time": connect_time,
              "created_by": created_by}
    await pc.close()
    return result


def owner(redis_server, session_id: str) -> str | None:
    value = redis_server.command("GET", f"rt:session:{session_id}")
    return None if value is None else json.loads(value)["owner_node"]


def test_a_session_made_on_a_connects_and_echoes_on_b(tmp_path, redis_server,
                                                     certificate_file) -> None:
    require_module("aiortc")
    a = node(tmp_path, redis_server, "node-a", "--dtls-certificate", str(certificate_file))
    b = node(tmp_path, redis_server, "node-b", "--dtls-certificate", str(certificate_file))
    try:
        a.wait_ready()
        b.wait_ready()
        wait_registered(redis_server, "node-a", "node-b")
        home = asyncio.run(echo_call(a, None))
        away = asyncio.run(echo_call(a, b.media))
    finally:
        a.stop()
        b.stop()
    for result in (home, away):
        assert result["connected"] == "connected", (result, a.output(), b.output())
        assert result["frames"]["video"] >= 20 and result["frames"]["audio"] >= 30, result
    print(f"connect time (client side, setRemoteDescription -> connected): "
          f"own node {home['connect_time']:.3f} s, other node {away['connect_time']:.3f} s")
    assert owner(redis_server, home["session"]) == "node-a"
    assert owner(redis_server, away["session"]) == "node-b"   # B took it and said so
    # last_seen - created: answer written -> ICE + DTLS done at the owner (server side)
    for result in (home, away):
        record = json.loads(redis_server.command("GET", f"rt:session:{result['session']}"))
        result["server_connect"] = record["last_seen"] - record["created"]
        assert 0 < result["server_connect"] < 5, record
    print(f"server side (answer written -> connected at the owner): own node "
          f"{home['server_connect'] * 1000:.1f} ms, other node {away['server_connect'] * 1000:.1f} ms")
    # ... and told A, which dropped its unconnected copy at once (not after 60 s)
    assert f"session {away['session']} was taken over by node-b" in a.output(), a.output()
    assert f"session {home['session']} was taken over" not in a.output()


def test_without_the_cluster_certificate_b_refuses(tmp_path, redis_server,
                                                  certificate_file) -> None:
    """B holds a certificate of its own: the answer's fingerprint is not B's, so B stays silent."""
    require_module("aiortc")
    a = node(tmp_path, redis_server, "node-a", "--dtls-certificate", str(certificate_file))
    b = node(tmp_path, redis_server, "node-b")
    try:
        a.wait_ready()
        b.wait_ready()
        away = asyncio.run(echo_call(a, b.media, seconds=1.0))
    finally:
        a.stop()
        b.stop()
    assert away["connected"] != "connected", away
    assert owner(redis_server, away["session"]) == "node-a"
    assert "no --dtls-certificate" in b.output()


def wait_registered(redis_server, *names: str) -> None:
    deadline = time.monotonic() + 10
    while any(redis_server.command("GET", f"rt:node:{n}") is None for n in names):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_redis_lost_gives_503_and_the_node_recovers(tmp_path, redis_server) -> None:
    a = node(tmp_path, redis_server, "node-a")
    try:
        a.wait_ready()
        wait_registered(redis_server, "node-a")
        status, body = a.post("/sessions/new", {})
        assert status == 201, body
        assert owner(redis_server, body["sessionId"]) == "node-a"
        redis_server.kill()
        time.sleep(0.3)
        for path in ("/sessions/new", "/echo/new"):
            offer = {} if path == "/sessions/new" else {"sessionDescription": {
                "type": "offer", "sdp": OFFER.format(fingerprint="AB:" * 31 + "AB")}}
            status, body = a.post(path, offer)
            assert status == 503, (path, status, body)
            assert body["errorCode"] == "directory_unavailable", body
            assert redis_server.url.split("?")[0] in body["errorDescription"], body
        redis_server.restart()
        deadline = time.monotonic() + 5
        while (status := a.post("/sessions/new", {})[0]) != 201:
            assert time.monotonic() < deadline, (status, a.output())
            time.sleep(0.1)
        recovered = 5 - (deadline - time.monotonic())
        print(f"sessions/new answered 201 again {recovered:.2f} s after redis-server restarted")
    finally:
        a.stop()


def test_an_sfu_push_writes_its_session_and_tracks(tmp_path, redis_server,
                                                  certificate_file) -> None:
    """sessions/new + tracks/new (aiortc pushes audio and video): what other nodes will need."""
    require_module("aiortc")
    from tests.interop.test_sfu_aiortc import publish

    a = node(tmp_path, redis_server, "node-a", "--dtls-certificate", str(certificate_file))
    try:
        a.wait_ready()

        async def push() -> tuple[str, list[str]]:
            pc, session, names = await publish(a)
            await pc.close()
            return session, names

        session, names = asyncio.run(push())
    finally:
        a.stop()
    record = json.loads(redis_server.command("GET", f"rt:session:{session}"))
    assert record["session_kind"] == "sfu" and record["owner_node"] == "node-a"
    assert record["dtls_role"] in ("server", "client") and record["remote_fingerprints"]
    assert record["local_fingerprint"] == "sha-256 " + Certificate.from_pem(
        certificate_file.read_bytes(), certificate_file.read_bytes()).fingerprint()
    assert redis_server.command("GET", f"rt:ufrag:{record['ice_ufrag']}").decode() == session
    listed = sorted(m.decode() for m in redis_server.command(
        "SMEMBERS", f"rt:session-tracks:{session}"))
    assert listed == names
    for name in names:
        track = json.loads(redis_server.command("GET", f"rt:track:{session}:{name}"))
        assert track["owner_node"] == "node-a" and track["status"] == "active", track
        assert track["ssrcs"] and track["codecs"], track
        assert track["media_kind"] == name.split("-")[1]
    media = json.loads(record["media_description"])
    assert sorted(t["trackName"] for t in media if t["trackName"]) == names
    assert all(t["codecs"] for t in media if t["trackName"])


def test_redis_lost_mid_call_the_call_keeps_flowing(tmp_path, redis_server) -> None:
    """Media never waits for the directory: kill Redis during an echo call, frames keep coming."""
    require_module("aiortc")
    a = node(tmp_path, redis_server, "node-a")
    try:
        a.wait_ready()
        wait_registered(redis_server, "node-a")
        result = asyncio.run(echo_call(a, None, seconds=1.0, during=redis_server.kill))
    finally:
        a.stop()
    assert result["connected"] == "connected", result
    # 2 s after the kill: ~60 video frames at 30 fps; ask for a third of that
    assert result["after"]["video"] >= 20 and result["after"]["audio"] >= 30, result


def test_a_client_port_reused_for_a_new_session_is_still_taken_over(tmp_path, redis_server,
                                                                    certificate_file) -> None:
    """Two echo sessions in turn from one client port, both made through A, media at B.

    B still binds that port to the first session (until its consent expires) when the
    second session's first check arrives with a ufrag B does not know: B must look it up,
    not let the first session answer 401.  bench/cluster_connect.py lost about one session
    in 100 on another node this way (the OS handed aiortc a port an earlier session had
    used).
    """
    require_module("aiortc")
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    from tests.interop.realtime_server import free_port

    port = free_port()

    async def call_from_the_port() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        original = loop.create_datagram_endpoint

        async def bind_the_port(factory, local_addr=None, **options):
            if local_addr is not None and local_addr[1] == 0:   # aioice's host candidates
                local_addr = (local_addr[0], port)
            return await original(factory, local_addr=local_addr, **options)

        loop.create_datagram_endpoint = bind_the_port
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(AudioStreamTrack())         # one m= line: one ICE transport, one socket
        await pc.setLocalDescription(await pc.createOffer())
        status, body = await loop.run_in_executor(None, a.post, "/echo/new", {
            "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp}})
        assert status == 201, body
        await pc.setRemoteDescription(RTCSessionDescription(
            type="answer", sdp=pointed_at(body["sessionDescription"]["sdp"], a.media, b.media)))
        for _ in range(150):
            if pc.connectionState in ("connected", "failed"):
                break
            await asyncio.sleep(0.02)
        state = pc.connectionState
        await pc.close()
        return state, body["sessionId"]

    a = node(tmp_path, redis_server, "node-a", "--dtls-certificate", str(certificate_file))
    b = node(tmp_path, redis_server, "node-b", "--dtls-certificate", str(certificate_file))
    try:
        a.wait_ready()
        b.wait_ready()
        wait_registered(redis_server, "node-a", "node-b")
        calls = [asyncio.run(call_from_the_port()) for _ in range(2)]
    finally:
        a.stop()
        b.stop()
    assert [state for state, _ in calls] == ["connected", "connected"], (calls, b.output())
    assert [owner(redis_server, session) for _, session in calls] == ["node-b", "node-b"]
