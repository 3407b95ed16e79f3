"""
Cross-node pulls end to end: two real ``twistd realtime --cluster`` nodes, one redis-server, aiortc.

An aiortc publisher creates its session through node A's API and connects to
A; three aiortc subscribers create theirs through node B's API, pull the
publisher's audio and video through B (``tracks/new`` with
``location: remote``: B's switchboard does not hold them, so B reads the
track records, publishes mirrors and asks A to relay), connect to B and
decode video::

    aiortc publisher ──SRTP──> node A ══ relay link (AES-GCM, once per node) ══> node B ──SRTP──> 3 aiortc
                                  ^          loses 1 RTP frame in 40                 │            subscribers
                                  └────────── NACK for B's own gaps, PLI ────────────┘

Node A runs under ``lossy_twistd.py`` (a user-space hook of this test): some
RTP frames it seals for B never leave.  Checked through both nodes'
``/diagnostics``: A sealed each packet once for B (``packets == frames``)
although B has three subscribers; B asked A for the sequence numbers it
lost and A answered from its buffer; the publisher received no NACK at all
(aiortc's sender counts them); every subscriber decodes video at >= 20 fps;
datagrams sent to B's relay port from outside the cluster are counted as
``non_member`` drops; when the subscribers close their pulled tracks, B
sends ``unpull`` after its 5 s grace and A stops relaying.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import pytest

from realtime.cluster.options import SECRET_VARIABLE
from realtime.cluster.pulls import stream_id_of
from tests.conftest import require_module
from tests.interop.aiortc_frames import FrameCounter, assert_rates
from tests.interop.realtime_server import Server
from tests.interop.test_sfu_aiortc import api, connected, publish
from tests.interop.test_sfu_loss import count_publisher_nacks

pytestmark = pytest.mark.interop

SUBSCRIBERS = 3
LOSSY = [sys.executable, str(Path(__file__).with_name("lossy_twistd.py"))]


#: video RTP frames node A loses on the way to B (one in 25 after the first 60)
DROPS = 5
#: aiortc's payload type for VP8 (its codec table; checked against the publisher's offer)
VP8_PT = 97


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, "a cluster secret for the tests")
    # lossy_twistd.py (node A): lose one video RTP frame in 25 towards B, DROPS in all
    for name, value in (("PT", VP8_PT), ("EVERY", 25), ("AFTER", 60), ("LIMIT", DROPS)):
        monkeypatch.setenv(f"REALTIME_TEST_RELAY_DROP_{name}", str(value))


def junk_to_relay(node: Server) -> int:
    """Send the node's relay port datagrams from a socket no member owns; return how many."""
    for _ in range(100):   # logged once the node has registered
        if "relay address " in node.output():
            break
        time.sleep(0.05)
    host, port = node.value("relay address ").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for data in (b"\xc1\x01\x06node-a" + bytes(40), b"hello", bytes(100)):
            udp.sendto(data, (host, int(port)))
    return 3


def sealed_for_media(diagnostics: dict) -> int:
    """Relay frames a node sealed, but its RTT probes and their answers (PING/PONG)."""
    relay = diagnostics["cluster"]["relay"]
    return relay["sealed"] - relay["link_frames_sent"]


def start(tmp_path, redis_server, name: str, certificate: Path, program=None,
          extra: tuple[str, ...] = ()) -> Server:
    server = Server(tmp_path / name, "--cluster", redis_server.url, "--node-id", name,
                    "--relay-address", "127.0.0.1:0", "--dtls-certificate", str(certificate),
                    *extra, app=True, program=program)
    return server


