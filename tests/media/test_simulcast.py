"""Per-subscriber simulcast layer selection (RFC 8853 rids, the contract's vocabularies)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.media.simulcast import LayerSelector, SimulcastLayers, SimulcastPreferences

P = SimulcastPreferences


@pytest.mark.parametrize(
    "obj, expected",
    [
        (None, P()),
        ({}, P()),
        ({"preferredRid": ""}, P()),  # Orange: "" = no preference
        ({"preferredRid": "h"}, P("h")),
        (
            {
                "preferredRid": "h",
                "priorityOrdering": "asciibetical",
                "ridNotAvailable": "asciibetical",
            },
            P("h", "asciibetical", "asciibetical"),
        ),
        (
            {"preferredRid": "q", "ridUnavailableStrategy": "nextPriority"},
            P("q", "none", "asciibetical"),
        ),
        ({"preferredRid": "q", "ridUnavailableStrategy": "none"}, P("q")),
        ({"preferredRid": "f", "fallbackStrategy": "auto"}, P("f", "none", "asciibetical")),
        (
            {"preferredRid": "f", "fallbackStrategy": "leastBandwidth"},
            P("f", "none", "leastBandwidth"),
        ),
        ({"preferredRid": "f", "fallbackStrategy": "none"}, P("f")),
        ({"preferredRid": 7, "priorityOrdering": "bogus", "ridNotAvailable": 3, "x": 1}, P()),
    ],
)
def test_preferences_from_every_vocabulary(obj, expected) -> None:
    assert SimulcastPreferences.from_json(obj) == expected


def test_preferences_echo_in_the_current_vocabulary() -> None:
    assert P("h", "asciibetical", "leastBandwidth").to_json() == {
        "preferredRid": "h",
        "priorityOrdering": "asciibetical",
        "ridNotAvailable": "asciibetical",
    }


@pytest.mark.parametrize(
    "prefs, active, expected",
    [
        (P(), ["f", "h", "q"], "f"),  # no preference: best active
        (P(), ["h", "q"], "h"),
        (P("h"), ["f", "h", "q"], "h"),
        (P("h"), ["f", "q"], "h"),  # ridNotAvailable none: keep waiting for h
        (P("h", rid_not_available="asciibetical"), ["f", "q"], "q"),  # next after h in a-z
        (
            P("q", rid_not_available="asciibetical"),
            ["f", "h"],
            "h",
        ),  # nothing after q: nearest before
        (P("f", rid_not_available="leastBandwidth"), ["h", "q"], "q"),
        (P("x", rid_not_available="asciibetical"), [], "x"),  # nothing arrives at all
    ],
)
def test_target_choice(prefs, active, expected) -> None:
    selector = LayerSelector(SimulcastLayers(), prefs)
    assert selector.target_for(active) == expected


def feed(layers: SimulcastLayers, selector: LayerSelector, rid: str, key: bool, now: float) -> bool:
    layers.packet_received(rid, 1000, now)
    return selector.accept(rid, key, now)


def test_switch_happens_only_on_a_keyframe_of_the_target() -> None:
    layers = SimulcastLayers(["f", "h", "q"])
    selector = LayerSelector(layers, P("f"))
    assert not feed(layers, selector, "f", False, 0.0)  # a new subscriber waits for a key frame
    assert selector.take_keyframe_request() == "f"
    assert selector.take_keyframe_request() is None  # asked once
    assert not feed(layers, selector, "f", False, 0.01)
    assert selector.take_keyframe_request() is None
    assert not feed(layers, selector, "h", True, 0.02)
    assert feed(layers, selector, "f", True, 0.03) and selector.current == "f"
    selector.set_preferences(P("q"))
    assert selector.take_keyframe_request() == "q"
    assert feed(layers, selector, "f", False, 0.04)  # still f until q's key frame
    assert not feed(layers, selector, "q", False, 0.05)
    assert feed(layers, selector, "q", True, 0.06) and selector.current == "q"
    assert not feed(layers, selector, "f", True, 0.07)
    assert selector.switches == 2


def test_fallback_when_a_layer_stops_and_return_when_it_comes_back() -> None:
    layers = SimulcastLayers(["f", "h", "q"], inactive_after=0.5)
    selector = LayerSelector(layers, P("f", rid_not_available="asciibetical"))
    t = 0.0
    for rid in "fhq":
        feed(layers, selector, rid, True, t)
    assert selector.current == "f"
    selector.take_keyframe_request()
    # f stops; h and q go on; after 0.5 s the selector targets h and asks for its key frame
    forwarded = []
    for step in range(1, 40):
        t = step * 0.033
        for rid in "hq":
            if feed(layers, selector, rid, step % 20 == 0, t):
                forwarded.append((rid, step))
    assert layers.active() == ["h", "q"]
    assert selector.target == "h" and selector.current == "h"
    assert forwarded[0] == ("h", 20)  # switched exactly at h's key frame
    assert layers.get_timer() is not None
    # f comes back: the selector returns on f's first key frame
    assert not feed(layers, selector, "f", False, 2.0)
    assert selector.target == "f" and selector.take_keyframe_request() == "f"
    assert feed(layers, selector, "h", False, 2.01)
    assert feed(layers, selector, "f", True, 2.02) and selector.current == "f"


def test_fallback_none_keeps_waiting() -> None:
    layers = SimulcastLayers(inactive_after=0.5)
    selector = LayerSelector(layers, P("f"))
    feed(layers, selector, "f", True, 0.0)
    for step in range(1, 30):
        feed(layers, selector, "h", True, step * 0.1)
    assert layers.active() == ["h"]
    assert selector.current == "f" and selector.target == "f"


def test_priority_ordering_steps_down_when_bandwidth_is_short() -> None:
    layers = SimulcastLayers(window=0.1)
    selector = LayerSelector(layers, P("f", priority_ordering="asciibetical"))
    sizes = {"f": 2500, "h": 800, "q": 200}  # bytes per 10 ms: 2 Mbit/s, 640 kbit/s, 160 kbit/s
    for step in range(30):
        for rid, size in sizes.items():
            layers.packet_received(rid, size, step * 0.01)
    assert layers.bitrate("f") == pytest.approx(2_000_000, rel=0.15)
    selector.set_available_bitrate(1_000_000)
    assert selector.target == "h"
    selector.set_available_bitrate(100_000)
    assert selector.target == "q"  # nothing fits: the last layer
    selector.set_available_bitrate(None)
    assert selector.target == "f"
    none_ordering = LayerSelector(layers, P("f"))
    none_ordering.set_available_bitrate(100_000)
    assert none_ordering.target == "f"


def test_no_preference_moves_up_only_within_what_was_shown_to_arrive() -> None:
    """docs/bandwidth.md §3: down on the estimate, up with 15 % headroom within what was shown."""
    layers = SimulcastLayers(window=0.1)
    selector = LayerSelector(layers, P(None))
    sizes = {"f": 2500, "h": 800, "q": 200}  # 2 Mbit/s, 640 kbit/s, 160 kbit/s
    for step in range(30):
        for rid, size in sizes.items():
            layers.packet_received(rid, size, step * 0.01)
    selector.set_available_bitrate(300_000)
    assert (selector.target, selector.reason) == ("q", "bandwidth")
    assert selector.accept("q", True, 0.3)  # q's key frame: now current
    # GCC's estimate says 1 Mbit/s but only 300 kbit/s was shown to arrive: stay at q
    selector.set_available_bitrate(1_000_000, 300_000)
    assert selector.target == "q"
    assert selector.upgrade_bitrate() == pytest.approx(2_000_000 * 1.15, rel=0.15)
    selector.set_available_bitrate(1_000_000, 700_000)  # 640 k x 1.15 does not fit 700 k
    assert selector.target == "q"
    selector.set_available_bitrate(1_000_000, 800_000)
    assert (selector.target, selector.reason) == ("h", "bandwidth")
    selector.set_available_bitrate(5_000_000)
    assert (selector.target, selector.reason) == ("f", "auto")


def test_an_unmeasured_layer_is_not_chosen_over_one_known_not_to_fit() -> None:
    """Issue 15: f just (re)started, no rate yet; h is measured and too big: q, not f."""
    layers = SimulcastLayers(window=0.1)
    selector = LayerSelector(layers, P(None))
    for step in range(30):
        layers.packet_received("h", 800, step * 0.01)  # 640 kbit/s
        layers.packet_received("q", 200, step * 0.01)  # 160 kbit/s
    layers.packet_received("f", 2500, 0.3)  # active, not measured
    assert layers.active() == ["f", "h", "q"] and layers.bitrate("f") is None
    selector.set_available_bitrate(300_000)
    assert (selector.target, selector.reason) == ("q", "bandwidth")
    selector.set_available_bitrate(None)  # no estimate at all: the best layer
    assert selector.target == "f"


def _frames(layers: SimulcastLayers, fps: dict[str, float], start: float, seconds: float) -> float:
    """Feed one packet per frame (marker set) of each layer at its frame rate; return the end."""
    t, step = start, 0.001
    due = {rid: start for rid in fps}
    while t < start + seconds:
        for rid, rate in fps.items():
            if rate and t >= due[rid]:
                layers.packet_received(rid, 1000, t, frame_end=True)
                due[rid] += 1 / rate
        t += step
    return t


def test_a_starved_layer_is_passed_over_until_it_recovers() -> None:
    """Issue 15, a publisher short of uplink: Chromium keeps f at a few frames/s (measured
    2-8 fps on a 1 Mbit/s uplink, tests/interop/test_shaped_publisher_chromium.py); sent f,
    the subscriber froze at every gap.  f is starved under half h's frame rate, back at 3/4."""
    layers = SimulcastLayers(window=0.5)
    auto = LayerSelector(layers, P(None))
    preferred = LayerSelector(layers, P("f", rid_not_available="asciibetical"))
    stubborn = LayerSelector(layers, P("f"))  # ridNotAvailable none: f, even starved
    t = _frames(layers, {"f": 30, "h": 30, "q": 30}, 0.0, 2.0)
    assert [auto.target_for(layers.active()), auto.reason] == ["f", "auto"]
    t = _frames(layers, {"f": 4, "h": 30, "q": 30}, t, 3.0)
    assert layers.starved("f") and not layers.starved("h")
    assert layers.frame_rate("f") == pytest.approx(4, abs=3)  # smoothed over windows
    assert [auto.target_for(layers.active()), auto.reason] == ["h", "degraded"]
    assert [preferred.target_for(layers.active()), preferred.reason] == ["h", "fallback"]
    assert stubborn.target_for(layers.active()) == "f"
    # the generation moved: a selector retargets at its next packet
    assert not auto.accept("q", False, t) and auto.target == "h"
    # 20 fps is above half, not yet at 3/4 of 30: still starved (no flapping at the line)
    t = _frames(layers, {"f": 20, "h": 30, "q": 30}, t, 3.0)
    assert layers.starved("f")
    t = _frames(layers, {"f": 28, "h": 30, "q": 30}, t, 3.0)
    assert not layers.starved("f")
    assert [auto.target_for(layers.active()), auto.reason] == ["f", "auto"]
    # the last layer is never starved: it is all there is under the others
    _frames(layers, {"f": 30, "h": 30, "q": 3}, t, 3.0)
    assert not layers.starved("q")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("fhq"), st.booleans(), st.floats(0, 0.3)), max_size=80),
    st.sampled_from(["", "f", "h", "q"]),
    st.sampled_from(["none", "asciibetical"]),
)
def test_forwarded_packets_belong_to_one_layer_between_keyframes(
    events, preferred, fallback
) -> None:
    layers = SimulcastLayers(inactive_after=0.2)
    selector = LayerSelector(
        layers,
        SimulcastPreferences.from_json({"preferredRid": preferred, "ridNotAvailable": fallback}),
    )
    now, current = 0.0, None
    for rid, key, dt in events:
        now += dt
        if feed(layers, selector, rid, key, now):
            if rid != current:
                assert key, "a layer change must start on a key frame"
                current = rid
        assert selector.current == current


