"""
Transceivers of an SFU session and the numbering they share.

JSEP (RFC 8829 §3.4.1) pairs every m= section with a *transceiver*; the SFU
keeps one :class:`Transceiver` per m= section of a session for the session's
whole life, in m= order, and says what each carries::

    mid  kind   role            who sends   what it is
    ---  -----  --------------  ----------  -----------------------------------------
    "0"  audio  publish         client      a pushed track (trackName "mic")
    "1"  video  subscribe       SFU         a pulled track (another session's "cam")
    "2"  audio  bidirectional   both        pushed "voice", may carry a "#voice" pull
    "3"  video  closed          nobody      port 0 in every later offer (never reused)
    "4"  app    application     both        SCTP (DataChannels; transport only)

All m= sections of a session are BUNDLEd on one transport (RFC 9143), so a
payload type and a header extension id must mean the same thing in every
section of it (RFC 8843 §9.1 forbids two codecs behind one payload type;
RFC 8285 §6 makes extension ids session-wide in practice).  When the SFU
offers a pulled track it therefore renumbers the publisher's formats and
extensions with :class:`SessionNumbering`: each keeps the publisher's
number when it is free (or already means the same), else takes the first
free one::

    publisher A: VP8=96 RTX=97      subscriber session: VP8=96 RTX=97
    publisher B: VP8=100 H264=96    subscriber session: VP8=96 H264=98 (96 was VP8)

The forwarder then maps payload types and extension ids per subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable

from realtime.rtp.extensions import ExtensionUri
from realtime.sdp.attributes import HeaderExtension
from realtime.sdp.codecs import Codec, codecs_match
from realtime.sdp.negotiated import NegotiatedMedia
from realtime.sdp.negotiation import RtpStream
from realtime.sdp.offer import MediaOffer
from realtime.sfu.forwarder import PER_HOP_URIS

if TYPE_CHECKING:  # pragma: no cover
    from realtime.sfu.track import PublishedTrack, Subscription

__all__ = ["ROLES", "SessionNumbering", "Transceiver", "subscriber_extensions",
           "subscriber_codecs"]

PUBLISH, SUBSCRIBE, BIDIRECTIONAL, CLOSED, APPLICATION = (
    "publish", "subscribe", "bidirectional", "closed", "application")
#: every role a transceiver can have
ROLES = (PUBLISH, SUBSCRIBE, BIDIRECTIONAL, CLOSED, APPLICATION)

#: our direction in SDP for each role (``publish``: the client sends, we receive)
DIRECTIONS = {PUBLISH: "recvonly", SUBSCRIBE: "sendonly", BIDIRECTIONAL: "sendrecv"}

#: dynamic payload types (RFC 3551 §6), in the order we hand them out
FREE_PAYLOAD_TYPES = tuple(range(96, 128)) + tuple(range(35, 64))
#: RTCP feedback a subscriber may send us (transport-cc: only where the session estimates)
SUBSCRIBER_FEEDBACK = frozenset({("nack", None), ("nack", "pli"), ("ccm", "fir"),
                                 ("goog-remb", None)})
#: what a subscriber negotiates for our send-side estimate (realtime/sfu/estimate.py)
TRANSPORT_CC_FEEDBACK = ("transport-cc", None)


@dataclass(eq=False)
class Transceiver:
    """One m= section of a session: its mid, kind, role and what it negotiated.

    :ivar media: the settled parameters, None until the first answer.
    :ivar send: the RTP source we send on it (subscribe, bidirectional).
    :ivar codecs: formats to offer while unnegotiated (None: the defaults).
    :ivar extensions: header extensions to offer while unnegotiated.
    :ivar track_name: the name a pushed track is published under.
    :ivar track: the :class:`PublishedTrack` it carries (publish, bidirectional).
    :ivar subscription: the :class:`Subscription` it carries (subscribe, ``#name``).
    :ivar pending: offered by the SFU, not yet answered.
    """

    mid: str
    kind: str
    role: str
    media: NegotiatedMedia | None = None
    send: RtpStream | None = None
    codecs: tuple[Codec, ...] | None = None
    extensions: tuple[HeaderExtension, ...] | None = None
    track_name: str | None = None
    track: PublishedTrack | None = None
    subscription: Subscription | None = None
    pending: bool = False
    remote_rids: tuple[str, ...] = ()

    @property
    def closed(self) -> bool:
        """Return whether the m= section is closed (port 0 from now on)."""
        return self.role == CLOSED

    def offer(self) -> MediaOffer:
        """Return this section as the SFU offers it (negotiated values where settled)."""
        media = self.media
        codecs = media.codecs if media is not None and media.accepted else self.codecs
        extensions = media.extensions if media is not None and media.accepted else self.extensions
        if self.role == CLOSED:
            return MediaOffer(self.mid, self.kind, "inactive", codecs=codecs or None, closed=True)
        if self.role == APPLICATION:
            return MediaOffer(self.mid, "application", "sendrecv")
        rids = media.remote_rids if media is not None else self.remote_rids
        return MediaOffer(self.mid, self.kind, DIRECTIONS[self.role], self.send,
                          codecs or None, extensions, receive_rids=rids)

    def status(self) -> str:
        """Return ``active`` or ``inactive`` as ``GET /sessions/{id}`` reports it."""
        if self.role == CLOSED or self.pending:
            return "inactive"
        if self.role == SUBSCRIBE:
            subscription = self.subscription
            if subscription is None or not subscription.active or subscription.track.ended:
                return "inactive"
            return "active"
        if self.track is not None and self.track.ended:
            return "inactive"
        return "active"


class SessionNumbering:
    """Hand out payload types and header extension ids that are unique in one BUNDLE.

    Built from the session's transceivers (negotiated or planned values); a
    number keeps its meaning once used.
    """

    def __init__(self, transceivers: Iterable[Transceiver]) -> None:
        self.codecs: dict[int, Codec] = {}
        self.extension_ids: dict[str, int] = {}
        for transceiver in transceivers:
            media = transceiver.media
            codecs = media.codecs if media is not None and media.accepted else transceiver.codecs
            extensions = (media.extensions if media is not None and media.accepted
                          else transceiver.extensions)
            for codec in codecs or ():
                self.codecs.setdefault(codec.payload_type, codec)
            for extension in extensions or ():
                self.extension_ids.setdefault(extension.uri, extension.id)

    def _free_payload_type(self) -> int | None:
        return next((pt for pt in FREE_PAYLOAD_TYPES if pt not in self.codecs), None)

    def payload_type_for(self, codec: Codec) -> int | None:
        """Return the payload type ``codec`` (not RTX) gets here, reserving it; None if full."""
        for pt, existing in self.codecs.items():
            if not existing.is_rtx and codecs_match(existing, codec) and \
                    existing.parameters == codec.parameters:
                return pt
        free = codec.payload_type if codec.payload_type not in self.codecs else \
            self._free_payload_type()
        if free is not None:
            self.codecs[free] = replace(codec, payload_type=free)
        return free

    def rtx_payload_type_for(self, rtx: Codec, apt: int) -> int | None:
        """Return the payload type of an RTX format repairing ``apt`` here, reserving it."""
        for pt, existing in self.codecs.items():
            if existing.is_rtx and existing.apt == apt:
                return pt
        free = rtx.payload_type if rtx.payload_type not in self.codecs else \
            self._free_payload_type()
        if free is not None:
            self.codecs[free] = Codec(free, "rtx", rtx.clock_rate, None, f"apt={apt}")
        return free

    def renumber_codecs(self, codecs: Iterable[Codec]) -> tuple[Codec, ...]:
        """Return ``codecs`` with payload types unique in this session (RTX follows ``apt``)."""
        codecs = tuple(codecs)
        mapping: dict[int, int] = {}
        out: list[Codec] = []
        for codec in codecs:
            if codec.is_rtx:
                continue
            pt = self.payload_type_for(codec)
            if pt is not None:
                mapping[codec.payload_type] = pt
                out.append(replace(codec, payload_type=pt))
        for codec in codecs:
            if codec.is_rtx and codec.apt in mapping:
                pt = self.rtx_payload_type_for(codec, mapping[codec.apt])
                if pt is not None:
                    index = next(i for i, c in enumerate(out)
                                 if c.payload_type == mapping[codec.apt])
                    out.insert(index + 1, Codec(pt, "rtx", codec.clock_rate, None,
                                                f"apt={mapping[codec.apt]}"))
        return tuple(out)

    def extension_id_for(self, uri: str, wanted: int) -> int | None:
        """Return the id ``uri`` gets here (``wanted`` when free), reserving it; None if full."""
        if uri in self.extension_ids:
            return self.extension_ids[uri]
        used = set(self.extension_ids.values())
        ext_id = wanted if 1 <= wanted <= 14 and wanted not in used else next(
            (i for i in range(1, 15) if i not in used), None)
        if ext_id is not None:
            self.extension_ids[uri] = ext_id
        return ext_id

    def renumber_extensions(self, extensions: Iterable[HeaderExtension]
                            ) -> tuple[HeaderExtension, ...]:
        """Return ``extensions`` with ids unique in this session."""
        out = []
        for extension in extensions:
            ext_id = self.extension_id_for(extension.uri, extension.id)
            if ext_id is not None:
                out.append(HeaderExtension(ext_id, extension.uri))
        return tuple(out)


def subscriber_codecs(track: Any, transport_cc: bool = False) -> tuple[Codec, ...]:
    """Return the publisher's formats as offered to a subscriber (feedback we answer only;
    ``transport_cc``: plus ``transport-cc`` on each media format)."""
    out = []
    for c in track.codecs:
        feedback = tuple(f for f in c.feedback if f in SUBSCRIBER_FEEDBACK)
        if transport_cc and not c.is_rtx:
            feedback += (TRANSPORT_CC_FEEDBACK,)
        out.append(replace(c, feedback=feedback))
    return tuple(out)


def subscriber_extensions(track: Any, transport_cc: bool = False
                          ) -> tuple[HeaderExtension, ...]:
    """Return the header extensions offered to a subscriber: mid + the publisher's end-to-end ones.

    Per-hop extensions (rid, repaired-rid, transport-cc, the publisher's mid)
    are not forwarded; transport-wide-cc is offered as our own when
    ``transport_cc`` (we number the packets we send, realtime/sfu/estimate.py).
    """
    out = [HeaderExtension(4, ExtensionUri.MID)]
    out += [HeaderExtension(e.id, e.uri) for e in track.extensions if e.uri not in PER_HOP_URIS]
    if transport_cc:
        out.append(HeaderExtension(5, ExtensionUri.TRANSPORT_WIDE_CC))
    return tuple(out)
