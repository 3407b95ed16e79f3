"""
tshark on our recorded DataChannel calls (pcaps/): DTLS -> SCTP -> DCEP.

Wireshark is the independent dissector.  For the committed capture and for
one recorded afresh by ``pcaps/record_datachannel_call.py`` (headless
Chromium's DataChannels echoed by ``twistd realtime``):

1. With the key log, tshark decrypts the DTLS, and a DTLS "RSA keys" UAT
   entry whose protocol column is ``sctp`` hands the decrypted application
   data to its SCTP dissector (tshark 4.0 offers no "Decode As" for that;
   Wireshark insists on a key file for the entry, so a throw-away RSA key is
   generated in the test's tmp dir -- the key log does the decrypting).
   No frame may be malformed or carry an expert error, with one exception:
   on a loaded machine Chromium retransmits its fragmented ClientHello
   (RFC 6347 §4.2.4) and tshark's DTLS reassembly flags the repeat as
   "[Reassembly error, protocol DTLS: New fragment overlaps old data
   (retransmission?)]" and marks it malformed -- a limit of its
   reassembly, not a fault of the packet, so only that message is excused.
2. tshark's SCTP chunk types, DATA (sid, PPID) sequence and DCEP
   DATA_CHANNEL_OPEN labels and channel types must equal what
   ``realtime-replay --keylog`` prints through our own DTLS record
   decryption and SCTP/DCEP codecs: ``reliable`` (type 0) and ``unordered``
   (type 0x81 = 129), two OPENs and two ACKs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from realtime.sctp.chunks import ChunkType
from realtime.testing import replay
from realtime.testing.captures import read_capture
from tests.conftest import require, require_tool

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "pcaps"
RECORDED = ["datachannel-chromium-echo"]
LABELS = [("reliable", 0), ("unordered", 129)]
ERROR_SEVERITY = 0x00800000  # PI_ERROR in Wireshark's expert.h
RETRANSMITTED_HELLO = "New fragment overlaps old data (retransmission?)"


@pytest.fixture(scope="module")
def dummy_key(tmp_path_factory) -> Path:
    """A throw-away RSA key for the UAT entry (never used to decrypt anything)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("wireshark") / "dummy-rsa-key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return path


