"""
SfuSession negotiation sequences and the media paths between sessions, without I/O.

The client side is scripted with realtime/sdp (tests/sfu/client.py) or is a
captured Chromium simulcast offer; connections are replaced by
:class:`~tests.sfu.client.Wire` once negotiated so that what the SFU sends
can be read back in the clear.
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from realtime.demux import PacketKind
from realtime.errors import DecodeError, LocalProtocolError
from realtime.media.simulcast import SimulcastPreferences
from realtime.rtcp.feedback import FirEntry, FullIntraRequest, GenericNack, PictureLossIndication
from realtime.rtcp.packet import decode_compound
from realtime.rtcp.reports import ReceiverReport
from realtime.rtp.packet import payload_offset
from realtime.sdp import SessionDescription
from realtime.sdp.errors import NegotiationError, SdpError
from realtime.sfu.session import MediaRequest, NegotiationPending
from realtime.sfu.switchboard import Switchboard
from tests.sfu.client import (
    CLIENT, VP8_DELTA, VP8_KEY, Wire, answer_sfu_offer, audio, certificate, push_offer, rtp,
    video,
)

MIC, CAM, CAM_RTX = 1111, 2222, 2223


def counting_random():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


@pytest.fixture
def board():
    return Switchboard(random=counting_random())


def new(board):
    return board.create_session("app", 0.0, certificate=certificate(), address="127.0.0.1",
                                port=40000)


def publisher(board):
    """Session A pushing "mic" (mid 0) and "cam" (mid 1, with RTX)."""
    a = new(board)
    a.answer_offer(push_offer(audio("0", MIC), video("1", CAM, CAM_RTX)), 0.0,
                   publish={"0": "mic", "1": "cam"})
    a.connection = Wire()
    return a


def subscriber(board, a, names=("mic", "cam"), now=1.0):
    """Session B pulling ``names`` of A, answered and wired."""
    b = new(board)
    b.offer_media([MediaRequest(board.find("app", a.session_id, n).kind, "subscribe",
                                board.find("app", a.session_id, n)) for n in names], now)
    b.apply_answer(answer_sfu_offer(b.pending_offer), now)
    b.connection = Wire()
    return b


def header(packet):
    return struct.unpack_from("!BBHII", packet)


# -- negotiation -------------------------------------------------------------------


def test_push_answer_receives_each_section_and_publishes_the_tracks(board) -> None:
    a = new(board)
    answer = a.answer_offer(push_offer(audio("0", MIC), video("1", CAM, CAM_RTX)), 0.0,
                            publish={"0": "mic", "1": "cam"})
    assert [m.mid for m in answer.media] == ["0", "1"]            # mids kept
    assert [m.direction for m in answer.media] == ["recvonly", "recvonly"]
    assert answer.ice_lite and answer.bundle == ("0", "1")
    assert a.connection.dtls_role == "server"                     # client was active/actpass
    assert a.ice.remote_ufrag == CLIENT.ice_ufrag
    assert sorted(k[2] for k in board.tracks) == ["cam", "mic"]
    cam = board.find("app", a.session_id, "cam")
    assert set(cam.streams) == {CAM} and cam.rtx_ssrcs == {CAM_RTX}  # RTX: not a stream
    repair, stream = a.media.routes[CAM_RTX]                              # RTX: repairs CAM
    assert repair.track is cam and stream is cam.streams[CAM] and a.media.routes[CAM][0] is cam


def test_sendrecv_section_is_bidirectional_with_our_source(board) -> None:
    a = new(board)
    answer = a.answer_offer(push_offer(audio("0", MIC, "sendrecv")), 0.0, publish={"0": "voice"})
    assert answer.media[0].direction == "sendrecv"
    assert a.transceiver("0").role == "bidirectional"
    assert answer.media[0].ssrcs == (a.transceiver("0").send.ssrc,)


def test_pull_offers_sendonly_sections_with_mids_from_zero(board) -> None:
    a = publisher(board)
    b = new(board)
    mic, cam = (board.find("app", a.session_id, n) for n in ("mic", "cam"))
    added = b.offer_media([MediaRequest("audio", "subscribe", mic),
                           MediaRequest("video", "subscribe", cam)], 1.0)
    assert [t.mid for t in added] == ["0", "1"]
    offer = b.pending_offer
    assert [(m.mid, m.direction) for m in offer.media] == [("0", "sendonly"), ("1", "sendonly")]
    assert offer.media[0].extensions[0].uri.endswith("sdes:mid")
    uris = {e.uri for m in offer.media for e in m.extensions}
    assert not any("stream-id" in u for u in uris)  # per hop
    # transport-wide-cc is offered as our own numbering (one id for the bundle), with
    # transport-cc feedback on the media formats (realtime/sfu/estimate.py)
    twcc = {e.id for m in offer.media for e in m.extensions if "transport-wide-cc" in e.uri}
    assert len(twcc) == 1
    assert all(("transport-cc", None) in c.feedback
               for m in offer.media for c in m.codecs if not c.is_rtx)
    video_codecs = [c.name for c in offer.media[1].codecs]
    assert video_codecs == ["VP8", "rtx"]                         # the publisher's formats
    assert offer.media[1].ssrc_groups[0].semantics == "FID"
    assert offer.media[1].msids[0].stream_id == a.session_id      # lip sync per publisher
    assert offer.has("ice-lite") and offer.media[0].setup == "actpass"
    assert b.connection is None


def test_overlapping_negotiation_is_refused_until_the_answer(board) -> None:
    a = publisher(board)
    b = new(board)
    mic = board.find("app", a.session_id, "mic")
    b.offer_media([MediaRequest("audio", "subscribe", mic)], 1.0)
    with pytest.raises(NegotiationPending):
        b.offer_media([MediaRequest("audio", "subscribe", mic)], 1.0)
    with pytest.raises(NegotiationPending):
        b.answer_offer(push_offer(audio("5", 5)), 1.0)
    assert isinstance(NegotiationPending("x"), LocalProtocolError)
    b.apply_answer(answer_sfu_offer(b.pending_offer), 1.0)
    assert b.pending_offer is None
    assert b.connection.dtls_role == "server"   # the answer said setup:active
    assert [t.mid for t in b.offer_media([MediaRequest("audio", "subscribe", mic)], 2.0)] == ["1"]


def test_sfu_offer_after_client_offer_continues_the_mids(board) -> None:
    a = publisher(board)
    c = new(board)
    c.answer_offer(push_offer(audio("0", 7), video("1", 8)), 0.0, publish={"0": "x", "1": "y"})
    cam = board.find("app", a.session_id, "cam")
    added = c.offer_media([MediaRequest("video", "subscribe", cam)], 1.0)
    assert added[0].mid == "2"
    offer = c.pending_offer
    assert [(m.mid, m.direction) for m in offer.media] == [
        ("0", "recvonly"), ("1", "recvonly"), ("2", "sendonly")]
    assert offer.media[0].setup == "actpass"


def test_renegotiation_keeps_the_dtls_role_of_the_connection(board) -> None:
    a = publisher(board)
    b = subscriber(board, a)
    b.connection.dtls_role = "client"
    answer = b.answer_offer(push_offer(*[  # client re-offer: its own sections, in order
        video("0", 0, direction="recvonly"), video("1", 0, direction="recvonly"),
        audio("2", 9)]), 2.0, publish={"2": "back"})
    assert answer.media[2].setup == "active"


def test_push_without_offer_publishes_when_answered(board) -> None:
    a = new(board)
    a.offer_media([MediaRequest("audio", "publish", track_name="mic-1")], 0.0)
    assert a.pending_offer.media[0].direction == "recvonly"
    assert board.tracks == {}
    client = SessionDescription.parse(answer_sfu_offer(a.pending_offer))
    assert client.media[0].direction == "inactive"  # our scripted client sends nothing here
    # A browser answers sendonly; script it by flipping the direction line.
    sdp = client.serialize().replace("a=inactive", "a=sendonly")
    a.apply_answer(sdp, 1.0)
    assert ("app", a.session_id, "mic-1") in board.tracks


def test_bad_sdp_and_answers_without_an_offer(board) -> None:
    a = new(board)
    with pytest.raises(SdpError):
        a.answer_offer("v=1\r\n", 0.0)
    with pytest.raises(NegotiationError, match="no pending offer"):
        a.apply_answer(push_offer(audio("0", 1)), 0.0)
    a.offer_media([MediaRequest("audio", "publish", track_name="m")], 0.0)
    with pytest.raises(NegotiationError):
        a.apply_answer(push_offer(audio("0", 1), audio("1", 2)), 0.0)  # does not pair
    assert a.pending_offer is not None                                  # still answerable
    assert issubclass(SdpError, DecodeError) and issubclass(NegotiationError, DecodeError)


def test_ice_restart_takes_the_new_remote_credentials(board) -> None:
    from dataclasses import replace
    a = publisher(board)
    restarted = replace(CLIENT, ice_ufrag="newufrag", ice_pwd="newpassword0123456789xy")
    a.answer_offer(push_offer(audio("0", MIC), video("1", CAM, CAM_RTX), transport=restarted), 5.0)
    assert a.ice.remote_ufrag == "newufrag"
    assert a.ice.local_ufrag == a.local.ice_ufrag                 # ours are kept


# -- media -------------------------------------------------------------------------------


def test_audio_is_forwarded_under_the_subscription_ssrc(board) -> None:
    a = publisher(board)
    b = subscriber(board, a)
    ours = b.transceiver("0").send.ssrc
    a.receive_media(PacketKind.RTP, rtp(MIC, 5, payload=b"opus" * 5), 1.0)
    a.receive_media(PacketKind.RTP, rtp(MIC, 6, payload=b"opus" * 5, ts=1960), 1.02)
    first, second = b.connection.rtp
    assert header(first)[4] == ours and header(first)[1] & 0x7F == 111
    assert (header(second)[2] - header(first)[2]) & 0xFFFF == 1   # seq continuity
    assert (header(second)[3] - header(first)[3]) == 960          # timestamp spacing kept
    assert first.endswith(b"opus" * 5)
    assert b in board.touched and b in a.take_touched() and board.touched == set()


def upstream(session, since=0):
    """Return ``(type, media ssrc)`` of the feedback (not reports) sent to ``session``."""
    packets = [p for data in session.connection.rtcp[since:] for p in decode_compound(data)]
    return [(type(p), p.media_ssrc) for p in packets
            if isinstance(p, (PictureLossIndication, GenericNack, FullIntraRequest))]


def test_video_waits_for_a_keyframe_and_asks_the_publisher_once(board) -> None:
    a = publisher(board)
    b = subscriber(board, a)
    assert upstream(a) == [(PictureLossIndication, CAM)]          # the new subscriber asked
    a.receive_media(PacketKind.RTP, rtp(CAM, 10, 96, VP8_DELTA), 1.1)
    assert b.connection.rtp == []                                 # no decodable start yet
    assert len(upstream(a)) == 1                                  # debounced (300 ms)
    a.handle_timer(1.9)
    assert len(upstream(a)) == 1                                  # outstanding: retry at 1 s
    assert a.get_timer() <= 2.0
    a.handle_timer(2.0)
    assert upstream(a) == [(PictureLossIndication, CAM)] * 2      # retried after 1 s
    a.receive_media(PacketKind.RTP, rtp(CAM, 11, 96, VP8_KEY), 2.6)
    assert len(b.connection.rtp) == 1 and header(b.connection.rtp[0])[4] == \
        b.transceiver("1").send.ssrc
    a.handle_timer(3.0)
    assert len(upstream(a)) == 2                                  # the key frame satisfied it


def test_nothing_is_forwarded_to_a_subscriber_before_its_srtp_keys(board) -> None:
    """A key frame sent before DTLS is done would be lost and the stream undecodable."""
    a = publisher(board)
    b = subscriber(board, a)
    b.connection.srtp = None                                      # DTLS not done yet
    track = board.find("app", a.session_id, "cam")
    a.receive_media(PacketKind.RTP, rtp(CAM, 10, 96, VP8_KEY), 1.1)
    assert b.connection.rtp == [] and track.egress_packets == 0   # not sent, not counted
    b.connection.srtp = "keys"                                    # connected
    a.handle_timer(3.0)                                           # let the debounce pass
    before = len(upstream(a))
    a.receive_media(PacketKind.RTP, rtp(CAM, 11, 96, VP8_DELTA), 3.1)
    assert b.connection.rtp == []                                 # waits for a key frame...
    assert len(upstream(a)) > before                              # ...and asks for one
    a.receive_media(PacketKind.RTP, rtp(CAM, 12, 96, VP8_KEY), 3.2)
    assert len(b.connection.rtp) == 1 and track.egress_packets == 1


def test_subscriber_feedback_is_terminated(board) -> None:
    a = publisher(board)
    b = subscriber(board, a)
    ours = b.transceiver("1").send.ssrc
    for seq in range(100, 104):
        a.receive_media(PacketKind.RTP, rtp(CAM, seq, 96, VP8_KEY if seq == 100 else VP8_DELTA),
                        3.0)
    sent = [header(p)[2] for p in b.connection.rtp]
    before = len(a.connection.rtcp)
    # a receiver report about our SSRC goes nowhere
    b.receive_media(PacketKind.RTCP, ReceiverReport(ours).encode(), 3.1)
    # a NACK is answered locally with RTX (negotiated), never relayed
    b.receive_media(PacketKind.RTCP, GenericNack.from_lost(9, ours, [sent[1]]).encode(), 3.1)
    assert len(a.connection.rtcp) == before
    rtx = b.connection.rtp[-1]
    assert header(rtx)[4] == b.transceiver("1").send.rtx_ssrc
    start = payload_offset(rtx)
    assert rtx[start:start + 2] == struct.pack("!H", sent[1])     # OSN first (RFC 4588 §4)
    assert b.rtcp.counters()["retransmissionsAnswered"] == 1
    assert b.rtcp.counters()["nacksReceived"] == 1
    assert a.rtcp.counters()["nacksSentUpstream"] == 0
    # PLI and FIR become one upstream PLI for the publisher's SSRC
    b.receive_media(PacketKind.RTCP, PictureLossIndication(9, ours).encode(), 4.0)
    b.receive_media(PacketKind.RTCP, FullIntraRequest(9, 0, (FirEntry(ours, 1),)).encode(), 4.1)
    packets = [p for data in a.connection.rtcp[before:] for p in decode_compound(data)]
    plis = [p for p in packets if isinstance(p, (PictureLossIndication, FullIntraRequest))]
    assert [(type(p), p.media_ssrc, p.sender_ssrc) for p in plis] == [
        (PictureLossIndication, CAM, a.rtcp_ssrc)]                # debounced: FIR folded in
    assert b.transceiver("1").subscription.keyframe_requests == 2


def test_close_and_switch_without_sdp(board) -> None:
    a = publisher(board)
    other = new(board)
    other.answer_offer(push_offer(video("0", 4444)), 0.0, publish={"0": "screen"})
    other.connection = Wire()
    b = subscriber(board, a)
    cam, screen = (board.find("app", a.session_id, "cam"),
                   board.find("app", other.session_id, "screen"))
    assert len(cam.subscriptions) == 1
    b.attach("1", screen, None, 2.0)                              # tracks/update: switch
    assert cam.subscriptions == [] and len(screen.subscriptions) == 1
    with pytest.raises(LocalProtocolError):
        b.attach("0", screen, None, 2.0)                          # audio section, video track
    assert b.close_transceivers(["0", "0", "9"]) == ["0"]        # force close
    assert b.transceiver("0").status() == "inactive"
    assert board.find("app", a.session_id, "mic").subscriptions == []
    board.close_session(a)                                        # publisher goes away
    assert board.find("app", a.session_id, "cam") is None and board.is_gone(a.session_id)


def test_negotiated_close_rejects_the_section(board) -> None:
    a = publisher(board)
    closed = video("1", CAM, CAM_RTX)
    offer = SessionDescription.parse(push_offer(audio("0", MIC), closed))
    from dataclasses import replace
    offer = replace(offer, media=(offer.media[0], replace(offer.media[1], port=0)))
    answer = a.answer_offer(offer.serialize(), 3.0)
    assert answer.media[1].port == 0 and a.transceiver("1").closed
    assert board.find("app", a.session_id, "cam") is None
    assert board.find("app", a.session_id, "mic") is not None


def test_simulcast_layers_are_learned_from_mid_and_rid(board, shared: Path) -> None:
    sdp = (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp").read_text()
    offer = SessionDescription.parse(sdp)
    video_mid = next(m.mid for m in offer.media if m.kind == "video")
    a = new(board)
    a.answer_offer(sdp, 0.0, publish={video_mid: "cam"})
    a.connection = Wire()
    cam = board.find("app", a.session_id, "cam")
    assert cam.layers is not None and cam.layers.ordered() == ["f", "h", "q"]
    b = new(board)
    b.offer_media([MediaRequest("video", "subscribe", cam,
                                preferences=SimulcastPreferences("h"))], 1.0)
    b.apply_answer(answer_sfu_offer(b.pending_offer), 1.0)
    b.connection = Wire()
    media = offer.media_by_mid(video_mid)
    ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.extensions}
    vp8 = next(c.payload_type for c in media.codecs if c.name == "VP8")

    def layer(ssrc, rid, seq, payload):
        ext = bytes([ids["mid"] << 4 | len(video_mid) - 1]) + video_mid.encode() + \
            bytes([ids["rtp-stream-id"] << 4 | 0]) + rid.encode()
        ext += bytes(-len(ext) % 4)
        head = struct.pack("!BBHIIHH", 0x90, vp8, seq, 0, ssrc, 0xBEDE, len(ext) // 4)
        return head + ext + payload

    for rid, ssrc in (("f", 51), ("h", 52), ("q", 53)):
        a.receive_media(PacketKind.RTP, layer(ssrc, rid, 1, VP8_KEY), 1.5)
    assert {s.rid for s in cam.streams.values()} == {"f", "h", "q"}
    assert len(b.connection.rtp) == 1                            # only the preferred layer
    assert b.transceiver("0").subscription.current_rid() == "h"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([PacketKind.RTP, PacketKind.RTCP]))
def test_hostile_media_never_raises(data, kind) -> None:
    board = Switchboard(random=counting_random())
    a = publisher(board)
    subscriber(board, a)
    a.receive_media(kind, data, 1.0)
    a.receive_media(kind, rtp(MIC, 1)[:12] + data, 1.0)


# -- payload types (issue 9, defect 3) ------------------------------------------------------


def test_h264_answer_without_profile_level_id_still_receives(board) -> None:
    """RFC 3264 §6.1: the answer picks among the payload types we offered; accept them.

    webrtcbin's answer lists ``a=fmtp:108 packetization-mode=1`` without
    ``profile-level-id``; re-matching formats read that as Baseline (RFC 6184
    §8.1 default), found no match for Constrained Baseline and dropped all.
    """
    from realtime.api.diagnostics import media_drops
    from realtime.sdp.codecs import H264
    from realtime.sdp.offer import DEFAULT_VIDEO_EXTENSIONS, MediaOffer
    from tests.sfu.client import stream

    a = new(board)
    a.answer_offer(push_offer(MediaOffer("0", "video", "sendonly", stream(CAM), (H264,),
                                         DEFAULT_VIDEO_EXTENSIONS)), 0.0, publish={"0": "cam"})
    a.connection = Wire()
    b = new(board)
    track = board.find("app", a.session_id, "cam")
    b.offer_media([MediaRequest("video", "subscribe", track)], 1.0)
    answer = answer_sfu_offer(b.pending_offer)
    assert ";profile-level-id=42e01f" in answer
    b.apply_answer(answer.replace(";profile-level-id=42e01f", ""), 1.0)
    b.connection = Wire()
    offered = b.transceiver("0").codecs[0].payload_type
    idr = b"\x65" + b"\x88" * 30                                  # NAL type 5: an IDR slice
    a.receive_media(PacketKind.RTP, rtp(CAM, 10, 108, idr), 1.1)
    a.receive_media(PacketKind.RTP, rtp(CAM, 11, 108, b"\x41" + b"\x9a" * 30), 1.13)
    assert [header(p)[1] & 0x7F for p in b.connection.rtp] == [offered, offered]
    assert media_drops(b) == {}


def test_every_forwarder_drop_is_counted_by_reason(board) -> None:
    from realtime.api.diagnostics import media_drops

    a = publisher(board)
    b = subscriber(board, a)
    a.receive_media(PacketKind.RTP, rtp(CAM, 10, 96, VP8_DELTA), 1.1)   # no key frame yet
    a.receive_media(PacketKind.RTP, rtp(CAM, 11, 96, VP8_KEY), 1.2)
    a.receive_media(PacketKind.RTP, rtp(CAM, 11, 96, VP8_KEY), 1.2)     # duplicate
    a.receive_media(PacketKind.RTP, rtp(CAM, 12, 100, VP8_DELTA), 1.3)  # never negotiated
    b.connection.srtp = None                                            # DTLS not done
    a.receive_media(PacketKind.RTP, rtp(CAM, 13, 96, VP8_DELTA), 1.4)
    assert len(b.connection.rtp) == 1
    assert media_drops(b) == {"awaiting-keyframe": 1, "duplicate": 1,
                              "payload-type-not-negotiated": 1, "subscriber-not-connected": 1}
    a.receive_media(PacketKind.RTP, rtp(4242, 1, 100, VP8_KEY), 1.5)    # no section has PT 100
    assert media_drops(a) == {"rtp-unrouted": 1}


def test_unsignalled_ssrcs_are_routed_by_unique_payload_type(board) -> None:
    """Issue 9, defect 4 (RFC 8843 §9.2): no a=ssrc, no MID extension, two sections.

    webrtcbin offering before caps flow names no SSRC; the payload types
    (96 VP8 in one section, 111 Opus in the other) are unique in the
    BUNDLE, so each packet's payload type names its section.
    """
    from realtime.sdp.codecs import OPUS
    from realtime.sdp.offer import DEFAULT_AUDIO_EXTENSIONS, MediaOffer

    a = new(board)
    offer = push_offer(MediaOffer("0", "audio", "sendonly", None, (OPUS,),
                                  DEFAULT_AUDIO_EXTENSIONS), video("1", 0))
    assert "a=ssrc" not in offer
    a.answer_offer(offer, 0.0, publish={"0": "mic", "1": "cam"})
    a.connection = Wire()
    b = subscriber(board, a)
    a.receive_media(PacketKind.RTP, rtp(MIC, 5, 111, b"opus" * 5), 1.1)
    a.receive_media(PacketKind.RTP, rtp(CAM, 6, 96, VP8_KEY), 1.1)
    sent = {header(p)[4]: header(p)[1] & 0x7F for p in b.connection.rtp}
    assert sent == {b.transceiver("0").send.ssrc: 111, b.transceiver("1").send.ssrc: 96}
    assert a.counters == {}
