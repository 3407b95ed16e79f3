"""Replay Chromium's real connectivity checks (captured against aiortc) into our agent.

The captures in ``pcaps/generated/webrtc`` hold Chromium (offerer, controlling)
checking aiortc (answerer).  Given aiortc's ``ice-ufrag``/``ice-pwd`` from the
saved answer, our lite agent must accept every one of Chromium's checks to
aiortc, answer each with a success like aiortc did, end up with Chromium's
address selected, and never lose consent during the call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.demux import PacketKind, classify
from realtime.ice.lite import ConsentExpired, IceLiteAgent, SelectedPairChanged
from realtime.stun.attributes import XorMappedAddress
from realtime.stun.message import StunClass, StunMessage, StunMethod
from realtime.testing.captures import read_capture
from tests.conftest import require

NAMES = [
    "webrtc-chromium-aiortc-gcm-dtls-server",
    "webrtc-chromium-aiortc-simulcast",
    "webrtc-chromium-aiortc-simulcast-not-negotiated",
]


def _credentials(sdp: Path) -> tuple[str, str]:
    lines = sdp.read_text().splitlines()
    ufrag = next(line.split(":", 1)[1] for line in lines if line.startswith("a=ice-ufrag:"))
    pwd = next(line.split(":", 1)[1] for line in lines if line.startswith("a=ice-pwd:"))
    return ufrag, pwd


@pytest.mark.parametrize("name", NAMES)
def test_replay_chromium_checks(shared, name):
    folder = shared / "pcaps" / "generated" / "webrtc"
    pcap = folder / f"{name}.pcap"
    require(pcap.exists(), f"{pcap} is absent")
    local_ufrag, local_pwd = _credentials(folder / f"{name}.answer.sdp")
    remote_ufrag, _ = _credentials(folder / f"{name}.offer.sdp")
    agent = IceLiteAgent(local_ufrag, local_pwd, remote_ufrag=remote_ufrag, tiebreaker=0)

    checks = answered = 0
    chromium = None
    for record in read_capture(pcap):
        if record.transport != "udp":
            continue
        agent.handle_timer(record.time)
        kind = classify(record.payload)
        if kind is PacketKind.DTLS:
            agent.notice_dtls(record.src, record.time)
        if kind is not PacketKind.STUN:
            continue
        message = StunMessage.decode(record.payload)
        username = message.find(0x0006)
        if (
            message.method != StunMethod.BINDING
            or message.message_class != StunClass.REQUEST
            or username is None
            or not username.value.startswith(local_ufrag + ":")
        ):
            continue
        checks += 1
        chromium = record.src
        response = StunMessage.decode(agent.receive_stun(record.payload, record.src, record.time))
        assert response.message_class == StunClass.SUCCESS
        assert response.transaction_id == message.transaction_id
        mapped = response.find(XorMappedAddress)
        assert (mapped.address, mapped.port) == record.src[:2]
        answered += 1

    assert checks >= 2 and answered == checks
    assert agent.selected_address == chromium
    seen = []
    while (event := agent.next_event()) is not None:
        seen.append(event)
    assert SelectedPairChanged(chromium) in seen
    assert not any(isinstance(event, ConsentExpired) for event in seen)
