"""
Two aiortc peers forced to relay-only ICE complete a call through our TURN server.

Both peers get ``iceTransportPolicy="relay"`` and the TURN credentials our
``generate-ice-servers`` API hands out, so the only candidates are relayed
addresses of our server: every ICE check, the DTLS handshake, SCTP and SRTP
travel client -> TURN -> TURN -> client.  The call carries an audio track
and a DataChannel; the test checks audio frames arrive and a message is
echoed.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import require
from tests.interop.test_turn_uclient import api, credentials, turn_server  # noqa: F401

pytestmark = pytest.mark.interop


async def call(urls, username, password):
    from aiortc import (
        RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription,
    )
    from aiortc.rtcconfiguration import (
        RTCIceTransportPolicy,
    )
    from aiortc.mediastreams import AudioStreamTrack

    config = RTCConfiguration(
        iceServers=[RTCIceServer(urls=urls, username=username, credential=password)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    received_audio = asyncio.get_running_loop().create_future()
    echoed = asyncio.get_running_loop().create_future()

    @callee.on("track")
    def on_track(track):
        async def read():
            frames = 0
            while frames < 10:
                await track.recv()
                frames += 1
            if not received_audio.done():
                received_audio.set_result(frames)
        asyncio.ensure_future(read())

    @callee.on("datachannel")
    def on_datachannel(channel):
        channel.on("message", lambda message: channel.send("echo:" + message))

    caller.addTrack(AudioStreamTrack())
    channel = caller.createDataChannel("chat")
    channel.on("open", lambda: channel.send("hello"))
    channel.on("message", lambda message: echoed.done() or echoed.set_result(message))
    try:
        await caller.setLocalDescription(await caller.createOffer())
        offer = caller.localDescription
        assert "typ relay" in offer.sdp and "typ host" not in offer.sdp
        await callee.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        await callee.setLocalDescription(await callee.createAnswer())
        answer = callee.localDescription
        await caller.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))
        message = await asyncio.wait_for(echoed, 30)
        frames = await asyncio.wait_for(received_audio, 30)
        return message, frames, caller.iceConnectionState
    finally:
        await caller.close()
        await callee.close()


def test_relay_only_call(turn_server):  # noqa: F811
    try:
        import aiortc  # noqa: F401
    except ImportError:
        require(False, "aiortc is not installed")
    username, password = credentials(turn_server)
    urls = [f"turn:127.0.0.1:{turn_server['turn']}?transport=udp"]
    message, frames, state = asyncio.run(call(urls, username, password))
    assert message == "echo:hello"
    assert frames == 10
    assert state == "completed"
    status, usage = api(turn_server, "GET", "/v1/turn/keys/interop/usage?since=0")
    # DTLS handshakes, SCTP and ten audio frames, both peers, all through the relay
    assert status == 200 and usage["egressBytes"] > 2000
