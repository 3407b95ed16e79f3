"""
A send-side bandwidth estimate: Google Congestion Control (draft-ietf-rmcat-gcc-02).

The SFU sends each subscriber one RTP stream per pulled track, numbers every
packet with a transport-wide sequence number (draft-holmer-rmcat-transport-
wide-cc-extensions-01 §2) and learns from the subscriber's feedback when each
arrived.  From (send time, arrival time, size) per packet this module keeps
an estimate of the bitrate the path to that subscriber carries, with the two
controllers of the draft (§3)::

    feedback -> per packet (sent, arrived | None, size), in sequence order
        │
        ├── loss fraction p ──> LossBasedControl (§6)       As: x(1-p/2) if p>10 %, x1.05 if p<2 %
        │
        ├── acked bitrate R (received bytes over the last ~0.5 s, §5.5 "R_hat")
        │
        └── groups of packets sent within 5 ms (§5.2)
              d(i) = (t(i)-t(i-1)) - (T(i)-T(i-1))      inter-arrival minus inter-departure
              ──> ArrivalFilter: Kalman, m(i) = queuing-delay gradient (§5.3)
              ──> OveruseDetector: m vs adaptive threshold γ (§5.4): over / normal / under
              ──> AimdRateControl (§5.5): increase (x1.08/s, or additive near convergence),
                  hold, decrease to 0.85 R; never above 1.5 R
        estimate = min(delay-based A, loss-based As)  (§6: A limits As)

Departures from the draft, all deliberate:

* ``f_max`` of §5.3 (the highest frame rate) is taken as 30 Hz, and d(i) is
  scaled to the delay growth over 100 ms (``d * 0.1 s / inter-departure``):
  an SFU forwards several streams, so its 5 ms groups follow each other far
  more closely than one encoder's frames, and the draft's thresholds (γ from
  12.5 ms, never under 6 ms) are about delay growth between frames.
  Unscaled, a 15 % overload grows the queue by under 1 ms per group and is
  never seen before the queue overflows (measured with tests/media/test_gcc.py:
  then only the loss-based part acts).
* Probing (not in the draft): a sender that only forwards what publishers
  send cannot raise its rate to see whether the path carries more, and the
  1.5 R ceiling of §5.5 then holds the estimate near what is sent.  The
  caller may send a paced probe (padding) and report what arrived with
  :meth:`GoogCc.probe_result`: the estimate rises to what was delivered,
  which stays a second ceiling (never exceeded without a new probe) until
  the next decrease (realtime/sfu/estimate.py).

Pure code: times are seconds given by the caller, no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable

__all__ = [
    "AimdRateControl",
    "ArrivalFilter",
    "GoogCc",
    "LossBasedControl",
    "NORMAL",
    "OVERUSE",
    "OveruseDetector",
    "UNDERUSE",
]

NORMAL, OVERUSE, UNDERUSE = "normal", "overuse", "underuse"

BURST_TIME = 0.005
"""§5.2: packets sent within 5 ms of a group's first packet belong to the group."""
GRADIENT_HORIZON = 0.1
"""d(i) is scaled to the delay growth over this many seconds (see the module docstring)."""


class ArrivalFilter:
    """§5.3: a scalar Kalman filter of the inter-group delay variation d(i) (ms).

    Its state m(i) estimates the queuing-delay gradient: positive while a
    queue builds along the path, negative while it drains.
    """

    __slots__ = ("m", "e", "var_v", "q", "alpha")

    def __init__(self, chi: float = 0.01, f_max: float = 30.0) -> None:
        self.m = 0.0          # m_hat: estimated gradient (ms)
        self.e = 0.1          # e(i): variance of m_hat's error
        self.var_v = 1.0      # var_v_hat: measurement noise variance (>= 1)
        self.q = 1e-3         # state noise variance
        self.alpha = (1 - chi) ** (30 / (1000 * f_max))

    def update(self, d: float) -> float:
        """Take d(i) in ms; return the new m_hat."""
        z = d - self.m
        # an outlier (a burst after a pause) is clipped at 3 standard deviations
        limit = 3 * math.sqrt(self.var_v)
        z_clipped = max(-limit, min(limit, z))
        self.var_v = max(self.alpha * self.var_v + (1 - self.alpha) * z_clipped * z_clipped, 1.0)
        k = (self.e + self.q) / (self.var_v + self.e + self.q)
        self.m += z * k
        self.e = (1 - k) * (self.e + self.q)
        return self.m


