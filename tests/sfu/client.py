"""
A scripted WebRTC client for SFU unit tests: SDP built with realtime/sdp, no sockets.

:func:`push_offer` makes the offer a browser makes for sendonly tracks;
:func:`answer_sfu_offer` answers an SFU offer the way a browser does
(``a=setup:active``, receive everything offered); :class:`Wire` stands in
for a connected PeerConnection and records what the SFU sends.
"""

from __future__ import annotations

import struct

from realtime.dtls.certificate import Certificate
from realtime.sdp import (
    Fingerprint, LocalTransport, MediaChoice, MediaOffer, RtpStream, SessionDescription,
    create_answer, create_offer,
)
from realtime.sdp.codecs import OPUS, VP8
from realtime.sdp.offer import DEFAULT_AUDIO_EXTENSIONS, DEFAULT_VIDEO_EXTENSIONS

CLIENT = LocalTransport.host(
    "clientufrag", "clientpassword0123456789", Fingerprint("sha-256", ":".join(["AB"] * 32)),
    "127.0.0.1", 50000, ice_lite=False, setup="active")

_CERTIFICATE: list[Certificate] = []


def certificate() -> Certificate:
    """Return one DTLS certificate shared by the tests (generating it is slow-ish)."""
    if not _CERTIFICATE:
        _CERTIFICATE.append(Certificate.generate(0.0))
    return _CERTIFICATE[0]


def stream(ssrc: int, rtx: int | None = None, name: str = "t") -> RtpStream:
    """Return a client RTP source with cname ``client``."""
    return RtpStream(ssrc, "client", "stream", name, rtx)


def push_offer(*media: MediaOffer, transport: LocalTransport = CLIENT) -> str:
    """Return a client offer (actpass) for ``media``."""
    return create_offer(transport, media).serialize()


def audio(mid: str, ssrc: int, direction: str = "sendonly") -> MediaOffer:
    """Return a client audio section sending Opus from ``ssrc``."""
    return MediaOffer(mid, "audio", direction, stream(ssrc, name=f"a{mid}"), (OPUS,),
                      DEFAULT_AUDIO_EXTENSIONS)


def video(mid: str, ssrc: int, rtx: int | None = None, direction: str = "sendonly",
          rids: tuple[str, ...] = ()) -> MediaOffer:
    """Return a client video section sending VP8 (+RTX at 97) from ``ssrc``."""
    codecs = (VP8, VP8.rtx(97)) if rtx else (VP8,)
    return MediaOffer(mid, "video", direction, stream(ssrc, rtx, f"v{mid}") if ssrc else None,
                      codecs, DEFAULT_VIDEO_EXTENSIONS)


def answer_sfu_offer(offer: SessionDescription, transport: LocalTransport = CLIENT,
                     reject: tuple[str, ...] = (), transport_cc: bool = False) -> str:
    """Answer an SFU offer as a browser would: receive what is sent, send where asked
    (``transport_cc``: keep transport-cc, as browsers do)."""
    choices = {m.mid: MediaChoice(accept=m.mid not in reject,
                                  direction="recvonly" if m.direction == "sendonly" else None,
                                  transport_cc=transport_cc)
               for m in offer.media}
    return create_answer(offer, transport, choices).serialize()


def rtp(ssrc: int, seq: int, pt: int = 111, payload: bytes = b"\x00" * 20,
        ts: int = 1000) -> bytes:
    """Return a plain RTP packet without extensions."""
    return struct.pack("!BBHII", 0x80, pt, seq, ts, ssrc) + payload


#: a VP8 payload that starts a key frame (S=1, PID=0; P bit clear)
VP8_KEY = b"\x10\x00\x00\x00\x9d\x01\x2a" + b"\x00" * 13
#: a VP8 payload of a delta frame (P bit set)
VP8_DELTA = b"\x10\x01" + b"\x00" * 18


class Wire:
    """Stand in for a connected PeerConnection: record what is sent."""

    sctp = None  # no DataChannel transport
    srtp = "keys"  # connected: DTLS done (None would hold media back)

    def __init__(self, dtls_role: str = "server") -> None:
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.state = "connected"
        self.dtls_role = dtls_role

    def send_rtp(self, packet: bytes) -> bool:
        self.rtp.append(bytes(packet))
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        self.rtcp.append(bytes(packet))
        return True
