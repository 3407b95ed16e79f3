"""
Every SRTP/SRTCP packet of the keyed captures unprotects through our contexts.

* ``srtp_decoder/*.pcap`` -- SDES calls (AES_CM_128_HMAC_SHA1_80) whose master
  keys ``vectors/srtp_capture_keys.json`` gives per SSRC; some legs run
  through TURN (UDP and TCP), unwrapped by :mod:`tests.srtp.relayed`.
* ``generated/webrtc/*.pcap`` -- Chromium <-> aiortc, DTLS-SRTP keyed
  (AES-CM and AEAD-GCM); ``NAME.srtp.json`` has the exporter output and
  ``NAME.srtp-verify.txt`` the packet counts an independent checker found.

Each capture direction gets its own inbound context (as the SFU has one per
PeerConnection), so a packet seen on two legs of a TURN server is not a replay.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from realtime.demux import PacketKind, classify
from realtime.srtp.context import InboundSrtpContext, from_dtls_keying
from realtime.srtp.profiles import SrtpProtectionProfile, split_keying_material
from realtime.testing.captures import read_capture
from tests.conftest import shared_params
from tests.srtp.relayed import media_datagrams

# The TURN server's own dump holds the client TCP leg and relayed UDP legs,
# partly lost; the key file counts differently there.  These are the distinct
# packets found across its legs (all of which authenticate).
DISTINCT_OVERRIDE = {
    ("wifi-tcp_to_3g_2_coturn_dump.pcap", "34837DE1"): (518, 5),
    ("wifi-tcp_to_3g_2_coturn_dump.pcap", "34837DE3"): (537, 4),
}


def _streams(root):
    keys = json.loads((root / "vectors" / "srtp_capture_keys.json").read_text())
    return [pytest.param(s, id=f"{s['file'].split('/')[-1]}-{s['ssrc']}") for s in keys["streams"]]


@pytest.mark.parametrize("stream", shared_params(_streams))
def test_sdes_capture_stream_unprotects(shared, stream):
    ssrc = int(stream["ssrc"], 16)
    profile = SrtpProtectionProfile.from_name(stream["suite"])
    key, salt = bytes.fromhex(stream["master_key"]), bytes.fromhex(stream["master_salt"])
    contexts: dict = {}
    distinct: dict[PacketKind, set[bytes]] = {PacketKind.RTP: set(), PacketKind.RTCP: set()}
    first_plain = None
    for flow, packet in media_datagrams(shared / stream["file"], stream["transport"]):
        kind = classify(packet)
        offset = 8 if kind is PacketKind.RTP else 4
        if packet[offset : offset + 4] != ssrc.to_bytes(4, "big"):
            continue
        if flow not in contexts:
            contexts[flow] = InboundSrtpContext(profile, key, salt)
        context = contexts[flow]
        if kind is PacketKind.RTP:
            plain = context.unprotect(packet)  # raises SrtpError on any failure
            if packet.hex() == stream["first_authenticated_srtp_packet"]:
                first_plain = plain
        else:
            context.unprotect_rtcp(packet)
        distinct[kind].add(packet)
    counts = (len(distinct[PacketKind.RTP]), len(distinct[PacketKind.RTCP]))
    name = stream["file"].split("/")[-1]
    expected = DISTINCT_OVERRIDE.get(
        (name, stream["ssrc"]),
        (stream["verified_rtp_packets_auth_ok"], stream["verified_srtcp_packets_auth_ok"]),
    )
    assert counts == expected
    assert first_plain is not None and first_plain.hex() == stream["its_plaintext_rtp"]


def _webrtc_names(root):
    keys = (root / "pcaps/generated/webrtc").glob("*.srtp.json")
    return sorted(p.name[: -len(".srtp.json")] for p in keys)


def _verified_counts(text: str) -> Counter:
    """Read ``srtp aiortc->chromium 327`` style lines of NAME.srtp-verify.txt."""
    counts = Counter()
    for kind, direction, n in re.findall(r"^\s+(srtcp|srtp) (\w+->\w+)\s+(\d+)$", text, re.M):
        counts[(kind, direction)] = int(n)
    return counts


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("name", shared_params(_webrtc_names))
def test_chromium_aiortc_capture_unprotects(shared, name):
    folder = shared / "pcaps/generated/webrtc"
    info = json.loads((folder / f"{name}.srtp.json").read_text())
    profile = SrtpProtectionProfile.from_name(info["srtp_profile"])
    client, server = split_keying_material(profile, bytes.fromhex(info["keying_material"]))
    if info["aiortc_dtls_role"] == "server":
        aiortc_write, chromium_write = server, client
    else:
        aiortc_write, chromium_write = client, server
    assert b"".join(chromium_write).hex() == info["chromium_tx_key_salt"]
    # One session per side, built the way the SFU will from its DTLS result.
    pair = info["ice_selected_pair"]
    aiortc = from_dtls_keying(profile, aiortc_write, chromium_write)
    chromium = from_dtls_keying(profile, chromium_write, aiortc_write)
    at = {
        _address(pair["aiortc"]): ("aiortc", aiortc),
        _address(pair["chromium"]): ("chromium", chromium),
    }
    counts = Counter()
    for record in read_capture(folder / f"{name}.pcap"):
        if record.transport != "udp" or record.dst not in at or record.src not in at:
            continue
        receiver, session = at[record.dst]
        direction = f"{at[record.src][0]}->{receiver}"
        kind = classify(record.payload)
        if kind is PacketKind.RTP:
            session.unprotect(record.payload)
            counts[("srtp", direction)] += 1
        elif kind is PacketKind.RTCP:
            session.unprotect_rtcp(record.payload)
            counts[("srtcp", direction)] += 1
    expected = _verified_counts((folder / f"{name}.srtp-verify.txt").read_text())
    assert len(expected) == 4  # SRTP and SRTCP, both directions
    assert counts == expected