class OveruseDetector:
    """§5.4: compare m(i) with an adaptive threshold γ(i) (ms).

    Over-use needs m > γ for at least ``overuse_time`` and m not falling;
    under-use is m < -γ.  γ follows |m| (up with K_u, down with K_d) within
    [6, 600] ms, so that the detector neither starves against loss-based
    flows nor ignores a short queue.
    """

    __slots__ = ("threshold", "k_up", "k_down", "overuse_time", "state", "_over_since",
                 "_previous_m", "_last_update")

    def __init__(self) -> None:
        self.threshold = 12.5
        self.k_up = 0.01
        self.k_down = 0.00018
        self.overuse_time = 0.010
        self.state = NORMAL
        self._over_since: float | None = None
        self._previous_m = 0.0
        self._last_update: float | None = None

    def detect(self, m: float, now: float) -> str:
        """Return the usage signal for gradient ``m`` (ms) observed at ``now``."""
        if m > self.threshold:
            if self._over_since is None:
                self._over_since = now
            if now - self._over_since >= self.overuse_time and m >= self._previous_m:
                self.state = OVERUSE
        elif m < -self.threshold:
            self._over_since = None
            self.state = UNDERUSE
        else:
            self._over_since = None
            self.state = NORMAL
        self._previous_m = m
        self._adapt(m, now)
        return self.state

    def _adapt(self, m: float, now: float) -> None:
        last, self._last_update = self._last_update, now
        if last is None:
            return
        excess = abs(m) - self.threshold
        if excess > 15.0:  # a sudden spike (a route change) must not drag γ along
            return
        k = self.k_down if abs(m) < self.threshold else self.k_up
        elapsed_ms = min((now - last) * 1000.0, 100.0)
        self.threshold = max(6.0, min(600.0, self.threshold + elapsed_ms * k * excess))


class AimdRateControl:
    """§5.5: the delay-based estimate A, driven by the detector's signal.

    ::

        signal \\ state   hold        increase    decrease
        over-use         decrease    decrease    (stay)
        normal           increase    (stay)      hold
        under-use        hold        hold        hold

    Increase is multiplicative (x1.08 per second) far from convergence and
    additive (half a packet per response time) near it, "near" meaning the
    acked rate is within three standard deviations of its average at past
    decreases.  Decrease sets A = 0.85 R.  A never exceeds 1.5 R.
    """

    __slots__ = ("estimate", "state", "min_bitrate", "max_bitrate", "rtt", "_last_change",
                 "_avg_at_decrease", "_var_at_decrease", "decreases", "proven")

    def __init__(self, initial: float, min_bitrate: float, max_bitrate: float) -> None:
        self.estimate = initial
        self.state = "hold"
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self.rtt = 0.1
        self._last_change: float | None = None
        self._avg_at_decrease: float | None = None
        self._var_at_decrease = 0.4
        self.decreases = 0
        #: the rate a probe delivered (until the next decrease): a ceiling besides 1.5 R
        self.proven = 0.0

    def update(self, signal: str, acked: float | None, now: float) -> float:
        """Apply ``signal`` at ``now`` with the acked bitrate R (None: not known yet)."""
        state = self.state
        if signal == OVERUSE:
            state = "decrease"
        elif signal == UNDERUSE:
            state = "hold"
        elif state == "hold":
            state = "increase"
        elif state == "decrease":
            state = "hold"
        elapsed = 0.0 if self._last_change is None else min(now - self._last_change, 1.0)
        self._last_change = now
        estimate = self.estimate
        if state == "increase":
            if self._near_convergence(acked):
                response_time = 0.1 + self.rtt
                estimate += max(1000.0, 0.5 * min(elapsed / response_time, 1.0) * 1200 * 8)
            else:
                estimate *= 1.08 ** elapsed
        elif state == "decrease" and acked is not None:
            if self.state != "decrease":  # once per over-use episode
                estimate = min(estimate, 0.85 * acked)
                self._learn_decrease(acked)
                self.decreases += 1
                self.proven = 0.0
        if acked is not None:
            estimate = min(estimate, max(1.5 * acked + 10_000, self.proven))
        self.state = state
        self.estimate = max(self.min_bitrate, min(self.max_bitrate, estimate))
        return self.estimate

    def _near_convergence(self, acked: float | None) -> bool:
        average = self._avg_at_decrease
        if acked is None or average is None:
            return False
        # standard deviation of the acked rate at decreases, in kbit/s as the draft models it
        deviation = math.sqrt(self._var_at_decrease * average / 1000) * 1000
        return abs(acked - average) < 3 * deviation

    def _learn_decrease(self, acked: float) -> None:
        average = self._avg_at_decrease
        if average is None:
            self._avg_at_decrease = acked
            return
        alpha = 0.05
        self._avg_at_decrease = (1 - alpha) * average + alpha * acked
        norm = max(self._avg_at_decrease / 1000, 1.0)
        self._var_at_decrease = max(0.4, min(2.5, (1 - alpha) * self._var_at_decrease
                                             + alpha * ((self._avg_at_decrease - acked) / 1000)
                                             ** 2 / norm))

    def raise_to(self, bitrate: float) -> None:
        """A probe showed the path carries ``bitrate``: start from there."""
        self.proven = max(self.proven, bitrate)
        self.estimate = max(self.estimate, min(self.max_bitrate, bitrate))


