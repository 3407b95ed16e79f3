"""
The PeerConnection machine and echo sessions, two machines over a fake
network: a test client made of our own DTLS endpoint and SRTP contexts (and
STUN checks built with the codec) talks to an echo session.

Real peers (aiortc, Chromium) are in tests/interop; here every byte and every
clock tick is under the test's control.
"""

from __future__ import annotations

import os
import re
import struct

import pytest

from realtime.dtls.certificate import Certificate
from realtime.dtls.endpoint import DtlsEndpoint, DtlsRole, HandshakeCompleted
from realtime.net.peers import HostedSession
from realtime.peer.connection import ConnectionState, Connected, Disconnected
from realtime.peer.echo import create_echo_session, translate_rtcp
from realtime.peer.events import Connected
from realtime.srtp.context import from_dtls_keying
from realtime.stun.attributes import (
    IceControlling, Priority, UseCandidate, Username, XorMappedAddress,
)
from realtime.stun.message import StunClass, StunMessage, StunMethod, encode_message

CLIENT = ("127.0.0.1", 50000)
NOW = 1_700_000_000.0

OFFER = """v=0
o=- 42 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic: WMS s
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=ice-ufrag:CLNT
a=ice-pwd:clientpasswordclientpassword
a=fingerprint:sha-256 {fingerprint}
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=ssrc:1111 cname:test
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=ice-ufrag:CLNT
a=ice-pwd:clientpasswordclientpassword
a=fingerprint:sha-256 {fingerprint}
a=setup:actpass
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack pli
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=ssrc-group:FID 2222 3333
a=ssrc:2222 cname:test
a=ssrc:3333 cname:test
"""


def rtp(ssrc: int, seq: int, payload: bytes = b"\x90\x80" + b"x" * 20, pt: int = 96) -> bytes:
    """A minimal RTP packet: V=2, no padding/extension/CSRC, marker 0."""
    return struct.pack("!BBHII", 0x80, pt, seq, seq * 3000, ssrc) + payload


class Client:
    """A browser stand-in: ICE checks, a DTLS client and SRTP contexts of our own."""

    def __init__(self) -> None:
        self.certificate = Certificate.generate(NOW)
        self.offer = OFFER.format(fingerprint=self.certificate.fingerprint()).replace("\n", "\r\n")

    def check(self, session, *, password: str | None = None, use_candidate: bool = True) -> bytes:
        attributes = [Username(f"{session.ice.local_ufrag}:CLNT"), Priority(1845501695),
                      IceControlling(12345)]
        if use_candidate:
            attributes.append(UseCandidate())
        key = (password or session.ice.local_pwd).encode()
        return encode_message(StunMethod.BINDING, StunClass.REQUEST, os.urandom(12),
                              attributes, integrity_key=key, fingerprint=True)


def deliver(session, data: bytes, now: float = NOW, addr=CLIENT) -> list[bytes]:
    """Feed the server one datagram; return what it sends back to ``addr``."""
    session.connection.receive_datagram(data, addr, now)
    return [d for d, a in session.connection.datagrams_to_send(now) if a == addr]


@pytest.fixture()
def call():
    """An echo session connected to a client over a perfect fake network."""
    server_cert = Certificate.generate(NOW)
    client = Client()
    session = create_echo_session("s1", client.offer, certificate=server_cert,
                                  address="127.0.0.1", port=10000)
    # ICE: one authenticated check with USE-CANDIDATE selects the pair.
    [response] = deliver(session, client.check(session))
    message = StunMessage.decode(response)
    assert message.message_class is StunClass.SUCCESS
    assert message.find(XorMappedAddress).port == CLIENT[1]
    # DTLS: we are the client (the answer says setup:passive).
    answer = session.answer.serialize()
    assert "a=setup:passive" in answer
    fingerprint = re.search(r"a=fingerprint:sha-256 (\S+)", answer).group(1)
    dtls = DtlsEndpoint("client", client.certificate, [("sha-256", fingerprint)], now=NOW)
    for _ in range(10):
        for datagram in dtls.datagrams_to_send(NOW):
            for reply in deliver(session, datagram):
                dtls.receive_datagram(reply, NOW)
    events = []
    while (event := dtls.next_event()) is not None:
        events.append(event)
    done = [e for e in events if isinstance(e, HandshakeCompleted)]
    assert done, events
    srtp = from_dtls_keying(done[0].srtp_profile, done[0].local_keying, done[0].remote_keying)
    return session, client, srtp


def test_echo_answer_announces_our_sources(call) -> None:
    session, _, _ = call
    answer = session.answer.serialize()
    assert "a=ice-lite" in answer
    assert "a=group:BUNDLE 0 1" in answer
    assert set(session.ssrc_map) == {1111, 2222, 3333}
    for ours in session.ssrc_map.values():
        assert f"a=ssrc:{ours} cname:realtime-echo" in answer


def test_connected_event_after_handshake(call) -> None:
    session, _, _ = call
    event = session.connection.next_event()
    assert isinstance(event, Connected)
    assert event.address == CLIENT
    assert session.connection.state == "connected"
    assert session.connection.state is ConnectionState.CONNECTED
    assert session.connection.dtls_role is DtlsRole.SERVER
    assert event.srtp_profile == "SRTP_AEAD_AES_128_GCM"


