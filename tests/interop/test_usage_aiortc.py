"""
Usage accounting end to end: aiortc media through ``twistd realtime``, counted, restarted.

One aiortc publisher pushes audio and video, one aiortc subscriber pulls
both; then ``GET /v1/apps/{appId}/usage`` must show the wire bytes of both
sessions and the RTP of both tracks, and after the server is stopped
(SIGTERM: the last flush) and started again on the same state directory the
same numbers must still be there.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import require_module

from tests.interop.aiortc_frames import assert_rates
from tests.interop.realtime_server import Server
from tests.interop.test_sfu_aiortc import call, publish, subscribe

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")


async def one_call(server: Server) -> tuple[str, dict]:
    pc, publisher, names = await publish(server)
    try:
        result = await subscribe(server, publisher, names, seconds=4.0)
    finally:
        await pc.close()
    assert_rates(result["rates"], result)
    return publisher, result


def test_usage_counts_a_real_call_and_survives_a_restart(tmp_path) -> None:
    state = tmp_path / "state"
    server = Server(state, app=True)
    try:
        server.wait_ready()
        publisher, _ = asyncio.run(one_call(server))
        status, app = call(server, "GET", "/usage")
        status, mine = call(server, "GET", f"/usage?sessionId={publisher}")
    finally:
        server.stop()
    assert status == 200, mine
    tracks = {t["trackName"]: t for t in mine["tracks"]}
    assert sorted(tracks) == ["aiortc-audio", "aiortc-video"]
    for track in tracks.values():
        # RTP in from the publisher, forwarded to the one subscriber
        assert track["ingressPackets"] > 10 and track["egressPackets"] > 10, track
        assert track["egressBytes"] > 0.5 * track["ingressBytes"], track
    # the publisher's wire: SRTP in (plus STUN and DTLS) exceeds the RTP it carried
    assert mine["ingressBytes"] > sum(t["ingressBytes"] for t in tracks.values())
    # the app: the subscriber's SRTP out exceeds the RTP forwarded to it
    assert app["egressBytes"] > sum(t["egressBytes"] for t in tracks.values())
    assert app["ingressBytes"] >= mine["ingressBytes"]

    again = Server(state, app=True)
    try:
        again.wait_ready()
        _, after = call(again, "GET", f"/usage?sessionId={publisher}")
        _, app_after = call(again, "GET", "/usage")
    finally:
        again.stop()
    # nothing lost; a few bytes (DTLS close_notify, consent) may have come after the query
    assert after["ingressBytes"] >= mine["ingressBytes"]
    assert after["tracks"] == mine["tracks"]
    assert app_after["egressBytes"] >= app["egressBytes"]
