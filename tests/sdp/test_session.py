"""
Tests for realtime.sdp.session: real captures, an annotated description,
malformed input (one row per error message) and Hypothesis properties.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from realtime.errors import DecodeError
from realtime.sdp import (
    Attribute, Bandwidth, Candidate, Connection, Fingerprint, Group, Line, MediaDescription,
    Origin, RtpMap, SdpError, SessionDescription, Timing,
)
from realtime.sdp.session import _CHECKED, _TYPED, MAX_LENGTH, MAX_MEDIA
from tests.sdp.samples import FIREFOX_OFFER, SAFARI_OFFER


def capture_sdps(shared: Path) -> list[Path]:
    """Return every offer/answer SDP written by the WebRTC capture runs."""
    found = sorted((shared / "pcaps" / "generated" / "webrtc").glob("*.sdp"))
    assert len(found) == 6
    return found


def test_captures_round_trip_byte_for_byte(shared):
    """Chromium offers and aiortc answers serialize back to the very same text."""
    for path in capture_sdps(shared):
        text = path.read_bytes().decode()
        description = SessionDescription.parse(text)
        assert description.serialize() == text, path.name
        assert SessionDescription.decode(description.encode()) == description


def test_captures_parse_to_the_expected_values(shared):
    offer = SessionDescription.parse(
        (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp").read_text())
    assert offer.bundle == ("0", "1", "2")
    assert offer.has("extmap-allow-mixed")
    audio, video, data = offer.media
    assert (audio.kind, audio.port, audio.mid, audio.direction) == ("audio", 41516, "0", "sendrecv")
    assert [c.payload_type for c in audio.codecs][:3] == [111, 63, 9]
    assert audio.codecs[0].parameter_map == {"minptime": "10", "useinbandfec": "1"}
    assert audio.candidates[0].port == 41516 and audio.candidates[1].transport == "tcp"
    assert audio.ice_ufrag == "Klhi" and audio.ice_options == ("trickle",)
    assert audio.setup == "actpass" and audio.rtcp_mux and audio.rtcp_rsize
    assert audio.fingerprints[0].hash_function == "sha-256"
    assert len(audio.fingerprints[0].digest) == 32
    assert audio.ssrcs == (12500962,)
    assert video.direction == "sendonly"
    assert video.simulcast.send_rids == ("f", "h", "q")
    assert [r.rid for r in video.rids] == ["f", "h", "q"]
    assert {e.uri: e.id for e in video.extensions}[
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"] == 10
    assert (data.sctp_port, data.max_message_size) == (5000, 262144)
    assert data.direction == "sendrecv"


@pytest.mark.parametrize("text", [FIREFOX_OFFER, SAFARI_OFFER], ids=["firefox", "safari"])
def test_hand_written_browser_offers_round_trip(text):
    description = SessionDescription.parse(text)
    assert description.serialize() == text
    assert SessionDescription.parse(description.serialize()) == description


def test_firefox_style_session_level_transport():
    offer = SessionDescription.parse(FIREFOX_OFFER)
    video = offer.media[1]
    assert video.fingerprints == ()
    assert offer.fingerprints_for(video)[0].fingerprint.startswith("3A:96")
    assert offer.transport_value(video, "ice-ufrag") == "9f2b1c3d"
    assert video.extensions[3].direction == "recvonly"
    assert video.simulcast.send[2][0].paused
    assert video.rids[2].payload_types == (120,)


def test_safari_style_ipv6_and_mdns_candidates():
    video = SessionDescription.parse(SAFARI_OFFER).media[0]
    assert video.connection == Connection("2001:db8::7", "IP6")
    srflx, host = video.candidates
    assert (srflx.type, srflx.related_address, srflx.related_port) == ("srflx", "::", 0)
    assert srflx.extensions == (("generation", "0"), ("network-cost", "999"))
    assert host.address.endswith(".local")


# One line per field: what each line of a minimal description becomes.
ANNOTATED = (
    "v=0\r\n"                                   # version: always 0
    "o=- 42 7 IN IP4 192.0.2.1\r\n"             # origin: user, session id, version, address
    "s=-\r\n"                                   # session name (none)
    "b=AS:300\r\n"                              # bandwidth, kept typed
    "t=0 0\r\n"                                 # timing: unbounded
    "a=group:BUNDLE a\r\n"                      # one BUNDLE group with mid "a"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"         # media line: kind port protocol formats
    "c=IN IP4 0.0.0.0\r\n"                      # connection address of the section
    "i=voice\r\n"                               # media title, carried as an opaque Line
    "a=mid:a\r\n"                               # media id, untyped Attribute
    "a=rtpmap:0 PCMU/8000\r\n"                  # typed RtpMap
    "a=x-unknown:keep me\r\n"                   # unknown attribute, kept verbatim
    "a=sendonly\r\n"                            # direction flag
)


def test_annotated_description():
    description = SessionDescription.parse(ANNOTATED)
    assert description == SessionDescription(
        origin=Origin(42, 7, "-", "192.0.2.1"),
        lines=(Bandwidth("AS", 300), Timing(0, 0), Group("BUNDLE", ("a",))),
        media=(MediaDescription("audio", 9, "UDP/TLS/RTP/SAVPF", ("0",), (
            Connection(), Line("i", "voice"), Attribute("mid", "a"), RtpMap(0, "PCMU", 8000),
            Attribute("x-unknown", "keep me"), Attribute("sendonly"))),),
    )
    assert description.serialize() == ANNOTATED
    assert description.media[0].direction == "sendonly"


def test_lf_line_endings_are_tolerated():
    description = SessionDescription.parse(ANNOTATED.replace("\r\n", "\n"))
    assert description.serialize() == ANNOTATED


def test_port_count_and_rejected():
    media = MediaDescription.parse_media_line("video 0/2 RTP/AVP 31")
    assert (media.port, media.port_count, media.rejected) == (0, 2, True)
    assert media.media_line() == "m=video 0/2 RTP/AVP 31"


HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"

MALFORMED = [
    ("", "SDP is empty"),
    ("\r\n\r\n", "SDP is empty"),
    ("v=0\x00", "SDP contains a NUL character"),
    ("v=0\r\nhello", "SDP line 2 is not <type>=<value>: 'hello'"),
    ("v=0\r\nA=1", "SDP line 2 is not <type>=<value>: 'A=1'"),
    ("v=0\r\na=x\ry", "SDP line 2 is not <type>=<value>: 'a=x\\ry'"),
    ("v=1\r\n", "SDP must start with v=0"),
    ("v=0\r\ns=-\r\n", "SDP must begin with v=, o= and s= lines"),
    ("v=0\r\no=- 1 1 IN IP4\r\ns=-\r\nt=0 0", "malformed o= line: '- 1 1 IN IP4'"),
    ("v=0\r\no=- x 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0", "malformed o= line: '- x 1 IN IP4 0.0.0.0'"),
    ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n", "SDP has no t= line"),
    (HEAD + "t=now", "malformed t= line: 'now'"),
    (HEAD + "c=IN IP4", "malformed c= line: 'IN IP4'"),
    (HEAD + "b=AS", "malformed b= line: 'AS'"),
    (HEAD + "s=again", "SDP line 5: s= may appear only once"),
    (HEAD + "m=audio 9 RTP/AVP 0\r\nt=0 0", "SDP line 6: t= is not allowed in a media section"),
    (HEAD + "m=audio x RTP/AVP 0", "malformed m= line: 'audio x RTP/AVP 0'"),
    (HEAD + "m=audio 9 RTP/AVP", "malformed m= line: 'audio 9 RTP/AVP'"),
    (HEAD + "m=audio 70000 RTP/AVP 0", "malformed m= line: 'audio 70000 RTP/AVP 0'"),
    (HEAD + "m=audio 9/x RTP/AVP 0", "malformed m= line: 'audio 9/x RTP/AVP 0'"),
    (HEAD + "a=bad name:1", "malformed attribute name: 'bad name:1'"),
    (HEAD + "a=rtpmap", "malformed a=rtpmap: ''"),
    (HEAD + "a=setup:maybe", "malformed a=setup: 'maybe'"),
    (HEAD + "a=mid:a b", "malformed a=mid: 'a b'"),
    (HEAD + "a=ice-ufrag:", "malformed a=ice-ufrag: ''"),
    (HEAD + "a=sctp-port:99999", "malformed a=sctp-port: '99999'"),
    (HEAD + "a=max-message-size:big", "malformed a=max-message-size: 'big'"),
    (HEAD + "a=rtpmap:96 VP8", "malformed a=rtpmap: '96 VP8'"),
    (HEAD + "a=candidate:" + "x" * 100,
     "malformed a=candidate: '" + "x" * 80 + "...'"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed(text, message):
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(text)
    assert str(caught.value) == message


def test_too_long_and_bad_bytes():
    with pytest.raises(SdpError, match=f"SDP is longer than {MAX_LENGTH} bytes"):
        SessionDescription.parse("v=0\r\n" + "a=x\r\n" * MAX_LENGTH)
    with pytest.raises(SdpError, match=f"SDP is longer than {MAX_LENGTH} bytes"):
        SessionDescription.decode(b"v" * (MAX_LENGTH + 1))
    with pytest.raises(SdpError, match="SDP is not valid UTF-8"):
        SessionDescription.decode(b"v=0\r\n\xff")
    with pytest.raises(SdpError, match=f"more than {MAX_MEDIA} media sections"):
        SessionDescription.parse(HEAD + "m=audio 9 RTP/AVP 0\r\n" * (MAX_MEDIA + 1))


# --- Hypothesis -------------------------------------------------------------

token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.+!",
                min_size=1, max_size=12)
address = st.from_regex(r"[A-Za-z0-9.:\-]{1,20}", fullmatch=True)
free_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)
pt = st.integers(0, 127)

untyped_name = token.filter(lambda name: name not in _TYPED and name not in _CHECKED)
attributes = st.one_of(
    st.builds(Attribute, untyped_name, st.none() | free_text),
    st.builds(RtpMap, pt, token, st.integers(1, 2**32 - 1), st.none() | st.integers(1, 8)),
    st.builds(Group, token, st.lists(token, max_size=4).map(tuple)),
    st.builds(Fingerprint.from_digest, st.sampled_from(["sha-256", "sha-1"]),
              st.binary(min_size=1, max_size=32)),
    st.builds(Candidate, st.from_regex(r"[A-Za-z0-9+/]{1,32}", fullmatch=True),
              st.integers(1, 256), token, st.integers(1, 2**32 - 1), address,
              st.integers(0, 65535), st.sampled_from(["host", "srflx", "relay"]),
              st.none() | address, st.none() | st.integers(0, 65535),
              extensions=st.lists(st.tuples(token.filter(
                  lambda t: t not in ("raddr", "rport", "tcptype")), token), max_size=3).map(tuple)),
)
media = st.builds(
    MediaDescription,
    st.sampled_from(["audio", "video", "application"]), st.integers(0, 65535), token,
    st.lists(token, min_size=1, max_size=5).map(tuple),
    st.lists(st.one_of(attributes, st.builds(Connection, token, token, token),
                       st.builds(Bandwidth, token, st.integers(0, 10**9)),
                       st.builds(Line, st.sampled_from("ik"), free_text)), max_size=8).map(tuple),
    st.none() | st.integers(1, 9),
)
descriptions = st.builds(
    SessionDescription,
    st.builds(Origin, st.integers(0, 2**63), st.integers(0, 2**63), token, token, token, token),
    st.lists(attributes, max_size=5).map(lambda items: (Timing(), *items)),
    st.lists(media, max_size=4).map(tuple),
    free_text,
)


@settings(max_examples=200)
@given(descriptions)
def test_serialize_parse_round_trip(description):
    text = description.serialize()
    assert SessionDescription.parse(text) == description
    assert SessionDescription.parse(text).serialize() == text


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_random_text_raises_only_decode_error(text):
    try:
        SessionDescription.parse(text)
    except DecodeError:
        pass


@settings(max_examples=300)
@given(st.lists(st.sampled_from([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:", "a=extmap:", "a=candidate:", "a=rid:", "a=simulcast:",
    "a=ssrc:", "a=ssrc-group:", "a=group:", "a=msid:", "a=fingerprint:", "a=setup:",
    "c=IN IP4 ", "b=AS:",
]), max_size=12), st.lists(st.text(" ;,=~/:0123456789abfhqxpt*-", max_size=15), max_size=12))
def test_structured_garbage_raises_only_decode_error(prefixes, tails):
    text = "\r\n".join(["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
                       + [p + t for p, t in zip(prefixes, tails)])
    try:
        description = SessionDescription.parse(text)
    except DecodeError:
        return
    for section in description.media:
        section.codecs, section.simulcast, section.ssrcs, section.direction
