"""
The NACK shield under loss, on either leg.

Downstream: a subscriber behind a lossy relay recovers from the SFU's buffer.

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
subscriber keeps decoding video at >= 20 frames/s.

Upstream: the publisher reaches the media port through a relay that drops
10 % of its video RTP (the publisher -> SFU leg; aiortc negotiates no
NACK for Opus, so its audio could not be repaired)::

    aiortc publisher ── drops 10 % ──> LossyRelay ──> media port ──> aiortc subscriber

The SFU must NACK the publisher (``nacksSentUpstream`` of the publisher's
session; the Generic NACKs counted arriving at aiortc's sender), the
publisher repairs from its own history, and the subscriber -- on a clean
leg -- loses nothing: video keeps >= 20 frames/s and its cumulative
``packetsLost`` stays within a tenth of what the relay dropped (a packet
still being repaired at the moment of the snapshot may count).  The SFU
forwards at once, so the subscriber sees the gaps before the repair and
NACKs them too (its ``nacksReceived`` is not 0; the repaired packet
answers them).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.conftest import require_module

from tests.interop.aiortc_frames import MIN_VIDEO_FPS, FrameCounter, assert_rates
from tests.interop.test_sfu_aiortc import api, connected, publish

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")

LOSS = 0.10


def is_rtp(data: bytes) -> bool:
    """RTP rather than RTCP or another protocol (RFC 7983 first byte, RFC 5761 §4 types)."""
    return 128 <= data[0] <= 191 and len(data) > 1 and not 64 <= (data[1] & 0x7F) <= 95


class LossyRelay:
    """Relay UDP between one client and the media port, dropping media one way.

    ``towards="client"`` drops RTP and RTCP on their way to the client (a
    subscriber's lossy downlink); ``towards="server"`` drops the client's RTP
    on its way to the media port (a publisher's lossy uplink; its RTCP, STUN
    and DTLS pass).  :attr:`payload_types`, when set, limits the drops to
    RTP of those payload types.
    """

    def __init__(self, media: tuple[str, int], loss: float, seed: int = 7,
                 towards: str = "client") -> None:
        assert towards in ("client", "server")
        self.media = media
        self.loss = loss
        self.towards = towards
        self.payload_types: set[int] | None = None
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
                if (relay.towards == "server" and is_rtp(data)
                        and (relay.payload_types is None
                             or data[1] & 0x7F in relay.payload_types)
                        and relay.random.random() < relay.loss):
                    relay.dropped += 1  # the publisher's RTP towards the SFU
                    return
                relay.back.sendto(data)

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr) -> None:
                if relay.client_addr is None:
                    return
                if (relay.towards == "client" and 128 <= data[0] <= 191
                        and relay.random.random() < relay.loss):
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


async def subscribe(server, pc, publisher: str, names, offer_filter=None) -> tuple[str, str]:
    """Pull ``names`` of ``publisher`` into ``pc`` (the SFU offers, ``pc`` answers through
    renegotiate; ``offer_filter`` may rewrite the offer); return the session id and ICE state."""
    from aiortc import RTCSessionDescription

    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {"tracks": [
        {"location": "remote", "sessionId": publisher, "trackName": name} for name in names]})
    sdp = reply["sessionDescription"]["sdp"]
    await pc.setRemoteDescription(RTCSessionDescription(
        sdp=offer_filter(sdp) if offer_filter else sdp, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(server, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    return session, await connected(pc)


async def lossy_subscriber(server) -> dict:
    from aiortc import RTCConfiguration, RTCPeerConnection

    publisher_nacks = count_publisher_nacks()
    publisher_pc, publisher, names = await publish(server)
    relay = LossyRelay((server.media_host, server.media), LOSS)
    port = await relay.start()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames = FrameCounter(pc, initial={"audio": 0, "video": 0}).frames

    try:
        def through_relay(sdp: str) -> str:
            rewritten = sdp.replace(f" {server.media} typ host", f" {port} typ host")
            assert rewritten != sdp
            return rewritten

        session, state = await subscribe(server, pc, publisher, names, through_relay)
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
    assert (samples[-1] - samples[0]) / 6.0 >= MIN_VIDEO_FPS, result   # 30 sent


async def lossy_publisher(server) -> dict:
    from aiortc import RTCConfiguration, RTCPeerConnection

    publisher_nacks = count_publisher_nacks()
    relay = LossyRelay((server.media_host, server.media), LOSS, towards="server")
    port = await relay.start()

    def through_relay(sdp: str) -> str:
        video = next(line for line in sdp.splitlines() if line.startswith("m=video"))
        relay.payload_types = {int(pt) for pt in video.split()[3:]}   # VP8 and its RTX
        rewritten = sdp.replace(f" {server.media} typ host", f" {port} typ host")
        assert rewritten != sdp
        return rewritten

    publisher_pc, publisher, names = await publish(server, answer_filter=through_relay)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    try:
        session, state = await subscribe(server, pc, publisher, names)
        rates = await counter.rates(["audio", "video"], seconds=6.0)
        inbound = [r for r in (await pc.getStats()).values() if r.type == "inbound-rtp"]
        _, diagnostics = server.get("/diagnostics")
        return {
            "state": state, "rates": rates, "frames": dict(counter.frames),
            "relay": {"dropped": relay.dropped},
            "subscriber_lost": {r.kind: r.packetsLost for r in inbound},
            "subscriber": diagnostics["sessions"][session]["sfu"],
            "publisher": diagnostics["sessions"][publisher]["sfu"],
            "publisher_nacks": publisher_nacks["nacks"],
        }
    finally:
        publisher_nacks["restore"]()
        await pc.close()
        await publisher_pc.close()
        relay.close()


def test_loss_on_the_publisher_leg_is_repaired_upstream(realtime_server) -> None:
    result = asyncio.run(lossy_publisher(realtime_server))
    print(result)
    assert result["state"] == "connected", result
    dropped = result["relay"]["dropped"]
    assert dropped >= 15, result                                    # the loss was real
    assert result["publisher"]["nacksSentUpstream"] > 0, result     # the SFU asked
    assert result["publisher_nacks"] > 0, result                    # aiortc's sender heard it
    assert_rates(result["rates"], result)                           # the subscriber plays on
    # and lost (almost) nothing: unrepaired, it would lose every dropped packet
    assert result["subscriber_lost"]["video"] <= max(2, dropped // 10), result