def test_rtp_comes_back_under_our_ssrc(call) -> None:
    session, _, srtp = call
    for seq in (100, 101, 102):
        [echoed] = deliver(session, srtp.protect(rtp(2222, seq)))
        packet = srtp.unprotect(echoed)
        assert struct.unpack_from("!I", packet, 8)[0] == session.ssrc_map[2222]
        assert struct.unpack_from("!H", packet, 2)[0] == seq  # sequence numbers kept
        assert packet[12:] == rtp(2222, seq)[12:]


def test_feedback_is_retargeted_to_the_senders_source(call) -> None:
    session, _, srtp = call
    ours = session.ssrc_map[2222]
    # PLI (RFC 4585 §6.3.1): V=2 FMT=1, PT=206, length 2, sender 0x0A0B0C0D, media = our SSRC
    pli = struct.pack("!BBHII", 0x81, 206, 2, 0x0A0B0C0D, ours)
    [echoed] = deliver(session, srtp.protect_rtcp(pli))
    assert srtp.unprotect_rtcp(echoed) == struct.pack("!BBHII", 0x81, 206, 2, 0x0A0B0C0D, 2222)


def test_translate_rtcp_sender_report_and_unknown() -> None:
    # SR (RFC 3550 §6.4.1) with one report block: V=2 RC=1, PT=200, length 12 words
    sr = struct.pack("!BBHI", 0x81, 200, 12, 1111) + bytes(20) + bytes(24)
    rr = struct.pack("!BBHI", 0x80, 201, 1, 1111)
    out = translate_rtcp(sr + rr, {1111: 9999}, {9999: 1111})
    assert out == struct.pack("!BBHI", 0x80, 200, 6, 9999) + bytes(20)


def test_hostile_datagrams_are_dropped_and_counted(call) -> None:
    session, client, srtp = call
    connection = session.connection
    # first byte 0xe0: no protocol of RFC 7983 (a random byte here made the STUN/DTLS
    # counts below flaky: 0-3 is STUN, 20-63 DTLS)
    deliver(session, b"\xe0\x5a\xa5" + b"\xff" * 50)
    deliver(session, b"\x00\x01\x00\x08" + b"\x21\x12")     # truncated STUN
    assert deliver(session, client.check(session, password="wrong-password-wrong")) != []
    deliver(session, b"\x80\x60\x00\x01" + os.urandom(40))  # RTP that fails authentication
    deliver(session, b"\x17\xfe\xfd" + os.urandom(30), addr=("127.0.0.1", 1))  # DTLS, unknown addr
    assert connection.drops["stun"] == 1
    assert connection.drops["srtp"] >= 1
    assert connection.drops["dtls-unauthenticated"] == 1
    # the call goes on
    [echoed] = deliver(session, srtp.protect(rtp(1111, 7, pt=111)))
    assert struct.unpack_from("!I", srtp.unprotect(echoed), 8)[0] == session.ssrc_map[1111]


def test_media_before_keys_is_dropped() -> None:
    client = Client()
    session = create_echo_session("s2", client.offer, certificate=Certificate.generate(NOW),
                                  address="127.0.0.1", port=10000)
    deliver(session, rtp(1111, 1, pt=111))
    assert session.connection.drops["srtp-before-keys"] == 1


def test_echo_session_provides_what_the_peer_host_needs(call) -> None:
    """EchoSession has every member of net.peers.HostedSession (no optional hooks probed)."""
    session, _, _ = call
    wanted = set(HostedSession.__annotations__) | {
        name for name in vars(HostedSession) if not name.startswith("_")}
    assert wanted == {"session_id", "ice", "connection", "handle_event", "get_timer",
                      "handle_timer", "take_touched"}
    assert all(hasattr(session, name) for name in wanted)
    assert session.get_timer() is None and list(session.take_touched()) == []


def test_media_keeps_a_peer_without_consent_checks_alive(call) -> None:
    """Issue 9, defect 2: webrtcbin 1.22 (libnice, consent freshness off) sends no checks.

    Only Binding Indications and media come after the first check; the
    session must outlive the 30 s consent timeout while SRTP decrypts, and
    still end 30 s after everything falls silent.
    """
    session, _, srtp = call
    connection = session.connection
    indication = encode_message(StunMethod.BINDING, StunClass.INDICATION, os.urandom(12), [],
                                fingerprint=True)
    for second in range(1, 61):  # a 60 s call: one packet and one indication per second
        now = NOW + second
        deliver(session, srtp.protect(rtp(2222, 1000 + second)), now)
        deliver(session, indication, now)
        if (deadline := connection.get_timer()) is not None and deadline <= now:
            connection.handle_timer(now)
    assert connection.state == "connected"
    assert connection.ice.selected_address == CLIENT
    silent = NOW + 60
    while connection.state == "connected":
        deadline = connection.get_timer()
        assert deadline is not None and deadline <= silent + 30.0
        connection.handle_timer(deadline)
    assert connection.state == "failed" and deadline == silent + 30.0
    assert any(isinstance(e, Disconnected) and "consent" in e.reason
               for e in iter(connection.next_event, None))


def test_undecryptable_media_is_no_proof_of_life(call) -> None:
    session, _, srtp = call
    connection = session.connection
    forged = bytearray(srtp.protect(rtp(2222, 7)))
    forged[-1] ^= 0xFF  # the authentication tag no longer verifies
    for second in range(1, 40):
        deliver(session, bytes(forged), NOW + second)
    connection.handle_timer(NOW + 30.0)
    assert connection.state == "failed" and connection.drops["srtp"] == 39
