"""
The video pacer of one subscribing connection (realtime/sfu/pacer.py), sans I/O.

Datagrams are built as the connection queues them: an RTP header in the
clear (SRTP leaves it so, RFC 3711 §3.1) with the SSRC that classifies it.
"""

from __future__ import annotations

import struct

from realtime.sfu.pacer import BURST, MAX_QUEUE_DELAY, PACING_FACTOR, Pacer

VIDEO, RTX, AUDIO = 0x1111, 0x2222, 0x3333
ADDR = ("127.0.0.1", 5000)


def rtp(ssrc: int, size: int = 1200, seq: int = 0) -> tuple[bytes, tuple[str, int]]:
    head = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, 0, ssrc)
    return head + bytes(size - len(head)), ADDR


def pacer(estimate: float | None = 400_000) -> Pacer:
    p = Pacer()
    p.video = frozenset({VIDEO, RTX})
    p.set_rate(estimate)
    return p


def run(p: Pacer, arrivals: list[tuple[float, tuple[bytes, object]]], until: float
        ) -> list[tuple[float, bytes]]:
    """Admit each datagram at its time, fire the pacer's timer when due; return departures."""
    out: list[tuple[float, bytes]] = []
    pending = sorted(arrivals, key=lambda a: a[0])
    now = 0.0
    while now <= until:
        timer = p.get_timer()
        nxt = pending[0][0] if pending else None
        if timer is not None and (nxt is None or timer <= nxt):
            now = timer
            out += [(now, d) for d, _ in p.admit([], now)]
        elif nxt is not None:
            now, item = pending.pop(0)
            out += [(now, d) for d, _ in p.admit([item], now)]
        else:
            break
    return out


def test_a_key_frame_is_spread_at_the_pacing_rate() -> None:
    p = pacer(400_000)  # paced at 1 Mbit/s: 125 octets per ms
    frame = [(0.0, rtp(VIDEO, 1200, seq)) for seq in range(20)]  # 24 kB in one burst
    out = run(p, frame, 1.0)
    assert [d for _, d in out] == [d for _, (d, _) in frame]  # all of it, in order
    times = [t for t, _ in out]
    spread = times[-1] - times[0]
    # 24 kB at 1 Mbit/s: 0.19 s, less the first packets the idle budget lets through
    assert spread >= 0.15, spread
    for t in times:  # never more than BURST's worth (plus one packet) in any 5 ms
        window = sum(len(d) for u, d in out if t <= u < t + BURST)
        assert window <= PACING_FACTOR * 400_000 / 8 * BURST + 1200, (t, window)
    assert p.deferred >= 18 and p.dropped == 0 and p.queued == 0


def test_without_pacing_the_burst_leaves_at_once() -> None:
    """The same key frame with the pacer off (no estimate): one burst, what --no-pacer does."""
    p = pacer(None)
    out = run(p, [(0.0, rtp(VIDEO, 1200, seq)) for seq in range(20)], 1.0)
    assert {t for t, _ in out} == {0.0} and len(out) == 20 and p.deferred == 0


def test_audio_and_rtcp_are_never_held_behind_video() -> None:
    p = pacer(400_000)
    for seq in range(20):
        p.admit([rtp(VIDEO, 1200, seq)], 0.0)
    assert p.queued > 10
    audio = rtp(AUDIO, 120)
    assert p.admit([audio], 0.001) == [audio]
    rtcp = (struct.pack("!BBHI", 0x81, 205, 4, VIDEO) + bytes(12), ADDR)  # RTPFB from VIDEO
    stun = (b"\x00\x01\x00\x00" + bytes(16), ADDR)
    assert p.admit([rtcp, stun], 0.002) == [rtcp, stun]
    rtx = rtp(RTX, 260)  # a probe or a retransmission: paced like its video
    assert p.admit([rtx], 0.003) == []


def test_an_idle_pacer_returns_the_list_it_was_given() -> None:
    """The per-packet fast path: nothing allocated when the budget allows."""
    p = pacer(2_000_000)
    for i in range(100):
        batch = [rtp(VIDEO, 1200, i)]
        assert p.admit(batch, i * 0.01) is batch  # 0.96 Mbit/s, paced at 5 Mbit/s
    off = pacer(None)
    batch = [rtp(VIDEO), rtp(VIDEO, seq=1)]
    assert off.admit(batch, 0.0) is batch
    assert p.deferred == 0 and p.get_timer() is None


def test_the_queue_is_bounded_in_time() -> None:
    p = pacer(100_000)
    first = sum(len(p.admit([rtp(VIDEO, 1200, seq)], 0.0)) for seq in range(40))
    # the timer fired late (a stalled reactor): what waited too long is dropped
    late = MAX_QUEUE_DELAY + 0.1
    out = p.admit([rtp(VIDEO, 1200, 40)], late)
    assert p.dropped >= 30 and p.take_keyframe_wanted() and not p.take_keyframe_wanted()
    assert first + len(out) + p.queued + p.dropped == 41


def test_a_long_queue_drains_faster_than_the_estimate() -> None:
    """An estimate far below the media (a track the allocator cannot thin) does not make
    the pacer the bottleneck: a queue longer than DRAIN_TARGET drains in DRAIN_TARGET."""
    p = pacer(50_000)  # paced at 125 kbit/s
    arrivals = [(i * 0.002, rtp(VIDEO, 1000, i)) for i in range(500)]  # 4 Mbit/s for 1 s
    out = run(p, arrivals, 3.0)
    assert len(out) == 500 and p.dropped == 0
    left = {d[2:4]: t for t, d in out}
    waits = [left[d[2:4]] - t for t, (d, _) in arrivals]
    assert max(waits) < MAX_QUEUE_DELAY, max(waits)  # at 125 kbit/s the last would wait 32 s


def test_departures_are_reported_for_held_packets() -> None:
    """The number is read once, as a packet is held back, and reported with its departure."""
    left: list[tuple[int, float]] = []
    read: list[bytes] = []

    def number_of(data: bytes) -> int:  # a stand-in: the RTP sequence number + 100
        read.append(data)
        return struct.unpack_from("!H", data, 2)[0] + 100 if data[3] != 3 else -1

    p = Pacer(lambda number, now: left.append((number, now)), number_of)
    p.video = frozenset({VIDEO})
    p.set_rate(400_000)
    frame = [(0.0, rtp(VIDEO, 1200, seq)) for seq in range(5)]
    out = run(p, frame, 1.0)
    held = [(d, t) for t, d in out if t > 0]
    assert held and read == [d for d, _ in held]  # once per held packet, none for the rest
    assert left == [(struct.unpack_from("!H", d, 2)[0] + 100, t) for d, t in held
                    if d[3] != 3]  # -1 (no number): nothing reported
    assert len(left) == len(held) - 1
