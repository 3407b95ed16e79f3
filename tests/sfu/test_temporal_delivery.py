"""
VP8 temporal layers in delivery: the allocator's ``(rid, tid)`` choice
(realtime/media/simulcast.py) and the forwarder's filtering and renumbering
(realtime/sfu/forwarder.py with realtime/sfu/temporal.py).

The stream is an L1T3 sequence made here (two packets per frame, TIDs
0 2 1 2 ..., layer-sync on TID 1, 15-bit PictureIDs and sequence numbers that
wrap); the forwarder's output is compared octet for octet with packets built
independently with the expected sequence numbers and PictureIDs.
"""

from __future__ import annotations

import random as stdlib_random

import pytest
from hypothesis import given, strategies as st

from realtime.media.keyframes import vp8_keyframe
from realtime.media.simulcast import ALL_TIDS, LayerSelector, SimulcastLayers
from realtime.rtp.packet import RtpPacket
from realtime.rtp.rtx import unwrap_rtx
from realtime.sfu.forwarder import Forwarder, PublishedStream
from realtime.sfu.sendpath import bind_send_path
from realtime.errors import DecodeError
from realtime.rtp.packet import payload_offset
from realtime.sfu.temporal import ALL, TemporalFilter, temporal_fields, temporal_layer

from tests.sfu.test_sendpath import Session, Wire, reference_send

PATTERN = [0, 2, 1, 2]  # L1T3 (W3C webrtc-svc)
SSRC_IN, SSRC_OUT, RTX_OUT = 0x1111, 0xD00D, 0xBEEF
NOW = 1000.0


def vp8(picture_id: int, tl0: int, tid: int, start: bool, key: bool) -> bytes:
    """RFC 7741 §4.2: X=1 S | I L T | M PictureID(15) | TL0PICIDX | TID Y KEYIDX; a payload."""
    descriptor = bytes([0x90 if start else 0x80, 0xE0, 0x80 | picture_id >> 8 & 0x7F,
                        picture_id & 0xFF, tl0 & 0xFF, tid << 6 | (0x20 if tid == 1 else 0)])
    body = (b"\x50\xaa" if key else b"\x51\xbb") if start else b"\x77\x88"
    return descriptor + body + bytes(30)


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, marker: bool, pt: int = 96) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, marker=marker,
                     payload=payload).encode()


def l1t3(frames: int, first_seq: int = 65500, first_picture: int = 32750):
    """Return [(packet, keyframe, now, tid, frame)]: an L1T3 stream, two packets a frame."""
    out = []
    tl0 = 200
    for n in range(frames):
        tid = PATTERN[n % 4]
        tl0 += tid == 0 and n > 0
        key = n == 0
        for part in range(2):
            seq = first_seq + 2 * n + part
            payload = vp8((first_picture + n) & 0x7FFF, tl0, tid, part == 0, key and part == 0)
            out.append((rtp(seq, 3000 * n, SSRC_IN, payload, part == 1), key and part == 0,
                        NOW + n / 30, tid, n))
    return out


def forwarder(temporal: TemporalFilter | None) -> Forwarder:
    return Forwarder(SSRC_OUT, 90000, payload_types={96: 100}, rtx_ssrc=RTX_OUT,
                     rtx_payload_types={100: 101}, require_keyframe=True,
                     random=lambda n: bytes(n), vp8_payload_types={96}, temporal=temporal,
                     history=64)


def test_temporal_layer_of_packets() -> None:
    packets = l1t3(4)
    assert [temporal_layer(p[0]) for p in packets] == [0, 0, 2, 2, 1, 1, 2, 2]
    assert temporal_layer(b"\x80\x60" + bytes(10)) == -1  # header only
    assert temporal_layer(rtp(1, 1, 1, b"\x10\x00", False)) == -1  # no X: no TID
    assert temporal_layer(b"\x90\x60" + bytes(14)) == -1  # extension overruns


@given(st.binary(max_size=40), st.sampled_from([0x80, 0x90, 0x91, 0xA0]))
def test_temporal_layer_reads_what_the_parsers_read(tail: bytes, b0: int) -> None:
    """Hostile bytes: the one-pass reader agrees with payload_offset + temporal_fields."""
    packet = bytes([b0]) + tail
    try:
        fields = temporal_fields(packet, payload_offset(packet))
        expected = -1 if fields is None else fields[0]
    except DecodeError:
        expected = -1
    assert temporal_layer(packet) == expected


