"""
Black-box check of realtime.sdp against aiortc (a peer nobody here wrote).

* aiortc offers (audio, video, DataChannel); it must accept our answer with
  ``setRemoteDescription``;
* we offer (pulls + DataChannel); aiortc must accept it and its answer must
  pass our :func:`apply_answer`.

aiortc gathers host candidates when it makes an offer; our candidate is on
127.0.0.1 and each peer is closed right after the exchange.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import require_module

from realtime.sdp import (
    Fingerprint, LocalTransport, MediaChoice, MediaOffer, RtpStream, SessionDescription,
    apply_answer, create_answer, create_offer,
)

aiortc = require_module("aiortc")

pytestmark = pytest.mark.interop

LOCAL = LocalTransport.host("sfu1", "p" * 24, Fingerprint.from_digest("sha-256", bytes(32)),
                            "127.0.0.1", 9)


async def _aiortc_accepts_our_answer() -> tuple[SessionDescription, SessionDescription, str]:
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        pc.addTrack(AudioStreamTrack())
        pc.addTrack(VideoStreamTrack())
        pc.createDataChannel("chat")
        await pc.setLocalDescription(await pc.createOffer())
        offer = SessionDescription.parse(pc.localDescription.sdp)
        echo = RtpStream(4242, "sfu", "echo", "audio")
        answer = create_answer(offer, LOCAL, {offer.media[0].mid: MediaChoice(send=echo)})
        await pc.setRemoteDescription(aiortc.RTCSessionDescription(answer.serialize(), "answer"))
        return offer, answer, pc.signalingState
    finally:
        await pc.close()


def test_aiortc_accepts_our_answer():
    offer, answer, state = asyncio.run(_aiortc_accepts_our_answer())
    assert state == "stable"
    audio, video, data = answer.media
    assert [c.name for c in audio.codecs] == ["opus"]
    assert audio.direction == "sendrecv" and audio.ssrcs == (4242,)
    # aiortc offers VP8 and H.264 (both packetization modes); we keep VP8, H.264
    # constrained baseline mode 1 and their RTX formats, with aiortc's payload types
    offered = {c.payload_type: c for c in offer.media[1].codecs}
    kept = [offered[c.payload_type] for c in video.codecs]
    assert [c.name for c in kept if not c.is_rtx] == ["VP8", "H264"]
    assert kept[2].parameter_map["packetization-mode"] == "1"
    assert video.direction == "recvonly"
    assert data.sctp_port == 5000
    negotiated = apply_answer(offer, answer, we_offered=False)
    assert negotiated.dtls_role == "server"
    assert negotiated.media[0].remote_streams[0].ssrc in offer.media[0].ssrcs


async def _aiortc_answers_our_offer(offer: SessionDescription) -> SessionDescription:
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    try:
        await pc.setRemoteDescription(aiortc.RTCSessionDescription(offer.serialize(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return SessionDescription.parse(pc.localDescription.sdp)
    finally:
        await pc.close()


def test_aiortc_answers_our_offer():
    offer = create_offer(LOCAL, [
        MediaOffer("0", "audio", send=RtpStream(1, "sfu", "pull", "a")),
        MediaOffer("1", "video", send=RtpStream(2, "sfu", "pull", "v", rtx_ssrc=3)),
        MediaOffer("2", "application"),
    ])
    answer = asyncio.run(_aiortc_answers_our_offer(offer))
    negotiated = apply_answer(offer, answer)
    assert negotiated.dtls_role in ("client", "server")
    audio, video, data = negotiated.media
    assert audio.direction == video.direction == "sendonly"
    assert [c.name for c in audio.codecs] == ["opus"]
    assert {c.name for c in video.codecs} >= {"VP8", "rtx"}
    assert video.local_streams == (RtpStream(2, "sfu", "pull", "v", 3),)
    assert data.accepted and data.sctp_port == 5000
