"""
The send-side estimate (draft-ietf-rmcat-gcc-02) against synthetic paths.

A small event simulation stands in for the network: the sender paces
1200-byte packets at the current estimate (an ideal encoder) into a
bottleneck of ``capacity`` bit/s with a drop-tail queue, 20 ms one way;
the receiver's feedback (every 100 ms) reports each packet's arrival or
loss, as transport-cc would.
"""

from __future__ import annotations

import random

from realtime.media.gcc import OVERUSE, ArrivalFilter, GoogCc, OveruseDetector

SIZE = 1200


def simulate(gcc: GoogCc, capacity, seconds: float, loss: float = 0.0, queue: float = 0.3,
             source_max: float = 50_000_000, seed: int = 1, start: float = 0.0,
             send_rate=None):
    """Run ``seconds``; ``capacity`` is bit/s or a function of time. Return (t, estimate) samples."""
    rng = random.Random(seed)
    now, next_feedback = start, start + 0.1
    link_free = start
    pending: list[tuple[float, float | None, int]] = []
    samples = []
    while now < start + seconds:
        rate = min(gcc.estimate, source_max) if send_rate is None else send_rate(now)
        cap = capacity(now) if callable(capacity) else capacity
        arrival: float | None
        if rng.random() < loss:
            arrival = None
        else:
            begin = max(now, link_free)
            if begin - now > queue:  # the queue is full: dropped at the tail
                arrival = None
            else:
                link_free = begin + SIZE * 8 / cap
                arrival = link_free + 0.02
        pending.append((now, arrival, SIZE))
        now += SIZE * 8 / rate
        if now >= next_feedback:
            # report what has arrived by now (and losses sent before the last arrival)
            ready = [p for p in pending if p[1] is None or p[1] <= now]
            pending = [p for p in pending if not (p[1] is None or p[1] <= now)]
            gcc.update(ready, now)
            samples.append((now, gcc.estimate))
            next_feedback = now + 0.1
    return samples


def mean(samples, since: float) -> float:
    values = [e for t, e in samples if t >= since]
    return sum(values) / len(values)


def test_estimate_converges_near_a_bottleneck() -> None:
    for capacity in (400_000, 1_000_000, 3_000_000):
        gcc = GoogCc(initial=300_000)
        samples = simulate(gcc, capacity, 40.0)
        settled = mean(samples, 20.0)
        print(capacity, round(settled), gcc.rate.decreases)
        assert 0.6 * capacity <= settled <= 1.25 * capacity, (capacity, settled)
        assert gcc.rate.decreases >= 1  # the delay-based part found the queue


def test_a_narrower_path_is_followed_down_within_seconds() -> None:
    gcc = GoogCc(initial=300_000)
    samples = simulate(gcc, lambda t: 2_000_000 if t < 20 else 500_000, 30.0)
    assert mean(samples, 15.0) > 1_000_000 or max(e for t, e in samples if t < 20) > 1_200_000
    after = [e for t, e in samples if t >= 23.0]
    assert max(after) <= 700_000, after


def test_loss_backs_off() -> None:
    gcc = GoogCc(initial=2_000_000)
    samples = simulate(gcc, 50_000_000, 10.0, loss=0.2)
    assert samples[-1][1] < 500_000, samples[-1]
    clean = GoogCc(initial=2_000_000)
    simulate(clean, 50_000_000, 10.0, loss=0.0, source_max=2_000_000)
    assert clean.estimate >= 2_000_000


def test_the_estimate_cannot_run_far_ahead_of_what_is_sent_without_a_probe() -> None:
    gcc = GoogCc(initial=300_000)
    simulate(gcc, 50_000_000, 10.0, send_rate=lambda t: 200_000)
    assert gcc.estimate <= 1.5 * 200_000 + 10_000 + 1
    gcc.probe_result(2_500_000)
    assert gcc.estimate >= 2_000_000
    simulate(gcc, 50_000_000, 2.0, send_rate=lambda t: 200_000, start=10.0)
    assert gcc.estimate >= 2_000_000  # the probe's rate counts as proven


def test_filter_and_detector_see_a_growing_queue() -> None:
    kalman, detector = ArrivalFilter(), OveruseDetector()
    signals = []
    for i in range(40):
        m = kalman.update(20.0)  # each group arrives 20 ms later than it was sent apart
        signals.append(detector.detect(m, i * 0.02))
    assert OVERUSE in signals
    kalman, detector = ArrivalFilter(), OveruseDetector()
    assert all(detector.detect(kalman.update(0.0), i * 0.02) != OVERUSE for i in range(40))
