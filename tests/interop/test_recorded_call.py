"""
tshark on our recorded echo calls (pcaps/): an independent dissector agrees.

Wireshark's tshark is the black-box peer here.  For each capture, the
committed ones and one recorded afresh by ``pcaps/record_echo_call.py``:

1. With the DTLS key log and the RTP/RTCP heuristics, tshark must dissect
   each datagram as the protocol :mod:`realtime.demux` (RFC 7983) names,
   decrypt the DTLS handshake (both Finished messages, epoch 1, are only
   readable with the key log), and flag **no** STUN, DTLS or RTP frame as
   malformed.  One exception is allowed: SRTP packets with the P bit set
   (Chromium's RTX padding probes) may show as ``data``, because RTP's pad
   count is the packet's last octet and in SRTP that octet belongs to the
   authentication tag, so tshark's RTP heuristic declines them.

2. RTCP needs a precise meaning of "zero malformed".  Every RTCP datagram
   of a WebRTC call is SRTCP (RFC 8827 §6.5), and SRTCP encrypts all but the
   first 8 octets (RFC 3711 §3.4); tshark cannot decrypt SRTP, so it parses
   ciphertext as RTCP bodies and often raises "Malformed Packet" or
   "Encrypted RTCP Payload" there -- faults of the ciphertext parse, not of
   the packet.  Its RTCP heuristic also skips most SRTCP: with AES-CM the
   14-octet trailer leaves the length off a multiple of 4, and RFC 5506
   reduced-size feedback (transport-cc) does not start with SR/RR.  So for
   RTCP we decode the media port as RTCP ("Decode As") and require, for
   every RTCP-class datagram, that tshark dissects the clear part -- packet
   type, length and sender SSRC of the first packet -- with the same values
   as ``realtime-replay``.  Zero malformed RTCP means: zero datagrams whose
   clear header tshark fails to read or reads differently.  (Our own
   decryption of every SRTCP packet is checked in
   tests/testing/test_replay_media.py.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import require, require_tool
from realtime.testing import replay
from realtime.testing.media_summary import summarize_rtcp_header

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "pcaps"
RECORDED = ["echo-chromium-aes-cm-hmac-sha1-80", "echo-chromium-aead-aes-128-gcm"]


def tshark(*args: str) -> list[str]:
    """Run tshark; return its stdout lines (the root warning goes to stderr)."""
    result = subprocess.run([require_tool("tshark"), *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def replay_stats(pcap: Path) -> Counter:
    """Return ``realtime-replay``'s line counts per kind for ``pcap``."""
    stats: Counter = Counter()
    for _ in replay.capture_lines(str(pcap), stats=stats):
        pass
    return stats


def media_port(commands: Path) -> int:
    """Return the media port from the tcpdump filter in ``NAME.commands.txt``."""
    return int(re.search(r"udp port (\d+)", commands.read_text()).group(1))


def check_capture(pcap: Path, keylog: Path, port: int) -> None:
    """Apply both tshark checks of the module docstring to one capture."""
    ours = replay_stats(pcap)
    assert ours["undecodable"] == 0
    rows = [line.split("\t") for line in tshark(
        "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}",
        "--enable-heuristic", "rtp_udp", "--enable-heuristic", "rtcp_udp",
        "-T", "fields", "-e", "frame.protocols", "-e", "_ws.malformed", "-e", "udp.payload")]
    pairs: Counter = Counter()
    malformed: Counter = Counter()
    for protocols, bad, payload in rows:
        data = bytes.fromhex(payload.replace(":", ""))
        layers = protocols.split(":")
        theirs = next((p for p in ("stun", "dtls", "rtp", "rtcp") if p in layers), layers[-1])
        kind = replay.payload_kind(data).name
        if kind == "RTP" and theirs == "data" and data[0] & 0x20:
            # P bit set: the pad count is the last octet, which in SRTP is the
            # authentication tag, so tshark's RTP heuristic declines the packet.
            theirs = "rtp (padding octet is the SRTP tag)"
        pairs[kind, theirs] += 1
        malformed[theirs] += bool(bad)
    assert set(pairs) <= {("STUN", "stun"), ("DTLS", "dtls"), ("RTP", "rtp"),
                          ("RTP", "rtp (padding octet is the SRTP tag)"),
                          ("RTCP", "rtcp"), ("RTCP", "data")}, pairs
    assert pairs["STUN", "stun"] == ours["STUN"] > 0
    assert pairs["DTLS", "dtls"] == ours["DTLS"] > 0
    assert pairs["RTP", "rtp"] > 300
    assert malformed["stun"] == malformed["dtls"] == malformed["rtp"] == 0, malformed
    finished = tshark("-r", str(pcap), "-o", f"tls.keylog_file:{keylog}",
                      "-Y", "dtls.handshake.type == 20")
    assert len(finished) == 2, "both Finished messages are decrypted with the key log"
    without_keys = tshark("-r", str(pcap), "-Y", "dtls.handshake.type == 20")
    assert without_keys == [], "without the key log the Finished messages stay encrypted"

    rtcp_rows = tshark("-r", str(pcap), "-d", f"udp.port=={port},rtcp",
                       "-Y", "udp.payload[1:1] >= c8 && udp.payload[1:1] <= df",
                       "-T", "fields", "-E", "occurrence=f", "-e", "udp.payload",
                       "-e", "rtcp.pt", "-e", "rtcp.length", "-e", "rtcp.senderssrc")
    assert len(rtcp_rows) == ours["RTCP"] > 10
    for row in rtcp_rows:
        payload, packet_type, length, ssrc = row.split("\t")
        clear = summarize_rtcp_header(bytes.fromhex(payload.replace(":", "")))
        assert f" length={length} ssrc=0x{int(ssrc, 16):08x} " in clear, (row, clear)
        assert packet_type in ("200", "201", "202", "203", "205", "206"), row


@pytest.mark.parametrize("name", RECORDED)
def test_tshark_agrees_on_the_committed_capture(name):
    check_capture(PCAPS / f"{name}.pcap", PCAPS / f"{name}.keylog",
                  media_port(PCAPS / f"{name}.commands.txt"))


@pytest.mark.slow
def test_record_a_fresh_call_and_check_it(tmp_path):
    """The recording script end to end: unshare, tcpdump, twistd, Chromium, keys."""
    require(os.geteuid() == 0, "recording needs root (tcpdump, unshare -n)")
    for tool in ("tcpdump", "unshare", "ip", "node"):
        require_tool(tool)
    require_tool("chromium", "/usr/bin/chromium")
    require((ROOT / "tests/interop/node_modules/playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    result = subprocess.run(
        [sys.executable, str(PCAPS / "record_echo_call.py"),
         "fresh", "--profile", "SRTP_AEAD_AES_128_GCM", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"state": "connected"' in result.stdout
    files = {p.name for p in tmp_path.iterdir()}
    assert files >= {"fresh.pcap", "fresh.keylog", "fresh.srtp.json", "fresh.commands.txt"}
    assert (tmp_path / "fresh.pcap").stat().st_size < 1_500_000
    check_capture(tmp_path / "fresh.pcap", tmp_path / "fresh.keylog",
                  media_port(tmp_path / "fresh.commands.txt"))
    stats: Counter = Counter()
    keys = replay.load_srtp_keys(tmp_path / "fresh.srtp.json")
    for _ in replay.capture_lines(str(tmp_path / "fresh.pcap"), keys, stats=stats):
        pass
    assert stats["srtp"] == stats["RTP"] and stats["srtcp"] == stats["RTCP"] > 0
    assert not [k for k in stats if k.endswith(("-failed", "-no-key"))]
