"""
Headless Chromium through the SFU, following Cloudflare's echo example
(docs/cloudflare-api.md §2.2).

Session A pushes the fake camera and microphone with its own offer; a new
session B pulls both, answers the SFU's offer and renegotiates.  B's video
must decode within 5 s and then play as a viewer needs it
(:func:`~tests.interop.conftest.assert_plays`), and
``GET /sessions/B`` must list both pulls as active.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.conftest import assert_plays, run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop


def test_chromium_echo_flow_through_the_sfu(realtime_server, pages) -> None:
    query = urllib.parse.urlencode({"api": realtime_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET})
    result = run_page(f"{pages}/sfu-echo.html?{query}", timeout=40)
    assert "error" not in result, result
    print("first frame after", round(result["firstFrameMs"] or -1), "ms;", result["playback"])
    assert result["mids"] == ["0", "1"]  # allocated from "0" in request order
    assert [t["location"] for t in result["pushTracks"]] == ["local", "local"]
    assert all(t["sessionId"] == result["localId"] for t in result["pullTracks"])
    assert result["firstFrameMs"] is not None and result["firstFrameMs"] < 5000, result
    assert_plays(result["playback"], width=640)
    statuses = [t["status"] for t in result["sessionState"]["tracks"]]
    assert statuses == ["active", "active"], result["sessionState"]
