"""
Tests for create_answer: our answers to the captured Chromium offers and to
hand-written Firefox/Safari offers, checked codec by codec; setup roles;
refusals; offers we cannot answer.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from realtime.ice.candidate import candidate_foundation

from realtime.errors import LocalProtocolError
from realtime.sdp import (
    Fingerprint, LocalTransport, MediaChoice, NegotiationError, RtpStream, SessionDescription,
    apply_answer, create_answer,
)
from realtime.sdp.codecs import G722, OPUS, PCMU
from realtime.sdp.negotiation import answer_setup, reverse_direction
from tests.sdp.samples import FIREFOX_OFFER, SAFARI_OFFER

FINGERPRINT = Fingerprint.from_digest("sha-256", bytes(range(32)))
LOCAL = LocalTransport.host("sfu1", "p" * 24, FINGERPRINT, "192.0.2.10", 3478, session_id=77)
CHROMIUM = "pcaps/generated/webrtc/webrtc-chromium-aiortc-{}.offer.sdp"


def chromium_offer(shared: Path, name: str = "simulcast") -> SessionDescription:
    return SessionDescription.parse((shared / CHROMIUM.format(name)).read_text())


def lines_of(section) -> list[str]:
    return [item.line() for item in section.lines]


def test_answer_to_chromium_simulcast_offer(shared):
    offer = chromium_offer(shared)
    answer = create_answer(offer, LOCAL)
    assert SessionDescription.parse(answer.serialize()) == answer
    # session level: ice-lite, every section BUNDLEd, mixed extmaps as offered
    assert answer.ice_lite and answer.bundle == ("0", "1", "2")
    assert answer.has("extmap-allow-mixed")
    assert answer.origin.session_id == 77
    audio, video, data = answer.media
    for section in answer.media:
        assert section.port == 3478
        assert section.candidates[0].line() == (
            f"a=candidate:{candidate_foundation('host', '192.0.2.10')} 1 udp 2130706431"
            " 192.0.2.10 3478 typ host")
        assert section.end_of_candidates and section.setup == "passive"
        assert (section.ice_ufrag, section.ice_pwd) == ("sfu1", "p" * 24)
        assert section.fingerprints == (FINGERPRINT,)
    # audio: only Opus, same payload type and fmtp; transport-cc refused (the choice
    # did not say transport_cc: this answerer sends no transport-wide feedback)
    assert audio.formats == ("111",)
    assert audio.codecs[0].parameters == "minptime=10;useinbandfec=1"
    assert audio.codecs[0].feedback == ()
    assert audio.direction == "recvonly" and audio.rtcp_mux and audio.rtcp_rsize
    assert [(e.id, e.uri.rsplit(":", 1)[-1]) for e in audio.extensions] == [
        (1, "ssrc-audio-level"), (2, "//www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
        (4, "mid")]
    # video: VP8+rtx, H.264 constrained-baseline mode 1 (108) + rtx, AV1+rtx, VP9 profile 0+rtx;
    # refused: H.264 baseline (102, 104), mode 0 (114), main (116, 39), VP9 profile 2, red, ulpfec
    assert video.formats == ("96", "97", "108", "109", "45", "46", "98", "99")
    assert {c.payload_type: c.apt for c in video.codecs if c.is_rtx} == {
        97: 96, 109: 108, 46: 45, 99: 98}
    assert all(c.feedback == (("goog-remb", None), ("ccm", "fir"),
                              ("nack", None), ("nack", "pli"))
               for c in video.codecs if not c.is_rtx)
    assert video.direction == "recvonly"
    assert {e.id for e in video.extensions} == {14, 2, 13, 4, 10, 11, 12}  # 12: the DD; not 3 (twcc), 5-9
    # simulcast mirrored
    assert [r.line() for r in video.rids] == ["a=rid:f recv", "a=rid:h recv", "a=rid:q recv"]
    assert video.simulcast.line() == "a=simulcast:recv f;h;q"
    # data channel
    assert (data.protocol, data.formats) == ("UDP/DTLS/SCTP", ("webrtc-datachannel",))
    assert (data.sctp_port, data.max_message_size) == (5000, 262144)


def test_answer_to_chromium_offer_without_simulcast(shared):
    offer = chromium_offer(shared, "gcm-dtls-server")
    video = create_answer(offer, LOCAL).media[1]
    assert video.simulcast is None and video.rids == ()
    assert video.formats[:4] == ("96", "97", "108", "109")


def test_answer_echo_stream_and_optional_codecs(shared):
    offer = chromium_offer(shared)
    echo = RtpStream(0x1234, "sfu-cname", "stream", "track")
    choices = {"0": MediaChoice(send=echo, codecs=(OPUS, G722, PCMU)),
               "1": MediaChoice(simulcast=False)}
    audio, video, _ = create_answer(offer, LOCAL, choices).media
    assert audio.direction == "sendrecv"
    assert audio.formats == ("111", "9", "0")
    assert lines_of(audio)[-2:] == ["a=ssrc:4660 cname:sfu-cname", "a=ssrc:4660 msid:stream track"]
    assert audio.msids[0].value() == "stream track"
    assert video.simulcast is None and video.rids == ()


def test_refused_sections_stay_in_the_answer(shared):
    offer = chromium_offer(shared)
    answer = create_answer(offer, LOCAL, {"1": MediaChoice(accept=False)})
    video = answer.media[1]
    assert video.media_line() == "m=video 0 UDP/TLS/RTP/SAVPF 96"
    assert lines_of(video) == ["c=IN IP4 0.0.0.0", "a=mid:1"]
    assert answer.bundle == ("0", "2")


def test_answer_to_firefox_style_offer():
    offer = SessionDescription.parse(FIREFOX_OFFER)
    answer = create_answer(offer, LOCAL)
    audio, video, data = answer.media
    assert audio.formats == ("109",)
    assert audio.codecs[0].parameters == "maxplaybackrate=48000;stereo=1;useinbandfec=1"
    # csrc-audio-level is not supported; playout-delay neither
    assert [e.id for e in audio.extensions] == [1, 3]
    # VP8 (120) + rtx 124, VP9 (121, no profile-id means 0) + rtx 125, H.264 mode 1 (126) + rtx
    # 127; 97 is H.264 without packetization-mode (mode 0) and is refused with its rtx 98
    assert video.formats == ("120", "124", "121", "125", "126", "127")
    assert [(e.id, e.direction) for e in video.extensions] == [
        (3, None), (4, None), (5, None), (8, None), (9, None)]  # not 7: transport-wide-cc
    # paused stream and pt restriction survive the mirror
    assert [r.value() for r in video.rids] == [
        "a recv max-width=1280;max-height=720", "b recv max-width=640;max-height=360",
        "c recv pt=120;max-width=320;max-height=180"]
    assert video.simulcast.value() == "recv a;b;~c"
    assert data.max_message_size == 262144
    assert answer.bundle == ("0", "1", "2")


def test_answer_to_safari_style_offer():
    offer = SessionDescription.parse(SAFARI_OFFER)
    answer = create_answer(offer, replace(LOCAL, setup="active"))
    video, audio = answer.media
    assert video.formats == ("98", "99", "100", "101")      # constrained high (96) refused
    assert video.setup == "active"
    assert audio.direction == "inactive"                     # Safari only receives; we send nothing
    assert [e.id for e in audio.extensions] == [14, 9]
    assert [e.id for e in video.extensions] == [1, 2, 3, 9]  # not 4: transport-wide-cc
    negotiated = apply_answer(offer, answer, we_offered=False)
    assert negotiated.dtls_role == "client"
    assert negotiated.remote_ice_ufrag == "Xy9Q"
    assert negotiated.media[0].remote_streams == (
        RtpStream(444444444, "Qw3rTy", "6f1b2c3d", "9a8b7c6d", 555555555),)


@pytest.mark.parametrize(("offered", "preference", "ours"), [
    ("actpass", "passive", "passive"),
    ("actpass", "active", "active"),
    ("active", "active", "passive"),
    ("passive", "passive", "active"),
    (None, "active", "passive"),          # RFC 8842 §3: an absent a=setup means active
])
def test_setup_roles(offered, preference, ours):
    assert answer_setup(offered, preference) == ours


def test_directions():
    assert [reverse_direction(d) for d in ("sendrecv", "sendonly", "recvonly", "inactive")] == [
        "sendrecv", "recvonly", "sendonly", "inactive"]


def _edit(text: str, old: str, new: str) -> SessionDescription:
    assert old in text
    return SessionDescription.parse(text.replace(old, new))


@pytest.mark.parametrize(("old", "new", "refused_mid"), [
    ("a=group:BUNDLE 0 1\r\n", "a=group:BUNDLE 0\r\n", "1"),             # outside BUNDLE
    ("m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "m=audio 0 UDP/TLS/RTP/SAVPF 111 0", "1"),  # rejected
    ("m=audio 9 UDP/TLS/RTP/SAVPF", "m=audio 9 RTP/AVP", "1"),           # not DTLS-SRTP
    ("a=mid:1\r\na=extmap:14 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:9 "
     "urn:ietf:params:rtp-hdrext:sdes:mid\r\na=recvonly\r\na=rtcp-mux\r\n",
     "a=mid:1\r\na=recvonly\r\n", "1"),                                  # no rtcp-mux
    ("m=audio 9 UDP/TLS/RTP/SAVPF 111 0", "m=audio 9 UDP/TLS/RTP/SAVPF 0", "1"),  # no codec
])
def test_refusals(old, new, refused_mid):
    answer = create_answer(_edit(SAFARI_OFFER, old, new), LOCAL)
    section = [m for m in answer.media if m.mid == refused_mid][0]
    assert section.port == 0 and refused_mid not in answer.bundle


def test_without_bundle_only_the_first_section_is_taken():
    offer = _edit(SAFARI_OFFER, "a=group:BUNDLE 0 1\r\n", "")
    answer = create_answer(offer, LOCAL)
    assert [m.port for m in answer.media] == [3478, 0]
    assert answer.bundle == ("0",)


def test_bundle_only_section_is_accepted():
    offer = _edit(SAFARI_OFFER, "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n",
                  "m=audio 0 UDP/TLS/RTP/SAVPF 111 0\r\na=bundle-only\r\n")
    assert create_answer(offer, LOCAL).media[1].port == 3478


@pytest.mark.parametrize(("old", "new", "message"), [
    ("a=mid:0\r\n", "", "offer media section 0 has no a=mid"),
    ("a=mid:1\r\n", "a=mid:0\r\n", "offer repeats a mid"),
    ("a=setup:actpass\r\na=mid:0", "a=setup:holdconn\r\na=mid:0",
     "offer has unusable a=setup:holdconn"),
    ("a=ice-pwd:0123456789abcdefABCDEF01\r\na=ice-options:trickle\r\na=fingerprint:sha-256 0F",
     "a=ice-options:trickle\r\na=fingerprint:sha-256 0F", "offer section 0 has no ICE credentials"),
    ("a=fingerprint:sha-256 0F:1E:2D:3C:4B:5A:69:78:87:96:A5:B4:C3:D2:E1:F0:0F:1E:2D:3C:4B:5A:69:"
     "78:87:96:A5:B4:C3:D2:E1:F0\r\na=setup:actpass\r\na=mid:0",
     "a=setup:actpass\r\na=mid:0", "offer section 0 has no a=fingerprint"),
])
def test_offers_we_cannot_answer(old, new, message):
    with pytest.raises(NegotiationError) as caught:
        create_answer(_edit(SAFARI_OFFER, old, new), LOCAL)
    assert str(caught.value) == message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"setup": "actpass"}, "setup must be passive or active, not 'actpass'"),
    ({"candidates": ()}, "a local transport needs at least one candidate"),
    ({"ice_pwd": "short"}, "ice-ufrag needs 4+ characters, ice-pwd 22+ (RFC 8839 §5.4)"),
])
def test_local_transport_is_validated(kwargs, message):
    with pytest.raises(LocalProtocolError) as caught:
        replace(LOCAL, **kwargs)
    assert str(caught.value) == message


def test_ipv6_host_candidate(shared):
    local = LocalTransport.host("sfu1", "p" * 24, FINGERPRINT, "2001:db8::10", 3478)
    answer = create_answer(chromium_offer(shared), local)
    assert answer.origin.line() == "o=- 1 1 IN IP6 2001:db8::10"
    assert answer.media[0].connection.line() == "c=IN IP6 2001:db8::10"


def test_transport_cc_is_kept_only_when_the_choice_says_so() -> None:
    """draft-holmer-rmcat-transport-wide-cc-extensions-01 §4: extension and rtcp-fb together."""
    from realtime.sdp.negotiation import TRANSPORT_CC, MediaChoice, create_answer
    from tests.sfu.client import CLIENT, audio, push_offer, video

    offer = SessionDescription.parse(push_offer(audio("0", 1), video("1", 2, 3)))
    # the scripted client offers no transport-cc: add it as Chromium does
    sdp = offer.serialize().replace(
        "a=rtcp-fb:96 nack\r\n",
        "a=rtcp-fb:96 nack\r\na=rtcp-fb:96 transport-cc\r\n").replace(
        "a=mid:1\r\n",
        f"a=mid:1\r\na=extmap:12 {TRANSPORT_CC}\r\n")
    offer = SessionDescription.parse(sdp)
    assert "transport-cc" in sdp and TRANSPORT_CC in sdp
    off = create_answer(offer, CLIENT, {"1": MediaChoice(direction="recvonly")}).serialize()
    on = create_answer(offer, CLIENT, {"1": MediaChoice(direction="recvonly",
                                                        transport_cc=True)}).serialize()
    assert "transport-cc" not in off and TRANSPORT_CC not in off
    assert "a=rtcp-fb:96 transport-cc" in on and f"a=extmap:12 {TRANSPORT_CC}" in on