async def subscriber(node: Server, publisher: str, names: list[str]):
    """A session made through ``node`` pulling ``names``; return (pc, session id, counter)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    session = (await api(node, "POST", "/sessions/new"))["sessionId"]
    reply = await api(node, "POST", f"/sessions/{session}/tracks/new", {
        "tracks": [{"location": "remote", "sessionId": publisher, "trackName": name}
                   for name in names]})
    assert [t.get("errorCode") for t in reply["tracks"]] == [None] * len(names), reply
    await pc.setRemoteDescription(RTCSessionDescription(**reply["sessionDescription"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(node, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    assert await connected(pc) == "connected"
    return pc, session, counter


def drops_of(node: Server) -> list[list[str]]:
    """Return ``[stream id, ssrc, seq]`` of each frame lossy_twistd.py lost (twistd logs it)."""
    return [line.split("relay-test-drop", 1)[1].split() for line in node.output().splitlines()
            if "relay-test-drop" in line]


async def cross_node_pull(a: Server, b: Server) -> dict:
    loop = asyncio.get_running_loop()
    publisher_nacks = count_publisher_nacks()
    publisher_pc, publisher, names = await publish(a)
    pcs = [publisher_pc]
    assert f"a=rtpmap:{VP8_PT} VP8/90000" in publisher_pc.localDescription.sdp
    try:
        subscribers = [await subscriber(b, publisher, names) for _ in range(SUBSCRIBERS)]
        pcs += [pc for pc, _, _ in subscribers]
        rates = await asyncio.gather(*(counter.rates(["audio", "video"])
                                       for _, _, counter in subscribers))
        for _ in range(100):    # all the losses happened (and were repaired) before we look
            if len(drops_of(a)) >= DROPS:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        _, at_a = await loop.run_in_executor(None, a.get, "/diagnostics")
        _, at_b = await loop.run_in_executor(None, b.get, "/diagnostics")
        # Every subscriber closes its pulled tracks: B tells A to stop, A stops.
        for _, session, _ in subscribers:
            await api(b, "PUT", f"/sessions/{session}/tracks/close",
                      {"tracks": [{"mid": "0"}, {"mid": "1"}], "force": True})
        closed = time.monotonic()
        stopped = None
        while time.monotonic() - closed < 15.0:
            _, now_a = await loop.run_in_executor(None, a.get, "/diagnostics")
            if not now_a["cluster"]["pulls"]["fanouts"]:
                stopped = time.monotonic() - closed
                break
            await asyncio.sleep(0.25)
        _, after_a = await loop.run_in_executor(None, a.get, "/diagnostics")
        await asyncio.sleep(0.5)
        _, later_a = await loop.run_in_executor(None, a.get, "/diagnostics")
        return {"publisher": publisher, "rates": rates, "a": at_a, "b": at_b,
                "subscribers": [session for _, session, _ in subscribers],
                "publisher_nacks": publisher_nacks["nacks"], "stopped_after": stopped,
                "sealed_after_stop": sealed_for_media(later_a) - sealed_for_media(after_a)}
    finally:
        publisher_nacks["restore"]()
        for pc in pcs:
            await pc.close()


def test_subscribers_on_b_pull_a_track_published_on_a(tmp_path, redis_server,
                                                       certificate_file) -> None:
    require_module("aiortc")
    a = start(tmp_path, redis_server, "node-a", certificate_file, program=LOSSY)
    b = start(tmp_path, redis_server, "node-b", certificate_file)
    try:
        a.wait_ready()
        b.wait_ready()
        outsider = junk_to_relay(b)
        result = asyncio.run(cross_node_pull(a, b))
    finally:
        a.stop()
        b.stop()
    for rates in result["rates"]:
        assert_rates(rates, result)
    publisher = result["publisher"]
    video = stream_id_of(publisher, "aiortc-video")
    drops = drops_of(a)
    video_drops = [d for d in drops if int(d[0]) == video]
    assert len(video_drops) == DROPS, (drops, result)             # the loss was real
    fanouts = result["a"]["cluster"]["pulls"]["fanouts"]
    mirrors = result["b"]["cluster"]["pulls"]["mirrors"]
    cam = fanouts[f"{publisher}/aiortc-video"]
    print("cross-node pull: video drops", len(video_drops), "fan-out", cam,
          "mirror", mirrors[f"{publisher}/aiortc-video"], "rates", result["rates"],
          "stopped after", result["stopped_after"])
    assert cam["nodes"] == ["node-b"], result
    # Once per node: every packet A relayed for the track went out once, to B only,
    # while B forwarded it to three subscribers.
    assert cam["frames"] == cam["packets"] > 100, result
    assert mirrors[f"{publisher}/aiortc-video"]["subscribers"] == SUBSCRIBERS, result
    relay_a = result["a"]["cluster"]["relay"]
    assert relay_a["members"] == ["node-b"] and relay_a["dropped"] == {}, result
    # Datagrams from outside the cluster (one forging node-a's id) were dropped, counted.
    assert result["b"]["cluster"]["relay"]["dropped"] == {"non_member": outsider}, result
    # B asked A for what B lost (each at least once, retries allowed), nothing more:
    # three subscribers' NACKs would have been three times as many.
    assert len(video_drops) <= cam["nacked"] <= 2 * len(video_drops), (video_drops, cam)
    assert cam["repairs"] >= len(video_drops), cam
    # The publisher saw no NACK: A answered B from its buffer.
    assert result["publisher_nacks"] == 0, result
    assert result["a"]["sessions"][publisher]["sfu"]["nacksSentUpstream"] == 0, result
    # B's last subscriber left: within the 5 s grace (+ margin) A stopped relaying.
    assert result["stopped_after"] is not None and result["stopped_after"] < 10.0, result
    assert result["sealed_after_stop"] == 0, result
