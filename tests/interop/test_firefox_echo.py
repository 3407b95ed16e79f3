"""
Headless Firefox ESR against ``twistd realtime``'s echo session and DataChannels (issue 9).

Firefox is a second independent WebRTC stack (its own ICE, DTLS, SRTP,
SDP munging and usrsctp), driven by puppeteer-core over WebDriver BiDi
(tests/interop/run_browser.js).  What a viewer needs, measured by
pages/playback.js over 5 s after a 3 s warm-up:

* video decoded at >= 20 frames per second (Firefox's fake camera sends 30);
* ``freezeCount`` does not grow after the first 3 s;
* audio concealment (``concealedSamples / totalSamplesReceived``) <= 5 %.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.firefox import run_firefox
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop


def test_firefox_echo_plays(realtime_server, pages) -> None:
    query = urllib.parse.urlencode({"api": realtime_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET})
    result = run_firefox(f"{pages}/echo-playback.html?{query}", timeout=40)
    assert "error" not in result, result
    print("connect", round(result["connectMs"]), "ms; first frame", round(result["firstFrameMs"]),
          "ms;", round(result["fps"], 1), "fps over", round(result["seconds"], 1), "s;",
          result["freezes"], "freezes;", f"{result['concealment']:.2%}", "concealed;",
          f"{result['width']}x{result['height']}")
    assert result["state"] == "connected"
    assert result["connectMs"] < 5000
    assert result["seconds"] >= 5
    assert result["fps"] >= 20, result
    assert result["hasFreezeCount"] and result["freezes"] == 0, result
    assert result["hasConcealment"] and result["audioSamples"] > 48000 * 4, result
    assert result["concealment"] <= 0.05, result
    assert result["width"] > 0


def test_firefox_datachannels_are_echoed(realtime_server, pages) -> None:
    """Firefox's usrsctp through our SCTP/DCEP: reliable ordered and unordered lossy channels."""
    query = {"api": realtime_server.api_url(), "app": APP_ID, "secret": APP_SECRET,
             "count": "50", "lossy": "20"}
    result = run_firefox(f"{pages}/datachannel-echo.html?{urllib.parse.urlencode(query)}",
                         timeout=40)
    assert "error" not in result, result
    assert result["state"] == "connected"
    assert result["labels"] == ["reliable", "unordered"]
    assert result["reliableSent"] == 54  # 50 texts, 4 bytes, "", 64 KiB, "last"
    assert result["reliableEchoed"] == 54 and result["reliableInOrder"], result
    assert result["bigEchoed"], "the 64 KiB message came back byte for byte"
    assert result["unorderedEchoed"] == 20 and result["unorderedAllKnown"], result
    assert result["openMs"] < 2000