def tshark(*args: str) -> list[str]:
    """Run tshark; return its stdout lines."""
    result = subprocess.run([require_tool("tshark"), *args], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def media_port(commands: Path) -> int:
    """Return the media port from the tcpdump filter in ``NAME.commands.txt``."""
    return int(re.search(r"udp port (\d+)", commands.read_text()).group(1))


def browser_port(pcap: Path, media: int) -> int:
    """Return Chromium's ICE port: the other end of the capture's first datagram."""
    first = next(r for r in read_capture(pcap) if r.transport == "udp")
    return first.src[1] if first.dst[1] == media else first.dst[1]


def ours(pcap: Path, keylog: Path) -> tuple[Counter, list[str], list[tuple[int, int]], list]:
    """Return replay stats, lines, DATA (sid, ppid) in order and DCEP OPEN (label, type)."""
    stats: Counter = Counter()
    lines = list(replay.capture_lines(str(pcap), keylog=str(keylog), stats=stats))
    data = [(int(sid), int(ppid)) for line in lines
            for sid, ppid in re.findall(r"DATA tsn=\d+ sid=(\d+) ssn=\d+ ppid=(\d+)", line)]
    types = {"RELIABLE": 0, "PARTIAL_RELIABLE_REXMIT_UNORDERED": 129}
    opens = [(label, types[kind]) for line in lines
             for label, kind in re.findall(r'DCEP OPEN label="([^"]*)" type=(\S+)', line)]
    return stats, lines, data, opens


def check_capture(pcap: Path, keylog: Path, port: int, dummy_key: Path) -> None:
    """Apply the checks of the module docstring to one capture."""
    peer = browser_port(pcap, port)
    options = ["-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-o",
               f'uat:dtlsdecrypttablefile:"127.0.0.1","{peer}","sctp","{dummy_key}",""']
    bad = []
    for row in tshark(*options, "-Y", "_ws.malformed || _ws.expert.severity >= error",
                      "-T", "fields", "-E", "occurrence=a", "-e", "frame.number",
                      "-e", "_ws.malformed", "-e", "_ws.expert.severity", "-e", "_ws.expert.message"):
        number, malformed, severities, messages = (row.split("\t") + ["", "", ""])[:4]
        errors = [m for sev, m in zip(severities.split(","), messages.split(","))
                  if sev and int(sev) >= ERROR_SEVERITY]
        if not all(RETRANSMITTED_HELLO in m for m in errors + ([malformed] if malformed else [])):
            bad.append(row)
    assert bad == [], bad
    stats, lines, our_data, our_opens = ours(pcap, keylog)
    assert stats["undecodable"] == 0 and stats["dtls-decrypted"] > 100
    assert "dtls-failed" not in stats and "dtls-no-key" not in stats

    chunk_types = Counter()
    for row in tshark(*options, "-T", "fields", "-e", "sctp.chunk_type"):
        chunk_types.update(ChunkType(int(t)).name for t in row.split(",") if t)
    replayed = Counter({k[5:]: v for k, v in stats.items() if k.startswith("sctp-")})
    assert chunk_types == replayed, (chunk_types, replayed)
    assert chunk_types["INIT"] == chunk_types["COOKIE_ACK"] == 2  # both sides initiate
    assert chunk_types["DATA"] > 150  # ~55+ pieces of the 64 KiB message each way

    rows = tshark(*options, "-Y", "sctp.chunk_type == 0", "-T", "fields",
                  "-e", "sctp.data_sid", "-e", "sctp.data_payload_proto_id")
    theirs = [(int(s, 16), int(p)) for row in rows
              for s, p in zip(*(field.split(",") for field in row.split("\t")))]
    assert theirs == our_data

    dcep = [row.split("\t") for row in tshark(
        *options, "-Y", "rtcdc", "-T", "fields", "-e", "rtcdc.message_type",
        "-e", "rtcdc.label", "-e", "rtcdc.channel_type")]
    opens = sorted((label, int(kind)) for message, label, kind in dcep if message == "3")
    assert opens == sorted(our_opens) == LABELS
    assert sum(message == "2" for message, _, _ in dcep) == stats["dcep-ACK"] == 2


@pytest.mark.parametrize("name", RECORDED)
def test_tshark_agrees_on_the_committed_capture(name, dummy_key):
    check_capture(PCAPS / f"{name}.pcap", PCAPS / f"{name}.keylog",
                  media_port(PCAPS / f"{name}.commands.txt"), dummy_key)


@pytest.mark.parametrize("name", RECORDED)
def test_committed_capture_is_the_whole_call(name):
    stats, lines, data, _ = ours(PCAPS / f"{name}.pcap", PCAPS / f"{name}.keylog")
    assert stats["sctp-RE_CONFIG"] == 8  # both channels reset, both directions, request + response
    assert stats["sctp-ABORT"] == 1 and any("alert warning close_notify" in line for line in lines)
    assert any('"last"' in line for line in lines)
    assert sum(" frag=B " in line for line in lines) == 2  # the 64 KiB message, each way


@pytest.mark.slow
def test_record_a_fresh_datachannel_call_and_check_it(tmp_path, dummy_key):
    """The recording script end to end: unshare, tcpdump, twistd, Chromium, key log."""
    require(os.geteuid() == 0, "recording needs root (tcpdump, unshare -n)")
    for tool in ("tcpdump", "unshare", "ip", "node"):
        require_tool(tool)
    require_tool("chromium", "/usr/bin/chromium")
    require((ROOT / "tests/interop/node_modules/playwright-core").is_dir(),
            "playwright-core is not installed (scripts/install-interop-tools)")
    result = subprocess.run(
        [sys.executable, str(PCAPS / "record_datachannel_call.py"), "fresh", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"reliableInOrder": true' in result.stdout and '"bigEchoed": true' in result.stdout
    assert {p.name for p in tmp_path.iterdir()} >= {"fresh.pcap", "fresh.keylog", "fresh.commands.txt"}
    assert (tmp_path / "fresh.pcap").stat().st_size < 1_000_000
    check_capture(tmp_path / "fresh.pcap", tmp_path / "fresh.keylog",
                  media_port(tmp_path / "fresh.commands.txt"), dummy_key)
