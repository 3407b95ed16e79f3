"""
Tests for create_offer, re-offers (close, recycle) and apply_answer.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from realtime.errors import LocalProtocolError
from realtime.sdp import (
    Fingerprint, LocalTransport, MediaChoice, MediaOffer, NegotiationError, RtpStream,
    SessionDescription, add_media, apply_answer, close_media, create_answer, create_offer,
)
from realtime.sdp.codecs import OPUS
from realtime.sdp.negotiation import RID

FINGERPRINT = Fingerprint.from_digest("sha-256", bytes(32))
LOCAL = LocalTransport.host("sfu1", "p" * 24, FINGERPRINT, "127.0.0.1", 4000)
CLIENT = LocalTransport.host("cli1", "q" * 24, Fingerprint.from_digest("sha-256", b"\1" * 32),
                             "127.0.0.1", 5555, ice_lite=False)
AUDIO = RtpStream(11, "sfu", "s1", "a1")
VIDEO = RtpStream(22, "sfu", "s1", "v1", rtx_ssrc=23)
PULL = (MediaOffer("0", "audio", send=AUDIO), MediaOffer("1", "video", send=VIDEO),
        MediaOffer("2", "application"))


def test_pull_offer():
    offer = create_offer(LOCAL, PULL)
    assert SessionDescription.parse(offer.serialize()) == offer
    assert offer.ice_lite and offer.bundle == ("0", "1", "2")
    audio, video, data = offer.media
    assert audio.media_line() == "m=audio 4000 UDP/TLS/RTP/SAVPF 111"
    assert video.media_line() == "m=video 4000 UDP/TLS/RTP/SAVPF 96 97 98 99 108 109 45 46"
    assert data.media_line() == "m=application 4000 UDP/DTLS/SCTP webrtc-datachannel"
    assert all(m.setup == "actpass" and m.end_of_candidates for m in offer.media)
    assert audio.codecs == (OPUS,)
    assert audio.direction == video.direction == "sendonly"
    h264 = [c for c in video.codecs if c.name == "H264"][0]
    assert h264.parameter_map["profile-level-id"] == "42e01f"
    assert h264.parameter_map["packetization-mode"] == "1"
    assert [e.id for e in audio.extensions] == [1, 2, 4]  # no transport-wide-cc: we send no such feedback
    assert [e.id for e in video.extensions] == [2, 4, 10, 11, 13, 14]
    assert [item.line() for item in video.lines[-5:]] == [
        "a=ssrc-group:FID 22 23",
        "a=ssrc:22 cname:sfu", "a=ssrc:22 msid:s1 v1",
        "a=ssrc:23 cname:sfu", "a=ssrc:23 msid:s1 v1"]
    assert video.msids[0].value() == "s1 v1"
    assert (data.sctp_port, data.max_message_size) == (5000, 262144)


def test_simulcast_receive_offer():
    offer = create_offer(LOCAL, [MediaOffer("0", "video", "recvonly",
                                            receive_rids=("f", "h", "q"))])
    video = offer.media[0]
    assert [r.line() for r in video.rids] == ["a=rid:f recv", "a=rid:h recv", "a=rid:q recv"]
    assert video.simulcast.line() == "a=simulcast:recv f;h;q"
    assert video.ssrcs == () and video.msids == ()


def test_close_and_recycle():
    media = close_media(PULL, "1")
    offer = create_offer(replace(LOCAL, session_version=2), media)
    closed = offer.media[1]
    assert closed.media_line() == "m=video 0 UDP/TLS/RTP/SAVPF 96"
    assert (closed.mid, closed.direction, closed.rejected) == ("1", "inactive", True)
    assert offer.bundle == ("0", "2") and offer.origin.session_version == 2
    recycled = add_media(media, MediaOffer("3", "audio", send=RtpStream(33, "sfu")))
    assert [m.mid for m in recycled] == ["0", "3", "2"]
    appended = add_media(recycled, MediaOffer("4", "video"))
    assert [m.mid for m in appended] == ["0", "3", "2", "4"]
    offer = create_offer(LOCAL, appended)
    assert offer.bundle == ("0", "3", "2", "4")
    closed_app = create_offer(LOCAL, close_media(PULL, "2")).media[2]
    assert closed_app.media_line() == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: close_media(PULL, "9"), "no media section with mid '9'"),
    (lambda: add_media(PULL, MediaOffer("1", "video")), "mid '1' was already used in this session"),
    (lambda: create_offer(LOCAL, PULL + (MediaOffer("0", "video"),)),
     "every media section needs its own mid"),
])
def test_misuse(call, message):
    with pytest.raises(LocalProtocolError) as caught:
        call()
    assert str(caught.value) == message


def test_our_offer_answered_by_our_answerer_then_applied():
    offer = create_offer(LOCAL, PULL + (MediaOffer("3", "video", "recvonly",
                                                    receive_rids=("h", "l")),))
    # the client answers our offer: it receives our pulls, sends simulcast on "3"
    reply = SessionDescription.parse(offer.serialize().replace(
        "a=rid:h recv\r\na=rid:l recv\r\na=simulcast:recv h;l",
        "a=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l"))
    answer = create_answer(reply, replace(CLIENT, setup="active"),
                           {"3": MediaChoice(send=RtpStream(99, "cli"))})
    negotiated = apply_answer(offer, answer)
    assert negotiated.dtls_role == "server"            # the client answered active
    assert negotiated.remote_ice_ufrag == "cli1" and negotiated.remote_ice_pwd == "q" * 24
    assert negotiated.remote_fingerprints == (CLIENT.fingerprint,)
    assert negotiated.remote_candidates == CLIENT.candidates
    assert not negotiated.remote_ice_lite and negotiated.bundle == ("0", "1", "2", "3")
    audio, video, data, upstream = negotiated.media
    assert audio.direction == "sendonly" and audio.local_streams == (AUDIO,)
    assert video.local_streams == (VIDEO,) and video.remote_streams == ()
    assert [c.payload_type for c in video.codecs] == [96, 97, 98, 99, 108, 109, 45, 46]
    assert video.extension_id(RID) == 10 and video.extension_id("urn:nope") is None
    assert video.rtcp_rsize
    assert (data.accepted, data.sctp_port, data.max_message_size) == (True, 5000, 262144)
    # on "3" the client sends to us: seen from our side that is recvonly
    assert upstream.direction == "recvonly"
    assert upstream.remote_streams == (RtpStream(99, "cli"),)
    assert negotiated.media_by_mid("3") is upstream and negotiated.media_by_mid("x") is None


def test_apply_answer_from_the_answerer_side():
    client_offer = create_offer(CLIENT, [MediaOffer("a", "video", "sendonly",
                                                    send=RtpStream(5, "c", "s", "t", 6))])
    answer = create_answer(client_offer, LOCAL)
    negotiated = apply_answer(client_offer, answer, we_offered=False)
    assert negotiated.dtls_role == "server"            # we answered passive to actpass
    (media,) = negotiated.media
    assert media.direction == "recvonly"
    assert media.remote_streams == (RtpStream(5, "c", "s", "t", 6),)


def test_rejected_section_is_not_accepted():
    offer = create_offer(LOCAL, PULL)
    answer = create_answer(offer, CLIENT, {"1": MediaChoice(accept=False)})
    negotiated = apply_answer(offer, answer)
    assert [m.accepted for m in negotiated.media] == [True, False, True]
    assert negotiated.media[1].direction == "inactive"


def _answer_text(offer: SessionDescription) -> str:
    return create_answer(offer, CLIENT).serialize()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.split("m=application")[0], "answer has 2 media sections, offer has 3"),
    (lambda t: t.replace("a=mid:1", "a=mid:9"), "answer media section 1 does not match the offer"),
    (lambda t: t.replace("UDP/TLS/RTP/SAVPF 111", "UDP/TLS/RTP/SAVPF 112").replace(
        "rtpmap:111", "rtpmap:112"), "answer section 0 uses payload type 112 not offered"),
    (lambda t: t.replace("a=setup:passive", "a=setup:actpass"),
     "answer has unusable a=setup:actpass"),
    (lambda t: t.replace("a=ice-pwd:" + "q" * 24 + "\r\n", ""),
     "remote description has no ICE credentials"),
    (lambda t: "\r\n".join(l for l in t.split("\r\n") if not l.startswith("a=fingerprint")),
     "remote description has no a=fingerprint"),
    (lambda t: t.replace(" 5555 UDP", " 0 UDP").replace(" 5555 UDP/DTLS", " 0 UDP/DTLS"),
     "answer accepts no media section"),
])
def test_answers_we_cannot_apply(edit, message):
    offer = create_offer(LOCAL, PULL)
    answer = SessionDescription.parse(edit(_answer_text(offer)))
    with pytest.raises(NegotiationError) as caught:
        apply_answer(offer, answer)
    assert str(caught.value) == message


def test_remote_rids_of_a_simulcast_push(shared):
    offer = SessionDescription.parse((shared / "pcaps/generated/webrtc/"
                                      "webrtc-chromium-aiortc-simulcast.offer.sdp").read_text())
    negotiated = apply_answer(offer, create_answer(offer, LOCAL), we_offered=False)
    video = negotiated.media_by_mid("1")
    assert video.remote_rids == ("f", "h", "q") and video.direction == "recvonly"
    assert negotiated.dtls_role == "server" and negotiated.remote_ice_ufrag == "Klhi"
    assert len(negotiated.remote_candidates) == 2
