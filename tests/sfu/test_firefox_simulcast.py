"""
Firefox's simulcast offer: signalled SSRCs whose layers only the packets name (issue 9, defect 1).

``firefox-simulcast.offer.sdp`` is what Firefox ESR 153 offers for a camera
sent with ``sendEncodings`` rids f, h, q (``a=rid:f send`` ...,
``a=simulcast:send f;h;q``).  Unlike Chromium it also lists six SSRCs and
three ``a=ssrc-group:FID`` pairs, but nothing in the SDP says which SSRC
carries which rid: RFC 8853 binds a simulcast stream to its rid only
through the RtpStreamId header extension (RFC 8852 §3.1), and Firefox sends
that extension on the first few dozen packets of each stream only, then
only the MID.  The SFU must therefore take the layer of a signalled SSRC
from its first packets and keep it once the extension stops.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from realtime.demux import PacketKind
from realtime.media.simulcast import SimulcastPreferences
from realtime.rtcp.feedback import PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.sdp import SessionDescription
from realtime.sfu.session import MediaRequest
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import VP8_DELTA, VP8_KEY, Wire, answer_sfu_offer, certificate
from tests.sfu.test_session import counting_random

OFFER = (Path(__file__).parent / "firefox-simulcast.offer.sdp").read_text()
MEDIA = SessionDescription.parse(OFFER).media_by_mid("0")
IDS = {e.uri.rsplit(":", 1)[-1]: e.id for e in MEDIA.extensions}
VP8 = next(c.payload_type for c in MEDIA.codecs if c.name == "VP8")
VP8_RTX = next(c.payload_type for c in MEDIA.codecs if c.is_rtx and c.apt == VP8)
#: the FID pairs of the offer, in its order (primary, rtx)
PAIRS = [tuple(int(s) for s in line.split()[1:])
         for line in OFFER.splitlines() if line.startswith("a=ssrc-group:FID")]


def packet(ssrc, seq, payload, rid=None, repaired=None, pt=VP8):
    """An RTP packet as Firefox sends it: MID always, the rid only at the start."""
    ext = bytes([IDS["mid"] << 4 | 0]) + b"0"
    if rid is not None:
        ext += bytes([IDS["rtp-stream-id"] << 4 | len(rid) - 1]) + rid.encode()
    if repaired is not None:
        ext += bytes([IDS["repaired-rtp-stream-id"] << 4 | len(repaired) - 1]) + repaired.encode()
    ext += bytes(-len(ext) % 4)
    head = struct.pack("!BBHIIHH", 0x90, pt, seq, seq * 3000, ssrc, 0xBEDE, len(ext) // 4)
    return head + ext + payload


@pytest.fixture
def call():
    board = Switchboard(random=counting_random())
    a = board.create_session("app", 0.0, certificate=certificate(), address="127.0.0.1",
                             port=40000)
    a.answer_offer(OFFER, 0.0, publish={"0": "cam"})
    a.connection = Wire()
    cam = board.find("app", a.session_id, "cam")
    b = board.create_session("app", 1.0, certificate=certificate(), address="127.0.0.1",
                             port=40000)
    b.offer_media([MediaRequest("video", "subscribe", cam,
                                preferences=SimulcastPreferences("h"))], 1.0)
    b.apply_answer(answer_sfu_offer(b.pending_offer), 1.0)
    b.connection = Wire()
    return a, b, cam


def plis(session):
    return [p.media_ssrc for data in session.connection.rtcp for p in decode_compound(data)
            if isinstance(p, PictureLossIndication)]


def test_the_offer_signals_ssrcs_but_not_their_rids() -> None:
    assert [r.rid for r in MEDIA.rids] == ["f", "h", "q"]
    assert len(PAIRS) == 3 and len(MEDIA.ssrcs) == 6


def test_layers_of_signalled_ssrcs_are_learned_from_their_first_packets(call) -> None:
    a, b, cam = call
    layers = dict(zip("fhq", (primary for primary, _ in PAIRS)))
    now, seq = 1.5, 1
    for rid, ssrc in layers.items():                 # the first packets carry the rid
        a.receive_media(PacketKind.RTP, packet(ssrc, seq, VP8_KEY, rid=rid), now)
    assert {s.rid: s.ssrc for s in cam.streams.values() if s.rid} == layers
    assert cam.layers.ordered() == ["f", "h", "q"]
    sent = len(b.connection.rtp)
    assert sent == 1                                 # only h reached B
    for seq in range(2, 150):                        # later packets: MID only
        now += 0.01
        for rid, ssrc in layers.items():
            a.receive_media(PacketKind.RTP, packet(ssrc, seq, VP8_DELTA), now)
    assert len(b.connection.rtp) == 1 + 148          # still only h: nothing mixed in
    assert {struct.unpack_from("!I", p, 8)[0] for p in b.connection.rtp} == \
        {b.transceiver("0").send.ssrc}
    assert cam.stream_for("h").ssrc == layers["h"]
    assert cam.stream_for("f").ssrc == layers["f"]


def test_keyframe_requests_go_to_the_requested_layer_only(call) -> None:
    """A request for a layer not yet named waits for it (it went to the latest stream before)."""
    a, b, cam = call
    layers = dict(zip("fhq", (primary for primary, _ in PAIRS)))
    a.handle_timer(3.0)                              # let the first request's debounce pass
    before = len(plis(a))
    for rid in "qhf":                                # f arrives last: it is `latest`
        a.receive_media(PacketKind.RTP, packet(layers[rid], 1, VP8_DELTA, rid=rid), 3.1)
    a.handle_timer(3.5)
    assert set(plis(a)[before:]) == {layers["h"]}    # B waits for an h key frame only


def test_rtx_of_a_signalled_pair_repairs_its_layer(call) -> None:
    a, b, cam = call
    (f, f_rtx), (h, h_rtx), _ = PAIRS
    a.receive_media(PacketKind.RTP, packet(h, 1, VP8_KEY, rid="h"), 1.5)
    a.receive_media(PacketKind.RTP, packet(f, 1, VP8_KEY, rid="f"), 1.5)
    a.receive_media(PacketKind.RTP, packet(h, 3, VP8_DELTA), 1.6)
    assert len(b.connection.rtp) == 2
    # Firefox repairs seq 2 of h on h's RTX SSRC: the original goes to h's subscriber
    a.receive_media(PacketKind.RTP, packet(h_rtx, 1, b"\x00\x02" + VP8_DELTA, repaired="h",
                                           pt=VP8_RTX), 1.7)
    assert len(b.connection.rtp) == 3
    # and f's repair does not reach B
    a.receive_media(PacketKind.RTP, packet(f_rtx, 1, b"\x00\x02" + VP8_DELTA, repaired="f",
                                           pt=VP8_RTX), 1.7)
    assert len(b.connection.rtp) == 3


def test_a_rid_the_offer_did_not_announce_or_a_taken_rid_is_not_bound(call) -> None:
    """Hostile or confused senders: an unknown rid, or a second SSRC claiming a bound rid."""
    a, b, cam = call
    (f, _), (h, _), (q, _) = PAIRS
    a.receive_media(PacketKind.RTP, packet(f, 1, VP8_KEY, rid="zz"), 1.5)
    assert cam.streams[f].rid is None
    a.receive_media(PacketKind.RTP, packet(h, 1, VP8_KEY, rid="h"), 1.5)
    a.receive_media(PacketKind.RTP, packet(q, 1, VP8_KEY, rid="h"), 1.5)
    assert cam.stream_for("h").ssrc == h and cam.streams[q].rid is None
    a.receive_media(PacketKind.RTP, packet(f, 2, VP8_KEY, rid="f"), 1.6)
    assert cam.streams[f].rid == "f"                 # bound once it names an offered rid


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_hostile_packets_on_a_signalled_ssrc_never_raise(data) -> None:
    """The rid lookup on an unnamed signalled stream reads hostile extension blocks."""
    board = Switchboard(random=counting_random())
    a = board.create_session("app", 0.0, certificate=certificate(), address="127.0.0.1",
                             port=40000)
    a.answer_offer(OFFER, 0.0, publish={"0": "cam"})
    a.connection = Wire()
    ssrc = PAIRS[0][0]
    a.receive_media(PacketKind.RTP, struct.pack("!BBHII", 0x90, VP8, 1, 0, ssrc) + data, 1.0)
    a.receive_media(PacketKind.RTP, packet(ssrc, 2, data), 1.0)
    cam = board.find("app", a.session_id, "cam")
    assert cam.streams[ssrc].rid in (None, "f", "h", "q")
