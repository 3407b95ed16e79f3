"""Interop: aioice, a full ICE agent nobody here wrote, connects to our ICE-lite agent.

Our side is a real UDP socket on 127.0.0.1 whose ``datagram_received`` feeds
the :class:`SessionDemultiplexer` and sends back whatever it returns, as the
Twisted media port does.  aioice is the controlling agent (a browser's role):
it runs checks against our host candidate, nominates, and then exchanges
data over the selected pair.
"""

from __future__ import annotations

import asyncio

import pytest

from realtime.demux import PacketKind, classify
from realtime.errors import DecodeError
from realtime.ice.candidate import Candidate
from realtime.ice.demultiplexer import SessionDemultiplexer
from realtime.ice.lite import (
    CandidatePairNominated,
    CandidatePairValidated,
    IceLiteAgent,
    SelectedPairChanged,
)
from tests.conftest import require

try:
    import aioice
    import aioice.ice
except ImportError:  # pragma: no cover - aioice comes with aiortc in the test extra
    aioice = None

pytestmark = pytest.mark.interop

UFRAG = "lite"
PWD = "litepasswordlitepassword"


class Session:
    """One PeerConnection's worth of state, as far as ICE goes."""

    def __init__(self, remote_ufrag: str) -> None:
        self.ice = IceLiteAgent(UFRAG, PWD, remote_ufrag=remote_ufrag, tiebreaker=42)
        self.received: list[tuple[bytes, tuple]] = []


class MediaPort(asyncio.DatagramProtocol):
    """A stand-in for realtime/net/media_port.py: bytes in, bytes out, no protocol state."""

    def __init__(self, demux: SessionDemultiplexer, loop: asyncio.AbstractEventLoop) -> None:
        self.demux = demux
        self.loop = loop
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if classify(data) is PacketKind.STUN:
            try:
                _, response = self.demux.route_stun(data, addr, self.loop.time())
            except DecodeError:
                self.dropped += 1
                return
            if response is not None:
                self.transport.sendto(response, addr)
            return
        session = self.demux.session_for_address(addr)
        if session is None:
            self.dropped += 1
            return
        session.ice.notice_traffic(addr, self.loop.time())
        session.received.append((data, addr))
        self.transport.sendto(b"echo:" + data, addr)


async def _connect(monkeypatch) -> None:
    # aioice skips loopback interfaces when gathering; keep it on 127.0.0.1.
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    )
    loop = asyncio.get_running_loop()
    demux = SessionDemultiplexer()
    transport, port = await loop.create_datagram_endpoint(
        lambda: MediaPort(demux, loop), local_addr=("127.0.0.1", 0)
    )
    connection = aioice.Connection(ice_controlling=True, use_ipv6=False)
    try:
        await connection.gather_candidates()
        session = Session(remote_ufrag=connection.local_username)
        demux.register(UFRAG, session)
        connection.remote_username = UFRAG
        connection.remote_password = PWD
        connection.remote_is_lite = True
        ours = Candidate.host("127.0.0.1", transport.get_extra_info("sockname")[1])
        await connection.add_remote_candidate(
            aioice.Candidate.from_sdp(ours.encode()[len("candidate:") :])
        )
        await connection.add_remote_candidate(None)
        await asyncio.wait_for(connection.connect(), 10)

        (aioice_address,) = demux.addresses_of(session)
        assert session.ice.selected_address == aioice_address
        assert aioice_address[0] == "127.0.0.1"
        seen = []
        while (event := session.ice.next_event()) is not None:
            seen.append(event)
        assert seen == [
            CandidatePairValidated(aioice_address),
            CandidatePairNominated(aioice_address),
            SelectedPairChanged(aioice_address),
        ]

        # Data over the selected pair reaches the session by address alone.
        await connection.send(b"\x80hello")
        reply = await asyncio.wait_for(connection.recv(), 5)
        assert reply == b"echo:\x80hello"
        assert session.received == [(b"\x80hello", aioice_address)]
        assert port.dropped == 0
    finally:
        await connection.close()
        transport.close()


def test_aioice_connects_to_ice_lite(monkeypatch):
    require(aioice is not None, "aioice is not installed")
    asyncio.run(_connect(monkeypatch))
