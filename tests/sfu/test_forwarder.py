"""Per-subscriber RTP rewriting (RFC 7667 §3.7): continuity across switches, extensions, RTX."""

from __future__ import annotations

import random as stdlib_random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError, Truncated
from realtime.media.keyframes import vp8_keyframe
from realtime.media.simulcast import LayerSelector, SimulcastLayers, SimulcastPreferences
from realtime.rtp.extensions import ExtensionUri, HeaderExtension
from realtime.rtp.packet import RtpPacket
from realtime.sfu.forwarder import ExtensionPlan, Forwarder, PublishedStream

VP8_KEY = bytes([0x10, 0x50, 0xAA])  # S=1 PID=0; payload header P=0
VP8_DELTA = bytes([0x10, 0x51, 0xBB])  # P=1


def zeros(n: int) -> bytes:
    """A deterministic RNG: initial seq 0, initial timestamp 0, RTX seq 0."""
    return bytes(n)


def rtp(
    seq: int, ts: int, ssrc: int = 0xA, payload: bytes = VP8_DELTA, pt: int = 96, **kw
) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload=payload, **kw).encode()


def test_annotated_rewrite_of_one_packet() -> None:
    source = PublishedStream(0x11223344, 90000)
    forwarder = Forwarder(0xCAFEBABE, 90000, payload_types={96: 100}, random=zeros)
    packet = bytes.fromhex(
        "80"  # V=2 P=0 X=0 CC=0
        "e0"  # M=1 PT=96
        "1234"  # sequence number 0x1234
        "00010000"  # timestamp 65536
        "11223344"  # publisher SSRC
        "deadbeef"  # payload
    )
    out = forwarder.forward(packet, source, keyframe=False, now=0.0)
    assert out == bytes.fromhex(
        "80"  # unchanged
        "e4"  # M=1 kept, PT=100 (the subscriber's number for the codec)
        "0000"  # first outgoing sequence number (RNG gave 0)
        "00000000"  # first outgoing timestamp (RNG gave 0)
        "cafebabe"  # the subscriber's SSRC
        "deadbeef"  # payload untouched
    )
    # the next packet keeps the publisher's spacing: +1 seq, +3000 ts
    out = forwarder.forward(rtp(0x1235, 65536 + 3000, 0x11223344), source, False, 0.033)
    assert out[2:8] == bytes.fromhex("000100000bb8")


def test_unmapped_payload_type_is_dropped_and_counted() -> None:
    source = PublishedStream(1, 90000)
    forwarder = Forwarder(2, 90000, payload_types={96: 96}, random=zeros)
    assert forwarder.forward(rtp(1, 0, 1, pt=127), source, False, 0.0) is None
    assert forwarder.dropped == 1


def test_truncated_packet_raises_decode_error() -> None:
    forwarder = Forwarder(2, 90000)
    with pytest.raises(Truncated, match="RTP header truncated: need 12 bytes, have 5"):
        forwarder.forward(b"\x80\x60\x00\x01\x00", PublishedStream(1, 90000), False, 0.0)
    with pytest.raises(Truncated):
        PublishedStream(1, 90000).receive(b"\x80")


def test_video_waits_for_a_keyframe_then_keeps_publisher_gaps() -> None:
    source = PublishedStream(0xA, 90000, vp8_keyframe)
    forwarder = Forwarder(0xB, 90000, require_keyframe=True, random=zeros)
    assert forwarder.forward(rtp(10, 0), source, False, 0.0) is None
    assert forwarder.keyframe_wanted
    assert forwarder.take_keyframe_wanted() and not forwarder.take_keyframe_wanted()  # ask once
    assert forwarder.forward(rtp(10, 0), source, False, 0.0) is None
    assert not forwarder.take_keyframe_wanted()
    out = [
        forwarder.forward(
            rtp(s, 3000 * s, payload=VP8_KEY if s == 11 else VP8_DELTA), source, s == 11, 0.0
        )
        for s in (11, 12, 14, 15, 13, 13, 10)
    ]
    seqs = [None if o is None else o[2] << 8 | o[3] for o in out]
    # 13 went missing at the publisher and is still a gap; when it arrives late it fills the gap;
    # the duplicate and the packet from before the segment (10) are dropped.
    assert seqs == [0, 1, 3, 4, 2, None, None]
    assert not forwarder.keyframe_wanted and forwarder.dropped == 4


