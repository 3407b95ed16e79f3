"""
Headless Chromium publishes three-layer simulcast; a second session's received size follows tracks/update.

Cloudflare's echo-simulcast flow (docs/cloudflare-api.md §2.4): session A pushes a
1280x720 fake camera with ``sendEncodings`` rids f, h, q
(``scaleResolutionDownBy`` 1, 2, 4); the SFU's answer mirrors the rids as
``recv`` and ``a=simulcast:recv f;h;q``.  Session B pulls the track with
``preferredRid: "q"``, then ``PUT tracks/update`` moves ``preferredRid`` to
h, f and back to q; B's decoded ``frameWidth`` must follow (q ≤ 400 < h ≤ 800
< f).  All three layers start at once because the publisher leg's receiver
reports carry a REMB (docs/sfu.md, "Simulcast layer selection").
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.conftest import run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop


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
