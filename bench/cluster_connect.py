"""
Connect time of a session that lands on the node that made it vs on another node.

Two ``twistd realtime --cluster`` nodes (one private redis-server, one cluster DTLS
certificate), N aiortc sessions each way, all created through node A's API, of two
kinds: echo sessions (``echo/new``) and SFU sessions (``sessions/new`` then
``tracks/new`` pushing one audio track with the client's offer):

* own node: media goes where the answer says (node A);
* other node: the answer's host candidate is pointed at node B, which has never seen
  the session and takes it over just in time (directory lookup on the first check).

Measured twice: on the client, ``setRemoteDescription(answer)`` -> ``connectionState ==
"connected"`` (ICE + a full DTLS handshake; aiortc polls every 10 ms), and on the server,
the answer written to Redis at node A -> ICE and DTLS done at the node that owns it
(both nodes share this machine's clock): for an echo session the record's
``last_seen - created``; for an SFU session the record's ``last_seen`` read right after
``tracks/new`` answered (the negotiation's write at A) and again once connected (the
owner's write on ``Connected``).  Sessions alternate between the two cases so that
machine load affects both alike.  Usage::

    flock /tmp/realtime-interop.lock .venv/bin/python bench/cluster_connect.py [-n 100] [--kind sfu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.cluster.launcher import start_private_redis  # noqa: E402
from realtime.cluster.options import SECRET_VARIABLE  # noqa: E402
from realtime.dtls.certificate import Certificate  # noqa: E402
from tests.interop.realtime_server import Server  # noqa: E402


async def connect(api: Server, media_port: int | None, redis) -> tuple[float, float]:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, api.post, "/echo/new", {
        "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp}})
    assert status == 201, body
    elapsed = await answered_and_connected(pc, api, body["sessionDescription"]["sdp"],
                                           media_port)
    record = json.loads(ping_get(redis, f"rt:session:{body['sessionId']}"))
    await pc.close()
    return elapsed, record["last_seen"] - record["created"]


async def connect_sfu(api: Server, media_port: int | None, redis) -> tuple[float, float]:
    """One SFU session pushing audio through ``api``; return (client, server) connect times."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, api.post, "/sessions/new", {})
    assert status == 201, body
    session = body["sessionId"]
    mid = pc.getTransceivers()[0].mid
    status, body = await loop.run_in_executor(None, api.post, f"/sessions/{session}/tracks/new", {
        "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp},
        "tracks": [{"location": "local", "mid": mid, "trackName": "mic"}]})
    assert status == 200 and "errorCode" not in body, body
    answered = json.loads(ping_get(redis, f"rt:session:{session}"))["last_seen"]
    elapsed = await answered_and_connected(pc, api, body["sessionDescription"]["sdp"],
                                           media_port)
    record = json.loads(ping_get(redis, f"rt:session:{session}"))
    await pc.close()
    assert record["owner_node"] == ("a" if media_port is None else "b"), record
    return elapsed, record["last_seen"] - answered


async def answered_and_connected(pc, api: Server, sdp: str, media_port: int | None) -> float:
    """Apply our answer (its candidate moved to ``media_port``, another node, if given);
    return the seconds until ``pc`` is connected (RuntimeError after 10 s, ``pc`` closed)."""
    from aiortc import RTCSessionDescription

    if media_port is not None:
        sdp = re.sub(rf"( 127\.0\.0\.1 ){api.media}( typ host)", rf"\g<1>{media_port}\g<2>", sdp)
    started = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    while pc.connectionState != "connected":
        if time.monotonic() - started > 10:
            await pc.close()
            raise RuntimeError(f"not connected after 10 s ({pc.connectionState})")
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.05)     # the owner's last_seen write is in the background
    return elapsed


def ping_get(redis, key: str):
    import socket

    from realtime.cluster.resp import NEED_MORE, RespReader, encode_command
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(redis.socket_path))
        s.sendall(encode_command("GET", key))
        reader = RespReader()
        while (reply := reader.next_reply()) is NEED_MORE:
            reader.feed(s.recv(65536))
        return reply


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100, help="sessions per case")
    parser.add_argument("--kind", choices=("echo", "sfu", "both"), default="both",
                        help="echo sessions, SFU sessions, or both (default)")
    args = parser.parse_args()
    kinds = ("echo", "sfu") if args.kind == "both" else (args.kind,)
    work = Path(tempfile.mkdtemp(prefix="rt-cluster-bench-"))
    os.environ.setdefault(SECRET_VARIABLE, "bench secret bench secret")
    redis = start_private_redis(work / "run")
    certificate = Certificate.generate(time.time())
    pem = work / "cluster-dtls.pem"
    pem.write_bytes(certificate.certificate_pem() + certificate.private_key_pem())
    common = ("--cluster", redis.url, "--dtls-certificate", str(pem),
              "--relay-address", "127.0.0.1:0", "--session-rate", "1000", "--session-burst", "1000")
    a = Server(work / "a", *common, "--node-id", "a", app=True)
    b = Server(work / "b", *common, "--node-id", "b", app=True)
    cases = {(kind, where): [] for kind in kinds for where in ("own node", "other node")}
    failed = {case: 0 for case in cases}
    try:
        a.wait_ready()
        b.wait_ready()
        for _ in range(args.n):
            for (kind, where), samples in cases.items():
                port = None if where == "own node" else b.media
                try:
                    samples.append(asyncio.run(
                        (connect if kind == "echo" else connect_sfu)(a, port, redis)))
                except RuntimeError:
                    failed[kind, where] += 1
    finally:
        a.stop()
        b.stop()
        redis.stop()
    from record import Record

    record = Record("cluster_connect", {"sessions_per_case": args.n})
    figures = {}
    with record.capture():
        print(f"{args.n} sessions per case")
        for (kind, where), samples in cases.items():
            name = where if kind == "echo" else f"sfu {where}"
            failures = failed[kind, where]
            client = [c for c, _ in samples]
            server = [s for _, s in samples]
            figures[name] = {"client_p50_ms": percentile(client, 0.5) * 1000,
                             "client_p99_ms": percentile(client, 0.99) * 1000,
                             "server_p50_ms": percentile(server, 0.5) * 1000,
                             "server_p99_ms": percentile(server, 0.99) * 1000,
                             "client_max_ms": max(client) * 1000,
                             "client_over_100_ms": sum(c > 0.1 for c in client),
                             "not_connected": failures}
            print(f"  {name:<14} client p50 {percentile(client, 0.5) * 1000:6.1f} ms "
                  f"p99 {percentile(client, 0.99) * 1000:6.1f} ms | server p50 "
                  f"{percentile(server, 0.5) * 1000:6.1f} ms p99 "
                  f"{percentile(server, 0.99) * 1000:6.1f} ms | client over 100 ms: "
                  f"{sum(c > 0.1 for c in client)} | not connected in 10 s: {failures}")
    record.save(figures)

if __name__ == "__main__":
    main()
