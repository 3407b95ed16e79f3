"""
Echo sessions: every RTP stream a peer sends comes straight back to it.

An echo session is the smallest useful thing a media server can do, and it
exercises the whole transport: SDP offer/answer, ICE-lite, DTLS-SRTP, SRTP in
both directions and RTCP feedback.  It is the proof of the media path before
the SFU (and a handy "is my network fine?" check for users).

The answer announces, for each m-line the peer sends on, one source of ours
(RFC 5576 ``a=ssrc`` with an RTX ``FID`` group when the peer has one).  The
echo is an SSRC translator (RFC 3550 §7.2 calls it a "translator"): it keeps
sequence numbers, timestamps and payloads, and only renames the source::

      peer's sender  S ──RTP──>  [ssrc S -> E]  ──RTP──> peer's receiver (E)
      peer's sender  S <─PLI/FIR/NACK/REMB (S)── [E -> S] <── feedback about E
      peer's sender  S ──SR(S)──> [S -> E] ──SR(E)──> receiver (lip sync)

Receiver reports, SDES and BYE from the peer are not echoed; transport-cc
feedback is not translated (it speaks of the peer's own transport-wide
sequence numbers, which the echo passes through unchanged).

DataChannels: when the offer has an application m-line, the session runs an
SCTP association over DTLS (:class:`~realtime.peer.sctp_transport.SctpTransport`)
and sends every message back on the channel it came in on, with its type
(string or binary) kept.
"""

from __future__ import annotations

import os
import struct
from typing import Callable, Sequence

from realtime.demux import PacketKind
from realtime.dtls.certificate import Certificate
from realtime.errors import DecodeError
from realtime.ice.credentials import ice_credentials
from realtime.ice.lite import IceLiteAgent
from realtime.errors import LocalProtocolError
from realtime.peer.connection import DEFAULT_SRTP_PROFILES, PeerConnection
from realtime.peer.events import PeerEvent
from realtime.peer.sctp_transport import MessageReceived, SctpTransport
from realtime.sdp.attributes import Fingerprint
from realtime.sdp.errors import SdpError
from realtime.sdp.negotiation import LocalTransport, MediaChoice, RtpStream, create_answer
from realtime.sdp.session import MediaDescription, SessionDescription

_SSRC = struct.Struct("!I")
RTCP_SR, RTCP_RTPFB, RTCP_PSFB = 200, 205, 206
PSFB_FIR, AFB = 4, 15
MAX_UNSIGNALED = 16
"""Unsignalled incoming SSRCs an echo session will rename before it drops more."""


class EchoSession:
    """One PeerConnection that sends each received stream back to its sender.

    Build it with :func:`create_echo_session`; feed its :attr:`connection`
    from the media port.
    """

    def __init__(self, session_id: str, answer: SessionDescription, connection: PeerConnection,
                 ssrc_map: dict[int, int], random: Callable[[int], bytes]) -> None:
        self.session_id = session_id
        self.answer = answer
        self.connection = connection
        self.ice = connection.ice
        #: peer SSRC -> our SSRC (media and RTX)
        self.ssrc_map = ssrc_map
        #: our SSRC -> peer SSRC, for feedback going the other way
        self.reverse_map = {ours: theirs for theirs, ours in ssrc_map.items()}
        self.random = random
        #: the app that made it (set by the API or the cluster's just-in-time path)
        self.app_id: str | None = None
        connection.media_sink = self.echo

    def handle_event(self, event: PeerEvent, now: float) -> None:
        """Echo each DataChannel message on its own channel."""
        if isinstance(event, MessageReceived) and self.connection.sctp is not None:
            try:
                self.connection.sctp.send(event.channel_id, event.data, now)
            except LocalProtocolError:
                self.connection.drops["datachannel-closed"] += 1
                return
            self.connection.flush_sctp(now)

    def get_timer(self) -> float | None:
        """Return None: an echo session has no deadlines beyond its connection's."""
        return None

    def handle_timer(self, now: float) -> None:
        """Do nothing (see :meth:`get_timer`)."""

    def take_touched(self) -> tuple:
        """Return no other sessions: an echo session only answers its own peer."""
        return ()

    def echo(self, kind: PacketKind, packet: bytes, now: float) -> None:
        """Send ``packet`` back under our SSRC (RTP) or translated (RTCP)."""
        if kind is PacketKind.RTP:
            if len(packet) < 12:
                return
            ours = self.ssrc_map.get(_SSRC.unpack_from(packet, 8)[0])
            if ours is None:
                ours = self._learn(_SSRC.unpack_from(packet, 8)[0])
                if ours is None:
                    return
            buf = bytearray(packet)
            _SSRC.pack_into(buf, 8, ours)
            self.connection.send_rtp(bytes(buf))
        else:
            try:
                translated = translate_rtcp(packet, self.ssrc_map, self.reverse_map)
            except DecodeError:
                self.connection.drops["rtcp"] += 1
                return
            if translated:
                self.connection.send_rtcp(translated)

    def _learn(self, theirs: int) -> int | None:
        """Rename an SSRC the offer did not signal (the peer demuxes it by MID)."""
        if len(self.ssrc_map) >= MAX_UNSIGNALED + len(self.reverse_map) // 2:
            return None
        ours = int.from_bytes(self.random(4), "big") or 1
        self.ssrc_map[theirs] = ours
        self.reverse_map[ours] = theirs
        return ours


