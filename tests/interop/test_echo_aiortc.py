"""
aiortc (a WebRTC stack nobody here wrote) against ``twistd realtime``'s echo
session: ICE and DTLS complete, audio and video go out over SRTP, come back
and aiortc decodes them at the rate they were sent (>= 20 video and
>= 45 audio frames/s over 5 s, aiortc_frames.assert_rates).  While the call runs, hostile datagrams hit
the media port; the call continues and the drops are counted by kind.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

from tests.conftest import require_module

from tests.interop.aiortc_frames import FrameCounter, assert_rates
from tests.interop.realtime_server import Server

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")


async def echo_call(server: Server, during=None, seconds: float = 15.0, **options) -> dict:
    """Run one aiortc call against the echo route; return frame counts and states."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})

    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, server.post, "/echo/new", {
        "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp}, **options})
    assert status == 201, body
    await pc.setRemoteDescription(RTCSessionDescription(**body["sessionDescription"]))
    for _ in range(100):
        if pc.connectionState == "connected":
            break
        await asyncio.sleep(0.05)
    connected = pc.connectionState
    if during is not None:
        await loop.run_in_executor(None, during)
    rates = await counter.rates(["audio", "video"], first_within=seconds)
    result = {"connected": connected, "frames": dict(counter.frames), "rates": rates,
              "session": body["sessionId"]}
    await pc.close()
    return result


def test_aiortc_echo_decodes_audio_and_video(realtime_server) -> None:
    result = asyncio.run(echo_call(realtime_server))
    assert result["connected"] == "connected"
    assert_rates(result["rates"], result)


def test_aiortc_echo_with_our_dtls_client_role(realtime_server) -> None:
    """We answer ``setup:active``: our endpoint sends the ClientHello, aiortc is the server."""
    result = asyncio.run(echo_call(realtime_server, dtlsRole="client"))
    assert result["connected"] == "connected"
    assert_rates(result["rates"], result)


def hostile_datagrams(port: int) -> None:
    """Send garbage of every kind the media port classifies to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", port)
    for _ in range(20):
        sock.sendto(os.urandom(100), target)                                  # random bytes
    sock.sendto(bytes.fromhex("0001 0050 2112a442") + os.urandom(12), target)  # truncated STUN
    # a well-formed check with a USERNAME of nobody and a bogus MESSAGE-INTEGRITY
    from realtime.stun.attributes import Username
    from realtime.stun.message import StunClass, StunMethod, encode_message
    check = encode_message(StunMethod.BINDING, StunClass.REQUEST, os.urandom(12),
                           [Username("nobody:x")], integrity_key=b"wrong", fingerprint=True)
    sock.sendto(check, target)
    sock.sendto(b"\x16\xfe\xfd" + os.urandom(60), target)                     # DTLS, unknown address
    sock.sendto(struct.pack("!BBHII", 0x80, 96, 1, 1, 1) + os.urandom(50), target)  # RTP, no session
    sock.close()


def test_call_survives_hostile_datagrams(realtime_server) -> None:
    before = realtime_server.get("/diagnostics")[1]["mediaPort"]["drops"]
    result = asyncio.run(echo_call(realtime_server, during=lambda: hostile_datagrams(
        realtime_server.media)))
    assert result["connected"] == "connected"
    assert_rates(result["rates"], result)
    drops = realtime_server.get("/diagnostics")[1]["mediaPort"]["drops"]
    grew = {k: v - before.get(k, 0) for k, v in drops.items() if v > before.get(k, 0)}
    assert grew.get("malformed-stun", 0) >= 1, grew
    assert grew.get("unrouted-dtls", 0) >= 1, grew
    assert grew.get("unrouted-rtp", 0) >= 1, grew
