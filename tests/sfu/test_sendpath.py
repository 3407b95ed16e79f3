"""
The bound per-subscriber send path (realtime/sfu/sendpath.py) against the reference.

The same packets go through ``Forwarder.forward`` + ``send_rtp`` (the
readable path) and through ``bind_send_path`` on a twin forwarder; every
datagram, every counter and the forwarder's state must be identical:
simulcast switches on key frames, VP8 PictureID/TL0PICIDX renumbering,
publisher gaps, duplicates, late and reordered packets, an unmapped payload
type, a publisher restart, RTX answers to NACKs afterwards, transport-cc
stamping and the extension plan with an appended mid.  A second test sends
through a real, DTLS-connected PeerConnection (our echo session) and
requires the SRTP datagrams to decrypt to the reference's RTP octets.

The bound path has two ways of doing a copy's byte work: Python, and the C
helper (``realtime/srtp/_fanout.c``, :mod:`realtime.srtp.fanout`).  Every
test here runs both (``fast_copy``); the C one only where the helper is
built (required under ``REALTIME_INTEROP=required``), and
``test_c_path_sends_the_reference_srtp_datagrams`` compares the SRTP octets
themselves, protected by a twin of the connection's outbound context.
"""

from __future__ import annotations

import random as stdlib_random

import pytest

from realtime.errors import LocalProtocolError
from realtime.media.keyframes import vp8_keyframe
from realtime.rtp.extensions import ExtensionUri, HeaderExtension
from realtime.rtp.packet import RtpPacket
from realtime.sfu.estimate import SubscriberEstimate
from realtime.sfu.forwarder import ExtensionPlan, Forwarder, PublishedStream
from realtime.sfu.sendpath import KEYFRAME_WANTED, bind_send_path
from realtime.srtp import fanout, from_dtls_keying

from tests.conftest import require

from tests.peer.test_connection import CLIENT, NOW, call  # noqa: F401  (fixture)

PUBLISHER_EXT = {1: ExtensionUri.MID, 2: ExtensionUri.ABS_SEND_TIME, 3: ExtensionUri.TRANSPORT_WIDE_CC,
                 4: ExtensionUri.RTP_STREAM_ID}
SUBSCRIBER_EXT = {9: ExtensionUri.MID, 3: ExtensionUri.ABS_SEND_TIME, 5: ExtensionUri.TRANSPORT_WIDE_CC}


def vp8_payload(picture_id: int, tl0: int, key: bool) -> bytes:
    """VP8 descriptor X=1 S=1 PID=0; I=1 (15-bit PictureID) L=1 (TL0PICIDX); then a payload header."""
    header = bytes([0x90, 0xC0, 0x80 | (picture_id >> 8 & 0x7F), picture_id & 0xFF, tl0 & 0xFF])
    return header + (b"\x50\xaa" if key else b"\x51\xbb") + bytes(40)


def packet(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 96, rid: str = "f",
           marker: bool = False) -> bytes:
    extensions = [HeaderExtension(1, b"0"), HeaderExtension(2, b"\x01\x02\x03"),
                  HeaderExtension(3, (seq & 0xFFFF).to_bytes(2, "big")),
                  HeaderExtension(4, rid.encode())]
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, marker=marker, payload=payload,
                     padding_size=4 if seq % 5 == 0 else 0,
                     padding_data=bytes(3) if seq % 5 == 0 else b"").with_extensions(extensions).encode()


class Wire:
    """A connection that is not a PeerConnection: the bound path calls its send_rtp."""

    srtp = "keys"

    def __init__(self) -> None:
        self.rtp: list[bytes] = []

    def send_rtp(self, data: bytes) -> bool:
        self.rtp.append(bytes(data))
        return True


class Session:
    def __init__(self, connection) -> None:
        self.connection = connection
        self.touched: set = set()

    def send_rtp(self, data: bytes) -> bool:
        if self.connection.send_rtp(data):
            self.touched.add(self)
            return True
        return False


def twin() -> tuple[Forwarder, SubscriberEstimate]:
    estimate = SubscriberEstimate()
    plan = ExtensionPlan.between(PUBLISHER_EXT, SUBSCRIBER_EXT, mid="7", transport_cc=5)
    forwarder = Forwarder(0xD00D, 90000, payload_types={96: 100, 111: 111}, extensions=plan,
                          rtx_ssrc=0xBEEF, rtx_payload_types={100: 101},
                          require_keyframe=True, random=lambda n: bytes(range(3, 3 + n)),
                          vp8_payload_types={96}, stamp=estimate.stamp)
    return forwarder, estimate


