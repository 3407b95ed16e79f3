"""
An aiortc DataChannel client for the network-namespace test, run inside a client namespace.

``netns_datachannel_client.py ROOT API_URL publisher`` makes a session through API_URL,
publishes "chat", prints ``{"session": ID}`` once the channel is open, sends "warm" every
50 ms until a line arrives on stdin, then sends ``{"count": N}`` numbered messages and
"end", and prints ``{"sent": N}``.

``netns_datachannel_client.py ROOT API_URL subscriber PUBLISHER`` subscribes to the
publisher's "chat" through API_URL, prints ``{"ready": true}`` when its channel is open,
``{"warm": true}`` at the first message, and ``{"messages": [...]}`` (the numbered ones)
after "end" (or 30 s).  No ICE servers: host candidates only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request


def call(api: str, method: str, path: str, body: dict | None = None) -> dict:
    sys.path.insert(0, sys.argv[1])
    from tests.interop.realtime_server import APP_ID, APP_SECRET

    request = urllib.request.Request(
        f"{api}/v1/apps/{APP_ID}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {APP_SECRET}"})
    with urllib.request.urlopen(request, timeout=15) as response:
        reply = json.loads(response.read() or b"{}")
    assert "errorCode" not in json.dumps(reply), reply
    return reply


async def session(api: str):
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()

    async def api_call(*args):
        return await loop.run_in_executor(None, call, api, *args)

    session_id = (await api_call("POST", "/sessions/new"))["sessionId"]
    reply = await api_call("POST", f"/sessions/{session_id}/datachannels/establish", {
        "dataChannel": {"location": "remote", "dataChannelName": "server-events"}})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    await pc.setRemoteDescription(RTCSessionDescription(
        sdp=reply["sessionDescription"]["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await api_call("PUT", f"/sessions/{session_id}/renegotiate", {
        "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
    return pc, session_id, api_call


async def opened(channel) -> None:
    for _ in range(1000):
        if channel.readyState == "open":
            return
        await asyncio.sleep(0.02)
    raise SystemExit(f"channel stayed {channel.readyState}")


def say(**body) -> None:
    print(json.dumps(body), flush=True)


async def publisher(api: str) -> None:
    pc, session_id, api_call = await session(api)
    reply = await api_call("POST", f"/sessions/{session_id}/datachannels/new", {
        "dataChannels": [{"location": "local", "dataChannelName": "chat"}]})
    chat = pc.createDataChannel("chat", negotiated=True, id=reply["dataChannels"][0]["id"])
    await opened(chat)
    say(session=session_id)
    go = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(
        None, sys.stdin.readline))
    for _ in range(600):          # at most 30 s of warm-up
        if go.done():
            break
        chat.send("warm")
        await asyncio.sleep(0.05)
    count = json.loads(await go)["count"]
    for i in range(count):
        chat.send(f"m{i}")
        if i % 20 == 19:
            await asyncio.sleep(0.01)
    chat.send("end")
    await asyncio.sleep(1.0)
    say(sent=count)
    await pc.close()


async def subscriber(api: str, publisher_id: str) -> None:
    pc, session_id, api_call = await session(api)
    reply = await api_call("POST", f"/sessions/{session_id}/datachannels/new", {
        "dataChannels": [{"location": "remote", "sessionId": publisher_id,
                          "dataChannelName": "chat"}]})
    chat = pc.createDataChannel("chat", negotiated=True, id=reply["dataChannels"][0]["id"])
    messages: list = []
    end = asyncio.Event()

    @chat.on("message")
    def on_message(message) -> None:
        if message == "end":
            end.set()
        elif message == "warm":
            if not messages:
                messages.append(None)
                say(warm=True)
        else:
            messages.append(message)

    await opened(chat)
    say(ready=True, session=session_id)
    try:
        await asyncio.wait_for(end.wait(), 30)
    except asyncio.TimeoutError:
        pass
    say(messages=[m for m in messages if m is not None], ended=end.is_set())
    await pc.close()


if __name__ == "__main__":
    role = sys.argv[3]
    asyncio.run(publisher(sys.argv[2]) if role == "publisher"
                else subscriber(sys.argv[2], sys.argv[4]))
