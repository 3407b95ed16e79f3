"""
Firefox and Chromium in one call through the SFU, each way (issue 9).

The publisher page (pages/sfu-publish.html) runs in one browser and logs
its session and track names; the subscriber page (pages/sfu-subscribe.html)
pulls them in the other browser while the publisher keeps sending.  Two
independent stacks meet only through our SFU: SDP each side made, VP8 and
Opus payload types and header extension ids that differ per browser
(rewritten per subscriber), RTCP each side terminates with us.  The
subscriber must see what a viewer needs: >= 20 fps decoded over 5 s, no
freeze after 3 s, audio concealment <= 5 %.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.firefox import PageRun
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("publisher,subscriber", [("firefox", "chromium"),
                                                  ("chromium", "firefox")])
def test_push_in_one_browser_pull_in_the_other(realtime_server, pages, publisher,
                                               subscriber) -> None:
    base = {"api": realtime_server.api_url(), "app": APP_ID, "secret": APP_SECRET}
    publish_url = f"{pages}/sfu-publish.html?{urllib.parse.urlencode({**base, 'hold': 25000})}"
    with PageRun(publisher, publish_url, timeout=60) as push:
        published = push.wait_for("PUBLISHED", timeout=60)
        query = {**base, "session": published["sessionId"],
                 "tracks": ",".join(published["trackNames"])}
        with PageRun(subscriber, f"{pages}/sfu-subscribe.html?{urllib.parse.urlencode(query)}",
                     timeout=40) as pull:
            result = pull.result()
        sent = push.result()
    assert "error" not in result, result
    assert "error" not in sent, sent
    assert ("Firefox" in result["ua"]) == (subscriber == "firefox")
    assert ("Firefox" in sent["ua"]) == (publisher == "firefox")
    print(f"{publisher} -> {subscriber}: connect", round(result["connectMs"]), "ms; first frame",
          round(result["firstFrameMs"]), "ms;", round(result["fps"], 1), "fps;",
          result["freezes"], "freezes;", f"{result['concealment']:.2%}", "concealed;",
          f"{result['width']}x{result['height']}; publisher got", sent["sent"]["video"]["pli"],
          "PLIs")
    assert result["state"] == "connected" and result["statuses"] == ["active", "active"], result
    assert result["seconds"] >= 5 and result["fps"] >= 20, result
    assert result["hasFreezeCount"] and result["freezes"] == 0, result
    assert result["hasConcealment"] and result["audioSamples"] > 48000 * 4, result
    assert result["concealment"] <= 0.05, result
    assert result["width"] > 0