def translate_rtcp(compound: bytes, forward: dict[int, int], backward: dict[int, int]) -> bytes:
    """Return the RTCP to echo for ``compound``: SRs renamed, feedback re-targeted.

    * SR (RFC 3550 §6.4.1): sender SSRC S becomes E, report blocks removed.
    * RTPFB/PSFB (RFC 4585 §6.1): media source E becomes S; FIR entries
      (RFC 5104 §4.3.1.1) and REMB SSRC lists likewise.  transport-cc
      (RTPFB FMT 15) is dropped.
    * Everything else is dropped.

    :raises DecodeError: if a length field overruns the datagram.
    """
    out = bytearray()
    offset = 0
    while offset + 4 <= len(compound):
        first, packet_type, words = struct.unpack_from("!BBH", compound, offset)
        end = offset + 4 * (words + 1)
        if first >> 6 != 2 or end > len(compound):
            raise DecodeError(f"RTCP packet at offset {offset} is malformed")
        packet = bytearray(compound[offset:end])
        offset = end
        fmt = first & 0x1F
        if packet_type == RTCP_SR and len(packet) >= 28:
            ours = forward.get(_SSRC.unpack_from(packet, 4)[0])
            if ours is not None:
                _SSRC.pack_into(packet, 4, ours)
                packet[0] &= 0xE0  # RC = 0: our report blocks would be fiction
                struct.pack_into("!H", packet, 2, 6)
                out += packet[:28]
        elif packet_type in (RTCP_RTPFB, RTCP_PSFB) and len(packet) >= 12:
            if packet_type == RTCP_RTPFB and fmt == AFB:
                continue
            if _retarget(packet, packet_type, fmt, backward):
                out += packet
    if offset != len(compound):
        raise DecodeError(f"RTCP compound has {len(compound) - offset} trailing bytes")
    return bytes(out)


def _retarget(packet: bytearray, packet_type: int, fmt: int, backward: dict[int, int]) -> bool:
    """Rename the media sources a feedback message names; False if none is ours."""
    if packet_type == RTCP_PSFB and fmt == PSFB_FIR:
        found = False
        for pos in range(12, len(packet) - 7, 8):
            theirs = backward.get(_SSRC.unpack_from(packet, pos)[0])
            if theirs is not None:
                _SSRC.pack_into(packet, pos, theirs)
                found = True
        return found
    if packet_type == RTCP_PSFB and fmt == AFB and packet[12:16] == b"REMB" and len(packet) >= 20:
        count = packet[16]
        for i in range(count):
            pos = 20 + 4 * i
            if pos + 4 <= len(packet):
                theirs = backward.get(_SSRC.unpack_from(packet, pos)[0])
                if theirs is not None:
                    _SSRC.pack_into(packet, pos, theirs)
        return True
    theirs = backward.get(_SSRC.unpack_from(packet, 8)[0])
    if theirs is None:
        return False
    _SSRC.pack_into(packet, 8, theirs)
    return True


def create_echo_session(
    session_id: str,
    offer_sdp: str,
    *,
    certificate: Certificate,
    address: str,
    port: int,
    srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
    random: Callable[[int], bytes] = os.urandom,
    keylog: Callable[[bytes], None] | None = None,
    dtls_role: str = "server",
) -> EchoSession:
    """Answer ``offer_sdp`` as an echo and return the session (answer in ``.answer``).

    :param dtls_role: the DTLS role we take when the offer says ``actpass``:
        ``"server"`` answers ``setup:passive`` (what browsers expect of an
        SFU), ``"client"`` answers ``setup:active`` and sends the ClientHello.

    :raises SdpError: if the offer cannot be parsed or negotiated (the API
        reports ``invalid_session_description``).
    """
    offer = SessionDescription.parse(offer_sdp)
    ufrag, pwd = ice_credentials(random)
    choices: dict[str, MediaChoice] = {}
    ssrc_map: dict[int, int] = {}
    for media in offer.media:
        if media.kind not in ("audio", "video") or media.mid is None:
            continue
        streams = RtpStream.from_media(media)
        if not streams:
            continue
        theirs = streams[0]
        ours = RtpStream(
            _random_ssrc(random, ssrc_map), "realtime-echo", "echo", f"echo-{media.mid}",
            _random_ssrc(random, ssrc_map) if theirs.rtx_ssrc is not None else None,
        )
        ssrc_map[theirs.ssrc] = ours.ssrc
        if theirs.rtx_ssrc is not None and ours.rtx_ssrc is not None:
            ssrc_map[theirs.rtx_ssrc] = ours.rtx_ssrc
        choices[media.mid] = MediaChoice(send=ours, simulcast=False)
    local = LocalTransport.host(
        ufrag, pwd, Fingerprint("sha-256", certificate.fingerprint()), address, port,
        setup="active" if dtls_role == "client" else "passive",
    )
    answer = create_answer(offer, local, choices)
    return _echo_session(session_id, offer, answer, ssrc_map, certificate=certificate,
                         srtp_profiles=srtp_profiles, random=random, keylog=keylog)


