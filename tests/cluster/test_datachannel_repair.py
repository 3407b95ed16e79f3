"""DataChannel frames between nodes retransmitted per hop (sans-I/O, no clock but ``now``)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.datachannel_frames import (
    HOLD_FRAMES, HOLD_TIME, MAX_ASKS, MAX_NACK_RANGES, MAX_SPAN, SEQUENCE_SPACE, WHOLE,
    DataChannelFragment, FeedReceiver, FeedSender,
)
from realtime.cluster.datachannel_repair import (
    BUFFER_AGE, MAX_RANGE, PROBE_DELAY, PROBES, RESEND_BURST, DataChannelNack, ResendBudget,
    RetransmissionBuffer,
)
from realtime.errors import DecodeError

SESSION = "0123456789abcdef0123456789abcdef"


def pair(**sender_options):
    return FeedSender(SESSION, "chat", buffer=RetransmissionBuffer(), **sender_options), \
        FeedReceiver()


def give(receiver: FeedReceiver, payloads, now: float = 0.0) -> list:
    for payload in payloads:
        receiver.receive(DataChannelFragment.decode(payload), now)
    return list(receiver.take())


# -- the NACK codec ---------------------------------------------------------------------

def test_nack_annotated_bytes() -> None:
    nack = DataChannelNack("ab", "chat", ((7, 9, 2, 0xFFFF),), reply=True)
    assert nack.encode() == bytes([
        0x02,                    # flags: replies
        2, *b"ab",               # publisher session id, length 2
        0, 4, *b"chat",          # channel name, length 4
        1,                       # one range
        0, 0, 0, 7,              # first sequence 7
        0, 0, 0, 9,              # last sequence 9
        0, 2,                    # from fragment 2 of message 7
        0xFF, 0xFF,              # to the end of message 9
    ])
    assert DataChannelNack.decode(nack.encode()) == nack


@pytest.mark.parametrize("data, message", [
    (b"\x00", "too short"),
    (b"\x04\x01s\x00\x01n\x01" + bytes(12), "flags 0x04 unknown"),
    (b"\x00\x00\x00\x01n\x01" + bytes(12), "session id truncated"),
    (b"\x00\x01s\x00\x05n", "name truncated"),
    (b"\x00\x01s\x00\x01n\x00", "with 0 ranges"),
    (b"\x00\x01s\x00\x01n" + bytes((MAX_NACK_RANGES + 1,)) + bytes(12 * 33), "with 33 ranges"),
    (b"\x00\x01s\x00\x01n\x02" + bytes(12), "ranges truncated"),
    (b"\x00\x01s\x00\x01n\x01" + bytes(13), "followed by bytes"),
    (b"\x00\x01\xff\x00\x01n\x01" + bytes(12), "not UTF-8"),
])
def test_malformed_nacks(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        DataChannelNack.decode(data)


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_hostile_nack_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        nack = DataChannelNack.decode(data)
    except DecodeError:
        return
    assert DataChannelNack.decode(nack.encode()) == nack


# -- the receiver: gap -> NACK -> retransmission -> in order ---------------------------

def test_a_lost_message_is_asked_for_resent_and_delivered_in_order() -> None:
    sender, receiver = pair()
    payloads = [sender.fragments(str(i), now=0.0)[0] for i in range(10)]
    assert give(receiver, payloads[:3]) == ["0", "1", "2"]
    assert receiver.nack_at is None and receiver.get_timer() is None   # nothing held
    assert give(receiver, payloads[4:], now=0.01) == []                # 3 lost: 4-9 held
    assert receiver.nack_at == 0.01
    ranges = receiver.nack(0.01)
    assert ranges == [(3, 3, 0, WHOLE)]
    repairs = sender.buffer.find(tuple(ranges), 0.012)
    assert repairs == [payloads[3]]
    assert give(receiver, repairs, now=0.012) == [str(i) for i in range(3, 10)]
    assert receiver.counters["recovered"] == 1 and receiver.counters["lost"] == 0
    assert receiver.get_timer() is None
    assert receiver.srtt < 0.05                   # a 2 ms NACK -> repair sample


def test_a_missing_fragment_is_asked_for_from_its_index() -> None:
    sender, receiver = pair()
    first = sender.fragments("a" * 5000)
    second = sender.fragments("b")
    assert len(first) >= 5
    give(receiver, first[:2] + first[3:] + second, now=1.0)
    assert not receiver.take()
    ranges = receiver.nack(1.0)
    assert ranges == [(0, 0, 2, 2)]               # message 0, its fragment 2
    repairs = sender.buffer.find(tuple(ranges), 1.0)
    assert repairs == [first[2]]
    assert give(receiver, repairs, 1.01) == ["a" * 5000, "b"]
    assert receiver.counters["recovered"] == 1 and receiver.counters["late"] == 0


def test_each_run_of_missing_fragments_is_one_range_and_none_not_yet_due() -> None:
    sender, receiver = pair()
    parts = sender.fragments(b"q" * 12000)
    last = len(parts) - 1
    assert last >= 10
    give(receiver, [p for i, p in enumerate(parts) if i not in (1, 2, 5, last)], now=0.0)
    # the last fragment may still be on its way: not asked for (a tail probe would reveal it)
    assert receiver.nack(0.0) == [(0, 0, 1, 2), (0, 0, 5, 5)]
    second = sender.fragments("next")
    give(receiver, second, now=0.5 * HOLD_TIME)       # now the last one is overdue
    assert receiver.nack(0.5 * HOLD_TIME) == [(0, 0, 1, 2), (0, 0, 5, 5), (0, 0, last, last)]
    repairs = sender.buffer.find(((0, 0, 1, 2), (0, 0, 5, 5), (0, 0, last, last)), 0.0)
    assert repairs == [parts[1], parts[2], parts[5], parts[last]]
    assert give(receiver, repairs, 0.0) == [b"q" * 12000, "next"]


def test_a_second_gap_in_the_message_arriving_is_asked_for_at_once() -> None:
    sender, receiver = pair()
    parts = sender.fragments(b"w" * 20000)
    assert len(parts) > 12
    give(receiver, parts[:3] + parts[4:8], now=0.0)
    assert receiver.nack(0.0) == [(0, 0, 3, 3)]
    give(receiver, parts[9:12], now=0.001)            # 8 lost too, well before a retry
    assert receiver.nack_at == 0.001
    assert receiver.nack(0.001) == [(0, 0, 8, 8)]     # only the new one
    assert receiver.nack(0.002) == []
    retry = receiver.nack_at
    assert retry == pytest.approx(receiver.retry_interval())
    assert receiver.nack(retry) == [(0, 0, 3, 3), (0, 0, 8, 8)]   # both again, later


def test_runs_of_lost_messages_make_one_range_and_complete_ones_split_them() -> None:
    sender, receiver = pair()
    payloads = [sender.fragments(str(i))[0] for i in range(12)]
    give(receiver, [payloads[0], payloads[5], payloads[11]])   # 1-4 and 6-10 lost
    assert receiver.nack(0.0) == [(1, 4, 0, WHOLE), (6, 10, 0, WHOLE)]
    assert receiver.nack(0.0) == []              # asked just now: not again before a retry


def test_asks_again_at_the_retry_interval_then_gives_up_and_counts_lost() -> None:
    sender, receiver = pair()
    payloads = [sender.fragments(str(i))[0] for i in range(4)]
    give(receiver, [payloads[0], payloads[2], payloads[3]], now=0.0)
    asked = []
    now = 0.0
    while (at := receiver.get_timer()) is not None:
        now = at
        receiver.handle_timer(now)
        if receiver.nack_at is not None and receiver.nack_at <= now:
            if receiver.nack(now):
                asked.append(round(now, 3))
    assert len(asked) == MAX_ASKS                 # at once, then at RTT-ish intervals
    assert asked[0] == 0.0 and 0 < asked[1] - asked[0] <= 0.2
    assert now == pytest.approx(HOLD_TIME)        # the hold window, then delivered past
    assert list(receiver.take()) == ["2", "3"]
    assert receiver.counters["lost"] == 1 and receiver.counters["incomplete"] == 0
    late = give(receiver, [payloads[1]], now + 0.1)  # the repair after all: too late
    assert late == [] and receiver.counters["late"] == 1


def test_a_full_hold_delivers_past_the_oldest_gap() -> None:
    sender, receiver = pair()
    payloads = [sender.fragments(str(i))[0] for i in range(HOLD_FRAMES + 3)]
    got = give(receiver, payloads[:1] + payloads[2:])
    assert got == [str(i) for i in [0, *range(2, HOLD_FRAMES + 3)]]
    assert receiver.counters["lost"] == 1


def test_a_message_far_ahead_skips_the_gap_at_once() -> None:
    sender, receiver = pair()
    give(receiver, [sender.fragments("0")[0]])
    sender.sequence = MAX_SPAN + 5
    assert give(receiver, sender.fragments("far")) == ["far"]
    assert receiver.counters["lost"] == MAX_SPAN + 4 and receiver.get_timer() is None


def test_order_and_repair_across_the_sequence_wrap() -> None:
    sender, receiver = pair()
    sender.sequence = SEQUENCE_SPACE - 2
    payloads = [sender.fragments(str(i))[0] for i in range(4)]   # 2^32-2 .. 1
    give(receiver, [payloads[0], payloads[3]])
    assert receiver.nack(0.0) == [(SEQUENCE_SPACE - 1, 0, 0, WHOLE)]
    repairs = sender.buffer.find(((SEQUENCE_SPACE - 1, 0, 0, WHOLE),), 0.0)
    assert give(receiver, repairs) == ["1", "2", "3"]


def test_an_unreliable_feed_is_not_kept_and_never_asks() -> None:
    sender, receiver = pair(unreliable=True)
    payloads = [sender.fragments(str(i))[0] for i in range(3)]
    assert sender.buffer is None
    assert give(receiver, [payloads[0], payloads[2]]) == ["0", "2"]
    assert receiver.nack(0.0) == [] and receiver.counters["lost"] == 1


# -- the sender's buffer --------------------------------------------------------------

def test_the_buffer_is_bounded_by_count_bytes_and_age() -> None:
    buffer = RetransmissionBuffer(max_frames=4, max_bytes=10_000)
    for i in range(6):
        buffer.keep(i, 0, b"x" * 10, now=0.0)
    assert buffer.frames == 4 and buffer.find(((0, 5, 0, WHOLE),), 0.0) == [b"x" * 10] * 4
    assert buffer.counters["not-buffered"] == 2 and buffer.counters["evicted"] == 2
    buffer = RetransmissionBuffer(max_bytes=100)
    for i in range(5):
        buffer.keep(i, 0, b"y" * 30, now=0.0)
    assert buffer.size <= 100 and buffer.frames == 3
    buffer = RetransmissionBuffer()
    buffer.keep(0, 0, b"old", now=0.0)
    buffer.keep(1, 0, b"new", now=BUFFER_AGE)
    assert buffer.find(((0, 1, 0, WHOLE),), BUFFER_AGE + 0.1) == [b"new"]


def test_hostile_nacks_cost_bounded_work_and_are_counted() -> None:
    buffer = RetransmissionBuffer()
    for i in range(100):
        buffer.keep(i, 0, b"m", now=0.0)
    # never sent, and the whole sequence space at once: each cut to MAX_RANGE lookups
    assert buffer.find(((5000, 5100, 0, WHOLE),), 0.0) == []
    assert buffer.find(((0, SEQUENCE_SPACE - 1, 0, WHOLE),), 0.0) == [b"m"] * 100
    assert buffer.counters["range-cut"] == 1
    assert buffer.counters["not-buffered"] == 101 + MAX_RANGE - 100
    # 32 ranges of the whole space: MAX_LOOKUPS in all
    assert buffer.find(((0, SEQUENCE_SPACE - 1, 0, WHOLE),) * 32, 0.0) == [b"m"] * 200
    assert buffer.counters["lookups-cut"] == 1
    # a flood from one node: one bucket of resends, then nothing until it refills
    budget = ResendBudget()
    every = ((0, 99, 0, WHOLE),)
    sent = sum(len(buffer.find(every, 1.0, budget.bucket("b", 1.0))) for _ in range(20))
    assert sent == RESEND_BURST and buffer.counters["over-budget"] > 0
    assert len(buffer.find(every, 1.0, budget.bucket("c", 1.0))) == 100   # not C's bucket
    budget.prune({"c"})
    assert len(buffer.find(every, 1.0, budget.bucket("b", 1.0))) == 100   # B's forgotten


def test_tail_probes_resend_the_last_fragment_after_silence_a_few_times() -> None:
    sender, receiver = pair()
    payloads = [sender.fragments(str(i), now=0.0)[0] for i in range(3)]
    buffer = sender.buffer
    assert buffer.probe(PROBE_DELAY / 2) is None
    probe = buffer.probe(PROBE_DELAY)
    assert probe == payloads[2] and buffer.probe(PROBE_DELAY) is None
    sent = [PROBE_DELAY]
    while buffer.probe_at is not None:
        at = buffer.probe_at
        assert buffer.probe(at) == probe
        sent.append(at)
    assert sent == pytest.approx([PROBE_DELAY, 3 * PROBE_DELAY, 7 * PROBE_DELAY])
    assert len(sent) == PROBES and buffer.probe(100.0) is None
    give(receiver, payloads[:2], 0.0)             # the last message was lost...
    assert give(receiver, [probe], 0.2) == ["2"]  # ...the probe brings it
    assert give(receiver, [probe], 0.3) == [] and receiver.counters["late"] == 1


# -- a relay node answers from its own buffer, and asks only for its own gaps -----------

class Hop:
    """A relay node's DataChannel side, as DataChannelRelay runs it: receive from the parent,
    pass on what is new and keep it for the children."""

    def __init__(self) -> None:
        self.receiver = FeedReceiver()
        self.buffer = RetransmissionBuffer()

    def receive(self, payload: bytes, now: float) -> list[bytes]:
        fragment = DataChannelFragment.decode(payload)
        if not self.receiver.receive(fragment, now):
            return []
        self.buffer.keep(fragment.sequence, fragment.index, payload, now)
        return [payload]


def test_a_relay_answers_its_childs_nack_itself_and_asks_its_parent_only_for_its_own_gaps(
) -> None:
    owner = FeedSender(SESSION, "chat", buffer=RetransmissionBuffer())
    relay, child = Hop(), FeedReceiver()
    payloads = [owner.fragments(str(i))[0] for i in range(8)]
    to_child = []
    for i, payload in enumerate(payloads):
        if i == 5:
            continue                             # lost between the owner and the relay
        to_child += relay.receive(payload, 0.0)
    to_child = [p for p in to_child if p != payloads[2]]   # lost between relay and child
    give(child, to_child, 0.0)
    assert child.nack(0.0) == [(2, 2, 0, WHOLE), (5, 5, 0, WHOLE)]
    assert relay.receiver.nack(0.0) == [(5, 5, 0, WHOLE)]   # only its own gap
    # the relay answers from its buffer: 2 it has, 5 it has not (yet)
    answered = relay.buffer.find(((2, 2, 0, WHOLE), (5, 5, 0, WHOLE)), 0.0)
    assert answered == [payloads[2]] and relay.buffer.counters["not-buffered"] == 1
    assert give(child, answered, 0.01) == ["2", "3", "4"]
    # the owner resends 5 to the relay, which passes it on (new to it)
    repaired = [p for r in owner.buffer.find(((5, 5, 0, WHOLE),), 0.02)
                for p in relay.receive(r, 0.02)]
    assert repaired == [payloads[5]]
    assert give(child, repaired, 0.02) == ["5", "6", "7"]
    assert child.counters["lost"] == 0 and relay.receiver.counters["lost"] == 0
    assert relay.buffer.find(((5, 5, 0, WHOLE),), 0.03) == [payloads[5]]  # kept for others


# -- properties ---------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(0, 4000), min_size=1, max_size=25),
       lose=st.sets(st.integers(1, 200), max_size=40), seed=st.randoms(use_true_random=False))
def test_loss_and_reordering_with_repairs_deliver_everything_in_order(sizes, lose, seed) -> None:
    """(The first frame arrives: a receiver starts at the first one it hears.)"""
    sender, receiver = pair()
    messages = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    frames = [p for m in messages for p in sender.fragments(m, 0.0)]
    sent = [p for i, p in enumerate(frames) if i not in lose]
    for i in range(1, len(sent) - 1, 3):             # some neighbours swapped
        if seed.random() < 0.3:
            sent[i], sent[i + 1] = sent[i + 1], sent[i]
    got = give(receiver, sent, 0.0)
    now = 0.0
    for _ in range(20):                              # NACK -> resend rounds, no loss now
        ranges = receiver.nack(now)
        if ranges:
            got += give(receiver, sender.buffer.find(tuple(ranges), now), now)
        elif sender.buffer.probe_at is not None:     # a lost tail: the probe reveals it
            got += give(receiver, [sender.buffer.probe(sender.buffer.probe_at)], now)
        now += 0.05
    assert got == messages
    assert receiver.counters["lost"] == 0 and receiver.get_timer() is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 5), st.integers(1, 6),
                          st.binary(max_size=8), st.floats(0, 2)), max_size=60))
def test_hostile_fragments_never_break_order_or_bounds(fragments) -> None:
    receiver = FeedReceiver()
    delivered: list[int] = []
    now = 0.0
    for sequence, index, count, data, step in fragments:
        now += step
        fragment = DataChannelFragment(SESSION, "chat", sequence, min(index, count - 1), count,
                                       True, bytes([sequence]) + data)
        receiver.receive(fragment, now)
        receiver.handle_timer(now)
        receiver.nack(now)
        delivered += [m[0] for m in receiver.take()]
    assert delivered == sorted(delivered) and len(set(delivered)) == len(delivered)
    assert receiver._frames <= HOLD_FRAMES and len(receiver._asks) <= MAX_SPAN