class LossBasedControl:
    """§6: the loss-based estimate As, updated on every feedback with its loss fraction."""

    __slots__ = ("estimate", "min_bitrate", "max_bitrate")

    def __init__(self, initial: float, min_bitrate: float, max_bitrate: float) -> None:
        self.estimate = initial
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate

    def update(self, loss: float, limit: float) -> float:
        """Apply loss fraction ``loss``; the delay-based estimate ``limit`` caps the result."""
        if loss > 0.10:
            self.estimate *= 1 - 0.5 * loss
        elif loss < 0.02:
            self.estimate *= 1.05
        self.estimate = max(self.min_bitrate, min(self.max_bitrate, self.estimate, limit))
        return self.estimate


class GoogCc:
    """The whole estimate for one path: feed it feedback, read :attr:`estimate` (bit/s).

    :param initial: the estimate before any feedback.
    :param window: seconds over which the acked bitrate R is measured.
    """

    def __init__(self, initial: float = 1_000_000, min_bitrate: float = 50_000,
                 max_bitrate: float = 20_000_000, window: float = 0.5) -> None:
        self.filter = ArrivalFilter()
        self.detector = OveruseDetector()
        self.rate = AimdRateControl(initial, min_bitrate, max_bitrate)
        self.loss = LossBasedControl(initial, min_bitrate, max_bitrate)
        self.window = window
        self.estimate = float(initial)
        self.acked: float | None = None
        self.loss_fraction = 0.0
        self.signal = NORMAL
        self._acked_window: deque[tuple[float, int]] = deque()  # (arrival, size)
        #: the open group: first send, last send, last arrival
        self._group: tuple[float, float, float] | None = None
        #: the previous group's last send and last arrival
        self._previous: tuple[float, float] | None = None
        self.overuse_since_probe = False

    def set_rtt(self, rtt: float) -> None:
        """Use the measured round trip (for §5.5's response time)."""
        self.rate.rtt = rtt

    def update(self, packets: Iterable[tuple[float, float | None, int]], now: float) -> float:
        """Take one feedback: (send time, arrival time or None if lost, size) per packet,
        in transport-wide sequence order; return the new estimate in bit/s."""
        lost = total = 0
        acked_window = self._acked_window
        for sent, arrived, size in packets:
            total += 1
            if arrived is None:
                lost += 1
                continue
            acked_window.append((arrived, size))
            self._packet(sent, arrived)
        if total == 0:
            return self.estimate
        self.loss_fraction = lost / total
        if acked_window:
            newest = acked_window[-1][0]
            while acked_window and acked_window[0][0] < newest - self.window:
                acked_window.popleft()
            span = newest - acked_window[0][0]
            if span >= 0.1 and len(acked_window) >= 2:
                size = sum(s for _, s in acked_window) - acked_window[0][1]
                self.acked = size * 8 / span
        delay_based = self.rate.update(self.signal, self.acked, now)
        self.estimate = self.loss.update(self.loss_fraction, delay_based)
        return self.estimate

    def _packet(self, sent: float, arrived: float) -> None:
        """§5.2: grow the current group or close it and feed the filter with d(i)."""
        group = self._group
        if group is None:
            self._group = (sent, sent, arrived)
            return
        first_sent = group[0]
        if sent - first_sent <= BURST_TIME:
            self._group = (first_sent, max(sent, group[1]), max(arrived, group[2]))
            return
        previous = self._previous
        closing = (group[1], group[2])
        if previous is not None:
            departure = closing[0] - previous[0]
            arrival = closing[1] - previous[1]
            # d(i) as the delay growth over GRADIENT_HORIZON (see the module docstring)
            d_ms = (arrival - departure) * 1000.0 * GRADIENT_HORIZON / max(departure, 0.001)
            m = self.filter.update(d_ms)
            self.signal = self.detector.detect(m, closing[1])
            if self.signal == OVERUSE:
                self.overuse_since_probe = True
        self._previous = closing
        self._group = (sent, sent, arrived)

    def probe_result(self, delivered: float) -> None:
        """A probe delivered ``delivered`` bit/s without over-use: raise both controllers."""
        self.rate.raise_to(0.95 * delivered)
        self.loss.estimate = max(self.loss.estimate, self.rate.estimate)
        self.estimate = min(self.rate.estimate, self.loss.estimate)
        if self.acked is not None:
            self.acked = max(self.acked, 0.95 * delivered)