def restore_echo_session(
    session_id: str,
    offer_sdp: str,
    answer_sdp: str,
    *,
    certificate: Certificate,
    srtp_profiles: Sequence[str] = DEFAULT_SRTP_PROFILES,
    random: Callable[[int], bytes] = os.urandom,
    keylog: Callable[[bytes], None] | None = None,
) -> EchoSession:
    """Rebuild an echo session from its offer and the answer another process gave.

    A node of a cluster that did not make the session gets both descriptions
    from the directory (docs/cluster.md); everything the session needs is in
    them: our ICE credentials and ``a=setup`` in the answer (RFC 8839 §5.4,
    RFC 4145 §4), the peer's fingerprints in the offer (RFC 8122 §5), and for
    each m-line the peer's source (offer) and ours (answer, RFC 5576), which
    pair up into the same SSRC map :func:`create_echo_session` chose.

    :raises SdpError: if either description cannot be parsed.
    """
    offer = SessionDescription.parse(offer_sdp)
    answer = SessionDescription.parse(answer_sdp)
    ssrc_map: dict[int, int] = {}
    for media in answer.media:
        offered = offer.media_by_mid(media.mid) if media.mid is not None else None
        if media.port == 0 or offered is None or media.kind not in ("audio", "video"):
            continue
        ours, theirs = RtpStream.from_media(media), RtpStream.from_media(offered)
        if not ours or not theirs:
            continue
        ssrc_map[theirs[0].ssrc] = ours[0].ssrc
        if theirs[0].rtx_ssrc is not None and ours[0].rtx_ssrc is not None:
            ssrc_map[theirs[0].rtx_ssrc] = ours[0].rtx_ssrc
    return _echo_session(session_id, offer, answer, ssrc_map, certificate=certificate,
                         srtp_profiles=srtp_profiles, random=random, keylog=keylog)


def _echo_session(session_id: str, offer: SessionDescription, answer: SessionDescription,
                  ssrc_map: dict[int, int], *, certificate: Certificate,
                  srtp_profiles: Sequence[str], random: Callable[[int], bytes],
                  keylog: Callable[[bytes], None] | None) -> EchoSession:
    """Build the session's ICE agent, PeerConnection and SCTP from the offer and our answer."""
    if not offer.media or not answer.media:
        raise SdpError("the offer has no media section")
    accepted = [m for m in answer.media if m.port != 0]
    offered = _offered(offer, accepted[0].mid) if accepted else offer.media[0]
    fingerprints = [(f.hash_function, f.fingerprint) for f in offer.fingerprints_for(offered)]
    setup = answer.transport_value(accepted[0], "setup") if accepted else "passive"
    local = accepted[0] if accepted else answer.media[0]
    ice = IceLiteAgent(
        _required(answer.transport_value(local, "ice-ufrag"), "ice-ufrag"),
        _required(answer.transport_value(local, "ice-pwd"), "ice-pwd"),
        remote_ufrag=offer.transport_value(offered, "ice-ufrag"),
        remote_pwd=offer.transport_value(offered, "ice-pwd"),
        tiebreaker=int.from_bytes(random(8), "big"),
    )
    dtls = "client" if setup == "active" else "server"
    connection = PeerConnection(
        ice, certificate, dtls, fingerprints,
        srtp_profiles=srtp_profiles, keylog=keylog, random=random,
    )
    application = [m for m in accepted if m.kind == "application"]
    if application:
        offered_app = _offered(offer, application[0].mid)
        connection.attach_sctp(SctpTransport(
            dtls, remote_max_message_size=offered_app.max_message_size or 65536, random=random))
    return EchoSession(session_id, answer, connection, ssrc_map, random)


def _offered(offer: SessionDescription, mid: str | None) -> MediaDescription:
    """Return the offer's section that our answer's section ``mid`` answers."""
    media = offer.media_by_mid(mid) if mid is not None else None
    if media is None:
        raise SdpError(f"no offered media section has mid {mid!r}")
    return media


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise SdpError(f"the description has no a={name}")
    return value


def _random_ssrc(random: Callable[[int], bytes], taken: dict[int, int]) -> int:
    while True:
        ssrc = int.from_bytes(random(4), "big")
        if ssrc and ssrc not in taken and ssrc not in taken.values():
            return ssrc
