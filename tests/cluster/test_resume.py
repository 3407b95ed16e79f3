"""Sealed media keys and resuming a connected PeerConnection (realtime.cluster.sealing, .resume)."""

from __future__ import annotations

import base64
import os
import struct
from collections import Counter
from types import SimpleNamespace

import pytest

from realtime.cluster.records import SessionRecord
from realtime.cluster.resume import _advance_rollover, media_keys, resume
from realtime.cluster.sealing import MediaKeys, SealError, Sealer
from realtime.dtls.certificate import Certificate
from realtime.peer.echo import create_echo_session
from realtime.peer.events import Connected
from realtime.sfu.forwarder import Forwarder, PublishedStream
from realtime.srtp.context import InboundSrtpContext, OutboundSrtpContext, from_dtls_keying
from realtime.srtp.context import SrtpError
from tests.peer.test_connection import CLIENT, NOW, Client, deliver, rtp

PROFILE = "SRTP_AES128_CM_SHA1_80"
OURS = (bytes(range(16)), bytes(range(100, 114)))
THEIRS = (bytes(range(16, 32)), bytes(range(200, 214)))


def keys(**changes) -> MediaKeys:
    base = dict(profile=PROFILE, local_key=OURS[0], local_salt=OURS[1], remote_key=THEIRS[0],
                remote_salt=THEIRS[1], written=NOW, sent=((0xCAFE, 70000, 1234),))
    base.update(changes)
    return MediaKeys(**base)


def test_sealed_keys_open_only_with_the_cluster_key_and_for_their_session() -> None:
    sealer = Sealer(b"a cluster secret for the tests")
    text = sealer.seal("session-1", keys())
    assert OURS[0].hex() not in text and PROFILE not in text
    assert sealer.open("session-1", text) == keys()
    assert sealer.seal("session-1", keys()) != text          # a fresh nonce per write
    with pytest.raises(SealError):
        sealer.open("session-2", text)                       # moved to another record
    with pytest.raises(SealError):
        Sealer(b"another cluster's secret").open("session-1", text)
    raw = bytearray(base64.b64decode(text))
    raw[20] ^= 1
    with pytest.raises(SealError):
        sealer.open("session-1", base64.b64encode(bytes(raw)).decode())


def test_hostile_sealed_text_raises_only_seal_error() -> None:
    sealer = Sealer(b"a cluster secret for the tests")
    for text in ["", "!!!", "AAAA", "A" * 20000, os.urandom(40).hex(),
                 base64.b64encode(os.urandom(80)).decode()]:
        with pytest.raises(SealError):
            sealer.open("s", text)


def test_the_record_carries_the_sealed_text() -> None:
    record = SessionRecord("s", "app", "u", "p", "ru", (), "fp", "server", "[]", "node-a",
                           1.0, 2.0, sealed_media="QUJD" * 100)
    assert SessionRecord.decode(record.encode()) == record


def test_a_resumed_connection_is_connected_by_its_first_check_without_dtls() -> None:
    client = Client()
    session = create_echo_session("s1", client.offer, certificate=Certificate.generate(NOW),
                                  address="127.0.0.1", port=10000)
    connection = session.connection
    connection.resume(PROFILE, OURS, THEIRS)
    # a consent check (no USE-CANDIDATE): it selects the pair and the session is connected
    deliver(session, client.check(session, use_candidate=False))
    events = []
    while (event := connection.next_event()) is not None:
        events.append(event)
    assert [type(e) for e in events] == [Connected] and events[0].address == CLIENT
    assert connection.state == "connected"
    # the client's SRTP, keyed as on the old node, is unprotected and echoed
    theirs = from_dtls_keying(PROFILE, THEIRS, OURS)
    back = deliver(session, theirs.protect(rtp(1111, 7, pt=111)))
    assert len(back) == 1 and theirs.unprotect(back[0])[12:] == rtp(1111, 7, pt=111)[12:]
    # a DTLS record has no association here: dropped, counted
    deliver(session, bytes([22, 0xFE, 0xFD]) + bytes(30))
    assert connection.drops["dtls-resumed"] == 1


