"""
JSEP offer/answer (RFC 8829 §5.3, RFC 3264 §6) for an ICE-lite, BUNDLE-only SFU.

The server answers a browser's offer (push tracks) and offers to it (pull
tracks).  Every accepted section shares ONE transport: the same ICE
credentials, DTLS fingerprint and host candidate (RFC 9143 BUNDLE)::

    client offer                         our answer (create_answer)
    ------------                         ---------------------------
    a=group:BUNDLE 0 1 2                 a=ice-lite
    m=audio ... a=sendrecv   ─────────►  a=group:BUNDLE 0 1 2   (accepted mids)
    m=video ... a=sendonly               m=audio <port> ... a=recvonly
        a=simulcast:send f;h;q           m=video <port> ... a=recvonly
    m=application ...                        a=rid:f recv ... a=simulcast:recv f;h;q
    a=setup:actpass                      m=application <port> ... a=sctp-port:5000
                                         a=setup:passive (we are the DTLS server)

Rules applied per offered section, in offer order (sections are never
dropped; a refused one is answered with port 0 and its mid, RFC 3264 §6):

1. refuse it when we were told to, when the offer already rejected it, when
   it is outside the offer's BUNDLE group (without a group only the first
   section is taken: one transport), when its protocol is not DTLS-SRTP/SCTP,
   when RTP lacks ``a=rtcp-mux`` or when no codec matches;
2. codecs: keep offered codecs matching our capabilities
   (:func:`realtime.sdp.codecs.codecs_match`), keeping the offer's payload
   types and order, and RTX formats whose ``apt`` was kept; RTCP feedback
   only from :data:`~realtime.sdp.codecs.SUPPORTED_FEEDBACK` (plus
   ``transport-cc`` when the choice says ``transport_cc``);
3. header extensions: keep those in :data:`SUPPORTED_EXTENSIONS`, same ids
   (plus transport-wide-cc when the choice says ``transport_cc``);
4. direction: what we want intersected with the reverse of the offer's;
5. simulcast: an offer's ``send`` rids are mirrored as ``recv``;
6. ``a=setup``: actpass -> our preference (passive: we are DTLS server),
   active -> passive, passive -> active (RFC 8842 §5.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from realtime.errors import LocalProtocolError
from realtime.sdp.attributes import (
    Attribute, Fingerprint, Group, HeaderExtension, Msid, SsrcAttribute, SsrcGroup,
)
from realtime.ice.candidate import Candidate
from realtime.sdp.codecs import (
    DEFAULT_AUDIO_CODECS, DEFAULT_VIDEO_CODECS, SUPPORTED_FEEDBACK, TRANSPORT_CC_FEEDBACK, Codec,
    codecs_match, keep_feedback,
)
from realtime.sdp.errors import NegotiationError
from realtime.sdp.session import Connection, MediaDescription, Origin, SessionDescription, Timing
from realtime.sdp.simulcast import Simulcast

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
VIDEO_ORIENTATION = "urn:3gpp:video-orientation"
TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"
#: AV1 RTP specification, Appendix A (realtime/media/dependency_descriptor.py)
DEPENDENCY_DESCRIPTOR = (
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension")

#: header extensions we accept, by URI, with the media kinds they apply to
#: (transport-wide-cc only where :attr:`MediaChoice.transport_cc` says so: its
#: receiver must send feedback, see ``SUPPORTED_FEEDBACK`` in :mod:`realtime.sdp.codecs`)
SUPPORTED_EXTENSIONS: dict[str, frozenset[str]] = {
    MID: frozenset({"audio", "video"}),
    RID: frozenset({"video"}),
    REPAIRED_RID: frozenset({"video"}),
    ABS_SEND_TIME: frozenset({"audio", "video"}),
    AUDIO_LEVEL: frozenset({"audio"}),
    VIDEO_ORIENTATION: frozenset({"video"}),
    TOFFSET: frozenset({"video"}),
    DEPENDENCY_DESCRIPTOR: frozenset({"video"}),
}

RTP_PROTOCOLS = frozenset({"UDP/TLS/RTP/SAVPF", "TCP/DTLS/RTP/SAVPF"})
SCTP_PROTOCOLS = frozenset({"UDP/DTLS/SCTP", "TCP/DTLS/SCTP"})
DATACHANNEL_FORMAT = "webrtc-datachannel"


@dataclass(frozen=True, slots=True)
class LocalTransport:
    """Describe our side of the one bundled transport: ICE, DTLS and candidates.

    :param setup: the DTLS role we take when the peer offers ``actpass``:
        ``passive`` (we are DTLS server) or ``active`` (we are DTLS client).
    """

    ice_ufrag: str
    ice_pwd: str
    fingerprint: Fingerprint
    candidates: tuple[Candidate, ...]
    ice_lite: bool = True
    setup: str = "passive"
    session_id: int = 1
    session_version: int = 1
    sctp_port: int = 5000
    max_message_size: int = 262144

    def __post_init__(self) -> None:
        if self.setup not in ("passive", "active"):
            raise LocalProtocolError(f"setup must be passive or active, not {self.setup!r}")
        if not self.candidates:
            raise LocalProtocolError("a local transport needs at least one candidate")
        if len(self.ice_ufrag) < 4 or len(self.ice_pwd) < 22:
            raise LocalProtocolError("ice-ufrag needs 4+ characters, ice-pwd 22+ (RFC 8839 §5.4)")

    @classmethod
    def host(cls, ice_ufrag: str, ice_pwd: str, fingerprint: Fingerprint, address: str,
             port: int, **options: Any) -> LocalTransport:
        """Build a transport with one UDP host candidate ``address:port`` (IPv4 or IPv6)."""
        return cls(ice_ufrag, ice_pwd, fingerprint, (Candidate.host(address, port),), **options)

    def origin(self) -> Origin:
        """Return our ``o=`` line."""
        address = self.candidates[0].address
        return Origin(self.session_id, self.session_version, "-", address,
                      "IP6" if ":" in address else "IP4")

    def transport_lines(self, setup: str) -> list[Any]:
        """Return ``c=``, candidates, ICE credentials, fingerprint and ``a=setup:<setup>``."""
        lines: list[Any] = [Connection.for_address(self.candidates[0].address)]
        lines += self.candidates
        lines += [Attribute("end-of-candidates"), Attribute("ice-ufrag", self.ice_ufrag),
                  Attribute("ice-pwd", self.ice_pwd), self.fingerprint,
                  Attribute("setup", setup)]
        return lines


@dataclass(frozen=True, slots=True)
class RtpStream:
    """Name one RTP source in SDP: SSRC, optional RTX SSRC, CNAME and msid (RFC 5576, 8830)."""

    ssrc: int
    cname: str
    stream_id: str | None = None
    track_id: str | None = None
    rtx_ssrc: int | None = None

    def attributes(self, rtx: bool = True) -> list[Any]:
        """Return ``a=ssrc-group:FID`` (with RTX) and the ``a=ssrc`` cname/msid lines.

        ``rtx``: the section has an ``rtx`` format; without one there is no
        retransmission stream (RFC 4588 §8.1), so no RTX SSRC is named.
        """
        lines: list[Any] = []
        ssrcs = [self.ssrc]
        if self.rtx_ssrc is not None and rtx:
            ssrcs.append(self.rtx_ssrc)
            lines.append(SsrcGroup("FID", (self.ssrc, self.rtx_ssrc)))
        for ssrc in ssrcs:
            lines.append(SsrcAttribute(ssrc, "cname", self.cname))
            if self.stream_id is not None:
                msid = Msid(self.stream_id, self.track_id).value()
                lines.append(SsrcAttribute(ssrc, "msid", msid))
        return lines

    def msid(self) -> Msid | None:
        """Return the ``a=msid`` line for this stream, if it has a stream id."""
        return None if self.stream_id is None else Msid(self.stream_id, self.track_id)

    @classmethod
    def from_media(cls, media: MediaDescription) -> tuple[RtpStream, ...]:
        """Return the sources a section announces, pairing RTX through ``FID`` groups."""
        repaired = {g.ssrcs[1]: g.ssrcs[0] for g in media.ssrc_groups
                    if g.semantics == "FID" and len(g.ssrcs) == 2}
        rtx_of = {primary: rtx for rtx, primary in repaired.items()}
        cnames: dict[int, str] = {}
        msids: dict[int, Msid] = {}
        for attribute in media.ssrc_attributes:
            if attribute.attribute == "cname" and attribute.attribute_value:
                cnames.setdefault(attribute.ssrc, attribute.attribute_value)
            elif attribute.attribute == "msid" and attribute.attribute_value:
                parts = attribute.attribute_value.split(" ")
                msids.setdefault(attribute.ssrc, Msid(parts[0], " ".join(parts[1:]) or None))
        fallback = media.msids[0] if media.msids else None
        streams = []
        for ssrc in media.ssrcs:
            if ssrc in repaired:
                continue
            msid = msids.get(ssrc, fallback)
            streams.append(cls(ssrc, cnames.get(ssrc, ""), msid.stream_id if msid else None,
                               msid.track_id if msid else None, rtx_of.get(ssrc)))
        return tuple(streams)


@dataclass(frozen=True, slots=True)
class MediaChoice:
    """Say how we answer one offered section (by mid).

    :param direction: what we would do if the offer allowed everything;
        ``None`` means ``sendrecv`` when ``send`` is given, else ``recvonly``.
    :param send: the source we send on this section (pulls / echo), if any.
    :param codecs: our capabilities; ``None`` means the defaults for the kind.
    :param simulcast: whether to accept an offered simulcast (mirror its rids).
    :param transport_cc: keep an offered transport-wide sequence-number
        extension and ``transport-cc`` feedback (the caller sends transport-wide
        feedback for what it receives, :mod:`realtime.sfu.twcc`).
    """

    accept: bool = True
    direction: str | None = None
    send: RtpStream | None = None
    codecs: tuple[Codec, ...] | None = None
    simulcast: bool = True
    transport_cc: bool = False


def direction_bits(direction: str) -> tuple[bool, bool]:
    """Return ``(sends, receives)`` for an RFC 8866 §6.7 direction attribute."""
    return direction in ("sendrecv", "sendonly"), direction in ("sendrecv", "recvonly")


def direction_name(sends: bool, receives: bool) -> str:
    """Return the direction attribute for ``(sends, receives)``."""
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(sends, receives)]


def reverse_direction(direction: str) -> str:
    """Return the direction seen from the other side (sendonly <-> recvonly)."""
    sends, receives = direction_bits(direction)
    return direction_name(receives, sends)


def answer_setup(offered: str | None, preference: str) -> str:
    """Return our ``a=setup`` for an offered one (RFC 8842 §5.1; absent means active)."""
    if offered in (None, "active"):
        return "passive"
    if offered == "passive":
        return "active"
    if offered == "actpass":
        return preference
    raise NegotiationError(f"offer has unusable a=setup:{offered}")


def _match_codecs(offered: tuple[Codec, ...], ours: tuple[Codec, ...],
                  transport_cc: bool = False) -> tuple[Codec, ...]:
    kept = {c.payload_type for c in offered
            if not c.is_rtx and any(codecs_match(mine, c) for mine in ours)}
    allowed = SUPPORTED_FEEDBACK | TRANSPORT_CC_FEEDBACK if transport_cc else SUPPORTED_FEEDBACK
    return tuple(keep_feedback(c, allowed) for c in offered
                 if c.payload_type in kept or (c.is_rtx and c.apt in kept))


def _answer_extensions(media: MediaDescription, transport_cc: bool = False
                       ) -> list[HeaderExtension]:
    out = []
    for ext in media.extensions:
        if (media.kind in SUPPORTED_EXTENSIONS.get(ext.uri, ())
                or (transport_cc and ext.uri == TRANSPORT_CC)) and ext.id <= 255:
            direction = None if ext.direction is None else reverse_direction(ext.direction)
            out.append(HeaderExtension(ext.id, ext.uri, direction))
    return out


def _answer_simulcast(media: MediaDescription, pts: set[int],
                      extensions: list[HeaderExtension]) -> list[Any]:
    offered = media.simulcast
    if offered is None or not offered.send or not any(e.uri == RID for e in extensions):
        return []
    rids = {}
    for rid in media.rids:
        if rid.direction != "send":
            continue
        kept_pts = tuple(pt for pt in rid.payload_types if pt in pts)
        if rid.payload_types and not kept_pts:
            continue
        rids[rid.rid] = replace(rid.reversed(), payload_types=kept_pts)
    streams = tuple(alts for alts in (tuple(a for a in stream if a.rid in rids)
                                      for stream in offered.send) if alts)
    if not streams:
        return []
    used = [rids[a.rid] for stream in streams for a in stream]
    return [*used, Simulcast(recv=streams)]


def _rejected(media: MediaDescription) -> MediaDescription:
    lines: list[Any] = [Connection()]
    if media.mid is not None:
        lines.append(Attribute("mid", media.mid))
    return MediaDescription(media.kind, 0, media.protocol, media.formats[:1], tuple(lines))


def _accept_rtp(media: MediaDescription, local: LocalTransport, choice: MediaChoice,
                setup: str) -> MediaDescription | None:
    if media.protocol not in RTP_PROTOCOLS or not media.rtcp_mux:
        return None
    ours = choice.codecs or (DEFAULT_AUDIO_CODECS if media.kind == "audio"
                             else DEFAULT_VIDEO_CODECS)
    codecs = _match_codecs(media.codecs, ours, choice.transport_cc)
    if not any(not c.is_rtx for c in codecs):
        return None
    want_send, want_recv = direction_bits(
        choice.direction or ("sendrecv" if choice.send else "recvonly"))
    offer_send, offer_recv = direction_bits(media.direction)
    sends, receives = want_send and offer_recv and choice.send is not None, want_recv and offer_send
    extensions = _answer_extensions(media, choice.transport_cc)
    lines = local.transport_lines(setup)
    lines += [Attribute("mid", media.mid), *extensions,
              Attribute(direction_name(sends, receives))]
    if sends and choice.send is not None and choice.send.msid() is not None:
        lines.append(choice.send.msid())
    lines.append(Attribute("rtcp-mux"))
    if media.rtcp_rsize:
        lines.append(Attribute("rtcp-rsize"))
    for codec in codecs:
        lines += codec.attributes()
    if receives and choice.simulcast:
        lines += _answer_simulcast(media, {c.payload_type for c in codecs}, extensions)
    if sends and choice.send is not None:
        lines += choice.send.attributes(rtx=any(c.is_rtx for c in codecs))
    port = local.candidates[0].port
    formats = tuple(str(c.payload_type) for c in codecs)
    return MediaDescription(media.kind, port, media.protocol, formats, tuple(lines))


def _accept_application(media: MediaDescription, local: LocalTransport,
                        setup: str) -> MediaDescription | None:
    if media.protocol not in SCTP_PROTOCOLS or media.formats != (DATACHANNEL_FORMAT,):
        return None
    lines = local.transport_lines(setup)
    lines += [Attribute("mid", media.mid), Attribute("sctp-port", str(local.sctp_port)),
              Attribute("max-message-size", str(local.max_message_size))]
    return MediaDescription(media.kind, local.candidates[0].port, media.protocol,
                            media.formats, tuple(lines))


def _check_offer(offer: SessionDescription) -> None:
    mids = [media.mid for media in offer.media]
    for index, mid in enumerate(mids):
        if mid is None:
            raise NegotiationError(f"offer media section {index} has no a=mid")
    if len(set(mids)) != len(mids):
        raise NegotiationError("offer repeats a mid")


def create_answer(offer: SessionDescription, local: LocalTransport,
                  choices: Mapping[str, MediaChoice] | None = None) -> SessionDescription:
    """Answer ``offer`` with every section BUNDLEd onto ``local`` (JSEP §5.3.1).

    :param choices: per mid, how to answer; a mid not listed gets
        :class:`MediaChoice()` (accept, receive what is sent).
    :raises NegotiationError: the offer lacks mids, ICE credentials or a
        fingerprint on an accepted section, or has ``a=setup:holdconn``.
    """
    _check_offer(offer)
    choices = choices or {}
    bundle = offer.bundle
    answered: list[MediaDescription] = []
    setup: str | None = None
    for index, media in enumerate(offer.media):
        mid = media.mid
        assert mid is not None
        choice = choices.get(mid, MediaChoice())
        in_bundle = mid in bundle if bundle else index == 0
        section = None
        if choice.accept and not media.rejected and in_bundle:
            if setup is None:
                _check_transport(offer, media)
                setup = answer_setup(offer.transport_value(media, "setup"), local.setup)
            if media.kind == "application":
                section = _accept_application(media, local, setup)
            elif media.kind in ("audio", "video"):
                section = _accept_rtp(media, local, choice, setup)
        answered.append(section or _rejected(media))
    accepted = tuple(m.mid for m in answered if m.port != 0 and m.mid is not None)
    return SessionDescription(local.origin(), tuple(session_lines(
        local, accepted, offer.has("extmap-allow-mixed"))), tuple(answered))


def _check_transport(offer: SessionDescription, media: MediaDescription) -> None:
    if not offer.transport_value(media, "ice-ufrag") or not offer.transport_value(media, "ice-pwd"):
        raise NegotiationError(f"offer section {media.mid} has no ICE credentials")
    if not offer.fingerprints_for(media):
        raise NegotiationError(f"offer section {media.mid} has no a=fingerprint")


def session_lines(local: LocalTransport, bundle: tuple[str, ...],
                  allow_mixed: bool) -> list[Any]:
    """Return our session-level lines: ``t=``, ice-lite, BUNDLE, mixed extmaps, msid-semantic."""
    lines: list[Any] = [Timing()]
    if local.ice_lite:
        lines.append(Attribute("ice-lite"))
    if bundle:
        lines.append(Group("BUNDLE", bundle))
    if allow_mixed:
        lines.append(Attribute("extmap-allow-mixed"))
    lines.append(Attribute("msid-semantic", "WMS *"))
    return lines
