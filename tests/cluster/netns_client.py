"""
An aiortc echo client for the network-namespace test, run inside a client namespace.

Protocol on stdin/stdout, one JSON object per line: it prints ``{"offer": SDP}``,
reads ``{"answer": SDP}``, then prints ``{"connected": STATE, "frames": {...},
"connect_time": SECONDS}``, and closes and exits at the next line it reads.  No ICE
servers: host candidates only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def main() -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    sys.path.insert(0, sys.argv[1])
    from tests.interop.aiortc_frames import FrameCounter

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    counter = FrameCounter(pc, initial={"audio": 0, "video": 0},
                           wanted=lambda f: f["video"] >= 20 and f["audio"] >= 30)
    await pc.setLocalDescription(await pc.createOffer())
    print(json.dumps({"offer": pc.localDescription.sdp}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=json.loads(line)["answer"],
                                                        type="answer"))
    connect_time = None
    for _ in range(500):
        if pc.connectionState == "connected":
            connect_time = time.monotonic() - started
            break
        await asyncio.sleep(0.02)
    await counter.wait(10.0)
    print(json.dumps({"connected": pc.connectionState, "frames": dict(counter.frames),
                      "connect_time": connect_time}), flush=True)
    # stay up until told: the test reads where the PeerConnection lives while it does
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await pc.close()


if __name__ == "__main__":
    asyncio.run(main())