def traffic(rng: stdlib_random.Random):
    """(packet, stream, keyframe, now): three layers, switches, loss, duplicates, reordering."""
    streams = {rid: PublishedStream(0x100 + i, 90000, vp8_keyframe, rid)
               for i, rid in enumerate("fhq")}
    base = {"f": 65000, "h": 100, "q": 30000}
    pictures = {"f": 32700, "h": 5, "q": 900}
    sequence = "f" * 40 + "h" * 40 + "q" * 30 + "f" * 40
    out = []
    for frame, rid in enumerate(sequence):
        stream = streams[rid]
        key = frame % 20 == 7 or frame == 0
        for part in range(2):
            seq = base[rid] + 2 * frame + part
            if rid == "q" and frame == 100:
                seq += 5000  # a publisher restart (beyond MAX_JUMP)
            pt = 111 if frame == 60 and part == 1 else (97 if frame == 61 else 96)  # 97: unmapped
            data = packet(seq, 3000 * frame + 11 * ord(rid), stream.ssrc,
                          vp8_payload(pictures[rid] + frame, frame // 3, key and part == 0),
                          pt=pt, rid=rid, marker=part == 1)
            out.append([data, stream, key and part == 0, NOW + frame / 30])
    # loss, duplicates and reordering on top
    mixed = []
    for item in out:
        roll = rng.random()
        if roll < 0.05:
            continue
        mixed.append(item)
        if roll > 0.95:
            mixed.append(list(item))
        if roll > 0.9 and len(mixed) > 2 and rng.random() < 0.5:
            mixed[-1], mixed[-2] = mixed[-2], mixed[-1]
    for item in mixed:
        item[2] = item[1].receive(item[0]) or item[2]
    return mixed


def reference_send(forwarder: Forwarder, session: Session, item) -> int:
    rewritten = forwarder.forward(*item)
    if rewritten is None:
        return KEYFRAME_WANTED if forwarder.take_keyframe_wanted() else 0
    out = bytes(rewritten)
    if session.send_rtp(out):
        return len(out)
    forwarder.drops["not-sent"] += 1
    return 0


def state(forwarder: Forwarder, estimate: SubscriberEstimate) -> tuple:
    s = forwarder.sender
    return (forwarder.forwarded, forwarder.dropped, dict(forwarder.drops), forwarder.retransmitted,
            forwarder.unanswered, s.packet_count, s.octet_count, s.last_rtp_timestamp,
            forwarder._out_ext, forwarder._out_ts, forwarder._seen, forwarder._span,
            list(forwarder.segments), forwarder.vp8.picture_delta, forwarder.vp8.tl0_delta,
            estimate.stamped, bytes(estimate._sent), bytes(estimate._sizes),
            bytes(estimate._seqs))


@pytest.fixture(params=["python", "c"])
def fast_copy(request):
    """The bound path's byte work: None (Python) or the C helper's copy_protect."""
    if request.param == "python":
        return None
    require(fanout.AVAILABLE, "the C helper realtime/srtp/_fanout.c is not built")
    return fanout.copy_protect


def test_bound_path_sends_the_reference_octets(fast_copy) -> None:
    for seed in range(5):
        items = traffic(stdlib_random.Random(seed))
        ref_forwarder, ref_estimate = twin()
        fast_forwarder, fast_estimate = twin()
        ref_wire, fast_wire = Wire(), Wire()
        ref_session, fast_session = Session(ref_wire), Session(fast_wire)
        send = bind_send_path(fast_forwarder, fast_session, fast_copy)
        ref_results = [reference_send(ref_forwarder, ref_session, item) for item in items]
        fast_results = [send(*item) for item in items]
        assert fast_results == ref_results
        assert fast_wire.rtp == ref_wire.rtp
        assert len(ref_forwarder.segments) >= 4 and ref_forwarder.vp8.picture_delta
        assert KEYFRAME_WANTED in ref_results
        assert state(fast_forwarder, fast_estimate) == state(ref_forwarder, ref_estimate)
        # NACKs afterwards: RTX from the right segments, stamped on both
        sent = [int.from_bytes(p[2:4], "big") for p in ref_wire.rtp]
        wanted = sent[::7] + [(sent[-1] + 3) & 0xFFFF]
        now = NOW + 10
        assert fast_forwarder.retransmit(wanted, now) == ref_forwarder.retransmit(wanted, now)
        assert state(fast_forwarder, fast_estimate) == state(ref_forwarder, ref_estimate)


def test_bound_path_through_a_connected_peer_connection(call, fast_copy) -> None:  # noqa: F811
    echo, _client, client_srtp = call
    connection = echo.connection
    connection.datagrams_to_send(NOW)
    items = traffic(stdlib_random.Random(7))
    ref_forwarder, _ = twin()
    fast_forwarder, _ = twin()
    ref_wire = Wire()
    ref_session = Session(ref_wire)
    fast_session = Session(connection)
    send = bind_send_path(fast_forwarder, fast_session, fast_copy)
    for item in items:
        assert send(*item) == reference_send(ref_forwarder, ref_session, item)
    datagrams = connection.datagrams_to_send(NOW)
    assert {addr for _, addr in datagrams} == {CLIENT}
    assert [client_srtp.unprotect(d) for d, _ in datagrams] == ref_wire.rtp
    # an in-order packet on the bound path marks the session for the flush (PeerHost)
    fast_session.touched.clear()
    data, stream, _, now = items[-1]
    seq = int.from_bytes(data[2:4], "big") + 1
    nxt = bytes(data[:2]) + (seq & 0xFFFF).to_bytes(2, "big") + bytes(data[4:])
    assert send(nxt, stream, False, now) > 0
    assert fast_session.touched == {fast_session}
    assert len(connection.datagrams_to_send(NOW)) == 1


def twin_protect(connection):
    """A second SrtpSession with the connection's keys: the reference's own protect."""
    return from_dtls_keying(connection.srtp_profile, *connection.srtp_keying)


@pytest.mark.parametrize("seed", range(4))
def test_c_path_sends_the_reference_srtp_datagrams(call, fast_copy, seed) -> None:  # noqa: F811
    """SRTP octets, counters and forwarder state equal the reference's, packet by packet.

    The traffic has simulcast switches (VP8 PictureID/TL0PICIDX renumbered
    after them), gaps, duplicates, reordering, an unmapped payload type, a
    restart, padding and transport-cc stamping; RTX answers to NACKs follow.
    """
    echo, _client, client_srtp = call
    connection = echo.connection
    connection.datagrams_to_send(NOW)
    protect = twin_protect(connection).protect
    items = traffic(stdlib_random.Random(seed))
    ref_forwarder, ref_estimate = twin()
    fast_forwarder, fast_estimate = twin()
    ref_wire = Wire()
    ref_session = Session(ref_wire)
    fast_session = Session(connection)
    send = bind_send_path(fast_forwarder, fast_session, fast_copy)
    results = [(send(*item), reference_send(ref_forwarder, ref_session, item)) for item in items]
    assert [fast for fast, _ in results] == [ref for _, ref in results]
    counted = connection.packets_sent, connection.bytes_sent
    datagrams = [d for d, addr in connection.datagrams_to_send(NOW)]
    assert datagrams == [protect(rtp) for rtp in ref_wire.rtp]
    assert (connection.packets_sent - counted[0], connection.bytes_sent - counted[1]) == \
        (len(datagrams), sum(map(len, datagrams)))
    assert [client_srtp.unprotect(d) for d in datagrams] == ref_wire.rtp
    assert fast_forwarder.vp8.picture_delta  # the renumbering was exercised
    assert state(fast_forwarder, fast_estimate) == state(ref_forwarder, ref_estimate)
    sent = [int.from_bytes(p[2:4], "big") for p in ref_wire.rtp]
    wanted = sent[::5]
    assert fast_forwarder.retransmit(wanted, NOW + 10) == ref_forwarder.retransmit(wanted, NOW + 10)
    assert state(fast_forwarder, fast_estimate) == state(ref_forwarder, ref_estimate)


def test_maximal_and_oversized_packets(call, fast_copy) -> None:  # noqa: F811
    """The largest RTP packet SRTP takes is sent alike; one octet more is refused alike."""
    echo, _client, client_srtp = call
    connection = echo.connection
    connection.datagrams_to_send(NOW)
    protect = twin_protect(connection).protect
    stream = PublishedStream(0x100, 90000, vp8_keyframe, "f")
    ref_forwarder, _ = twin()
    fast_forwarder, _ = twin()
    send = bind_send_path(fast_forwarder, Session(connection), fast_copy)
    ref_session = Session(Wire())
    key = packet(1000, 0, 0x100, vp8_payload(7, 1, True))
    assert send(key, stream, True, NOW) == reference_send(ref_forwarder, ref_session,
                                                          [key, stream, True, NOW])
    connection.datagrams_to_send(NOW)
    plan = ref_forwarder.extensions
    for seq, extra in ((1001, 0), (1002, 1)):
        # a rewritten packet of exactly MAX_RTP_SIZE octets, then one more
        short = packet(seq, 90 * seq, 0x100, vp8_payload(seq, 1, False))
        grow = fanout.MAX_RTP_SIZE + extra - len(plan.apply(short))
        data = packet(seq, 90 * seq, 0x100, vp8_payload(seq, 1, False) + bytes(grow))
        assert len(plan.apply(data)) == fanout.MAX_RTP_SIZE + extra
        if not extra:
            assert send(data, stream, False, NOW) == \
                reference_send(ref_forwarder, ref_session, [data, stream, False, NOW])
            counted = connection.packets_sent, connection.bytes_sent
            [(datagram, _)] = connection.datagrams_to_send(NOW)
            assert (connection.packets_sent, connection.bytes_sent) == \
                (counted[0] + 1, counted[1] + len(datagram))
            rtp = client_srtp.unprotect(datagram)
            assert len(rtp) == fanout.MAX_RTP_SIZE and rtp == ref_session.connection.rtp[-1]
            assert datagram == protect(rtp)
        else:
            with pytest.raises(LocalProtocolError, match="cannot protect RTP packet"):
                send(data, stream, False, NOW)
            with pytest.raises(LocalProtocolError, match="cannot protect RTP packet"):
                twin_protect(connection).protect(plan.apply(data))
            assert connection.datagrams_to_send(NOW) == []


def test_c_helper_checks_every_offset() -> None:
    """Hostile sizes and offsets raise; a truncated VP8 descriptor is left as the reference does."""
    helper = fanout.helper()
    require(helper is not None, "the C helper realtime/srtp/_fanout.c is not built")
    from realtime.media.vp8 import rewrite_picture_fields
    keys = (bytes(range(16)), bytes(range(14)))
    session = from_dtls_keying("SRTP_AES128_CM_SHA1_80", keys, keys)
    address = session.fast_protect.address
    ok = bytes([0x80, 96]) + bytes(10) + bytes(20)
    assert len(helper.copy_protect(address, ok, 1, 2, 3, 96, -1, 0, 0, -1, 0)) == len(ok) + 10
    with pytest.raises(ValueError):
        helper.copy_protect(address, bytes(11), 1, 2, 3, 96, -1, 0, 0, -1, 0)
    with pytest.raises(ValueError):
        helper.copy_protect(address, bytes(fanout.MAX_RTP_SIZE + 1), 1, 2, 3, 96, -1, 0, 0, -1, 0)
    with pytest.raises(ValueError):
        helper.copy_protect(address, ok, 1, 2, 3, 96, -1, 0, 0, len(ok) - 1, 0)
    with pytest.raises(TypeError):
        helper.copy_protect(address, bytearray(ok), 1, 2, 3, 96, -1, 0, 0, -1, 0)
    # VP8 descriptors cut at every length, at the packet's end: rewrite_picture_fields's octets
    full = bytes([0x90, 0xC0, 0x80 | 0x12, 0x34, 0x56])
    rx = from_dtls_keying("SRTP_AES128_CM_SHA1_80", keys, keys)
    seq = 4
    for cut in range(len(full) + 1):
        for offset in (12, 12 + cut, 10 ** 6):
            seq += 1
            rtp = bytes([0x80, 96]) + bytes(10) + full[:cut]
            expected = bytearray(rtp)
            rewrite_picture_fields(expected, offset, 100, 7)
            expected[4:12] = (6).to_bytes(4, "big") + (7).to_bytes(4, "big")
            expected[2:4] = seq.to_bytes(2, "big")
            out = helper.copy_protect(address, rtp, seq, 6, 7, 96, offset, 100, 7, -1, 0)
            assert rx.unprotect(out) == bytes(expected)


def test_subscribers_of_one_plan_send_the_reference_srtp(call, fast_copy) -> None:  # noqa: F811
    """Three subscribers of one plan on one connection (the server's case: the first copy of a
    packet makes the plan's template, the others reuse it); one subscriber's temporal filter
    turns on half-way (those packets take the reference inside the bound path)."""
    from realtime.sfu.temporal import TemporalFilter

    echo, _client, _ = call
    connection = echo.connection
    connection.datagrams_to_send(NOW)
    protect = twin_protect(connection).protect
    plan = ExtensionPlan.between(PUBLISHER_EXT, SUBSCRIBER_EXT, mid="7", transport_cc=5)

    def forwarder(ssrc: int, temporal=None) -> tuple[Forwarder, SubscriberEstimate]:
        estimate = SubscriberEstimate()
        return Forwarder(ssrc, 90000, payload_types={96: 100, 111: 111}, extensions=plan,
                         require_keyframe=True, random=lambda n: bytes(range(3, 3 + n)),
                         vp8_payload_types={96}, stamp=estimate.stamp,
                         temporal=temporal), estimate

    ssrcs = (0xA1, 0xA2, 0xA3)
    filters = {ssrc: TemporalFilter() for ssrc in ssrcs}
    refs = [forwarder(ssrc, filters[ssrc] if ssrc == 0xA2 else None) for ssrc in ssrcs]
    fasts = [forwarder(ssrc, TemporalFilter() if ssrc == 0xA2 else None) for ssrc in ssrcs]
    ref_wire = Wire()
    ref_session, fast_session = Session(ref_wire), Session(connection)
    sends = [bind_send_path(f, fast_session, fast_copy) for f, _ in fasts]
    items = traffic(stdlib_random.Random(11))
    stream = PublishedStream(0x200, 90000, vp8_keyframe, "f")
    for frame in range(60):  # then L1T2 frames (T=1 in the descriptor), S=1 on the first packet
        tid = frame % 2
        for part in range(2):
            descriptor = bytes([0x90 if part == 0 else 0x80, 0xE0, 0x80, frame, frame // 2,
                                tid << 6 | (0x20 if tid else 0)])
            data = packet(7000 + 2 * frame + part, 3000 * frame, 0x200,
                          descriptor + (b"\x50\xaa" if frame == 0 else b"\x51\xbb") + bytes(40),
                          marker=part == 1)
            items.append([data, stream, stream.receive(data) or (frame == 0 and part == 0),
                          NOW + 10 + frame / 30])
    for number, item in enumerate(items):
        if number == len(items) - 60:  # the allocator thins the middle subscriber's layers
            refs[1][0].temporal.set_target(0)
            fasts[1][0].temporal.set_target(0)
        for send, (ref, _) in zip(sends, refs):
            assert send(*item) == reference_send(ref, ref_session, item)
    datagrams = [d for d, addr in connection.datagrams_to_send(NOW)]
    assert datagrams == [protect(rtp) for rtp in ref_wire.rtp]
    for (fast, fast_estimate), (ref, ref_estimate) in zip(fasts, refs):
        assert state(fast, fast_estimate) == state(ref, ref_estimate)
    assert fasts[1][0].drops["temporal-layer"] > 20  # the filter was exercised


def test_the_c_sender_stamps_in_the_ring_or_calls_stamp_next(call, fast_copy) -> None:  # noqa: F811
    """Where the estimate's ring is its own three arrays the C sender does stamp_next's
    bookkeeping itself; a stamp hook of another kind is called (same numbers either way)."""
    from realtime.sfu.sendpath import _ring_of

    estimate = SubscriberEstimate()
    assert _ring_of(estimate.stamp_next) == (estimate, estimate._sent, estimate._sizes,
                                             estimate._seqs)

    class Counting(SubscriberEstimate):
        calls = 0

        def stamp_next(self, size: int, now: float) -> int:
            Counting.calls += 1
            return super().stamp_next(size, now)

    assert _ring_of(Counting().stamp_next) is None
    assert _ring_of(SubscriberEstimate(transport_cc=False).stamp_next) is None
    echo, _client, _ = call
    connection = echo.connection
    connection.datagrams_to_send(NOW)
    protect = twin_protect(connection).protect
    plan = ExtensionPlan.between(PUBLISHER_EXT, SUBSCRIBER_EXT, mid="7", transport_cc=5)
    ref_estimate, fast_estimate = SubscriberEstimate(), Counting()
    same = {"payload_types": {96: 100, 111: 111}, "extensions": plan, "require_keyframe": True,
            "vp8_payload_types": {96}, "random": lambda n: bytes(range(3, 3 + n))}
    ref = Forwarder(0xB1, 90000, stamp=ref_estimate.stamp, **same)
    fast = Forwarder(0xB1, 90000, stamp=fast_estimate.stamp, **same)
    ref_wire = Wire()
    send = bind_send_path(fast, Session(connection), fast_copy)
    items = traffic(stdlib_random.Random(5))
    for item in items:
        assert send(*item) == reference_send(ref, Session(ref_wire), item)
    assert [d for d, _ in connection.datagrams_to_send(NOW)] == [protect(r) for r in ref_wire.rtp]
    assert state(fast, fast_estimate) == state(ref, ref_estimate)
    assert Counting.calls == fast_estimate.stamped  # every number through the method