def test_publisher_restart_is_seamless() -> None:
    first = PublishedStream(0xA, 48000)
    second = PublishedStream(0xB, 48000)
    forwarder = Forwarder(0xC, 48000, random=zeros)
    for i in range(5):
        forwarder.forward(rtp(100 + i, 960 * i, 0xA, pt=111), first, False, i * 0.02)
    # new SSRC, unrelated sequence and timestamp spaces, 100 ms later
    out = forwarder.forward(rtp(40000, 123456789, 0xB, pt=111), second, False, 0.18)
    assert out[2:4] == (5).to_bytes(2, "big")
    assert int.from_bytes(out[4:8], "big") == 960 * 4 + 0.1 * 48000
    # a jump beyond MAX_JUMP in the same SSRC is a restart too
    out = forwarder.forward(rtp(60000, 5, 0xB, pt=111), second, False, 0.2)
    assert out[2:4] == (6).to_bytes(2, "big")
    assert len(forwarder.segments) == 3


def run_switches(order: str, key_offsets: dict[str, int]):
    """Feed three layers for 4 s; the preference walks through ``order`` once a second.

    Each layer has a key frame every 30 frames, at its own offset; 2 packets per frame.
    """
    layers = SimulcastLayers(["f", "h", "q"])
    streams = {
        rid: PublishedStream(0x100 + i, 90000, vp8_keyframe, rid) for i, rid in enumerate("fhq")
    }
    selector = LayerSelector(layers, SimulcastPreferences(order[0]))
    forwarder = Forwarder(0xD, 90000, require_keyframe=True, random=zeros)
    sent = []
    base_seq = {"f": 1000, "h": 30000, "q": 65500}
    for frame in range(120):
        now = frame / 30
        selector_pref = order[min(frame // 30, len(order) - 1)]
        if selector.preferences.preferred_rid != selector_pref:
            selector.set_preferences(SimulcastPreferences(selector_pref))
        for rid, stream in streams.items():
            key = (frame - key_offsets[rid]) % 30 == 0
            for part in range(2):
                seq = base_seq[rid] + 2 * frame + part
                data = rtp(
                    seq,
                    3000 * frame + 77 * ord(rid),
                    stream.ssrc,
                    VP8_KEY if key and part == 0 else VP8_DELTA,
                )
                is_key = stream.receive(data)
                layers.packet_received(rid, len(data), now)
                if selector.accept(rid, is_key, now):
                    out = forwarder.forward(data, stream, is_key, now)
                    if out is not None:
                        sent.append(
                            (rid, out[2] << 8 | out[3], int.from_bytes(out[4:8], "big"), frame)
                        )
    return sent, selector, forwarder


def test_switches_f_h_q_f_are_continuous() -> None:
    sent, selector, forwarder = run_switches("fhqf", {"f": 0, "h": 7, "q": 19})
    assert [rid for rid, *_ in sent][:1] == ["f"]
    # which layer each frame came from, at the switch points
    switches = [
        (sent[i][0], sent[i][3]) for i in range(len(sent)) if i == 0 or sent[i][0] != sent[i - 1][0]
    ]
    assert switches == [("f", 0), ("h", 37), ("q", 79), ("f", 90)]
    assert selector.switches == 4 and len(forwarder.segments) == 4
    seqs = [seq for _, seq, _, _ in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))  # no gap, wraps included
    stamps = [ts for _, _, ts, _ in sent]
    assert all(0 <= (b - a) & 0xFFFFFFFF < 0x80000000 for a, b in zip(stamps, stamps[1:]))
    # at each switch the timestamp advances by the wall time since the last packet sent, at least 1:
    # frames 37 and 79 switch within one frame time (f's packets of frame 37 went out first),
    # frame 90 comes one frame (1/30 s = 3000) after q's last packet of frame 89
    index = [i for i in range(1, len(sent)) if sent[i][0] != sent[i - 1][0]]
    assert [(stamps[i] - stamps[i - 1]) & 0xFFFFFFFF for i in index] == [1, 1, 3000]


def test_retransmission_from_the_right_segment_plain_and_rtx() -> None:
    sent, _, forwarder = run_switches("fhqf", {"f": 0, "h": 7, "q": 19})
    by_seq = {seq: (rid, frame) for rid, seq, _, frame in sent}
    # pick a packet of each layer and ask again
    wanted = [next(seq for seq, (rid, _) in by_seq.items() if rid == layer) for layer in "fhq"]
    resent = forwarder.retransmit(wanted, 5.0)
    assert [r[2] << 8 | r[3] for r in resent] == wanted
    assert all(r[8:12] == (0xD).to_bytes(4, "big") for r in resent)
    assert forwarder.unanswered == 0 and forwarder.retransmitted == 3


def test_rtx_layout() -> None:
    source = PublishedStream(0xA, 90000)
    forwarder = Forwarder(
        0xB, 90000, payload_types={96: 96}, rtx_ssrc=0xB0, rtx_payload_types={96: 97}, random=zeros
    )
    original = (
        RtpPacket(96, 500, 9000, 0xA, marker=True, payload=b"frame")
        .with_extensions([HeaderExtension(3, b"\x01\x02")])
        .encode()
    )
    source.receive(original)
    first = forwarder.forward(original, source, False, 0.0)
    (rtx,) = forwarder.retransmit([0], 0.1)
    assert rtx[:1] == first[:1]  # V=2, X=1: the extension block is carried over
    assert rtx[1] == 0x80 | 97  # marker kept, RTX payload type
    assert rtx[2:4] == b"\x00\x01"  # the RTX stream's own sequence number
    assert rtx[4:8] == first[4:8]  # the original's (rewritten) timestamp
    assert rtx[8:12] == b"\x00\x00\x00\xb0"  # the RTX SSRC
    assert rtx[12:20] == first[12:20]  # extension block unchanged
    assert rtx[20:22] == b"\x00\x00"  # OSN: the outgoing sequence number the subscriber NACKed
    assert rtx[22:] == b"frame"
    assert forwarder.retransmit([1, 300], 0.1) == [] and forwarder.unanswered == 2



def test_subscribers_that_negotiated_alike_share_one_plan():
    """One plan object per distinct plan: the fan-out rewrites a packet's block once per plan."""
    publisher = {1: ExtensionUri.MID, 2: ExtensionUri.ABS_SEND_TIME}
    subscriber = {4: ExtensionUri.MID, 2: ExtensionUri.ABS_SEND_TIME}
    a = ExtensionPlan.between(publisher, subscriber, mid="1")
    assert ExtensionPlan.between(dict(publisher), dict(subscriber), mid="1") is a
    assert ExtensionPlan.between(publisher, subscriber, mid="2") is not a
    assert ExtensionPlan.between(publisher, {3: ExtensionUri.MID, 2: ExtensionUri.ABS_SEND_TIME},
                                 mid="1") is not a

def test_extension_plan_maps_drops_and_appends_mid() -> None:
    publisher = {
        1: ExtensionUri.MID,
        2: ExtensionUri.ABS_SEND_TIME,
        3: ExtensionUri.TRANSPORT_WIDE_CC,
        10: ExtensionUri.RTP_STREAM_ID,
        4: ExtensionUri.SSRC_AUDIO_LEVEL,
    }
    subscriber = {
        9: ExtensionUri.MID,
        5: ExtensionUri.ABS_SEND_TIME,
        3: ExtensionUri.TRANSPORT_WIDE_CC,
    }
    plan = ExtensionPlan.between(publisher, subscriber, mid="7")
    assert dict(plan.ids) == {2: 5}
    assert plan.append == ((9, b"7"),)
    packet = bytes.fromhex(
        "90600001"
        "00000000"
        "0000000a"  # V=2 X=1, PT 96, seq 1, ts 0, SSRC 10
        "bede0003"  # one-byte form, 3 words
        "1030"  # id 1 (mid) L=0 "0"
        "22aabbcc"  # id 2 (abs-send-time) L=2
        "310001"  # id 3 (transport-cc) L=1
        "a066"  # id 10 (rid) L=0 "f"
        "00"  # padding
        "cafe"  # payload
    )
    out = plan.apply(packet)
    assert out == bytes.fromhex(
        "90600001"
        "00000000"
        "0000000a"  # header untouched (the forwarder rewrites it)
        "bede0002"  # 2 words now
        "52aabbcc"  # abs-send-time under the subscriber's id 5
        "9037"  # the subscriber's mid "7" under id 9
        "0000"  # padding to 32 bits
        "cafe"
    )
    empty = ExtensionPlan().apply(packet)
    assert empty == bytes.fromhex("80600001000000000000000acafe")  # X cleared, block gone


def test_extension_plan_two_byte_form_and_malformed_blocks() -> None:
    plan = ExtensionPlan({1: 20})  # id 20 does not fit the one-byte form
    packet = (
        RtpPacket(96, 1, 0, 10, payload=b"p").with_extensions([HeaderExtension(1, b"ab")]).encode()
    )
    out = RtpPacket.decode(plan.apply(packet))
    assert out.extension_profile == 0x1000 and out.header_extensions == (
        HeaderExtension(20, b"ab"),
    )
    long_two_byte = (
        RtpPacket(96, 1, 0, 10).with_extensions([HeaderExtension(1, bytes(20))]).encode()
    )
    assert RtpPacket.decode(ExtensionPlan({1: 2}).apply(long_two_byte)).extension_value(2) == bytes(
        20
    )
    overrun = bytes.fromhex("90600001000000000000000abede00013f000000")  # id 3, L=15
    with pytest.raises(DecodeError, match="one-byte header extension 3 overruns the block"):
        plan.apply(overrun)
    with pytest.raises(Truncated, match="RTP header extension overruns the packet: 2 words"):
        plan.apply(bytes.fromhex("90600001000000000000000abede000210aa0000"))


def test_malformed_descriptor_is_counted_not_raised() -> None:
    stream = PublishedStream(1, 90000, vp8_keyframe)
    assert stream.receive(rtp(1, 0, 1, payload=b"\x90")) is False  # X=1 but no extension byte
    assert stream.malformed == 1 and 1 in stream.buffer


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.booleans()), min_size=1, max_size=120
    ),
    st.randoms(use_true_random=False),
)
def test_outgoing_sequence_has_no_gap_except_where_the_publisher_skipped(steps, rnd) -> None:
    """Random switches between 4 sources, in-order input with random publisher skips."""
    sources = [PublishedStream(i, 90000) for i in range(4)]
    next_seq = [rnd.randrange(0x10000) for _ in sources]
    forwarder = Forwarder(99, 90000, random=lambda n: bytes(rnd.getrandbits(8) for _ in range(n)))
    previous = None
    now = 0.0
    for which, skip, switch in steps:
        now += 0.01
        source = sources[which]
        next_seq[which] = (next_seq[which] + skip) & 0xFFFF  # the publisher skipped `skip` numbers
        data = rtp(next_seq[which], int(now * 90000), which)
        next_seq[which] = (next_seq[which] + 1) & 0xFFFF
        changed = source is not forwarder.source
        out = forwarder.forward(data, source, False, now)
        assert out is not None
        seq = out[2] << 8 | out[3]
        if previous is not None:
            expected_step = 1 if changed else skip + 1
            assert (seq - previous) & 0xFFFF == expected_step
        previous = seq
        assert len(forwarder.segments) <= 16


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=30))
def test_hostile_datagrams_raise_only_decode_error(datagrams) -> None:
    source = PublishedStream(1, 90000, vp8_keyframe)
    forwarder = Forwarder(
        2, 90000, extensions=ExtensionPlan({1: 2}, ((3, b"m"),)), require_keyframe=False
    )
    for data in datagrams:
        try:
            key = source.receive(data)
            forwarder.forward(data, source, key, 0.0)
        except DecodeError:
            pass
    forwarder.retransmit(range(0, 65536, 997), 1.0)


