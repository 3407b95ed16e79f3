"""
An aiortc client of the SFU for the network-namespace tests, run inside a client namespace.

It talks to the API itself, as an application's client would (the URL of the node whose
API it uses is an argument), and prints one JSON line with what it got::

    python netns_peer.py ROOT pull API_URL PUBLISHER_SESSION TRACK_NAME...

``pull``: a new session pulls the named tracks, answers the SFU's offer through
``renegotiate``; once connected it prints ``{"session", "state"}`` (so the test can see
where the PeerConnection lives while it does), then counts decoded frames per kind for
:data:`SECONDS` and prints ``{"session", "state", "frames", "rates", "status"}``.  No ICE
servers: host candidates only (the namespace's one interface).
"""

from __future__ import annotations

import asyncio
import json
import sys


class Api:
    """What tests/interop/test_sfu_aiortc.api needs of a server: its base URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api_url(self) -> str:
        return self.url


#: seconds of decoded frames counted after the first frame of each kind
SECONDS = 5.0


async def pull(url: str, publisher: str, names: list[str]) -> dict:
    from aiortc import RTCConfiguration, RTCPeerConnection

    from tests.interop.aiortc_frames import FrameCounter
    from tests.interop.test_sfu_aiortc import api

    server = Api(url)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    try:
        session, state = await subscribe(server, pc, publisher, names)
        rates = await counter.rates(["audio", "video"], seconds=SECONDS, first_within=15.0)
        status = await api(server, "GET", f"/sessions/{session}")
        return {"session": session, "state": state, "frames": dict(counter.frames),
                "rates": rates, "status": [t["status"] for t in status["tracks"]]}
    finally:
        await pc.close()


async def subscribe(server, pc, publisher: str, names: list[str]) -> tuple[str, str]:
    """Pull ``names`` of session ``publisher`` on a new session (the SFU's offer, our answer
    through renegotiate), wait for ICE, print ``{"session", "state"}``; return both."""
    from aiortc import RTCSessionDescription

    from tests.interop.test_sfu_aiortc import api, connected

    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    reply = await api(server, "POST", f"/sessions/{session}/tracks/new", {
        "tracks": [{"location": "remote", "sessionId": publisher, "trackName": name}
                   for name in names]})
    await pc.setRemoteDescription(RTCSessionDescription(**reply["sessionDescription"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await api(server, "PUT", f"/sessions/{session}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    state = await connected(pc, seconds=10.0)
    print(json.dumps({"session": session, "state": state}), flush=True)
    return session, state


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    mode, url, *rest = sys.argv[2:]
    if mode == "pull":
        result = asyncio.run(pull(url, rest[0], rest[1:]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
