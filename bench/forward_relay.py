"""
The Python baseline of ``bench/forward.py``: aiortc's ``MediaRelay``.

One process, one asyncio loop: an ``RTCPeerConnection`` receives the
publisher's audio and video; each subscriber gets its own
``RTCPeerConnection`` whose senders carry ``relay.subscribe(track)``, the
documented way to fan one track out to many consumers in aiortc.  aiortc's
receiver decodes (VP8, Opus) and each subscriber's sender encodes again, so
this is a transcoding relay, not a packet forwarder: that is the baseline the
issue names.

Signalling is a minimal HTTP/1.1 server on 127.0.0.1 (no framework)::

    POST /publish    {"type": "offer", "sdp": ...}  -> {"type": "answer", "sdp": ...}
    POST /subscribe  {"type": "offer", "sdp": ...}  -> {"type": "answer", "sdp": ...}

``/subscribe`` before the publisher's tracks arrived is 409.  The process
prints ``listening <port>`` and runs until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from record import aiortc_configuration  # noqa: E402  (iceServers=[], loopback only)

relay = MediaRelay()
tracks: dict[str, object] = {}
connections: list[RTCPeerConnection] = []


async def publish(offer: dict) -> dict:
    """Answer the publisher; keep its tracks for subscribers."""
    pc = RTCPeerConnection(aiortc_configuration())
    connections.append(pc)

    @pc.on("track")
    def on_track(track) -> None:
        tracks[track.kind] = track

    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return {"type": "answer", "sdp": pc.localDescription.sdp}


async def subscribe(offer: dict) -> dict:
    """Answer a recvonly subscriber with relayed copies of the publisher's tracks."""
    pc = RTCPeerConnection(aiortc_configuration())
    connections.append(pc)
    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    for transceiver in pc.getTransceivers():
        track = tracks.get(transceiver.kind)
        if track is not None:
            transceiver.direction = "sendonly"
            transceiver.sender.replaceTrack(relay.subscribe(track))
    await pc.setLocalDescription(await pc.createAnswer())
    return {"type": "answer", "sdp": pc.localDescription.sdp}


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one HTTP/1.1 request with a JSON body (Content-Length only)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))) or b"{}")
        if method == "POST" and path == "/publish":
            status, reply = 200, await publish(body)
        elif method == "POST" and path == "/subscribe":
            if len(tracks) < 2:
                status, reply = 409, {"error": "publisher tracks not received yet"}
            else:
                status, reply = 200, await subscribe(body)
        else:
            status, reply = 404, {"error": "not found"}
    except Exception as error:  # the benchmark wants the reason, not a hang
        status, reply = 500, {"error": repr(error)}
    data = json.dumps(reply).encode()
    writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    await writer.drain()
    writer.close()


async def main() -> None:
    """Listen on 127.0.0.1 (port from argv, 0 = any) and serve forever."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
