"""
Issue 15, temporal layers of a track without simulcast: one encoding with
``scalabilityMode: "L1T3"``, a subscriber whose downlink lies between the
stream's TID <= 1 rate and its whole rate gets the full width at a reduced frame
rate, without freezes.

Set up as ``test_temporal_layers_chromium.py`` (tests/interop/shaped.py: a
namespace of the test's own, ``tc tbf`` on the subscriber's downlink, ``twistd
realtime`` on the veth), but the publisher (headless Chromium, root namespace)
sends its fake camera (1280x720) as ONE encoding, L1T3, in the codec of the
parameter (``setCodecPreferences``: tests/interop/pages/sfu-temporal-publish.html),
and its microphone.

1. The publisher's ``outbound-rtp`` says L1T3 in that codec.
2. The SFU's measured rates of the one layer (``/diagnostics``, rid ``""``) give
   the tbf: TID <= 1 fits with the upgrade headroom, the whole stream does not.
3. The subscriber pulls video and audio; from SETTLE_S on it receives the full
   width (1280) at a frame rate at most MAX_FPS_SHARE of the publisher's (in
   MOSTLY of the samples) and at least 8 frames a second; ``GET`` session names the
   temporal layer with a frame-rate fraction below 1 (in MOSTLY of its samples);
   ``freezeCount`` does not grow after the first 5 s.

Checked to fail without the change (2026-12-07): VP8 with the subscription's
selector not made (the allocator before: tracks without simulcast ignored), the
whole stream over the same link froze 4 times and stopped at 8 s; VP9 with no VP9
TemporalFilter made, 5 freezes and a stop at 9 s; VP9 with PictureIDs renumbered
past the dropped pictures (as for VP8), 2 then ~7 decoded frames a second while
the SFU sent 7.5 then 15 (the P_DIFF references named the wrong pictures).
AV1's TIDs come only from the Dependency Descriptor (realtime/sfu/dependency.py):
without it the SFU measures one rate per layer and the ``len(rates) == 3`` check
fails before any shaping.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest

from tests.interop.shaped import (
    assert_thinned, print_received, print_trace, pull_thinned, shaped_scene)
from tests.processes import Lines

pytestmark = pytest.mark.interop

HOLD_S = 24.0
SETTLE_S = 8.0
MAX_FPS_SHARE = 0.6
CAMERA_FPS = 30
MOSTLY = 0.8
RAMP_S = 20.0
MIN_RAMP_S = 6
"""Readings (1 s apart) before the rates are taken: the encoder climbs to its rate first."""
AUDIO = 64_000  # realtime.sfu.allocator.AUDIO_RESERVE
HEADROOM = 1.15  # realtime.media.simulcast.UPGRADE_HEADROOM


def thin_rate(rates: list[int]) -> int:
    """Return bit/s for the tbf: TID <= 1 fits with headroom, the whole stream does not."""
    low = (rates[1] * HEADROOM + AUDIO) / 0.8  # GCC settles under the tbf rate
    high = rates[-1] + AUDIO
    return int(min(max(low, (low + high) / 2), high * 0.95))


@pytest.mark.parametrize("codec", ["VP8", "VP9", "AV1"])
def test_one_encoding_l1t3_gets_full_width_at_a_lower_frame_rate(
        codec, tmp_path, pages, traffic_guard) -> None:
    children: list[Lines] = []
    with contextlib.ExitStack() as stack:
        scene = shaped_scene(stack, tmp_path, pages, traffic_guard, children, "3mbit",
                             page="sfu-temporal-publish.html", scalability="L1T3",
                             codec=codec, hold=int((HOLD_S + RAMP_S + 20) * 1000))
        server, publisher, published = scene.server, scene.publisher, scene.published
        encodings = json.loads(publisher.wait_for("CONSOLE ENCODINGS ", 30))
        print("\npublisher outbound-rtp:", encodings)
        sent = encodings.get("", {})
        assert sent.get("scalabilityMode") == "L1T3", encodings
        assert (sent.get("codec") or "").upper() == f"VIDEO/{codec}", encodings
        # the fake camera's 30 fps (outbound-rtp may still say 25 while the encoder starts)
        publisher_fps = max(sent.get("fps") or 0, CAMERA_FPS)

        def layer_rates() -> list[int]:
            _, diagnostics = server.get("/diagnostics")
            sfu = diagnostics["sessions"].get(published["sessionId"], {}).get("sfu", {})
            return next((v["rates"].get("", []) for v in sfu.get("layers", {}).values()
                         if "rates" in v), [])

        # Chromium ramps its encoder up over seconds: wait for three readings 1 s apart
        # within 20 % (at most RAMP_S)
        readings: list[list[int]] = []
        deadline = time.monotonic() + RAMP_S
        while time.monotonic() < deadline:
            readings.append(layer_rates())
            last = readings[-3:]
            if len(readings) >= MIN_RAMP_S and all(len(r) == 3 for r in last) and \
                    max(r[-1] for r in last) <= 1.2 * min(r[-1] for r in last):
                break
            time.sleep(1)
        rates = readings[-1]
        print(f"SFU rates (bit/s of TID <= 0, 1, 2) after {len(readings)} s:", rates)
        assert len(rates) == 3, readings
        thin = thin_rate(rates)
        samples, trace = pull_thinned(scene, children, thin, HOLD_S, layer_rates)
    print(f"{codec}: publisher {publisher_fps} fps; tbf {thin} bit/s")
    print_received(samples)
    print_trace(trace, rids=False)
    judged = assert_thinned(samples, trace, SETTLE_S, publisher_fps, MAX_FPS_SHARE, MOSTLY)
    assert all(s["width"] > 640 for s in judged), judged  # the full width, never scaled
