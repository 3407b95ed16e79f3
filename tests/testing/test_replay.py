"""Tests for ``realtime-replay`` over the generated STUN and TURN captures."""

from __future__ import annotations

import io
import re

import pytest

from realtime.testing import replay

LINE = re.compile(
    r"^ *\d+\.\d{6} (udp|tcp|sctp) \S+:\d+ -> \S+:\d+ "
    r"(STUN|CHANNEL_DATA|DTLS|RTP|RTCP|ZRTP|UNKNOWN|tls|data)( .*)?$"
)

# Lines per capture: one per UDP datagram, one per framed TCP message or TLS record.
LINE_COUNTS = {
    "stun/stun-coturn-binding-rfc5780.pcap": 6,
    "stun/stun-coturn-binding-udp4.pcap": 2,
    "stun/stun-coturn-binding-udp6.pcap": 2,
    "stun/stun-coturn-client-to-vovida.pcap": 2,
    "stun/stun-coturn-natdiscovery.pcap": 8,
    "stun/stun-vovida-client-to-coturn.pcap": 8,
    "stun/stun-vovida-rfc3489.pcap": 8,
    "turn/turn-dtls-channel.pcap": 88,
    "turn/turn-rest-tcp-channel.pcap": 48,
    "turn/turn-rest-udp-channel.pcap": 48,
    "turn/turn-rest-wrong-secret.pcap": 64,
    "turn/turn-tcp-channel.pcap": 48,
    "turn/turn-tcp-relay-rfc6062.pcap": 65,
    "turn/turn-tcp-send-indication.pcap": 42,
    "turn/turn-tls-channel.pcap": 74,
    "turn/turn-udp-channel.pcap": 48,
    "turn/turn-udp-client-to-client.pcap": 68,
    "turn/turn-udp-extra-requests.pcap": 96,
    "turn/turn-udp-rtp-rtcp-pair.pcap": 84,
    "turn/turn-udp-send-indication.pcap": 42,
    "turn/turn-udp-unknown-user.pcap": 64,
    "turn/turn-udp-wrong-password.pcap": 64,
    "turn/turn-udp6-channel.pcap": 48,
}


def run(*paths) -> list[str]:
    out = io.StringIO()
    assert replay.main([str(p) for p in paths], out=out) == 0
    return out.getvalue().splitlines()


@pytest.fixture(scope="module")
def generated(shared):
    return shared / "pcaps" / "generated"


@pytest.fixture(scope="module")
def outputs(generated):
    return {name: run(generated / name) for name in LINE_COUNTS}


def test_every_generated_capture_is_listed(generated):
    found = {str(p.relative_to(generated)) for p in generated.glob("*/*.pcap")
             if p.parent.name in ("stun", "turn")}
    assert found == set(LINE_COUNTS)


@pytest.mark.parametrize("name", sorted(LINE_COUNTS))
def test_line_count_and_format(outputs, name):
    lines = outputs[name]
    assert len(lines) == LINE_COUNTS[name]
    for line in lines:
        assert LINE.match(line), line
    times = [float(line.split()[0]) for line in lines]
    assert times == sorted(times) and 0.0 <= times[0] < 0.01  # TCP: relative to the SYN


def test_stun_contents(outputs):
    udp4 = outputs["stun/stun-coturn-binding-udp4.pcap"]
    assert " STUN BINDING request tid=" in udp4[0]
    assert "XOR-MAPPED-ADDRESS=127.0.0.1:" in udp4[1] and "FINGERPRINT=0x" in udp4[1]
    assert "-> [::1]:3478 STUN BINDING request" in outputs["stun/stun-coturn-binding-udp6.pcap"][0]
    classic = outputs["stun/stun-vovida-rfc3489.pcap"]
    assert all(" classic " in line for line in classic)
    assert "CHANGE-REQUEST=ip" in classic[2] and "CHANGED-ADDRESS=127.0.0.2:3479" in classic[3]
    assert "PADDING(1500 bytes)" in outputs["stun/stun-coturn-binding-rfc5780.pcap"][4]


def test_turn_contents(outputs):
    udp = outputs["turn/turn-udp-channel.pcap"]
    assert "ERROR-CODE=401 'Unauthorized'" in udp[1]
    assert sum(" CHANNEL_DATA channel=0x" in line and "length=100" in line for line in udp) == 10
    tcp = outputs["turn/turn-tcp-channel.pcap"]
    assert sum(line.split()[1] == "tcp" and " CHANNEL_DATA channel=0x" in line for line in tcp) == 10
    indications = outputs["turn/turn-udp-send-indication.pcap"]
    assert sum("SEND indication" in line and "DATA(100 bytes)" in line for line in indications) == 5
    assert sum("DATA indication" in line for line in indications) == 5
    tls = outputs["turn/turn-tls-channel.pcap"]
    assert any(" tls alert " in line for line in tls)
    assert sum(" tls application_data " in line for line in tls) > 20
    rfc6062 = outputs["turn/turn-tcp-relay-rfc6062.pcap"]
    assert sum("CONNECTION-BIND success" in line for line in rfc6062) == 2
    assert any(" data 100 bytes" in line for line in rfc6062)
    extra = outputs["turn/turn-udp-extra-requests.pcap"]
    assert any("ERROR-CODE=443" in line for line in extra)
    assert any("EVEN-PORT=R" in line for line in outputs["turn/turn-udp-rtp-rtcp-pair.pcap"])
    assert any("RESERVATION-TOKEN=" in line for line in outputs["turn/turn-udp-rtp-rtcp-pair.pcap"])


def test_undecodable_payloads_print_the_error(outputs):
    lines = outputs["turn/turn-udp-channel.pcap"]
    bad = [line for line in lines if "undecodable:" in line]
    assert bad and all(
        line.endswith("STUN undecodable: STUN message length 0 does not match the 80 bytes after the header")
        for line in bad
    )


def test_summarizers_table_and_channel_data_errors():
    assert set(replay.SUMMARIZERS) >= {replay.PacketKind.STUN, replay.PacketKind.CHANNEL_DATA}
    assert replay.summarize(b"\x40\x00\x00\x08abc") == (
        "CHANNEL_DATA", "undecodable: ChannelData length 8 exceeds the 3 bytes after the header")
    assert replay.summarize(b"\x40\x00\x00\x01abcd") == ("CHANNEL_DATA", "channel=0x4000 length=1 padding=3")
    assert replay.summarize(b"\x00") == ("STUN", "undecodable: STUN header truncated: need 20 bytes, have 1")
    assert replay.summarize(b"\x80" * 12) == (
        "RTP", "pt=0 seq=32896 ts=2155905152 ssrc=0x80808080 M size=12")  # RTP header: test_replay_media.py
    assert replay.summarize(b"\x10" * 3) == ("ZRTP", "3 bytes")  # kinds without a summarizer: their size
    assert replay.summarize(b"\x6a\x21\x00\x00") == ("CHANNEL_DATA", "channel=0x6a21 length=0")


def test_multiple_files_get_headers(generated):
    lines = run(generated / "stun/stun-coturn-binding-udp4.pcap", generated / "stun/stun-coturn-binding-udp6.pcap")
    assert [line.startswith("# ") for line in lines] == [True, False, False, True, False, False]