def test_our_sender_walks_its_rollover_counter_to_the_resumed_index() -> None:
    ssrc, ext = 0xCAFE, 3 * 65536 + 100
    packet = struct.pack("!BBHII", 0x80, 96, ext & 0xFFFF, 0, ssrc) + b"x" * 20
    walked = OutboundSrtpContext(PROFILE, *OURS)
    receiver = InboundSrtpContext(PROFILE, *OURS)
    # the subscriber's receiver followed the old node's stream up to just below ext
    follower = OutboundSrtpContext(PROFILE, *OURS)
    for index in range(0x7000, ext - 0x1000, 0x7000):
        receiver.unprotect(follower.protect(
            struct.pack("!BBHII", 0x80, 96, index & 0xFFFF, 0, ssrc) + b"y"))
    fresh = OutboundSrtpContext(PROFILE, *OURS)
    with pytest.raises(SrtpError):           # rollover counter 0: rejected
        receiver.unprotect(fresh.protect(packet))
    _advance_rollover(walked, ssrc, ext)
    assert receiver.unprotect(walked.protect(packet)) == packet


def test_resume_continues_each_forwarder_ahead_of_the_last_written_state() -> None:
    forwarder = Forwarder(0xCAFE, 90000, random=lambda n: bytes(n))
    connection = SimpleNamespace(srtp=None, srtp_profile=PROFILE, srtp_keying=(OURS, THEIRS),
                                 rtcp_sent=Counter())

    def fake_resume(profile, local, remote):
        connection.srtp = from_dtls_keying(profile, local, remote)

    connection.resume = fake_resume
    session = SimpleNamespace(connection=connection, transceivers=[
        SimpleNamespace(subscription=SimpleNamespace(forwarder=forwarder))])
    state = media_keys(session, NOW)
    assert state.sent == ((0xCAFE, *forwarder.continuation()),)
    written = keys(sent=((0xCAFE, 1000, 5000),), written=NOW)
    resume(session, written, NOW + 2.0)      # 2 s since the write: 2000 packets + 500
    out = forwarder.forward(
        struct.pack("!BBHII", 0x80, 96, 77, 0, 0xA) + bytes([0x10, 0x50, 0xAA]),
        PublishedStream(0xA, 90000), keyframe=True, now=NOW + 2.0)
    seq, ts = struct.unpack_from("!HI", out, 2)
    assert seq == 1000 + 2500 and ts == 5000 + 2 * 90000


def test_our_receiver_takes_the_clients_rollover_counter_from_the_written_state() -> None:
    ssrc, ext = 0xBEEF, 2 * 65536 + 40000
    client = OutboundSrtpContext(PROFILE, *THEIRS)     # the client's sender, mid-call
    for index in range(0x7000, ext + 1, 0x7000):
        client.protect(struct.pack("!BBHII", 0x80, 96, index & 0xFFFF, 0, ssrc))
    client.protect(struct.pack("!BBHII", 0x80, 96, ext & 0xFFFF, 0, ssrc))
    following = struct.pack("!BBHII", 0x80, 96, (ext + 3) & 0xFFFF, 0, ssrc) + b"media"
    packet = client.protect(following)
    with pytest.raises(SrtpError):                       # a fresh receiver guesses ROC 0
        InboundSrtpContext(PROFILE, *THEIRS).unprotect(packet)
    receiver = InboundSrtpContext(PROFILE, *THEIRS)
    _advance_rollover(OutboundSrtpContext(PROFILE, *THEIRS), ssrc, ext, receiver)
    assert receiver.unprotect(packet) == following


def test_resume_moves_our_srtcp_index_past_what_the_client_has_seen() -> None:
    from realtime.cluster.resume import _advance_srtcp

    report = b"\x80\xc9\x00\x01" + (0x5555).to_bytes(4, "big")
    old, client = OutboundSrtpContext(PROFILE, *OURS), InboundSrtpContext(PROFILE, *OURS)
    for _ in range(600):                                 # the old node's reports
        client.unprotect_rtcp(old.protect_rtcp(report))
    with pytest.raises(SrtpError):                       # index 1 again: a replay
        client.unprotect_rtcp(OutboundSrtpContext(PROFILE, *OURS).protect_rtcp(report))
    resumed = OutboundSrtpContext(PROFILE, *OURS)
    _advance_srtcp(resumed, 0x5555, 600)
    assert client.unprotect_rtcp(resumed.protect_rtcp(report)) == report


def test_the_state_round_trips_with_every_part() -> None:
    state = keys(received=((1, 2**40),), rtcp_sent=((0x5555, 600),))
    sealer = Sealer(b"a cluster secret for the tests")
    assert sealer.open("s", sealer.seal("s", state)) == state