def test_random_loss_is_fully_repaired_from_the_buffer() -> None:
    rnd = stdlib_random.Random(4)
    source = PublishedStream(1, 90000)
    forwarder = Forwarder(2, 90000, random=zeros)
    delivered = {}
    lost = []
    for i in range(500):
        data = rtp(60000 + i, 3000 * i, 1)
        source.receive(data)
        out = forwarder.forward(data, source, False, i * 0.01)
        seq = out[2] << 8 | out[3]
        if rnd.random() < 0.1:
            lost.append(seq)
        else:
            delivered[seq] = bytes(out)
    repaired = forwarder.retransmit(lost, 5.0)
    assert len(repaired) == len(lost) > 30
    for packet in repaired:
        delivered[packet[2] << 8 | packet[3]] = bytes(packet)
    assert sorted(delivered) == list(range(500))


def test_rtx_keeps_a_non_zero_timestamp() -> None:
    """The RTX copy carries the original's timestamp, not zeros (RFC 4588 §4)."""
    source = PublishedStream(0xA, 90000)
    forwarder = Forwarder(0xB, 90000, rtx_ssrc=0xB0, rtx_payload_types={96: 97},
                          random=lambda n: b"\x11" * n)
    original = RtpPacket(96, 500, 9000, 0xA, payload=b"frame").encode()
    source.receive(original)
    first = forwarder.forward(original, source, False, 0.0)
    assert first is not None and first[4:8] == b"\x11" * 4
    (rtx,) = forwarder.retransmit([first[2] << 8 | first[3]], 0.1)
    assert rtx[4:8] == first[4:8]
    assert rtx[8:12] == b"\x00\x00\x00\xb0" and rtx[12:14] == first[2:4]


def test_a_packet_older_than_the_window_is_not_sent_again() -> None:
    """Chromium pads its probes with RTX copies of one old packet for seconds: unwrapped,
    each copy is that packet again.  Within the 256-number window the duplicate is seen;
    older, it was sent with the same SRTP index the subscriber has already taken, so it
    would be dropped there as a replay and reported lost in transport-cc feedback (the
    estimate then fell to its floor under a steady 60 % "loss")."""
    source = PublishedStream(1, 90000)
    forwarder = Forwarder(2, 90000, payload_types={96: 96}, random=zeros)
    for seq in range(1, 301):
        assert forwarder.forward(rtp(seq, seq * 3000, 1), source, False, 0.0) is not None
    assert forwarder.forward(rtp(200, 200 * 3000, 1), source, False, 0.0) is None  # in window
    assert forwarder.drops["duplicate"] == 1
    assert forwarder.forward(rtp(10, 10 * 3000, 1), source, False, 0.0) is None  # older
    assert forwarder.drops["too-late"] == 1
