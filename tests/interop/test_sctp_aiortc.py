"""
aiortc's DataChannels (SCTP + DCEP nobody here wrote) against ``twistd
realtime``'s echo session, which echoes every DataChannel message back on
the channel it came in on, through :class:`realtime.peer.sctp_transport.SctpTransport`.

* a reliable ordered channel: every message comes back, in order, byte for
  byte, text and binary, up to a 64 KiB message;
* an unordered channel with maxRetransmits=0: messages come back (loopback
  loses nothing, so all of them), proving PR-SCTP channel types are accepted.

:func:`test_aiortc_datachannels_are_echoed` goes through ``twistd``;
:func:`test_aiortc_against_in_process_transport` runs the same echo session
on an asyncio UDP socket in the test process (PeerHost in miniature), which
keeps the SCTP/DCEP stack provable without the service.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import require_module

from realtime.dtls.certificate import Certificate
from realtime.peer.echo import create_echo_session

from realtime.sdp.session import SessionDescription
from tests.interop.realtime_server import Server

pytestmark = pytest.mark.interop

aiortc = require_module("aiortc")

BIG = bytes(range(256)) * 256  # 64 KiB


async def datachannel_echo(server: Server | None, seconds: float = 20.0, **options) -> dict:
    """Open two channels from aiortc, send on both, collect what comes back.

    With ``server`` None the echo runs in process (:class:`InProcessEcho`).
    """
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    reliable = pc.createDataChannel("reliable")
    lossy = pc.createDataChannel("lossy", ordered=False, maxRetransmits=0)
    sent = {"reliable": [f"message {i}" for i in range(100)] + [b"\x00\x01\x02", "", BIG],
            "lossy": [i.to_bytes(2, "big") * 100 for i in range(50)]}
    echoed: dict[str, list] = {"reliable": [], "lossy": []}
    done = asyncio.Event()

    def wire(channel) -> None:
        @channel.on("open")
        def on_open() -> None:
            for message in sent[channel.label]:
                channel.send(message)

        @channel.on("message")
        def on_message(message) -> None:
            echoed[channel.label].append(message)
            if all(len(echoed[k]) >= len(sent[k]) for k in sent):
                done.set()

    wire(reliable)
    wire(lossy)
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    local = None
    if server is None:
        local = await InProcessEcho.start(pc.localDescription.sdp, **options)
        body = {"sessionDescription": {"type": "answer", "sdp": local.session.answer.serialize()}}
    else:
        status, body = await loop.run_in_executor(None, server.post, "/echo/new", {
            "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp}, **options})
        assert status == 201, body
    answer = SessionDescription.parse(body["sessionDescription"]["sdp"])
    application = [m for m in answer.media if m.kind == "application"]
    assert application and application[0].port != 0
    await pc.setRemoteDescription(RTCSessionDescription(**body["sessionDescription"]))
    try:
        await asyncio.wait_for(done.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    result = {"sent": sent, "echoed": echoed, "state": pc.connectionState,
              "channels": (reliable.readyState, lossy.readyState)}
    await pc.close()
    if local is not None:
        result["drops"] = dict(local.sctp.association.drops)
        local.close()
    return result


class InProcessEcho(asyncio.DatagramProtocol):
    """Our echo session (PeerConnection + SctpTransport) on an asyncio socket.

    PeerHost in miniature, on asyncio instead of Twisted: every connection
    event goes to the session's ``handle_event`` (which echoes channel
    messages), datagrams go out, and one timer serves the connection (whose
    deadline folds in the SCTP association's).
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None

    @classmethod
    async def start(cls, offer_sdp: str, dtlsRole: str = "server") -> "InProcessEcho":
        loop = asyncio.get_running_loop()
        transport, echo = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        echo.session = create_echo_session(
            "in-process", offer_sdp, certificate=Certificate.generate(time.time()),
            address="127.0.0.1", port=port, dtls_role=dtlsRole)
        echo.connection = echo.session.connection
        echo.sctp = echo.connection.sctp
        return echo

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.connection.receive_datagram(data, addr, self.loop.time())
        self.pump()

    def pump(self) -> None:
        now, connection = self.loop.time(), self.connection
        while (event := connection.next_event()) is not None:
            self.session.handle_event(event, now)
        for datagram, addr in connection.datagrams_to_send(now):
            self.transport.sendto(datagram, addr)
        deadline = connection.get_timer()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(deadline, self.expire) if deadline else None

    def expire(self) -> None:
        self.timer = None
        self.connection.handle_timer(self.loop.time())
        self.pump()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport.close()


@pytest.mark.parametrize("role", ["server", "client"])
def test_aiortc_against_in_process_transport(role) -> None:
    result = asyncio.run(datachannel_echo(None, dtlsRole=role))
    assert result["channels"] == ("open", "open"), result
    assert result["echoed"]["reliable"] == result["sent"]["reliable"]  # in order, byte for byte
    assert sorted(result["echoed"]["lossy"]) == sorted(result["sent"]["lossy"])


@pytest.mark.parametrize("role", ["server", "client"])
def test_aiortc_datachannels_are_echoed(realtime_server, role) -> None:
    options = {"dtlsRole": "client"} if role == "client" else {}
    result = asyncio.run(datachannel_echo(realtime_server, seconds=10.0, **options))
    assert result["channels"] == ("open", "open"), result["state"]
    assert result["echoed"]["reliable"] == result["sent"]["reliable"]  # in order, byte for byte
    assert sorted(result["echoed"]["lossy"]) == sorted(result["sent"]["lossy"])
