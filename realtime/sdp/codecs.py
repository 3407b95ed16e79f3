"""
RTP payload formats as negotiated in SDP: one :class:`Codec` per payload type.

A media section lists payload types on its ``m=`` line; each is described by
up to three kinds of attribute, which :class:`Codec` gathers::

    m=video 9 UDP/TLS/RTP/SAVPF 96 97
    a=rtpmap:96 VP8/90000            name and clock rate   (RFC 8866 §6.6)
    a=rtcp-fb:96 nack pli            feedback it accepts   (RFC 4585 §4.2)
    a=rtpmap:97 rtx/90000
    a=fmtp:97 apt=96                 format parameters     (RFC 8866 §6.15)

Matching an offered codec to one we support (:func:`codecs_match`) goes by
name, clock rate and channels, then by the format's own rules:

* H.264 (RFC 6184 §8.1): ``profile-level-id`` names profile and level; the
  *profile* and ``packetization-mode`` must match, the level may differ
  (with ``level-asymmetry-allowed=1`` each side states its own).
* VP9 ``profile-id`` (RFC 9628 §6) and AV1 ``profile`` (AV1 RTP spec §7.2)
  must match; both default to 0.
* RTX (RFC 4588 §8.6) is matched through ``apt``, by the caller.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from realtime.sdp.attributes import Fmtp, RtcpFeedback, RtpMap, parse_format_parameters

#: static payload types usable without an ``a=rtpmap`` (RFC 3551 §6)
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
}

#: RTCP feedback we implement and keep in answers (type, parameter).  transport-cc
#: is not in it: it is kept only where the answerer sends transport-wide feedback
#: (``MediaChoice.transport_cc``); a peer that negotiated it elsewhere would estimate
#: bandwidth from feedback that never comes.  Without it, browsers follow the REMB
#: (goog-remb) the SFU sends.
SUPPORTED_FEEDBACK: frozenset[tuple[str, str | None]] = frozenset({
    ("nack", None), ("nack", "pli"), ("ccm", "fir"), ("goog-remb", None),
})
#: the feedback a transport-wide congestion controller needs (draft-holmer-rmcat-
#: transport-wide-cc-extensions-01 §4: ``a=rtcp-fb:<pt> transport-cc``)
TRANSPORT_CC_FEEDBACK: frozenset[tuple[str, str | None]] = frozenset({("transport-cc", None)})

VIDEO_FEEDBACK: tuple[tuple[str, str | None], ...] = (
    ("goog-remb", None), ("ccm", "fir"), ("nack", None), ("nack", "pli"),
)


@dataclass(frozen=True, slots=True)
class Codec:
    """Describe one payload type: ``rtpmap`` + ``fmtp`` + ``rtcp-fb`` together."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    #: the ``a=fmtp`` parameter text as written ("" when there is none)
    parameters: str = ""
    feedback: tuple[tuple[str, str | None], ...] = ()

    @property
    def parameter_map(self) -> dict[str, str | None]:
        """Return the format parameters as a dict with lower-case keys."""
        return {k.lower(): v for k, v in parse_format_parameters(self.parameters)}

    @property
    def is_rtx(self) -> bool:
        """Return whether this is an RFC 4588 retransmission format."""
        return self.name.lower() == "rtx"

    @property
    def apt(self) -> int | None:
        """Return the payload type an RTX format repairs (``apt=``), if any."""
        value = self.parameter_map.get("apt")
        return int(value) if value and value.isdigit() and value.isascii() else None

    def attributes(self) -> list[RtpMap | RtcpFeedback | Fmtp]:
        """Return the ``rtpmap``, ``rtcp-fb`` and ``fmtp`` attributes, in browser order."""
        lines: list[RtpMap | RtcpFeedback | Fmtp] = [
            RtpMap(self.payload_type, self.name, self.clock_rate, self.channels)
        ]
        lines += [RtcpFeedback(self.payload_type, t, p) for t, p in self.feedback]
        if self.parameters:
            lines.append(Fmtp(self.payload_type, self.parameters))
        return lines

    def rtx(self, payload_type: int) -> Codec:
        """Return the RTX format at ``payload_type`` that repairs this codec."""
        return Codec(payload_type, "rtx", self.clock_rate, None, f"apt={self.payload_type}")


def collect_codecs(formats: tuple[str, ...], attributes: tuple[object, ...]) -> tuple[Codec, ...]:
    """Return one :class:`Codec` per payload type of an ``m=`` line, in ``m=`` order.

    Payload types with neither an ``rtpmap`` nor a static assignment are left
    out; feedback for ``*`` applies to every payload type.
    """
    rtpmaps: dict[int, RtpMap] = {}
    fmtps: dict[int, str] = {}
    feedback: dict[int | None, list[tuple[str, str | None]]] = {}
    for attribute in attributes:
        if isinstance(attribute, RtpMap):
            rtpmaps.setdefault(attribute.payload_type, attribute)
        elif isinstance(attribute, Fmtp):
            fmtps.setdefault(attribute.payload_type, attribute.parameters)
        elif isinstance(attribute, RtcpFeedback):
            feedback.setdefault(attribute.payload_type, []).append(
                (attribute.type, attribute.parameter))
    codecs = []
    for fmt in formats:
        if not fmt.isdigit() or not fmt.isascii() or int(fmt) > 127:
            continue
        pt = int(fmt)
        if pt in rtpmaps:
            rtpmap = rtpmaps[pt]
            name, clock, channels = rtpmap.encoding_name, rtpmap.clock_rate, rtpmap.channels
        elif pt in STATIC_PAYLOAD_TYPES:
            name, clock, channels = STATIC_PAYLOAD_TYPES[pt]
        else:
            continue
        fb = tuple(feedback.get(pt, ())) + tuple(feedback.get(None, ()))
        codecs.append(Codec(pt, name, clock, channels, fmtps.get(pt, ""), fb))
    return tuple(codecs)


