"""
Two aiortc peers forced to relay-only ICE complete a call through our TURN server.

Both peers get ``iceTransportPolicy="relay"`` and the TURN credentials our
``generate-ice-servers`` API hands out, so the only candidates are relayed
addresses of our server: every ICE check, the DTLS handshake, SCTP and SRTP
travel client -> TURN -> TURN -> client.  The call carries an audio track
and a DataChannel; the test checks a message is echoed and the callee
decodes the audio at the rate it was sent (>= 45 of 50 frames/s over 5 s),
then that the TURN usage counted at least that much audio.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import require
from tests.interop.aiortc_frames import FrameCounter, assert_rates
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
    echoed = asyncio.get_running_loop().create_future()
    counter = FrameCounter(callee, initial={"audio": 0})

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
        rates = await counter.rates(["audio"], seconds=5.0, first_within=30.0)
        return message, rates, caller.iceConnectionState
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
    message, rates, state = asyncio.run(call(urls, username, password))
    assert message == "echo:hello"
    assert_rates(rates)
    assert state == "completed"
    status, usage = api(turn_server, "GET", "/v1/turn/keys/interop/usage?since=0")
    # > 6 s of 50 Opus packets/s (>= 60 bytes of SRTP each) relayed to the callee
    assert status == 200 and usage["egressBytes"] > 6 * 50 * 60, usage
