"""The retransmission buffer and the NACK generator (RFC 4585 §6.2.1 Generic NACK)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.media.nack import NackGenerator, RetransmissionBuffer
from realtime.rtcp.feedback import nack_items


def test_buffer_returns_what_was_stored_and_forgets_evicted_slots() -> None:
    buffer = RetransmissionBuffer(capacity=4)
    for seq in range(10, 16):
        buffer.store(seq, bytes([seq]))
    assert buffer.get(15) == b"\x0f"
    assert buffer.get(12) == b"\x0c"
    assert buffer.get(11) is None  # slot 3 now holds 15
    assert 11 not in buffer and 12 in buffer
    assert len(buffer) == 4
    assert (buffer.hits, buffer.misses) == (2, 1)


def test_buffer_wraps_the_sequence_space() -> None:
    buffer = RetransmissionBuffer(capacity=8)
    for seq in (65534, 65535, 0, 1):
        buffer.store(seq, seq.to_bytes(2, "big"))
    assert [buffer.get(s) for s in (65534, 65535, 0, 1)] == [
        b"\xff\xfe",
        b"\xff\xff",
        b"\x00\x00",
        b"\x00\x01",
    ]
    buffer.clear()
    assert buffer.get(0) is None and len(buffer) == 0


@pytest.mark.parametrize("capacity", [0, 3, 1000, -8])
def test_buffer_capacity_is_a_power_of_two(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity must be a power of two"):
        RetransmissionBuffer(capacity)


def test_gap_is_nacked_after_the_reorder_delay_with_the_right_pid_blp() -> None:
    nacks = NackGenerator(reorder_delay=0.005)
    for seq in (100, 101, 102, 105, 106, 108):
        nacks.receive(seq, now=0.0)
    assert nacks.missing == [103, 104, 107]
    assert nacks.nacks_due(0.001) == []  # still within the reorder delay
    assert nacks.get_timer() == pytest.approx(0.005)
    lost = nacks.nacks_due(0.005)
    assert lost == [103, 104, 107]
    (item,) = nack_items(lost)
    assert item.pid == 103
    assert item.blp == 0b0000_0000_0000_1001  # bit 0: 104 = PID+0+1, bit 3: 107 = PID+3+1
    assert item.sequence_numbers() == [103, 104, 107]


def test_reordered_packet_is_never_nacked() -> None:
    nacks = NackGenerator(reorder_delay=0.01)
    nacks.receive(1, 0.0)
    nacks.receive(3, 0.0)
    nacks.receive(2, 0.004)
    assert nacks.nacks_due(1.0) == []
    assert nacks.recovered == 1 and nacks.get_timer() is None


def test_retries_are_spaced_by_rtt_and_given_up() -> None:
    nacks = NackGenerator(
        reorder_delay=0.0, min_interval=0.02, rtt_factor=1.0, max_retries=3, max_age=10
    )
    nacks.set_rtt(0.1)
    nacks.receive(0, 0.0)
    nacks.receive(2, 0.0)
    assert nacks.nacks_due(0.0) == [1]
    assert nacks.nacks_due(0.05) == []  # < rtt since the last NACK
    assert nacks.get_timer() == pytest.approx(0.1)
    assert nacks.nacks_due(0.1) == [1]
    assert nacks.nacks_due(0.2) == [1]
    assert nacks.requested == 3
    assert not nacks.keyframe_wanted
    assert nacks.nacks_due(0.3) == []  # three retries spent: given up
    assert nacks.abandoned == 1 and nacks.take_keyframe_wanted() and not nacks.keyframe_wanted
    assert nacks.get_timer() is None


def test_too_old_packets_are_given_up() -> None:
    nacks = NackGenerator(reorder_delay=0.0, max_age=0.5)
    nacks.receive(10, 0.0)
    nacks.receive(12, 0.0)
    assert nacks.nacks_due(0.0) == [11]
    assert nacks.get_timer() == pytest.approx(0.1 * 1.2)
    assert nacks.nacks_due(0.5) == [] and nacks.abandoned == 1


def test_huge_jump_is_a_restart_not_loss() -> None:
    nacks = NackGenerator(max_gap=100)
    nacks.receive(0, 0.0)
    nacks.receive(5000, 0.0)
    assert nacks.missing == []
    nacks.receive(5002, 0.0)
    assert nacks.missing == [5001]


def test_missing_list_is_bounded() -> None:
    nacks = NackGenerator(max_missing=10, max_gap=60000)
    nacks.receive(0, 0.0)
    nacks.receive(50, 0.0)
    assert nacks.missing == list(range(40, 50))
    assert nacks.abandoned == 39 and nacks.keyframe_wanted


def test_loss_across_the_wrap() -> None:
    nacks = NackGenerator(reorder_delay=0.0)
    nacks.receive(65534, 0.0)
    nacks.receive(1, 0.0)
    assert nacks.nacks_due(0.0) == [65535, 0]
    (item,) = nack_items([65535, 0])
    assert (item.pid, item.blp) == (65535, 1)
    nacks.reset()
    nacks.receive(7, 1.0)
    assert nacks.missing == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), max_size=200), st.integers(1, 64))
def test_any_sequence_keeps_state_bounded(seqs: list[int], max_missing: int) -> None:
    nacks = NackGenerator(max_missing=max_missing, reorder_delay=0.0)
    buffer = RetransmissionBuffer(capacity=16)
    for i, seq in enumerate(seqs):
        nacks.receive(seq, i * 0.01)
        buffer.store(seq, b"x")
        for lost in nacks.nacks_due(i * 0.01):
            assert 0 <= lost <= 0xFFFF
        assert len(nacks.missing) <= max_missing
        assert len(buffer) <= 16