class H264Profile(enum.Enum):
    """Name the H.264 profiles a ``profile-level-id`` can express (RFC 6184 §8.1)."""

    CONSTRAINED_BASELINE = "constrained-baseline"
    BASELINE = "baseline"
    MAIN = "main"
    EXTENDED = "extended"
    HIGH = "high"
    CONSTRAINED_HIGH = "constrained-high"
    HIGH_10 = "high-10"
    HIGH_422 = "high-422"
    HIGH_444 = "high-444"


#: RFC 6184 §8.1: the default when ``profile-level-id`` is absent (Baseline, level 1.0)
DEFAULT_PROFILE_LEVEL_ID = "420010"


def h264_profile(profile_level_id: str) -> tuple[H264Profile, int] | None:
    """Return ``(profile, level_idc)`` for a 6-hex-digit ``profile-level-id``, or ``None``.

    The profile comes from ``profile_idc`` and the constraint flags of
    ``profile-iop`` (RFC 6184 §8.1, H.264 Annex A.2): Baseline with
    ``constraint_set1`` is Constrained Baseline, and so on.
    """
    try:
        idc, iop, level = bytes.fromhex(profile_level_id)
    except ValueError:
        return None
    if len(profile_level_id) != 6:
        return None
    profile: H264Profile | None
    if idc == 0x42:
        profile = H264Profile.CONSTRAINED_BASELINE if iop & 0x40 else H264Profile.BASELINE
    elif idc == 0x4D:
        profile = H264Profile.CONSTRAINED_BASELINE if iop & 0x80 else H264Profile.MAIN
    elif idc == 0x58:
        if iop & 0xC0 == 0xC0:
            profile = H264Profile.CONSTRAINED_BASELINE
        else:
            profile = H264Profile.BASELINE if iop & 0x80 else H264Profile.EXTENDED
    elif idc == 0x64:
        profile = H264Profile.CONSTRAINED_HIGH if iop & 0x0C == 0x0C else H264Profile.HIGH
    else:
        profile = {0x6E: H264Profile.HIGH_10, 0x7A: H264Profile.HIGH_422,
                   0xF4: H264Profile.HIGH_444}.get(idc)
        if profile is None:
            return None
    return profile, level


def _h264_match(ours: dict[str, str | None], theirs: dict[str, str | None]) -> bool:
    mine = h264_profile(ours.get("profile-level-id") or DEFAULT_PROFILE_LEVEL_ID)
    other = h264_profile(theirs.get("profile-level-id") or DEFAULT_PROFILE_LEVEL_ID)
    if mine is None or other is None or mine[0] is not other[0]:
        return False
    return (ours.get("packetization-mode") or "0") == (theirs.get("packetization-mode") or "0")


def codecs_match(ours: Codec, theirs: Codec) -> bool:
    """Return whether offered codec ``theirs`` is the same format as our ``ours``.

    Names compare case-insensitively; channels default to 1.  RTX always
    returns ``False`` here: it is accepted through the codec it repairs.
    """
    name = ours.name.lower()
    if name != theirs.name.lower() or ours.clock_rate != theirs.clock_rate or name == "rtx":
        return False
    if (ours.channels or 1) != (theirs.channels or 1):
        return False
    mine, other = ours.parameter_map, theirs.parameter_map
    if name == "h264":
        return _h264_match(mine, other)
    if name == "vp9":
        return (mine.get("profile-id") or "0") == (other.get("profile-id") or "0")
    if name == "av1":
        return (mine.get("profile") or "0") == (other.get("profile") or "0")
    return True


OPUS = Codec(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
G722 = Codec(9, "G722", 8000)
PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
VP8 = Codec(96, "VP8", 90000, None, "", VIDEO_FEEDBACK)
VP9 = Codec(98, "VP9", 90000, None, "profile-id=0", VIDEO_FEEDBACK)
H264 = Codec(108, "H264", 90000, None,
             "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
             VIDEO_FEEDBACK)
AV1 = Codec(45, "AV1", 90000, None, "level-idx=5;profile=0;tier=0", VIDEO_FEEDBACK)

#: what we offer and accept for audio, most preferred first
DEFAULT_AUDIO_CODECS: tuple[Codec, ...] = (OPUS,)
#: narrow-band audio a caller may add (static payload types)
OPTIONAL_AUDIO_CODECS: tuple[Codec, ...] = (G722, PCMU, PCMA)
#: what we offer and accept for video; each gets RTX at payload type + 1
DEFAULT_VIDEO_CODECS: tuple[Codec, ...] = (VP8, VP9, H264, AV1)


def with_rtx(codecs: tuple[Codec, ...]) -> tuple[Codec, ...]:
    """Return ``codecs`` with an RTX format after each video codec, at its payload type + 1."""
    out: list[Codec] = []
    for codec in codecs:
        out.append(codec)
        if codec.clock_rate == 90000 and not codec.is_rtx:
            out.append(codec.rtx(codec.payload_type + 1))
    return tuple(out)


def keep_feedback(codec: Codec, allowed: frozenset[tuple[str, str | None]] = SUPPORTED_FEEDBACK
                  ) -> Codec:
    """Return ``codec`` with only the RTCP feedback we implement (``allowed``)."""
    return replace(codec, feedback=tuple(fb for fb in codec.feedback if fb in allowed))
