"""Inter-node RTT (realtime/cluster/rtt.py): RFC 6298 smoothing, forgetting, hostile PONGs,
and the pairs the cascading trees are given."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.rtt import MAX_AGE, MAX_RTT, NONCE_LENGTH, RttTable, pair_rtts


def counting_random():
    """Nonces 0, 1, 2, ... (8 bytes each): distinct and predictable."""
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def measure(table: RttTable, member: str, sent: float, rtt: float) -> float | None:
    nonce = table.probe(member, sent)
    return table.pong_received(member, nonce, sent + rtt)


def test_first_sample_then_rfc6298_smoothing() -> None:
    table = RttTable(counting_random())
    assert measure(table, "b", 0.0, 0.010) == pytest.approx(0.010)
    assert table.srtt("b") == pytest.approx(0.010)              # §2.2: SRTT <- R
    measure(table, "b", 2.0, 0.018)
    # §2.3: SRTT <- 7/8 SRTT + 1/8 R'
    assert table.srtt("b") == pytest.approx(0.875 * 0.010 + 0.125 * 0.018)
    peer = table._peers["b"]
    # RTTVAR <- 3/4 (R/2) + 1/4 |SRTT - R'| with the SRTT before this update
    assert peer.rttvar == pytest.approx(0.75 * 0.005 + 0.25 * 0.008)
    for i in range(60):                                         # a lasting change is followed
        measure(table, "b", 4.0 + 2 * i, 0.002)
    assert table.srtt("b") == pytest.approx(0.002, abs=1e-5)
    assert table.snapshot(124.0) == {"b": pytest.approx(2.0, abs=0.01)}
    assert table.samples == 62 and not table.dropped


def test_one_late_pong_moves_the_estimate_by_an_eighth_only() -> None:
    table = RttTable(counting_random())
    measure(table, "b", 0.0, 0.001)
    measure(table, "b", 2.0, 0.401)
    assert table.srtt("b") == pytest.approx(0.001 + 0.4 / 8)


def test_probes_forget_members_that_left_and_snapshot_leaves_out_silent_ones() -> None:
    table = RttTable(counting_random())
    for member, nonce in table.probes(["b", "c", "d"], 0.0):
        table.pong_received(member, nonce, 0.001 if member != "d" else 0.003)
    assert table.snapshot(0.5) == {"b": 1.0, "c": 1.0, "d": 3.0}
    probes = dict(table.probes(["b", "d"], 2.0))                # c left the registry
    assert sorted(probes) == ["b", "d"] and table.srtt("c") is None
    table.pong_received("b", probes["b"], 2.002)
    # d stops answering: its estimate is reported until MAX_AGE after its last sample
    assert set(table.snapshot(0.001 + MAX_AGE)) == {"b", "d"}
    assert set(table.snapshot(0.004 + MAX_AGE)) == {"b"}
    assert table.srtt("d") == pytest.approx(0.003)              # kept, not reported


@pytest.mark.parametrize("payload, reason", [
    (b"", "malformed"),
    (b"\x00" * 7, "malformed"),
    (b"\x00" * 9, "malformed"),
    ((99).to_bytes(8, "big"), "unknown"),      # never sent
])
def test_hostile_pongs_are_dropped_and_counted(payload, reason) -> None:
    table = RttTable(counting_random())
    table.probe("b", 0.0)
    assert table.pong_received("b", payload, 0.001) is None
    assert table.dropped == {reason: 1}
    assert table.srtt("b") is None


def test_stale_replayed_misdirected_and_implausible_pongs() -> None:
    table = RttTable(counting_random())
    first = table.probe("b", 0.0)
    second = table.probe("b", 2.0)              # the first went unanswered: replaced
    assert table.pong_received("b", first, 2.001) is None
    assert table.dropped["stale"] == 1
    assert table.pong_received("c", second, 2.001) is None      # c was never probed
    assert table.dropped["unknown"] == 1
    assert table.pong_received("b", second, 2.001) == pytest.approx(0.001)
    assert table.pong_received("b", second, 2.002) is None      # echoed twice
    assert table.dropped["duplicate"] == 1
    third = table.probe("b", 4.0)
    assert table.pong_received("b", third, 3.9) is None         # clock stepped back
    assert table.pong_received("b", table.probe("b", 6.0), 6.0 + MAX_RTT + 0.1) is None
    assert table.dropped["implausible"] == 2
    assert table.srtt("b") == pytest.approx(0.001)              # only the good sample counted
    assert table.samples == 1


def test_a_ping_is_echoed_only_if_it_is_a_nonce() -> None:
    table = RttTable()
    assert table.ping_received(b"12345678") == b"12345678"
    assert table.ping_received(b"123") is None
    assert table.answered == 1 and table.dropped == {"malformed": 1}


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["b", "c", "x"]), st.binary(max_size=12),
                          st.floats(-10, 10, allow_nan=False)), max_size=40))
def test_any_pong_sequence_never_raises_and_keeps_estimates_plausible(pongs) -> None:
    table = RttTable()
    table.probes(["b", "c"], 0.0)
    for member, payload, now in pongs:
        table.pong_received(member, payload, now)
    for member in ("b", "c"):
        srtt = table.srtt(member)
        assert srtt is None or 0 <= srtt <= MAX_RTT
    assert len(table.snapshot(0.0)) <= 2
    assert NONCE_LENGTH == 8


def test_snapshot_is_bounded_to_the_nearest_peers() -> None:
    table = RttTable(counting_random())
    members = [f"n{i:03}" for i in range(300)]
    for i, (member, nonce) in enumerate(table.probes(members, 0.0)):
        table.pong_received(member, nonce, (i + 1) / 1e5)
    snapshot = table.snapshot(1.0)
    assert len(snapshot) == 256 and "n000" in snapshot and "n299" not in snapshot


def test_pairs_take_either_direction_or_the_mean_of_both() -> None:
    reported = {
        "a": {"b": 2.0, "c": 4.0, "gone": 1.0, "a": 0.5},
        "b": {"a": 4.0},
        "c": {},
        "d": {"c": 10.0, "b": -1.0, "a": float(MAX_RTT * 1000)},
    }
    pairs = pair_rtts(reported)
    assert pairs == {("a", "b"): 0.003, ("b", "a"): 0.003,      # mean of 2 and 4 ms
                     ("a", "c"): 0.004, ("c", "a"): 0.004,      # a's measurement only
                     ("c", "d"): 0.010, ("d", "c"): 0.010}      # d's only
    assert pair_rtts({}) == {}