def test_forwarder_drops_tid2_and_renumbers_byte_exact() -> None:
    """Target TID <= 1 from the start: every TID 2 frame is dropped; what is sent has
    consecutive sequence numbers and PictureIDs, timestamps and TL0PICIDX untouched."""
    temporal = TemporalFilter()
    temporal.set_target(1)
    f = forwarder(temporal)
    stream = PublishedStream(SSRC_IN, 90000, vp8_keyframe, "h")
    packets = l1t3(24)
    sent = []
    for data, key, now, _, _ in packets:
        stream.receive(data)
        out = f.forward(data, stream, key, now)
        if out is not None:
            sent.append(bytes(out))
    kept = [p for p in packets if p[3] <= 1]
    assert len(sent) == len(kept) == 24
    first_seq = int.from_bytes(sent[0][2:4], "big")
    expected = []
    for i, (data, _, _, tid, frame) in enumerate(kept):
        original = RtpPacket.decode(data)
        payload = bytearray(original.payload)
        picture = (32750 + i // 2) & 0x7FFF  # the i // 2-th frame kept
        payload[2], payload[3] = 0x80 | picture >> 8, picture & 0xFF
        expected.append(rtp(first_seq + i, 3000 * frame, SSRC_OUT, bytes(payload),
                            original.marker, pt=100))
    assert sent == expected
    assert f.drops["temporal-layer"] == 24 and temporal.dropped_pictures == 12
    assert f.sender.packet_count == 24


def test_nacks_map_to_the_original_packets_across_dropped_runs() -> None:
    """RTX answers: each outgoing number is answered with the packet sent under it."""
    temporal = TemporalFilter()
    temporal.set_target(0)
    f = forwarder(temporal)
    stream = PublishedStream(SSRC_IN, 90000, vp8_keyframe, "h")
    sent = {}
    for data, key, now, _, _ in l1t3(40):
        stream.receive(data)
        out = f.forward(data, stream, key, now)
        if out is not None:
            sent[int.from_bytes(out[2:4], "big")] = bytes(out)
    assert len(sent) == 20  # TID 0: a quarter of 40 frames
    answers = f.retransmit(list(sent), NOW + 5)
    assert len(answers) == 20 and f.unanswered == 0
    for answer in answers:
        original = unwrap_rtx(answer, {101: 100}, SSRC_OUT)
        assert original is not None
        seq = int.from_bytes(original[2:4], "big")
        assert bytes(original) == sent[seq]


def test_late_packets_take_their_segment_numbers_or_are_dropped() -> None:
    temporal = TemporalFilter()
    temporal.set_target(1)
    f = forwarder(temporal)
    stream = PublishedStream(SSRC_IN, 90000, vp8_keyframe, "h")
    packets = l1t3(12)
    # frame 4 (TID 0): its second packet arrives after frame 6; frame 5 (TID 2) too
    late_kept = packets[9]
    late_dropped = packets[11]
    order = [p for p in packets if p not in (late_kept, late_dropped)]
    order.insert(order.index(packets[13]) + 1, late_kept)
    order.insert(order.index(packets[13]) + 2, late_dropped)
    out = {}
    for data, key, now, _, _ in order:
        stream.receive(data)
        result = f.forward(data, stream, key, now)
        if result is not None:
            out[bytes(data)] = int.from_bytes(result[2:4], "big")
    assert bytes(late_dropped[0]) not in out
    first = out[bytes(packets[0][0])]
    # frames 0, 2, 4 kept: packets 0, 1, 4, 5, 8, 9 -> numbers first .. first + 5
    assert out[bytes(late_kept[0])] == (first + 5) & 0xFFFF
    assert out[bytes(packets[12][0])] == (first + 6) & 0xFFFF
    numbers = sorted((n - first) & 0xFFFF for n in out.values())
    assert numbers == list(range(len(out)))


def test_bound_path_hands_filtered_packets_to_the_reference() -> None:
    """With a temporal target the bound path sends what the reference sends; once the
    target is back to every layer (at a TID 0 frame), the bound path takes over again."""
    for seed in range(3):
        rng = stdlib_random.Random(seed)
        ref_temporal, fast_temporal = TemporalFilter(), TemporalFilter()
        ref, fast = forwarder(ref_temporal), forwarder(fast_temporal)
        ref_wire, fast_wire = Wire(), Wire()
        ref_session, fast_session = Session(ref_wire), Session(fast_wire)
        send = bind_send_path(fast, fast_session)
        ref_stream = PublishedStream(SSRC_IN, 90000, vp8_keyframe, "h")
        fast_stream = PublishedStream(SSRC_IN, 90000, vp8_keyframe, "h")
        packets = l1t3(80)
        items = []
        for item in packets:
            if rng.random() < 0.03:
                continue  # loss
            items.append(item)
            if rng.random() < 0.05 and len(items) > 2:
                items[-1], items[-2] = items[-2], items[-1]  # reordering
        for i, (data, key, now, _, frame) in enumerate(items):
            target = {10: 1, 30: 0, 50: ALL, 65: 1}.get(frame)
            if target is not None and (i == 0 or items[i - 1][4] != frame):
                ref_temporal.set_target(target)
                fast_temporal.set_target(target)
            ref_stream.receive(data)
            fast_stream.receive(data)
            assert send(data, fast_stream, key, now) == reference_send(
                ref, ref_session, (data, ref_stream, key, now))
        assert fast_wire.rtp == ref_wire.rtp
        assert ref.drops["temporal-layer"] > 0 and ref_temporal.target == 1
        def deltas(f: Forwarder) -> list[tuple]:
            return [(s.start, s.seq_delta, s.ts_delta, s.picture_delta) for s in f.segments]
        assert deltas(fast) == deltas(ref) and len(ref.segments) > 5
        numbers = [int.from_bytes(p[2:4], "big") for p in ref_wire.rtp]
        assert fast.retransmit(numbers[::5], NOW + 9) == ref.retransmit(numbers[::5], NOW + 9)


# -- the allocator's choice -------------------------------------------------------------

RATES = {"f": (400e3, 700e3, 1200e3), "h": (160e3, 270e3, 480e3), "q": (60e3, 90e3, 155e3)}
"""bit/s of TID <= 0, 1, 2 (measured from Chromium's L1T3 simulcast: the test above)."""


def measured_layers() -> SimulcastLayers:
    """Feed one second of L1T3 packets per layer whose sizes give RATES."""
    layers = SimulcastLayers(["f", "h", "q"])
    for rid, (r0, r1, r2) in RATES.items():
        per_tid = [r0, r1 - r0, r2 - r1]  # bit/s of each TID alone
        for step in range(61):  # 30 fps frames, a packet per TID per frame-slot
            now = NOW + step / 60
            for tid in range(3):
                layers.packet_received(rid, int(per_tid[tid] / 8 / 60), now, tid)
    return layers


def selector(budget: float, current: str | None = None, tid: int = ALL_TIDS,
             upgrade: float | None = None) -> tuple[LayerSelector, TemporalFilter]:
    temporal = TemporalFilter()
    s = LayerSelector(measured_layers(), temporal=temporal)
    if current is not None:
        s.current, s.target, s.target_tid = current, current, tid
    s.set_available_bitrate(budget, upgrade)
    return s, temporal


def test_layer_rates_per_tid() -> None:
    rates = measured_layers().rates("h")
    assert rates is not None and len(rates) == 3
    for got, want in zip(rates, RATES["h"]):
        assert abs(got - want) / want < 0.05, rates


def test_allocator_prefers_width_over_frame_rate_down_to_half() -> None:
    cases = [
        (2e6, "f", ALL_TIDS),
        (900e3, "f", 1),    # f at 15 fps (700k) rather than h whole (480k)
        (600e3, "h", ALL_TIDS),  # f at 15 fps does not fit: h whole
        (400e3, "h", 1),    # between h's TID <= 1 (270k) and h whole: h at 15 fps, not q
        (200e3, "q", ALL_TIDS),  # h at 15 fps does not fit; h at 7.5 fps is not taken
        (80e3, "q", 0),     # the last layer thins further: 7.5 fps rather than a freeze
        (10e3, "q", 0),
    ]
    for budget, rid, tid in cases:
        s, temporal = selector(budget)
        assert (s.target, s.target_tid) == (rid, tid), budget
        assert s.reason == ("auto" if (rid, tid) == ("f", ALL_TIDS) else "bandwidth")


def test_filter_follows_the_layer_being_sent() -> None:
    s, temporal = selector(400e3, current="q")
    assert (s.target, s.target_tid) == ("h", 1)
    assert temporal.wanted == ALL  # q goes on whole until h's key frame
    assert s.accept("h", True, NOW)
    assert temporal.wanted == 1  # h at TID <= 1 from its key frame on


def test_moving_up_a_temporal_layer_needs_headroom() -> None:
    # at h TID <= 1: 500k carries h whole (480k) but not with 15 % headroom (552k)
    s, _ = selector(500e3, current="h", tid=1)
    assert (s.target, s.target_tid) == ("h", 1)
    wanted = s.upgrade_bitrate()  # the probe asks for the next TID, not f (1.2 Mbit/s)
    assert wanted is not None and abs(wanted - RATES["h"][2] * 1.15) < 0.02 * wanted
    s, _ = selector(560e3, current="h", tid=1)
    assert (s.target, s.target_tid) == ("h", ALL_TIDS)
    # what has been shown to arrive limits the move up, not the estimate
    s, _ = selector(560e3, current="h", tid=1, upgrade=500e3)
    assert (s.target, s.target_tid) == ("h", 1)
    # staying needs the estimate only: h whole at 490k stays
    s, _ = selector(490e3, current="h")
    assert (s.target, s.target_tid) == ("h", ALL_TIDS)


def test_without_temporal_layers_the_choice_is_unchanged() -> None:
    layers = SimulcastLayers(["f", "h", "q"])
    for rid, rate in (("f", 1200e3), ("h", 480e3), ("q", 155e3)):
        for step in range(61):
            layers.packet_received(rid, int(rate / 8 / 60), NOW + step / 60)
    s = LayerSelector(layers, temporal=TemporalFilter())
    s.set_available_bitrate(400e3)
    assert (s.target, s.target_tid) == ("q", ALL_TIDS)
    assert s.temporal.wanted == ALL


# -- through the SFU session: measured, chosen, filtered, shown --------------------------


def test_session_sends_h_at_tid1_and_shows_it(shared) -> None:
    """A Chromium simulcast publish carrying L1T3, a subscriber with no preference and a
    REMB between h's TID <= 1 rate and h's whole: B gets h without its TID 2 frames, and
    GET session's layer names the temporal layer and the frame-rate fraction."""
    import struct

    from realtime.demux import PacketKind
    from realtime.sdp import SessionDescription
    from realtime.sfu.session import MediaRequest
    from realtime.sfu.switchboard import Switchboard
    from tests.sfu.client import Wire as SessionWire, answer_sfu_offer
    from tests.sfu.test_session import counting_random, new

    board = Switchboard(random=counting_random())
    sdp = (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp").read_text()
    offer = SessionDescription.parse(sdp)
    mid = next(m.mid for m in offer.media if m.kind == "video")
    media = offer.media_by_mid(mid)
    ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.extensions}
    pt = next(c.payload_type for c in media.codecs if c.name == "VP8")
    a = new(board)
    a.answer_offer(sdp, 0.0, publish={mid: "cam"})
    a.connection = SessionWire()
    cam = board.find("app", a.session_id, "cam")
    b = new(board)
    b.offer_media([MediaRequest("video", "subscribe", cam)], 0.0)
    b.apply_answer(answer_sfu_offer(b.pending_offer), 0.0)
    b.connection = SessionWire()
    subscription = b.transceiver("0").subscription

    def packet(rid: str, ssrc: int, seq: int, frame: int, part: int) -> bytes:
        ext = bytes([ids["mid"] << 4 | len(mid) - 1]) + mid.encode() + \
            bytes([ids["rtp-stream-id"] << 4 | 0]) + rid.encode()
        ext += bytes(-len(ext) % 4)
        tid = PATTERN[frame % 4]
        size = {"f": 3000, "h": 900, "q": 250}[rid] * (2 if tid == 0 else 1)
        key = frame % 60 == 0 and part == 0
        payload = vp8(frame & 0x7FFF, frame // 4, tid, part == 0, key)
        payload += bytes(size)
        head = struct.pack("!BBHIIHH", 0x90 | 0, pt | (0x80 if part else 0), seq & 0xFFFF,
                           3000 * frame, ssrc, 0xBEDE, len(ext) // 4)
        return head + ext + payload

    def publish(frames: range, t0: float) -> None:
        for frame in frames:
            now = t0 + frame / 30
            for rid, ssrc in (("f", 51), ("h", 52), ("q", 53)):
                for part in range(2):
                    a.receive_media(PacketKind.RTP, packet(rid, ssrc, 2 * frame + part,
                                                           frame, part), now)

    publish(range(0, 60), 1.0)  # two seconds: the rates per layer and TID
    rates = cam.layers.rates("h")
    assert rates is not None and len(rates) == 3
    assert cam.layers.rates("f")[1] > rates[2] * 1.5  # f at 15 fps does not fit below
    b.rtcp.estimate.receive_remb(int((rates[1] * 1.2 + rates[2]) / 2))
    b.rtcp.allocate(3.0)
    assert (subscription.selector.target, subscription.selector.target_tid) == ("h", 1)
    assert subscription.layer_state()["targetTemporalLayer"] == 1
    sent_before = len(b.connection.rtp)
    publish(range(60, 120), 3.0)  # h's key frame at frame 60: the switch, then TID <= 1
    state = subscription.layer_state()
    assert state is not None and state["rid"] == "h" and state["reason"] == "bandwidth"
    assert state["temporalLayer"] == 1 and state["frameRateFraction"] == 0.5
    sent = b.connection.rtp[sent_before:]
    seqs = [int.from_bytes(p[2:4], "big") for p in sent]
    # frame 60: f's key frame (TID 0) still goes out, f being sent (at TID <= 1) until
    # h's key frame of the same frame; then 60 frames of h, the 30 of TID 2 dropped
    assert [len(p) > 2500 for p in sent] == [True] * 2 + [False] * 60
    assert all((y - x) & 0xFFFF == 1 for x, y in zip(seqs, seqs[1:]))
    assert subscription.forwarder.drops["temporal-layer"] >= 2 * 30


@pytest.mark.parametrize("codec", ["VP8", "VP9"])
def test_track_without_simulcast_is_thinned_by_tid(shared, codec) -> None:
    """One encoding with L1T3 (no a=simulcast), VP8 or VP9 (the offer's m= line reordered
    so that it is the publisher's codec): the one layer's rates are measured per TID,
    a REMB between its TID <= 1 rate and its whole rate sends it at TID <= 1 (the
    allocator ignored tracks without simulcast before: everything was sent), and GET
    session's layer names the temporal layer without a rid."""
    import struct

    from realtime.demux import PacketKind
    from realtime.media.simulcast import SINGLE
    from realtime.sdp import SessionDescription
    from realtime.sfu.session import MediaRequest
    from realtime.sfu.switchboard import Switchboard
    from tests.sfu.client import Wire as SessionWire, answer_sfu_offer
    from tests.sfu.test_session import counting_random, new

    board = Switchboard(random=counting_random())
    sdp = (shared / "pcaps/generated/webrtc/webrtc-chromium-aiortc-simulcast.offer.sdp").read_text()
    sdp = "".join(line for line in sdp.splitlines(keepends=True)
                  if not line.startswith(("a=rid:", "a=simulcast:")))
    offer = SessionDescription.parse(sdp)
    mid = next(m.mid for m in offer.media if m.kind == "video")
    media = offer.media_by_mid(mid)
    ids = {e.uri.rsplit(":", 1)[-1]: e.id for e in media.extensions}
    pt = next(c.payload_type for c in media.codecs if c.name == codec)  # VP9: profile 0
    sdp = sdp.replace("UDP/TLS/RTP/SAVPF 96 ", f"UDP/TLS/RTP/SAVPF {pt} 96 ".replace(
        " 96 96 ", " 96 "))
    a = new(board)
    a.answer_offer(sdp, 0.0, publish={mid: "cam"})
    a.connection = SessionWire()
    cam = board.find("app", a.session_id, "cam")
    assert cam.layers is None and cam.single is not None and cam.codec_name == codec
    b = new(board)
    b.offer_media([MediaRequest("video", "subscribe", cam)], 0.0)
    b.apply_answer(answer_sfu_offer(b.pending_offer), 0.0)
    b.connection = SessionWire()
    subscription = b.transceiver("0").subscription
    assert subscription.selector is not None and subscription.current_rid() is None

    def packet(seq: int, frame: int, part: int) -> bytes:
        ext = bytes([ids["mid"] << 4 | len(mid) - 1]) + mid.encode()
        ext += bytes(-len(ext) % 4)
        tid = PATTERN[frame % 4]
        key = frame % 60 == 0 and part == 0
        payload = vp8(frame & 0x7FFF, frame // 4, tid, part == 0, key) if codec == "VP8" \
            else vp9(frame & 0x7FFF, tid, part == 0, key)
        payload += bytes(3000 * (2 if tid == 0 else 1))
        head = struct.pack("!BBHIIHH", 0x90, pt | (0x80 if part else 0), seq & 0xFFFF,
                           3000 * frame, 77, 0xBEDE, len(ext) // 4)
        return head + ext + payload

    def publish(frames: range, t0: float) -> None:
        for frame in frames:
            for part in range(2):
                a.receive_media(PacketKind.RTP, packet(2 * frame + part, frame, part),
                                t0 + frame / 30)

    publish(range(0, 60), 1.0)
    rates = cam.single.rates(SINGLE)
    assert rates is not None and len(rates) == 3
    assert subscription.layer_state()["rid"] is None
    sent_before = len(b.connection.rtp)
    assert sent_before >= 100  # everything, while no estimate is known
    b.rtcp.estimate.receive_remb(int((rates[1] * 1.2 + rates[2]) / 2))
    b.rtcp.allocate(3.0)
    assert subscription.selector.target_tid == 1
    publish(range(60, 120), 3.0)
    state = subscription.layer_state()
    assert state["rid"] is None and state["reason"] == "bandwidth"
    assert state["temporalLayer"] == 1 and state["frameRateFraction"] == 0.5
    sent = b.connection.rtp[sent_before:]
    assert len(sent) == 2 * 30  # the 30 TID 2 frames of 60 dropped
    seqs = [int.from_bytes(p[2:4], "big") for p in sent]
    assert all((y - x) & 0xFFFF == 1 for x, y in zip(seqs, seqs[1:]))


# -- VP9 (RFC 9628 §4.2) ---------------------------------------------------------------------


def vp9(picture_id: int, tid: int, start: bool, key: bool) -> bytes:
    """Chromium's flexible mode: I P L F B (P=0 and V with an SS on a key frame) | PID | L | P_DIFF."""
    if key:
        return bytes([0xBA, 0x80 | picture_id >> 8, picture_id & 0xFF, 0x10,
                      0x10, 0x05, 0x00, 0x02, 0xD0]) + bytes(30)
    first = 0xF0 | (0x08 if start else 0)
    return bytes([first, 0x80 | picture_id >> 8 & 0x7F, picture_id & 0xFF,
                  tid << 5 | 0x10, {0: 4, 1: 2, 2: 1}[tid] << 1]) + bytes(30)


def test_vp9_forwarder_drops_tid2_keeps_picture_ids_and_answers_nacks() -> None:
    """A VP9 track (VP8 offered too, as Chromium does): TID 2 frames dropped, sequence
    numbers consecutive, PictureIDs and the rest of the payload as received; each NACKed
    number is answered with the packet sent under it."""
    from realtime.media.keyframes import vp9_keyframe

    temporal = TemporalFilter(vp9=True, payload_types={98})
    temporal.set_target(1)
    f = Forwarder(SSRC_OUT, 90000, payload_types={96: 100, 98: 102}, rtx_ssrc=RTX_OUT,
                  rtx_payload_types={102: 103}, require_keyframe=True,
                  random=lambda n: bytes(n), vp8_payload_types={96}, temporal=temporal,
                  history=64)
    stream = PublishedStream(SSRC_IN, 90000, vp9_keyframe)
    sent = {}
    order = []
    for n in range(40):
        tid = PATTERN[n % 4]
        for part in range(2):
            data = rtp(100 + 2 * n + part, 3000 * n, SSRC_IN,
                       vp9((32760 + n) & 0x7FFF, tid, part == 0, n == 0 and part == 0),
                       part == 1, pt=98)
            key = stream.receive(data)
            out = f.forward(data, stream, key, NOW + n / 30)
            if out is not None:
                seq = int.from_bytes(out[2:4], "big")
                sent[seq] = bytes(out)
                order.append(seq)
                assert out[12:] == data[12:]  # the descriptor untouched: PictureID gaps stay
    assert len(sent) == 2 * 20 and f.drops["temporal-layer"] == 2 * 20
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(order, order[1:]))
    answers = f.retransmit(order, NOW + 5)
    assert len(answers) == 40 and f.unanswered == 0
    for answer in answers:
        original = unwrap_rtx(answer, {103: 102}, SSRC_OUT)
        assert original is not None
        assert bytes(original) == sent[int.from_bytes(original[2:4], "big")]
