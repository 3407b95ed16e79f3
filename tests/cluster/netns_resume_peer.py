"""
aiortc peers for the resume test (test_netns_resume.py), run inside client namespaces.

::

    python netns_resume_peer.py ROOT push API_URL SECONDS
    python netns_resume_peer.py ROOT pull API_URL SECONDS PUBLISHER_SESSION TRACK_NAME...

``push`` publishes aiortc's audio and video, prints ``{"sessionId", "trackNames"}``, keeps
the call up for SECONDS and exits.  ``pull`` pulls the named tracks, prints
``{"session", "state"}`` once connected, then every 0.1 s ``{"t": unix time, "video":
decoded video frames, "state": connection state}`` for SECONDS (bounded) and exits.
No ICE servers: host candidates only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def push(url: str, seconds: float) -> None:
    from tests.cluster.netns_peer import Api
    from tests.interop.test_sfu_aiortc import connected, publish

    pc, session, names = await publish(Api(url))
    try:
        await connected(pc, seconds=10.0)
        print(json.dumps({"sessionId": session, "trackNames": names}), flush=True)
        await asyncio.sleep(seconds)
    finally:
        await pc.close()


async def pull(url: str, seconds: float, publisher: str, names: list[str]) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection

    from tests.cluster.netns_peer import Api, subscribe
    from tests.interop.aiortc_frames import FrameCounter

    server = Api(url)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0})
    try:
        session, state = await subscribe(server, pc, publisher, names)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            print(json.dumps({"t": time.time(), "video": counter.frames["video"],
                              "state": pc.connectionState}), flush=True)
            await asyncio.sleep(0.1)
    finally:
        await pc.close()


def main() -> None:
    sys.path.insert(0, sys.argv[1])
    mode, url, seconds, *rest = sys.argv[2:]
    if mode == "push":
        asyncio.run(push(url, float(seconds)))
    elif mode == "pull":
        asyncio.run(pull(url, float(seconds), rest[0], rest[1:]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
