"""
Headless Chromium publishes three-layer simulcast; a second session's received size follows tracks/update.

Cloudflare's echo-simulcast flow (docs/cloudflare-api.md §2.4): session A pushes a
1280x720 fake camera with ``sendEncodings`` rids f, h, q
(``scaleResolutionDownBy`` 1, 2, 4); the SFU's answer mirrors the rids as
``recv`` and ``a=simulcast:recv f;h;q``.  Session B pulls the track with
``preferredRid: "q"``, then ``PUT tracks/update`` moves ``preferredRid`` to
h, f and back to q; B's decoded ``frameWidth`` must follow (q ≤ 400 < h ≤ 800
< f), and keep decoding at that width for the next 3 s at >= 20 frames/s
(not one key frame and a stall).  All three layers start at once because the publisher leg's receiver
reports carry a REMB (docs/sfu.md, "Simulcast layer selection").
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.conftest import run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop

# Frames/s B decodes in the 3 s after each switch (the fake camera sends 30;
# three layers of 720p are encoded on a loaded 2-core machine).
MIN_FPS_AFTER_SWITCH = 20.0


def test_preferred_rid_moves_the_received_frame_size(realtime_server, pages) -> None:
    query = urllib.parse.urlencode({"api": realtime_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET})
    result = run_page(f"{pages}/sfu-simulcast.html?{query}", timeout=90)
    assert "error" not in result, result
    print("layers sent:", result["layers"], "steps:", result["steps"])
    assert "a=simulcast:recv f;h;q" in result["answerSimulcast"], result["answerSimulcast"]
    widths = {step["rid"]: step["width"] for step in result["steps"][:3]}
    q, h, f = widths["q"], widths["h"], widths["f"]
    assert 0 < q <= 400 < h <= 800 < f, result["steps"]
    back = result["steps"][3]
    assert back["rid"] == "q" and 0 < back["width"] <= 400, result["steps"]
    bands = {"q": (1, 400), "h": (401, 800), "f": (801, 10_000)}
    for step in result["steps"]:
        low, high = bands[step["rid"]]
        after = step["after"]
        assert low <= after["minWidth"] and after["maxWidth"] <= high, step
        assert after["fps"] >= MIN_FPS_AFTER_SWITCH, step
