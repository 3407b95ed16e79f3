"""realtime/sfu/temporal.py: dropping VP8 temporal layers, renumbering, choosing a layer."""

from __future__ import annotations

from hypothesis import given, strategies as st

from realtime.media.vp8 import picture_fields
from realtime.media.vp9 import temporal_fields as vp9_fields
from realtime.sfu.temporal import ALL, TemporalFilter, choose_layer, temporal_fields

PATTERN = [0, 2, 1, 2]  # L1T3 (W3C webrtc-svc): TID of frames 0, 1, 2, 3, 4, ...


def descriptor(picture_id: int, tid: int, sync: bool = False, start: bool = True,
               tl0: int = 0) -> bytearray:
    """X=1 S=start PID=0 | I L T | 15-bit PictureID | TL0PICIDX | TID Y (RFC 7741 §4.2)."""
    return bytearray([0x80 | (0x10 if start else 0), 0xE0,
                      0x80 | picture_id >> 8, picture_id & 0xFF, tl0 & 0xFF,
                      tid << 6 | (0x20 if sync else 0)]) + b"payload"


def stream(frames: int, packets_per_frame: int = 2, first_picture: int = 32760):
    """(seq, packet) of an L1T3 stream, several packets per frame, PictureID wrapping."""
    seq = 65530
    tl0 = 250
    for n in range(frames):
        tid = PATTERN[n % 4]
        tl0 += tid == 0
        for k in range(packets_per_frame):
            yield seq & 0xFFFF, descriptor((first_picture + n) & 0x7FFF, tid, sync=tid == 1,
                                           start=k == 0, tl0=tl0)
            seq += 1


def run(target: int, frames: int = 40) -> list[tuple[int, int, int]]:
    filt = TemporalFilter()
    filt.set_target(target)
    sent = []
    for seq, packet in stream(frames):
        out = filt.accept(packet, 0, seq)
        if out >= 0:
            filt.rewrite(packet, 0)
            picture, _, tl0 = picture_fields(packet, 0)
            sent.append((out, picture, tl0, temporal_fields(packet, 0)[0]))
    return sent


def test_fields() -> None:
    assert temporal_fields(descriptor(300, 2, sync=True), 0) == (2, True, 300, True)
    assert temporal_fields(descriptor(300, 1, start=False), 0) == (1, False, 300, False)
    assert temporal_fields(bytes([0x90, 0x80, 0x05]), 0) is None  # no T bit
    assert temporal_fields(bytes([0x90, 0xE0, 0x81]), 0) is None  # truncated


def test_all_layers_pass_unchanged() -> None:
    sent = run(ALL)
    assert [s[0] for s in sent] == [(65530 + i) & 0xFFFF for i in range(80)]


def test_tid0_only_has_no_gaps_and_consecutive_pictures() -> None:
    sent = run(0)
    assert {s[3] for s in sent} == {0}
    assert len(sent) == 2 * 10  # a quarter of 40 frames, two packets each
    seqs = [s[0] for s in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    pictures = [s[1] for s in sent[::2]]
    assert all((b - a) & 0x7FFF == 1 for a, b in zip(pictures, pictures[1:])), pictures
    tl0s = [s[2] for s in sent[::2]]
    assert all((b - a) & 0xFF == 1 for a, b in zip(tl0s, tl0s[1:]))


def test_half_rate() -> None:
    sent = run(1)
    assert [s[3] for s in sent[::2]][:6] == [0, 1, 0, 1, 0, 1]
    seqs = [s[0] for s in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))


def test_up_only_at_tid0_or_layer_sync_down_at_once() -> None:
    filt = TemporalFilter()
    filt.set_target(0)
    frames = list(stream(12, packets_per_frame=1))
    decisions = []
    for n, (seq, packet) in enumerate(frames):
        if n == 5:  # frame 5 is TID 2 (not sync): going up waits
            filt.set_target(ALL)
        if n == 9:
            filt.set_target(0)
        decisions.append(filt.accept(packet, 0, seq) >= 0)
    # TIDs:   0  2  1  2  0  2  1  2  0  2  1  2
    assert decisions == [True, False, False, False, True, False, True, True, True, False,
                         False, False]


