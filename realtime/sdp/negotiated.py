"""
What an offer/answer exchange settled: the parameters the media plane needs.

:func:`apply_answer` reads an offer and its answer (RFC 3264 §6, JSEP §5.10)
and returns, from *our* side (we made the offer, or we made the answer)::

    NegotiatedSession
    ├── remote ICE ufrag/pwd, candidates, ice-lite   (RFC 8839)
    ├── remote fingerprints, our DTLS role           (RFC 8122, RFC 8842 §5.1)
    ├── BUNDLE mids                                  (RFC 9143)
    └── NegotiatedMedia per m= section, in order
        ├── mid, kind, accepted, our direction
        ├── codecs (payload types from the answer)  extensions (ids)
        ├── local / remote RtpStreams (SSRC, RTX SSRC, cname, msid)
        └── rids the remote sends (simulcast), SCTP port / max message size

DTLS roles: the answer's ``a=setup:active`` makes the answerer the DTLS
client, ``passive`` the DTLS server; ``actpass`` and ``holdconn`` are not
valid in an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.sdp.attributes import Fingerprint, HeaderExtension
from realtime.ice.candidate import Candidate
from realtime.sdp.codecs import Codec
from realtime.sdp.errors import NegotiationError
from realtime.sdp.negotiation import RtpStream, reverse_direction
from realtime.sdp.session import MediaDescription, SessionDescription


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """Hold the settled parameters of one m= section, seen from our side."""

    mid: str
    kind: str
    accepted: bool
    #: what *we* do: ``sendonly`` means we send and the peer receives
    direction: str
    codecs: tuple[Codec, ...] = ()
    extensions: tuple[HeaderExtension, ...] = ()
    local_streams: tuple[RtpStream, ...] = ()
    remote_streams: tuple[RtpStream, ...] = ()
    #: rids of the simulcast encodings the peer sends us, in preference order
    remote_rids: tuple[str, ...] = ()
    rtcp_rsize: bool = False
    sctp_port: int | None = None
    max_message_size: int | None = None

    def extension_id(self, uri: str) -> int | None:
        """Return the negotiated id of header extension ``uri``, if it was accepted."""
        for extension in self.extensions:
            if extension.uri == uri:
                return extension.id
        return None


@dataclass(frozen=True, slots=True)
class NegotiatedSession:
    """Hold the settled transport (one, bundled) and every section's parameters."""

    media: tuple[NegotiatedMedia, ...]
    bundle: tuple[str, ...]
    remote_ice_ufrag: str
    remote_ice_pwd: str
    remote_fingerprints: tuple[Fingerprint, ...]
    remote_candidates: tuple[Candidate, ...]
    remote_ice_lite: bool
    #: ``client`` or ``server``: the DTLS role *we* take
    dtls_role: str

    def media_by_mid(self, mid: str) -> NegotiatedMedia | None:
        """Return the section whose mid is ``mid``."""
        for media in self.media:
            if media.mid == mid:
                return media
        return None


def _answer_roles(answer: SessionDescription, media: MediaDescription) -> str:
    setup = answer.transport_value(media, "setup")
    if setup == "active":
        return "client"
    if setup == "passive":
        return "server"
    raise NegotiationError(f"answer has unusable a=setup:{setup}")


def _check_pairing(offer: SessionDescription, answer: SessionDescription) -> None:
    if len(answer.media) != len(offer.media):
        raise NegotiationError(
            f"answer has {len(answer.media)} media sections, offer has {len(offer.media)}")
    for index, (offered, answered) in enumerate(zip(offer.media, answer.media)):
        if offered.mid != answered.mid or offered.kind != answered.kind:
            raise NegotiationError(f"answer media section {index} does not match the offer")


def _negotiated(offered: MediaDescription, answered: MediaDescription,
                we_offered: bool) -> NegotiatedMedia:
    mid = answered.mid or ""
    if answered.port == 0 and not answered.has("bundle-only"):
        return NegotiatedMedia(mid, answered.kind, False, "inactive")
    offered_pts = {c.payload_type for c in offered.codecs}
    codecs = answered.codecs
    for codec in codecs:
        if codec.payload_type not in offered_pts:
            raise NegotiationError(
                f"answer section {mid} uses payload type {codec.payload_type} not offered")
    ours, theirs = (offered, answered) if we_offered else (answered, offered)
    direction = answered.direction if not we_offered else reverse_direction(answered.direction)
    remote_sim = theirs.simulcast
    remote_rids = remote_sim.send_rids if remote_sim is not None else ()
    if answered.kind == "application":
        return NegotiatedMedia(mid, answered.kind, True, "sendrecv",
                               sctp_port=theirs.sctp_port,
                               max_message_size=theirs.max_message_size)
    return NegotiatedMedia(
        mid, answered.kind, True, direction, codecs, answered.extensions,
        RtpStream.from_media(ours), RtpStream.from_media(theirs), remote_rids,
        answered.rtcp_rsize,
    )


def apply_answer(offer: SessionDescription, answer: SessionDescription,
                 we_offered: bool = True) -> NegotiatedSession:
    """Return what ``offer`` and ``answer`` settled, from our side.

    :param we_offered: ``True`` when we made the offer (the peer answered),
        ``False`` when we answered the peer's offer.
    :raises NegotiationError: the answer does not pair with the offer, uses
        payload types the offer did not list, or lacks transport parameters.
    """
    _check_pairing(offer, answer)
    media = tuple(_negotiated(o, a, we_offered) for o, a in zip(offer.media, answer.media))
    remote = answer if we_offered else offer
    first = next((a for a in answer.media if a.port != 0 or a.has("bundle-only")), None)
    if first is None:
        raise NegotiationError("answer accepts no media section")
    remote_media = remote.media[answer.media.index(first)]
    ufrag = remote.transport_value(remote_media, "ice-ufrag")
    pwd = remote.transport_value(remote_media, "ice-pwd")
    fingerprints = remote.fingerprints_for(remote_media)
    if not ufrag or not pwd:
        raise NegotiationError("remote description has no ICE credentials")
    if not fingerprints:
        raise NegotiationError("remote description has no a=fingerprint")
    answerer_role = _answer_roles(answer, first)
    role = answerer_role if not we_offered else (
        "server" if answerer_role == "client" else "client")
    candidates = tuple(dict.fromkeys(c for m in remote.media for c in m.candidates))
    return NegotiatedSession(media, answer.bundle, ufrag, pwd, fingerprints, candidates,
                             remote.ice_lite, role)
