"""bench/forward.py's added latency: the kernel's arrival time, not the load's reading (issue 14)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "bench"))

import forward  # noqa: E402  (bench/forward.py)
import forward_load  # noqa: E402


def test_arrival_is_when_the_kernel_queued_the_datagram_not_when_it_was_read() -> None:
    """A datagram read 80 ms after it arrived is stamped with its arrival (SO_TIMESTAMPNS)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        receiver.setsockopt(socket.SOL_SOCKET, forward_load.SO_TIMESTAMPNS, 1)
        sent = time.monotonic()
        sender.sendto(b"\x80\x60\x00\x01" + bytes(8), receiver.getsockname())
        time.sleep(0.08)
        read = time.monotonic()
        got = list(forward_load.read_stamped(receiver, read))
    finally:
        receiver.close()
        sender.close()
    assert len(got) == 1
    data, _, arrived = got[0]
    assert data.startswith(b"\x80\x60")
    assert sent - 0.002 <= arrived <= sent + 0.02, (sent, arrived, read)
    assert read - arrived >= 0.06


def test_latency_rows_use_arrival_and_reading_apart() -> None:
    """p50/p99 come from arrivals; the "as read by load" rows from the reading times."""
    sent = [(90000 + 3000 * i, 100.0 + i / 30) for i in range(300)]
    frames = [(ts, t + 0.001, t + 0.004) for ts, t in sent]
    counted = {"window": 10.0, "started": 100.0, "stopped": 110.0, "legs": [
        {"packets": {"video": 1000, "audio": 0, "other": 0}, "frames": frames, "auth_failures": 0}]}
    figures = forward.summarize(1, {"ready": 1, "failures": 0}, counted, sent, 0.1, 0.0)
    assert figures["p50_ms"] == pytest.approx(1.0, abs=0.01)
    assert figures["p99_ms"] == pytest.approx(1.0, abs=0.01)
    assert figures["read_p50_ms"] == pytest.approx(4.0, abs=0.01)
    assert figures["delivered"] == 1.0
