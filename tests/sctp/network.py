"""
A fake datagram network for two sans-I/O endpoints, with loss, reordering
and duplication, driven by jumping the clock to the next deadline.

Endpoints are anything with ``receive_packet(data, now)``,
``handle_timer(now)``, ``packets_to_send(now)`` and ``get_timer()`` (an
SCTP :class:`~realtime.sctp.association.Association` or a
:class:`~realtime.peer.sctp_transport.SctpTransport`).
"""

from __future__ import annotations

import heapq
import random as _random
from typing import Any, Callable


class LossyNetwork:
    """Carry packets between endpoints ``a`` and ``b`` with seeded impairments.

    :param loss: probability a packet is dropped.
    :param duplicate: probability a packet is delivered twice.
    :param delay: one-way delay in seconds; ``jitter`` is added uniformly,
        which reorders packets sent close together.
    """

    def __init__(self, a: Any, b: Any, *, loss: float = 0.0, duplicate: float = 0.0,
                 delay: float = 0.01, jitter: float = 0.0, seed: int = 1) -> None:
        self.a, self.b = a, b
        self.loss, self.duplicate = loss, duplicate
        self.delay, self.jitter = delay, jitter
        self.rng = _random.Random(seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, Any, bytes]] = []
        self._seq = 0
        self.sent: dict[int, int] = {}
        self.dropped = 0
        #: Optional filter ``(sender, data) -> bool``; False drops the packet.
        self.filter: Callable[[Any, bytes], bool] | None = None

    def peer_of(self, endpoint: Any) -> Any:
        return self.b if endpoint is self.a else self.a

    def flush(self, endpoint: Any) -> None:
        """Put everything ``endpoint`` wants to send on the wire."""
        destination = self.peer_of(endpoint)
        for data in endpoint.packets_to_send(self.now):
            self.sent[id(endpoint)] = self.sent.get(id(endpoint), 0) + 1
            if self.filter is not None and not self.filter(endpoint, data):
                self.dropped += 1
                continue
            copies = 0 if self.rng.random() < self.loss else 1
            if copies and self.rng.random() < self.duplicate:
                copies = 2
            self.dropped += copies == 0
            for _ in range(copies):
                at = self.now + self.delay + self.rng.random() * self.jitter
                self._seq += 1
                heapq.heappush(self._queue, (at, self._seq, destination, data))

    def step(self) -> bool:
        """Advance to the next arrival or timer; False when nothing is left to do."""
        candidates = []
        if self._queue:
            candidates.append(self._queue[0][0])
        for endpoint in (self.a, self.b):
            deadline = endpoint.get_timer()
            if deadline is not None:
                candidates.append(deadline)
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self._queue and self._queue[0][0] <= self.now:
            _, _, destination, data = heapq.heappop(self._queue)
            destination.receive_packet(data, self.now)
            self.flush(destination)
        for endpoint in (self.a, self.b):
            deadline = endpoint.get_timer()
            if deadline is not None and deadline <= self.now:
                endpoint.handle_timer(self.now)
            self.flush(endpoint)
        return True

    def run_until(self, condition: Callable[[], bool], limit: float = 600.0,
                  max_steps: int = 2_000_000) -> None:
        """Step until ``condition()`` holds; fail after ``limit`` more fake seconds."""
        for endpoint in (self.a, self.b):
            self.flush(endpoint)
        steps = 0
        deadline = self.now + limit
        while not condition():
            if self.now > deadline or steps > max_steps or not self.step():
                raise AssertionError(f"condition not met by t={self.now:.3f} after {steps} steps")
            steps += 1
