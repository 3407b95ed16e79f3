"""
MachineDriver: one IDelayedCall per machine, re-armed from get_timer(), on task.Clock.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from realtime.net.driver import MachineDriver


class Retransmitter:
    """A toy machine: sends "ping" now and again at each deadline until stopped."""

    def __init__(self, interval: float, tries: int) -> None:
        self.interval = interval
        self.tries = tries
        self.queue: list[tuple[bytes, tuple[str, int]]] = []
        self.deadline: float | None = None
        self.fired: list[float] = []

    def start(self, now: float) -> None:
        self.queue.append((b"ping", ("192.0.2.1", 9)))
        self.deadline = now + self.interval

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        self.tries -= 1
        if self.tries > 0:
            self.queue.append((b"ping", ("192.0.2.1", 9)))
            self.deadline = now + self.interval
        else:
            self.deadline = None

    def datagrams_to_send(self, now: float):
        out, self.queue = self.queue, []
        return out

    def get_timer(self) -> float | None:
        return self.deadline


def setup(interval=0.5, tries=3):
    clock = Clock()
    sent: list[bytes] = []
    machine = Retransmitter(interval, tries)
    driver = MachineDriver(machine, lambda data, addr: sent.append(data), clock)
    return clock, sent, machine, driver


def test_output_sent_and_timer_rearmed_until_done() -> None:
    clock, sent, machine, driver = setup()
    machine.start(clock.seconds())
    driver.pump()
    assert sent == [b"ping"] and len(clock.getDelayedCalls()) == 1
    assert driver.deadline == 0.5
    clock.advance(0.5)
    clock.advance(0.5)
    clock.advance(0.5)
    assert machine.fired == [0.5, 1.0, 1.5]
    assert sent == [b"ping"] * 3
    assert clock.getDelayedCalls() == [] and driver.deadline is None


def test_exactly_one_delayed_call_however_often_pumped() -> None:
    clock, _, machine, driver = setup()
    machine.start(0.0)
    for _ in range(5):
        driver.pump()
    assert len(clock.getDelayedCalls()) == 1
    machine.deadline = 0.2  # an input moved the deadline earlier
    driver.pump()
    [call] = clock.getDelayedCalls()
    assert call.getTime() == 0.2
    clock.advance(0.2)
    assert machine.fired == [0.2]


def test_past_deadline_fires_on_next_tick() -> None:
    clock, _, machine, driver = setup()
    clock.advance(10)
    machine.deadline = 3.0
    driver.pump()
    [call] = clock.getDelayedCalls()
    assert call.getTime() == 10.0


def test_stop_cancels_the_timer() -> None:
    clock, _, machine, driver = setup()
    machine.start(0.0)
    driver.pump()
    driver.stop()
    assert clock.getDelayedCalls() == []
    clock.advance(5)
    assert machine.fired == []
