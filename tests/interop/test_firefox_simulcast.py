"""
Firefox ESR publishes three-layer simulcast; tracks/update moves what a subscriber sees (issue 9).

Firefox's offer lists one SSRC and one ``a=ssrc-group:FID`` RTX pair per
rid (Chromium's lists none) and sends the rid header extension only on each
stream's first packets.  Before the fix the SFU registered those SSRCs
without a layer, so all three layers were forwarded mixed into the
subscriber's stream: its width matched the requested layer only by chance
and the f layer got a storm of PLIs.

pages/simulcast-switch.html (run in Firefox) pushes a 1280x720 fake camera
with rids f, h, q (``scaleResolutionDownBy`` 1, 2, 4), pulls it with
``preferredRid: "q"``, then moves ``preferredRid`` to h, f and back to q.
After each move the subscriber's decoded width must reach the layer's range
(q <= 400 < h <= 800 < f) and stay there while frames keep coming; the
publisher's per-layer PLI count stays small.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.firefox import run_firefox
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop


def test_firefox_preferred_rid_moves_the_received_width(realtime_server, pages) -> None:
    query = urllib.parse.urlencode({"api": realtime_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET, "hold": 2000})
    result = run_firefox(f"{pages}/simulcast-switch.html?{query}", timeout=120)
    assert "error" not in result, result
    for step in result["steps"]:
        print(f"preferredRid {step['rid']}: width {step['width']} after {step['settleMs']} ms, "
              f"then {step['fps']:.1f} fps, {step['inRange']:.0%} of samples in range, "
              f"widths {step['widths']}")
    print("publisher layers:", result["layers"], "over", round(result["seconds"]), "s")
    assert "a=simulcast:recv f;h;q" in result["answerSimulcast"], result["answerSimulcast"]
    assert result["offerSsrcLines"] >= 9         # Firefox signals SSRCs and FID groups per rid
    assert [s["rid"] for s in result["steps"]] == ["q", "h", "f", "q"]
    for step in result["steps"]:
        assert step["settled"], step             # the width reached the requested layer
        assert step["inRange"] == 1.0, step      # and stayed there (no mixing)
        assert step["fps"] >= 15, step           # frames keep coming at the new width
    plis = {rid: layer["pli"] for rid, layer in result["layers"].items()}
    assert set(plis) == {"f", "h", "q"}
    # one PLI per switch to a layer plus the start; a storm was ~2 per second
    assert plis["f"] <= 6 and sum(plis.values()) <= 15, plis
