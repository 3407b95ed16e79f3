"""Tests for payload formats: H.264 profile-level-id, codec matching, collection."""

from __future__ import annotations

import pytest

from realtime.sdp import Codec, H264Profile, codecs_match, h264_profile
from realtime.sdp.attributes import Fmtp, RtcpFeedback, RtpMap
from realtime.sdp.codecs import H264, OPUS, VP8, VP9, AV1, collect_codecs, keep_feedback, with_rtx

P = H264Profile


@pytest.mark.parametrize(("profile_level_id", "expected"), [
    ("42e01f", (P.CONSTRAINED_BASELINE, 0x1F)),   # constraint_set1 on Baseline
    ("42c01f", (P.CONSTRAINED_BASELINE, 0x1F)),
    ("424015", (P.CONSTRAINED_BASELINE, 0x15)),
    ("42001f", (P.BASELINE, 0x1F)),                # no constraint flags
    ("420010", (P.BASELINE, 0x10)),                # RFC 6184 default
    ("4d801f", (P.CONSTRAINED_BASELINE, 0x1F)),    # Main with constraint_set0
    ("4d001f", (P.MAIN, 0x1F)),
    ("58c01f", (P.CONSTRAINED_BASELINE, 0x1F)),    # Extended with set0 and set1
    ("58801f", (P.BASELINE, 0x1F)),
    ("58001f", (P.EXTENDED, 0x1F)),
    ("640c1f", (P.CONSTRAINED_HIGH, 0x1F)),        # High with set4 + set5
    ("64001f", (P.HIGH, 0x1F)),
    ("6e001f", (P.HIGH_10, 0x1F)),
    ("7a001f", (P.HIGH_422, 0x1F)),
    ("f4001f", (P.HIGH_444, 0x1F)),
    ("ff001f", None),                              # unknown profile_idc
    ("42e01", None),                               # too short
    ("42e01f00", None),                            # too long
    ("zz0000", None),                              # not hex
])
def test_h264_profile(profile_level_id, expected):
    assert h264_profile(profile_level_id) == expected


def h264(params: str) -> Codec:
    return Codec(102, "H264", 90000, None, params)


@pytest.mark.parametrize(("theirs", "matches"), [
    # same profile, same packetization mode, any level
    ("profile-level-id=42e01f;packetization-mode=1", True),
    ("profile-level-id=42e034;packetization-mode=1;level-asymmetry-allowed=1", True),
    ("profile-level-id=4d801f;packetization-mode=1", True),   # also constrained baseline
    ("PROFILE-LEVEL-ID=42E01F;Packetization-Mode=1", True),   # keys and hex are case-blind
    # profile differs
    ("profile-level-id=42001f;packetization-mode=1", False),
    ("profile-level-id=640c1f;packetization-mode=1", False),
    ("packetization-mode=1", False),                          # default 420010 is Baseline
    # packetization mode differs (absent means 0)
    ("profile-level-id=42e01f;packetization-mode=0", False),
    ("profile-level-id=42e01f", False),
    ("profile-level-id=nothex;packetization-mode=1", False),
])
def test_h264_matching(theirs, matches):
    assert codecs_match(H264, h264(theirs)) is matches


@pytest.mark.parametrize(("ours", "theirs", "matches"), [
    (OPUS, Codec(96, "OPUS", 48000, 2), True),
    (OPUS, Codec(96, "opus", 48000, 1), False),
    (OPUS, Codec(96, "opus", 16000, 2), False),
    (VP8, Codec(120, "vp8", 90000, None, "max-fs=12288"), True),
    (VP9, Codec(98, "VP9", 90000, None, "profile-id=0"), True),
    (VP9, Codec(98, "VP9", 90000), True),                       # profile-id defaults to 0
    (VP9, Codec(100, "VP9", 90000, None, "profile-id=2"), False),
    (AV1, Codec(45, "AV1", 90000, None, "profile=0"), True),
    (AV1, Codec(45, "AV1", 90000, None, "profile=1"), False),
    (VP8, Codec(97, "rtx", 90000, None, "apt=96"), False),
    (VP8.rtx(97), Codec(97, "rtx", 90000, None, "apt=96"), False),  # rtx goes through apt
    (VP8, Codec(97, "VP9", 90000), False),
])
def test_codec_matching(ours, theirs, matches):
    assert codecs_match(ours, theirs) is matches


def test_collect_codecs_uses_static_types_and_wildcard_feedback():
    lines = (RtpMap(96, "VP8", 90000), RtcpFeedback(96, "nack"), RtcpFeedback(None, "ccm", "fir"),
             Fmtp(97, "apt=96"), RtpMap(97, "rtx", 90000))
    codecs = collect_codecs(("96", "97", "0", "55", "x"), lines)
    assert [c.payload_type for c in codecs] == [96, 97, 0]   # 55 unknown, x not a number
    assert codecs[0].feedback == (("nack", None), ("ccm", "fir"))
    assert codecs[1].apt == 96 and codecs[1].is_rtx
    assert (codecs[2].name, codecs[2].clock_rate) == ("PCMU", 8000)


def test_codec_attributes_in_browser_order():
    lines = [a.line() for a in H264.attributes()]
    assert lines[0] == "a=rtpmap:108 H264/90000"
    assert lines[1:5] == [f"a=rtcp-fb:108 {fb}" for fb in
                          ("goog-remb", "ccm fir", "nack", "nack pli")]
    assert lines[5].startswith("a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1")


def test_with_rtx_and_keep_feedback():
    assert [(c.payload_type, c.name, c.apt) for c in with_rtx((OPUS, VP8, H264))] == [
        (111, "opus", None), (96, "VP8", None), (97, "rtx", 96), (108, "H264", None),
        (109, "rtx", 108)]
    odd = Codec(96, "VP8", 90000, None, "", (("nack", None), ("nack", "rpsi"), ("ccm", "tmmbr")))
    assert keep_feedback(odd).feedback == (("nack", None),)
