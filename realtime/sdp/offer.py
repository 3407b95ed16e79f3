"""
Offers made by the SFU (JSEP §5.2): pulls and server-initiated pushes.

The caller keeps the list of m= sections (:class:`MediaOffer`, one per mid,
mids allocated by the caller) for the whole life of the PeerConnection and
calls :func:`create_offer` after each change::

    index  0            1            2              3
         +------------+------------+--------------+------------+
    mid  | "0" audio  | "1" video  | "2" app      | "3" video  |   first offer
         +------------+------------+--------------+------------+
    close_media("1")  -> port 0, a=inactive, left out of BUNDLE (never removed)
    add_media(new)    -> reuses index 1 with a NEW mid (JSEP §5.2.2), else appends

Every open section carries the same transport (BUNDLE, RFC 9143), ICE-lite,
``a=setup:actpass`` (RFC 8842 §5.1), ``a=rtcp-mux`` and fixed payload
types and extension ids, so re-offers never renumber anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from realtime.errors import LocalProtocolError
from realtime.sdp.attributes import Attribute, HeaderExtension
from realtime.sdp.codecs import DEFAULT_AUDIO_CODECS, DEFAULT_VIDEO_CODECS, Codec, with_rtx
from realtime.sdp.negotiation import (
    ABS_SEND_TIME, AUDIO_LEVEL, DATACHANNEL_FORMAT, MID, REPAIRED_RID, RID, TOFFSET,
    VIDEO_ORIENTATION, LocalTransport, RtpStream, session_lines,
    direction_bits,
)
from realtime.sdp.session import Connection, MediaDescription, SessionDescription
from realtime.sdp.simulcast import RidDescription, Simulcast, SimulcastStream

#: header extensions we offer for audio, ids fixed across the session
DEFAULT_AUDIO_EXTENSIONS: tuple[HeaderExtension, ...] = (
    HeaderExtension(1, AUDIO_LEVEL), HeaderExtension(2, ABS_SEND_TIME),
    HeaderExtension(4, MID),
)
#: header extensions we offer for video, ids fixed across the session
DEFAULT_VIDEO_EXTENSIONS: tuple[HeaderExtension, ...] = (
    HeaderExtension(2, ABS_SEND_TIME),
    HeaderExtension(4, MID), HeaderExtension(10, RID), HeaderExtension(11, REPAIRED_RID),
    HeaderExtension(13, VIDEO_ORIENTATION), HeaderExtension(14, TOFFSET),
)

RTP_PROTOCOL = "UDP/TLS/RTP/SAVPF"
SCTP_PROTOCOL = "UDP/DTLS/SCTP"


@dataclass(frozen=True, slots=True)
class MediaOffer:
    """Describe one m= section we offer.

    :param mid: the section's mid, allocated by the caller, never reused.
    :param kind: ``audio``, ``video`` or ``application`` (DataChannels).
    :param direction: our direction (``sendonly`` for a pull).
    :param send: the source we send, announced with ``a=ssrc``/``a=msid``.
    :param codecs: payload formats; ``None`` means the defaults (video with RTX).
    :param extensions: header extensions; ``None`` means the defaults.
    :param receive_rids: ask the peer to send simulcast with these rids.
    :param closed: the section is closed: port 0, ``a=inactive``.
    """

    mid: str
    kind: str
    direction: str = "sendonly"
    send: RtpStream | None = None
    codecs: tuple[Codec, ...] | None = None
    extensions: tuple[HeaderExtension, ...] | None = None
    receive_rids: tuple[str, ...] = ()
    closed: bool = False

    def resolved_codecs(self) -> tuple[Codec, ...]:
        """Return the codecs to offer (the defaults for the kind when unset)."""
        if self.codecs is not None:
            return self.codecs
        return DEFAULT_AUDIO_CODECS if self.kind == "audio" else with_rtx(DEFAULT_VIDEO_CODECS)

    def resolved_extensions(self) -> tuple[HeaderExtension, ...]:
        """Return the header extensions to offer (the defaults for the kind when unset)."""
        if self.extensions is not None:
            return self.extensions
        return DEFAULT_AUDIO_EXTENSIONS if self.kind == "audio" else DEFAULT_VIDEO_EXTENSIONS


def close_media(media: Sequence[MediaOffer], mid: str) -> tuple[MediaOffer, ...]:
    """Return ``media`` with section ``mid`` closed (kept in place: m= lines never go away)."""
    if not any(item.mid == mid for item in media):
        raise LocalProtocolError(f"no media section with mid {mid!r}")
    return tuple(replace(item, closed=True) if item.mid == mid else item for item in media)


def add_media(media: Sequence[MediaOffer], new: MediaOffer) -> tuple[MediaOffer, ...]:
    """Return ``media`` with ``new`` in the first closed slot (JSEP §5.2.2), else appended."""
    if any(item.mid == new.mid for item in media):
        raise LocalProtocolError(f"mid {new.mid!r} was already used in this session")
    for index, item in enumerate(media):
        if item.closed:
            return (*media[:index], new, *media[index + 1:])
    return (*media, new)


def _offer_section(local: LocalTransport, item: MediaOffer) -> MediaDescription:
    if item.closed:
        protocol = SCTP_PROTOCOL if item.kind == "application" else RTP_PROTOCOL
        formats: tuple[str, ...] = (DATACHANNEL_FORMAT,) if item.kind == "application" else (
            str(item.resolved_codecs()[0].payload_type),)
        inactive = (Connection(), Attribute("mid", item.mid), Attribute("inactive"))
        return MediaDescription(item.kind, 0, protocol, formats, inactive)
    port = local.candidates[0].port
    lines: list[Any] = local.transport_lines("actpass")
    lines.append(Attribute("mid", item.mid))
    if item.kind == "application":
        lines += [Attribute("sctp-port", str(local.sctp_port)),
                  Attribute("max-message-size", str(local.max_message_size))]
        return MediaDescription("application", port, SCTP_PROTOCOL, (DATACHANNEL_FORMAT,),
                                tuple(lines))
    sends, _ = direction_bits(item.direction)
    lines += item.resolved_extensions()
    lines.append(Attribute(item.direction))
    if sends and item.send is not None and item.send.msid() is not None:
        lines.append(item.send.msid())
    lines += [Attribute("rtcp-mux"), Attribute("rtcp-rsize")]
    codecs = item.resolved_codecs()
    for codec in codecs:
        lines += codec.attributes()
    if item.receive_rids:
        lines += [RidDescription(rid, "recv") for rid in item.receive_rids]
        lines.append(Simulcast(recv=tuple((SimulcastStream(rid),) for rid in item.receive_rids)))
    if sends and item.send is not None:
        lines += item.send.attributes(rtx=any(c.is_rtx for c in codecs))
    formats = tuple(str(codec.payload_type) for codec in codecs)
    return MediaDescription(item.kind, port, RTP_PROTOCOL, formats, tuple(lines))


def create_offer(local: LocalTransport, media: Sequence[MediaOffer],
                 extmap_allow_mixed: bool = True) -> SessionDescription:
    """Offer ``media`` in order, every open section BUNDLEd on ``local`` (JSEP §5.2.1).

    Bump ``local.session_version`` for each re-offer (RFC 8866 §5.2).
    """
    mids = [item.mid for item in media]
    if len(set(mids)) != len(mids):
        raise LocalProtocolError("every media section needs its own mid")
    sections = tuple(_offer_section(local, item) for item in media)
    bundle = tuple(item.mid for item in media if not item.closed)
    lines = session_lines(local, bundle, extmap_allow_mixed)
    return SessionDescription(local.origin(), tuple(lines), sections)
