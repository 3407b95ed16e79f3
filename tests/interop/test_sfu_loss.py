"""
The NACK shield under loss: a subscriber behind a lossy relay recovers from the SFU's buffer.

An aiortc publisher pushes audio and video; an aiortc subscriber pulls both,
but reaches the media port through :class:`LossyRelay`, a UDP relay on
127.0.0.1 that drops 10 % of the SRTP/SRTCP datagrams travelling towards the
subscriber (STUN and DTLS pass, so the call sets up as usual)::

    aiortc publisher ───────────────────────────────> media port (twistd realtime)
                                                        │   ^
    aiortc subscriber <── drops 10 % ── LossyRelay <────┘   │
                      ────────────────> (127.0.0.1:P) ──────┘

The relay is inserted by rewriting the candidate of the SFU's offer before
aiortc applies it.  aiortc NACKs what it misses; the SFU answers from its
retransmission buffer (RTX, negotiated).  Checked: the server's diagnostics
count retransmissions answered locally; the publisher receives no NACK at
all (counted in aiortc's sender RTCP path and in the server's
``nacksSentUpstream`` of the publisher session, zero on loopback); the
subscriber keeps decoding video frames.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.conftest import require_module

from tests.interop.aiortc_frames import FrameCounter
from tests.interop.test_sfu_aiortc import api, connected, publish

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")

LOSS = 0.10


class LossyRelay:
    """Relay UDP between one client and the media port, dropping media towards the client."""

    def __init__(self, media: tuple[str, int], loss: float, seed: int = 7) -> None:
        self.media = media
        self.loss = loss
        self.random = random.Random(seed)
        self.client_addr = None
        self.front = None  # transport facing the client
        self.back = None  # transport facing the media port
        self.passed = 0
        self.dropped = 0

    async def start(self) -> int:
        """Open both sockets; return the port the client must send to."""
        loop = asyncio.get_running_loop()
        relay = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr) -> None:
                relay.client_addr = addr
                relay.back.sendto(data)

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr) -> None:
                if relay.client_addr is None:
                    return
                if 128 <= data[0] <= 191 and relay.random.random() < relay.loss:
                    relay.dropped += 1  # RTP or RTCP (RFC 7983) towards the subscriber
                    return
                relay.passed += 1
                relay.front.sendto(data, relay.client_addr)

        self.front, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        self.back, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.media)
        return self.front.get_extra_info("sockname")[1]

    def close(self) -> None:
        for transport in (self.front, self.back):
            if transport is not None:
                transport.close()


def count_publisher_nacks() -> dict:
    """Count the Generic NACKs (RTPFB FMT 1) reaching any aiortc sender from now on."""
    from aiortc import rtcrtpsender
    from aiortc.rtcrtpsender import RtcpRtpfbPacket

    counts = {"nacks": 0}
    original = rtcrtpsender.RTCRtpSender._handle_rtcp_packet

    async def counting(self, packet) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == 1:
            counts["nacks"] += 1
        await original(self, packet)

    rtcrtpsender.RTCRtpSender._handle_rtcp_packet = counting
    counts["restore"] = lambda: setattr(rtcrtpsender.RTCRtpSender, "_handle_rtcp_packet",
                                        original)
    return counts


async def lossy_subscriber(server) -> dict:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    publisher_nacks = count_publisher_nacks()
    publisher_pc, publisher, names = await publish(server)
    relay = LossyRelay((server.media_host, server.media), LOSS)
    port = await relay.start()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames = FrameCounter(pc, initial={"audio": 0, "video": 0}).frames

    try:
        session = (await api(server, "POST", "/sessions/new"))["sessionId"]
        reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {"tracks": [
            {"location": "remote", "sessionId": publisher, "trackName": name}
            for name in names]})
        sdp = reply["sessionDescription"]["sdp"]
        rewritten = sdp.replace(f" {server.media} typ host", f" {port} typ host")
        assert rewritten != sdp
        await pc.setRemoteDescription(RTCSessionDescription(sdp=rewritten, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await api(server, "PUT", f"/sessions/{session}/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
        state = await connected(pc)
        samples = []
        for _ in range(4):  # frames decoded after 2, 4, 6 and 8 s
            await asyncio.sleep(2.0)
            samples.append(frames["video"])
        _, diagnostics = server.get("/diagnostics")
        return {
            "state": state, "samples": samples, "audio": frames["audio"],
            "relay": {"dropped": relay.dropped, "passed": relay.passed},
            "subscriber": diagnostics["sessions"][session]["sfu"],
            "publisher": diagnostics["sessions"][publisher]["sfu"],
            "publisher_nacks": publisher_nacks["nacks"],
        }
    finally:
        publisher_nacks["restore"]()
        await pc.close()
        await publisher_pc.close()
        relay.close()


def test_subscriber_behind_a_lossy_relay_recovers_through_the_sfu(realtime_server) -> None:
    result = asyncio.run(lossy_subscriber(realtime_server))
    assert result["state"] == "connected", result
    assert result["relay"]["dropped"] > 50, result                    # the loss was real
    assert result["subscriber"]["nacksReceived"] > 0, result
    assert result["subscriber"]["retransmissionsAnswered"] > 0, result  # answered locally
    assert result["publisher_nacks"] == 0, result                      # none reached it
    assert result["publisher"]["nacksSentUpstream"] == 0, result
    samples = result["samples"]
    assert all(b > a for a, b in zip(samples, samples[1:])), result   # decoding never stalls
    assert samples[-1] - samples[0] >= 60, result                     # ~10+ fps over 6 s