@given(st.binary(max_size=20), st.integers(0, 0xFFFF), st.integers(0, 2))
def test_hostile_bytes(data: bytes, seq: int, target: int) -> None:
    filt = TemporalFilter()
    filt.set_target(target)
    out = filt.accept(data, 0, seq)
    assert -1 <= out <= 0xFFFF
    filt.rewrite(bytearray(data), 0)


def test_choose_layer_prefers_the_sharper_layer_at_a_lower_frame_rate() -> None:
    layers = [("f", [600e3, 900e3, 1500e3]), ("h", [200e3, 300e3, 500e3]),
              ("q", [60e3, 90e3, 150e3])]
    assert choose_layer(layers, 2e6) == ("f", 2)
    assert choose_layer(layers, 1e6) == ("f", 1)  # between h (500k) and f (1.5M)
    assert choose_layer(layers, 700e3) == ("h", 2)  # f at 15 fps does not fit
    assert choose_layer(layers, 250e3) == ("q", 2)  # h at 15 fps (300k) does not fit
    assert choose_layer(layers, 70e3) == ("q", 0)
    assert choose_layer(layers, 10e3) == ("q", 0)  # the least there is
    assert choose_layer([("f", [1e6]), ("q", [1e5])], 5e5) == ("q", 0)  # no temporal layers


# -- VP9 (RFC 9628 §4.2: realtime/media/vp9.py) ----------------------------------------------


def vp9_descriptor(picture_id: int, tid: int, up: bool = True, start: bool = True) -> bytearray:
    """Flexible mode as Chromium sends L1T3: I P L F B | M PictureID(15) | TID U SID D | P_DIFF."""
    diff = {0: 4, 1: 2, 2: 1}[tid]
    return bytearray([0xF0 | (0x08 if start else 0), 0x80 | picture_id >> 8 & 0x7F,
                      picture_id & 0xFF, tid << 5 | (0x10 if up else 0), diff << 1]) + b"frame"


def vp9_stream(frames: int, up: bool = True, first_picture: int = 32764):
    seq = 65533
    for n in range(frames):
        for k in range(2):
            yield seq & 0xFFFF, vp9_descriptor((first_picture + n) & 0x7FFF, PATTERN[n % 4],
                                               up, start=k == 0)
            seq += 1


def test_vp9_drops_tid2_renumbers_sequence_numbers_and_keeps_picture_ids() -> None:
    """PictureIDs are not renumbered: P_DIFFs name references by PictureID difference (a
    TID 1 frame's 2 would point at a TID 2 picture after a renumbering)."""
    filt = TemporalFilter(vp9=True)
    filt.set_target(1)
    sent = []
    for seq, packet in vp9_stream(40):
        before = bytes(packet)
        out = filt.accept(packet, 0, seq)
        if out >= 0:
            filt.rewrite(packet, 0)
            assert bytes(packet) == before  # nothing rewritten in the descriptor
            sent.append((out, vp9_fields(packet, 0)))
    assert len(sent) == 2 * 20
    assert {f[0] for _, f in sent} == {0, 1}
    seqs = [s for s, _ in sent]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    pictures = [f[2] for _, f in sent[::2]]
    assert all((b - a) & 0x7FFF == 2 for a, b in zip(pictures, pictures[1:]))  # the gaps stay
    assert filt.dropped_pictures == 20 and filt.picture_delta == 0


def test_vp9_goes_up_after_a_forwarded_switching_up_point_only() -> None:
    for up, expected in ((True, [True, False, True, False, True, True, True, True]),
                         (False, [True, False, True, False, True, False, True, False])):
        filt = TemporalFilter(vp9=True)
        filt.set_target(1)
        decisions = []
        for n, (seq, packet) in enumerate(vp9_stream(8, up=up)):
            if n == 7:  # frame 3 (TID 2, dropped) has begun: up from the next frame
                filt.set_target(ALL)
            decisions.append(filt.accept(packet, 0, seq) >= 0)
        # TIDs 0 2 1 2 0 2 1 2, two packets each: one decision per frame below
        assert decisions[::2] == expected, up


@given(st.binary(max_size=20), st.integers(0, 0xFFFF), st.integers(0, 2))
def test_vp9_hostile_bytes(data: bytes, seq: int, target: int) -> None:
    filt = TemporalFilter(vp9=True)
    filt.set_target(target)
    out = filt.accept(data, 0, seq)
    assert -1 <= out <= 0xFFFF
    filt.rewrite(bytearray(data), 0)
