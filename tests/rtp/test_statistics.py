"""RFC 3550 Appendix A.1/A.3/A.8 receive statistics and NTP helpers."""

from __future__ import annotations

import pytest

from realtime.rtcp.reports import ReportBlock
from realtime.rtp.statistics import (
    ReceiverStatistics,
    SenderStatistics,
    ntp_middle32,
    ntp_timestamp,
    ntp_to_unix,
)


def feed(stats: ReceiverStatistics, seqs: list[int]) -> list[bool]:
    return [stats.receive(seq, 0, 0.0) for seq in seqs]


def test_probation_then_counting() -> None:
    stats = ReceiverStatistics(1, 90000)
    assert feed(stats, [10, 11, 12]) == [False, True, True]  # MIN_SEQUENTIAL = 2
    assert stats.base_seq == 11 and stats.received == 2 and stats.cumulative_lost == 0


def test_probation_restarts_on_gap() -> None:
    stats = ReceiverStatistics(1, 90000)
    assert feed(stats, [10, 20, 21, 22]) == [False, False, True, True]
    assert stats.base_seq == 21


def test_loss_and_fraction() -> None:
    stats = ReceiverStatistics(7, 90000)
    feed(stats, [10, 11, 12, 14, 16, 17, 18, 19])  # 13 and 15 lost
    block = stats.report_block(now=0.0)
    assert block == ReportBlock(7, fraction_lost=2 * 256 // 9, cumulative_lost=2,
                                highest_sequence=19, jitter=0, lsr=0, dlsr=0)
    feed(stats, [20, 23])  # 21, 22 lost in the second interval: 2 of 4
    block = stats.report_block(now=0.0)
    assert (block.fraction_lost, block.cumulative_lost) == (128, 4)
    assert stats.report_block(now=0.0).fraction_lost == 0  # empty interval


def test_reorder_and_duplicate() -> None:
    stats = ReceiverStatistics(1, 90000)
    feed(stats, [1, 2, 3, 5, 4, 6])
    assert stats.cumulative_lost == 0 and stats.extended_highest_sequence == 6
    feed(stats, [6])  # duplicate: received exceeds expected
    block = stats.report_block(now=0.0)
    assert block.cumulative_lost == -1 and block.fraction_lost == 0


def test_wrap_at_65535() -> None:
    stats = ReceiverStatistics(1, 90000)
    feed(stats, [65533, 65534, 65535, 0, 1])
    assert stats.cycles == 65536
    assert stats.extended_highest_sequence == 65537
    assert stats.report_block(0.0).highest_sequence == 0x0001_0001
    assert stats.cumulative_lost == 0
    feed(stats, [65535])  # late packet from before the wrap does not unwrap backwards
    assert stats.extended_highest_sequence == 65537


def test_large_jump_resyncs_after_two_packets() -> None:
    stats = ReceiverStatistics(1, 90000)
    feed(stats, [100, 101, 102])
    assert feed(stats, [40000, 40001]) == [False, True]
    assert stats.base_seq == 40001 and stats.received == 1


def test_jitter_hand_computed() -> None:
    # 8 kHz audio, 20 ms packets; arrivals 0, 20, 45, 60 ms.
    stats = ReceiverStatistics(1, 8000)
    for seq, ts, arrival in [(1, 0, 0.0), (2, 160, 0.020), (3, 320, 0.045), (4, 480, 0.060)]:
        stats.receive(seq, ts, arrival)
    # transits (counted packets only): 0, 40, 0 -> D = 40, 40
    # J = 0 + (40 - 0)/16 = 2.5 ; J = 2.5 + (40 - 2.5)/16 = 4.84375
    assert stats.jitter == pytest.approx(4.84375)
    assert stats.report_block(0.0).jitter == 4


def test_lsr_dlsr() -> None:
    stats = ReceiverStatistics(1, 90000)
    feed(stats, [1, 2])
    stats.receive_sender_report(0x0123_4567_89AB_CDEF, arrival_time=10.0)
    block = stats.report_block(now=11.5)
    assert block.lsr == 0x4567_89AB
    assert block.dlsr == 98304  # 1.5 s in 1/65536 s


def test_ntp_conversion() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(1.5) & 0xFFFFFFFF == 0x8000_0000
    assert ntp_middle32(0x0123_4567_89AB_CDEF) == 0x4567_89AB
    # aiortc's rtcp_sr.bin: Wireshark shows Mar 4, 2018 10:22:19.082 UTC.
    assert ntp_to_unix(0xDE46475B151A005C) == pytest.approx(1520158939.0824, abs=1e-3)


def test_sender_statistics() -> None:
    sender = SenderStatistics(5)
    sender.sent(100, rtp_timestamp=1000, now=1.0)
    sender.sent(50, rtp_timestamp=1900, now=1.01)
    assert (sender.packet_count, sender.octet_count) == (2, 150)
    assert sender.rtp_timestamp_at(1.11, 90000) == 1900 + 9000
    assert SenderStatistics(1).rtp_timestamp_at(5.0, 90000) == 0
