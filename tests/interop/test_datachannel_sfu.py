"""
DataChannels through the SFU: headless Chromium publishes, three subscribers receive.

Issue 6's interop criterion.  The test makes the publisher session P and an
aiortc subscriber session A; ``pages/datachannel-sfu.html`` publishes
"chat" (ordered, reliable) and "state" (unordered, maxRetransmits 0) on P
from Chromium and subscribes two sessions of its own (current and older
lifecycle); aiortc subscribes on A through a UDP relay that drops
:data:`LOSS` of the datagrams toward it once its channels are open.  Every
subscriber must get every "chat" message in order with its type
(string/binary/empty, one of 64 KiB); on "state" the lossy subscriber
loses some messages but keeps receiving until the end (no stall: later
messages never wait for lost ones), the others get all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
import urllib.parse

import pytest

from tests.conftest import require_module

from tests.interop.conftest import run_page
from tests.interop.realtime_server import APP_ID, APP_SECRET, Server
from tests.interop.test_sfu_aiortc import api

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")

CHAT, STATE = 100, 400
#: share of server-to-aiortc datagrams the relay drops once the channels are open
LOSS = 0.08


class LossyRelay:
    """A UDP relay between aiortc and the media port; drops toward aiortc when ``lossy``."""

    def __init__(self, server_address: tuple[str, int], loss: float) -> None:
        self.server_address = server_address
        self.loss = loss
        self.lossy = False
        self.dropped = self.forwarded = 0
        self.rng = random.Random(6)
        self.front = None
        self.backs: dict[tuple, asyncio.DatagramTransport] = {}

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        relay = self

        class Front(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr) -> None:
                asyncio.ensure_future(relay.to_server(data, addr))

        self.front, _ = await loop.create_datagram_endpoint(Front, local_addr=("127.0.0.1", 0))
        return self.front.get_extra_info("sockname")[1]

    async def to_server(self, data: bytes, client: tuple) -> None:
        back = self.backs.get(client)
        if back is None:
            relay = self

            class Back(asyncio.DatagramProtocol):
                def datagram_received(self, reply, addr) -> None:
                    if relay.lossy and relay.rng.random() < relay.loss:
                        relay.dropped += 1
                        return
                    relay.forwarded += 1
                    relay.front.sendto(reply, client)

            back, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                Back, local_addr=("127.0.0.1", 0))
            self.backs.setdefault(client, back)
            back = self.backs[client]
        back.sendto(data, self.server_address)

    def close(self) -> None:
        for transport in [self.front, *self.backs.values()]:
            if transport is not None:
                transport.close()


def summary(data: bytes | str) -> str:
    """Describe a message as the page does (type, length, checksum)."""
    if isinstance(data, str):
        return f"s:{len(data)}:{data[:12]}"
    total = 0
    for byte in data:
        total = (total * 31 + byte) & 0xFFFFFFFF
    return f"b:{len(data)}:{total}"


async def aiortc_subscriber(server: Server, publisher: str, session: str) -> dict:
    """Subscribe to "chat" and "state" from aiortc behind :class:`LossyRelay`."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    reply = await api(server, "POST", f"/sessions/{session}/datachannels/establish", {
        "dataChannel": {"location": "remote", "dataChannelName": "server-events"}})
    sdp = reply["sessionDescription"]["sdp"]
    port = int(re.search(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", sdp)[1])
    relay = LossyRelay(("127.0.0.1", port), LOSS)
    relay_port = await relay.start()
    sdp = sdp.replace(f" 127.0.0.1 {port} typ host", f" 127.0.0.1 {relay_port} typ host")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got: dict = {"chat": [], "state": [], "state_times": [], "end": asyncio.Event()}
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await api(server, "PUT", f"/sessions/{session}/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # the page publishes on P
            listed = (await api(server, "GET", f"/sessions/{publisher}"))["dataChannels"]
            if len(listed) == 2:
                break
            await asyncio.sleep(0.1)
        reply = await api(server, "POST", f"/sessions/{session}/datachannels/new", {
            "dataChannels": [
                {"location": "remote", "sessionId": publisher, "dataChannelName": "chat"},
                {"location": "remote", "sessionId": publisher, "dataChannelName": "state",
                 "ordered": False, "maxRetransmits": 0}]})
        chat_id, state_id = (item["id"] for item in reply["dataChannels"])
        chat = pc.createDataChannel("chat", negotiated=True, id=chat_id)
        state = pc.createDataChannel("state", negotiated=True, id=state_id, ordered=False,
                                     maxRetransmits=0)

        @chat.on("message")
        def on_chat(message) -> None:
            if message == "end":
                got["end"].set()
            else:
                got["chat"].append(summary(message))

        @state.on("message")
        def on_state(message) -> None:
            got["state"].append(int(message[1:]))
            got["state_times"].append(time.monotonic())

        while chat.readyState != "open" or state.readyState != "open":
            await asyncio.sleep(0.05)
        relay.lossy = True
        await asyncio.wait_for(got["end"].wait(), 60)
        await asyncio.sleep(0.5)
        return {"ids": [chat_id, state_id], "chat": got["chat"], "state": got["state"],
                "state_times": got["state_times"], "dropped": relay.dropped,
                "forwarded": relay.forwarded}
    finally:
        await pc.close()
        relay.close()


async def fan_out(server: Server, pages: str) -> tuple[dict, dict]:
    publisher = (await api(server, "POST", "/sessions/new"))["sessionId"]
    session = (await api(server, "POST", "/sessions/new"))["sessionId"]
    query = urllib.parse.urlencode({"api": server.api_url(), "app": APP_ID,
                                    "secret": APP_SECRET, "pub": publisher, "gate": session,
                                    "chat": CHAT, "state": STATE})
    loop = asyncio.get_running_loop()
    page = loop.run_in_executor(None, lambda: run_page(
        f"{pages}/datachannel-sfu.html?{query}", timeout=90))
    subscriber = asyncio.ensure_future(aiortc_subscriber(server, publisher, session))
    result = await page
    if "error" in result:
        subscriber.cancel()
        return result, {}
    return result, await subscriber


def test_chromium_publishes_to_two_chromium_and_one_lossy_aiortc_subscriber(
        realtime_server, pages) -> None:
    result, theirs = asyncio.run(fan_out(realtime_server, pages))
    assert "error" not in result, result
    sent = result["sent"]
    assert any(s.startswith("b:65536:") for s in sent) and "s:0:" in sent and "b:0:0" in sent
    assert [c["id"] for c in result["published"]] == [3, 5]  # odd: the SFU is the DTLS server
    assert result["serverEvents"] == {"location": "remote", "dataChannelName": "server-events",
                                      "id": 1}
    for mine in result["subscribers"]:
        assert mine["chat"] == sent  # every message, in order, with its type
        assert sorted(mine["state"]) == list(range(STATE))
    assert theirs["chat"] == sent, (len(theirs["chat"]), theirs["dropped"])
    state = theirs["state"]
    assert theirs["dropped"] > 0
    assert 0.5 * STATE < len(state) < STATE, (len(state), theirs["dropped"])
    delivered = set(state)  # no stall: every stretch of the run keeps arriving
    assert all(len(delivered & set(range(k, k + 40))) >= 20 for k in range(0, STATE, 40)), state
    gaps = [b - a for a, b in zip(theirs["state_times"], theirs["state_times"][1:])]
    assert max(gaps) < 1.0, max(gaps)
    assert all(c["status"] == "active" for c in result["pubState"] + result["s1State"])
    print(f"state: {len(state)}/{STATE} to aiortc, {theirs['dropped']} datagrams dropped, "
          f"longest gap {max(gaps) * 1000:.0f} ms; page sent state in "
          f"{result['stateMs']:.0f} ms; chat digest "
          f"{hashlib.sha256(''.join(sent).encode()).hexdigest()[:12]}")
