"""Transport-wide feedback, receiver side (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1)."""

from __future__ import annotations

from realtime.sfu.twcc import MAX_PENDING, MAX_STATUS_COUNT, TransportFeedbackSender
from realtime.rtcp.packet import decode_compound
from realtime.rtcp.transport_cc import TransportFeedback

T0 = 1_765_000_000.0  # wall-clock seconds, like reactor.seconds()


def decoded(packets: list[TransportFeedback]) -> list[TransportFeedback]:
    out = []
    for packet in packets:
        (again,) = decode_compound(packet.encode())
        assert again == packet
        out.append(again)
    return out


def arrivals(packets: list[TransportFeedback]) -> dict[int, int | None]:
    return {seq: at for p in packets for seq, at in p.packet_results()}


def test_reports_arrivals_and_losses_once_per_interval() -> None:
    twcc = TransportFeedbackSender(0x1234, interval=0.1)
    assert twcc.get_timer() is None
    for i, seq in enumerate([65530, 65531, 65533, 65534, 0, 1]):  # 65532 lost, wraps
        twcc.receive(seq, T0 + i * 0.005)
    assert twcc.get_timer() == T0 + 0.1
    assert twcc.feedback_due(T0 + 0.05) == []
    (packet,) = decoded(twcc.feedback_due(T0 + 0.1))
    assert packet.sender_ssrc == 0x1234
    assert packet.base_sequence_number == 65530 and packet.packet_status_count == 8
    results = packet.packet_results()
    assert [seq for seq, _ in results] == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1]
    assert [at is None for _, at in results] == [False, False, True, False, False, True, False, False]
    times = [at for _, at in results if at is not None]
    assert [b - a for a, b in zip(times, times[1:])] == [5000] * 5  # µs, 250 µs units exact
    assert twcc.get_timer() is None
    twcc.receive(2, T0 + 0.2)
    twcc.receive(65533, T0 + 0.2)  # reported already: late, not reported again
    (packet,) = decoded(twcc.feedback_due(T0 + 0.3))
    assert packet.base_sequence_number == 2 and packet.packet_status_count == 1
    assert packet.feedback_packet_count == 1
    assert twcc.dropped_late == 1


def test_long_runs_split_and_big_gaps_start_a_new_reference() -> None:
    twcc = TransportFeedbackSender(1)
    for seq in range(2500):
        twcc.receive(seq, T0 + seq * 0.0001)
    twcc.receive(2500, T0 + 20.0)  # 20 s later: the delta does not fit 16 bits
    packets = decoded(twcc.flush())
    assert [p.packet_status_count for p in packets] == [MAX_STATUS_COUNT, MAX_STATUS_COUNT, 500, 1]
    assert all(at is not None for at in arrivals(packets).values())
    assert len(arrivals(packets)) == 2501


def test_memory_is_bounded_under_a_flood_without_reports() -> None:
    twcc = TransportFeedbackSender(1)
    for i in range(3 * MAX_PENDING):
        twcc.receive(i & 0xFFFF, T0 + i * 1e-5)
        assert len(twcc._arrivals) <= MAX_PENDING
    packets = decoded(twcc.flush())
    assert sum(p.packet_status_count for p in packets) <= MAX_PENDING


def test_hostile_sequence_numbers_never_crash() -> None:
    import random
    rng = random.Random(7)
    twcc = TransportFeedbackSender(1)
    now = T0
    for _ in range(20_000):
        now += rng.random() * 0.002
        twcc.receive(rng.randrange(0x10000), now)
        if rng.random() < 0.01:
            decoded(twcc.feedback_due(now + 1))
    decoded(twcc.flush())
