"""The autouse traffic guard (tests/conftest.py) fires on traffic beyond this machine."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.traffic_guard import TrafficOutsideMachine


def test_resolving_a_public_name_is_refused(traffic_guard) -> None:
    with pytest.raises(TrafficOutsideMachine):
        socket.getaddrinfo("stun.l.google.com", 19302)
    assert traffic_guard.take() == ["resolving 'stun.l.google.com'"]


@pytest.mark.parametrize("family, address", [
    (socket.AF_INET, ("192.0.2.1", 9)),          # TEST-NET-1, RFC 5737
    (socket.AF_INET6, ("2001:db8::1", 9, 0, 0)),  # documentation prefix, RFC 3849
])
def test_sending_outside_loopback_is_refused(traffic_guard, family, address) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        with pytest.raises(TrafficOutsideMachine):
            sock.sendto(b"x", address)
        with pytest.raises(TrafficOutsideMachine):
            sock.connect(address)
    assert len(traffic_guard.take()) == 2


def test_a_refusal_swallowed_by_an_event_loop_is_still_recorded(traffic_guard) -> None:
    async def send() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                           local_addr=("127.0.0.1", 0))
        transport.sendto(b"x", ("192.0.2.1", 9))   # asyncio logs the error and goes on
        await asyncio.sleep(0)
        transport.close()

    asyncio.run(send())
    assert traffic_guard.take() == ["sendto to ('192.0.2.1', 9)"]


def test_loopback_and_declared_networks_pass(traffic_guard) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"x", ("127.0.0.1", 9))
        sock.sendto(b"x", ("127.3.2.1", 9))
        with pytest.raises(TrafficOutsideMachine):
            sock.sendto(b"x", ("10.77.0.2", 9))
        traffic_guard.take()
        traffic_guard.allow("10.77.0.0/24")   # a namespace the test made
        try:
            sock.sendto(b"x", ("10.77.0.2", 9))
        except OSError as error:               # no route is fine; the guard let it through
            assert not isinstance(error, TrafficOutsideMachine)
    socket.getaddrinfo("localhost", 80)
    assert traffic_guard.take() == []


def test_aiortc_with_an_outside_ice_server_is_caught(traffic_guard) -> None:
    """An aiortc peer given an ICE server off this machine is stopped before it sends.

    The server is 192.0.2.1 (TEST-NET-1, RFC 5737: documentation only), so no
    public host is named and nothing is resolved even if the guard failed.
    """
    from tests.conftest import require_module

    aiortc = require_module("aiortc")
    outside = aiortc.RTCConfiguration(iceServers=[aiortc.RTCIceServer("stun:192.0.2.1:3478")])

    async def gather() -> None:
        pc = aiortc.RTCPeerConnection(outside)
        pc.addTransceiver("audio")
        try:
            await pc.setLocalDescription(await pc.createOffer())
        except TrafficOutsideMachine:
            pass
        finally:
            await pc.close()

    asyncio.run(gather())
    assert any("192.0.2.1" in v for v in traffic_guard.take())


def test_aiortc_gathers_loopback_host_candidates_only() -> None:
    from tests.conftest import require_module

    aiortc = require_module("aiortc")

    async def offer() -> str:
        pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    candidates = [line for line in asyncio.run(offer()).splitlines()
                  if line.startswith("a=candidate:")]
    hosts = {line.split()[4] for line in candidates}
    assert hosts and hosts <= {"127.0.0.1", "::1"}, candidates