def test_a_single_layer_chooses_only_its_temporal_layer() -> None:
    """A track without simulcast (SINGLE): current from the start, no key frame asked for;
    with temporal layers the TID that fits, with headroom to go up; without, its rate is
    fixed (the allocator sets it aside)."""
    from realtime.media.simulcast import ALL_TIDS, SINGLE

    layers = SimulcastLayers([SINGLE])
    selector = LayerSelector(layers, None, single=True)
    assert (selector.current, selector.target) == (SINGLE, SINGLE)
    assert selector.fixed_rate() == 0.0  # not measured yet
    for i in range(40):  # 1 s of L1T3: TID 0 / 1 / 2 of 4000 / 2000 / 1000 octets a frame
        tid = (0, 2, 1, 2)[i % 4]
        layers.packet_received(SINGLE, (4000, 2000, 1000)[tid], i / 30, tid)
    rates = layers.rates(SINGLE)
    assert rates is not None and len(rates) == 3 and selector.fixed_rate() is None
    selector.set_available_bitrate((rates[1] + rates[2]) / 2)
    assert (selector.target, selector.target_tid) == (SINGLE, 1)
    assert selector.take_keyframe_request() is None
    selector.set_available_bitrate(rates[2] * 1.05)  # fits, but not with the headroom
    assert selector.target_tid == 1
    selector.set_available_bitrate(rates[2] * 1.2)
    assert selector.target_tid == ALL_TIDS
    assert selector.upgrade_bitrate() is None
    selector.set_available_bitrate(rates[0] / 2)  # the least there is: TID 0
    assert selector.target_tid == 0 and selector.upgrade_bitrate() == rates[1] * 1.15

    plain = SimulcastLayers([SINGLE])
    for i in range(40):
        plain.packet_received(SINGLE, 1000, i / 30)
    fixed = LayerSelector(plain, None, single=True).fixed_rate()
    assert fixed is not None and fixed > 0
