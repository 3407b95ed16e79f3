"""
Headless Chromium against ``twistd realtime``'s echo session (issue 3).

The page (pages/echo.html) sends its fake camera and microphone, the server
sends them back; Chromium must reach ``connected`` and play the echo as a
viewer needs it (:func:`~tests.interop.conftest.assert_plays`: >= 20 fps over
>= 5 s, no new freeze after 3 s, <= 5 % audio concealed), once with each
SRTP profile.
"""

from __future__ import annotations

import urllib.parse

import pytest

from tests.interop.conftest import assert_plays, run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server

pytestmark = pytest.mark.interop

PROFILES = {
    "SRTP_AEAD_AES_128_GCM": "SRTP_AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "SRTP_AEAD_AES_256_GCM",
    "SRTP_AES128_CM_SHA1_80": "SRTP_AES128_CM_HMAC_SHA1_80",  # WebRTC stats spelling
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_chromium_echo_plays(realtime_server, pages, profile) -> None:
    query = urllib.parse.urlencode({"api": realtime_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET, "profile": profile})
    result = run_page(f"{pages}/echo.html?{query}", timeout=30)
    assert "error" not in result, result
    assert result["state"] == "connected"
    assert result["srtpCipher"] == PROFILES[profile]
    assert result["connectMs"] < 5000
    print(profile, result["playback"])
    assert_plays(result["playback"], width=640)


def test_chromium_echo_with_our_dtls_client_role(realtime_server, pages) -> None:
    """We answer ``setup:active``: Chromium is the DTLS server and picks the SRTP profile."""
    query = urllib.parse.urlencode({"api": realtime_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET, "role": "client"})
    result = run_page(f"{pages}/echo.html?{query}", timeout=30)
    assert "error" not in result, result
    assert result["state"] == "connected"
    assert_plays(result["playback"])


@pytest.fixture(scope="module")
def ipv6_server(tmp_path_factory):
    """The service with its media port on ::1 (ICE candidates announce ::1)."""
    server = Server(tmp_path_factory.mktemp("realtime6") / "state", "--media-interface", "::1",
                    app=True)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_chromium_echo_over_ipv6(ipv6_server, pages) -> None:
    query = urllib.parse.urlencode({"api": ipv6_server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET})
    result = run_page(f"{pages}/echo.html?{query}", timeout=30)
    assert "error" not in result, result
    assert result["state"] == "connected"
    assert_plays(result["playback"])
