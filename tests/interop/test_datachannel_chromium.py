"""
Headless Chromium's DataChannels (its dcsctp stack, nobody here wrote it)
against ``twistd realtime``'s echo route, through
``tests/interop/pages/datachannel-echo.html``:

* the reliable ordered channel: every message comes back in order and byte
  for byte -- text, binary, the empty string (PPID 56) and a 64 KiB binary
  message that SCTP fragments into ~55 DATA chunks each way;
* the unordered ``maxRetransmits: 0`` channel (DCEP channel type 0x81)
  delivers: on loopback every message comes back, and only messages that
  were sent.

Both DTLS roles are run: with ``dtlsRole: client`` our side opens the DTLS
handshake and takes the even/odd stream id rule the other way round.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.conftest import run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("role", ["server", "client"])
def test_chromium_datachannels_are_echoed(realtime_server, pages, role) -> None:
    query = {"api": realtime_server.api_url(), "app": APP_ID, "secret": APP_SECRET,
             "count": "50", "lossy": "20"}
    if role == "client":
        query["role"] = "client"
    result = run_page(f"{pages}/datachannel-echo.html?{urllib.parse.urlencode(query)}", timeout=40)
    assert "error" not in result, result
    assert result["state"] == "connected"
    assert result["labels"] == ["reliable", "unordered"]
    assert result["reliableSent"] == 54  # 50 texts, 4 bytes, "", 64 KiB, "last"
    assert result["reliableEchoed"] == 54 and result["reliableInOrder"], result
    assert result["bigEchoed"], "the 64 KiB message came back byte for byte"
    assert result["unorderedEchoed"] == 20 and result["unorderedAllKnown"], result
    assert result["reliableStats"] == {"sent": 54, "received": 54}
    assert result["openMs"] < 2000
