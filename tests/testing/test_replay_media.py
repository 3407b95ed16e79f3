"""
``realtime-replay`` on media: RTP/SRTCP/DTLS summaries and SRTP decryption.

No sockets: the committed echo calls in ``pcaps/`` (recorded by
``pcaps/record_echo_call.py``) and the shared Chromium <-> aiortc captures
are read from disk; keys come from their ``NAME.srtp.json`` or are derived
from ``NAME.keylog``.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.errors import DecodeError, Truncated
from realtime.testing import replay
from realtime.testing.captures import read_capture
from realtime.dtls.keylog import tls12_prf
from realtime.testing.dtls_keys import derive_srtp_keys, read_nss_keylog
from realtime.testing.media_summary import (
    summarize_dtls,
    summarize_rtcp_compound,
    summarize_rtcp_header,
    summarize_rtp_header,
)
from realtime.testing.srtp_keys import SrtpDecryptor, load_srtp_keys

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"
RECORDED = ["echo-chromium-aes-cm-hmac-sha1-80", "echo-chromium-aead-aes-128-gcm"]
PROFILES = {"echo-chromium-aes-cm-hmac-sha1-80": "SRTP_AES128_CM_HMAC_SHA1_80",
            "echo-chromium-aead-aes-128-gcm": "SRTP_AEAD_AES_128_GCM"}
LINE = re.compile(r"^ *\d+\.\d{6} udp 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ (STUN|DTLS|RTP|RTCP) \S")

# Shared captures: (DTLS, RTCP, RTP, STUN) lines; every RTP/RTCP line decrypts.
SHARED_COUNTS = {
    "webrtc-chromium-aiortc-gcm-dtls-server": (74, 39, 1077, 16),
    "webrtc-chromium-aiortc-simulcast-not-negotiated": (72, 35, 861, 16),
    "webrtc-chromium-aiortc-simulcast": (72, 55, 1977, 16),
}


def run(*args) -> list[str]:
    out = io.StringIO()
    assert replay.main([str(a) for a in args], out=out) == 0
    return out.getvalue().splitlines()


def stats_of(lines: list[str]) -> Counter:
    """Parse the ``--stats`` line: ``# DTLS=9 RTCP=78 ...``."""
    assert lines[-1].startswith("# ")
    return Counter({k: int(v) for k, v in (item.split("=") for item in lines[-1][2:].split())})


# -- the committed captures ---------------------------------------------------


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_call_every_packet_summarized_and_decrypted(name):
    pcap = PCAPS / f"{name}.pcap"
    datagrams = [r for r in read_capture(pcap) if r.transport == "udp"]
    lines = run("--stats", "--extmap", "4=mid", "--srtp-keys", PCAPS / f"{name}.srtp.json", pcap)
    body, stats = lines[:-1], stats_of(lines)
    assert len(body) == len(datagrams) > 300  # one line per packet
    for line in body:
        assert LINE.match(line), line
    assert {"STUN", "DTLS", "RTP", "RTCP"} <= set(stats)
    assert stats["undecodable"] == 0
    assert stats["srtp"] == stats["RTP"] > 300 and stats["srtcp"] == stats["RTCP"] > 10
    assert not [k for k in stats if k.endswith(("-failed", "-no-key"))]
    # both directions carry media: the echo sends each stream back
    assert len({line.split()[2] for line in body if " RTP " in line}) == 2
    assert any('mid="0"' in line for line in body) and any('mid="1"' in line for line in body)
    assert any("CLIENT_HELLO#0" in line for line in body)
    assert any("HELLO_VERIFY_REQUEST#0" in line for line in body)  # our cookie exchange
    assert any("SERVER_HELLO#1" in line for line in body)
    assert any(" | SR ssrc=" in line for line in body)
    assert any(" | TWCC media=" in line for line in body)
    assert all(" | payload=" in line for line in body if " RTP " in line)


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_call_keys_from_the_dtls_keylog_match_the_srtp_keylog(name):
    pcap = PCAPS / f"{name}.pcap"
    datagrams = [(r.src, r.dst, r.payload) for r in read_capture(pcap) if r.payload[:1] == b"\x16"]
    derived = derive_srtp_keys(datagrams, read_nss_keylog(PCAPS / f"{name}.keylog"))
    logged = load_srtp_keys(PCAPS / f"{name}.srtp.json")
    assert derived == logged and logged[0].profile == PROFILES[name]
    lines = run("--stats", "--keylog", PCAPS / f"{name}.keylog", pcap)
    stats = stats_of(lines)
    assert stats["srtp"] == stats["RTP"] and stats["srtcp"] == stats["RTCP"]
    assert stats["undecodable"] == 0


def test_without_keys_headers_only_and_nothing_undecodable():
    lines = run("--stats", PCAPS / f"{RECORDED[1]}.pcap")
    stats = stats_of(lines)
    assert stats["undecodable"] == 0 and "srtp" not in stats
    assert not any(" | " in line for line in lines)
    assert any(" RTCP first=" in line and " encrypted=" in line for line in lines)


def test_a_tampered_packet_fails_authentication_and_is_counted():
    name = RECORDED[0]
    keys = load_srtp_keys(PCAPS / f"{name}.srtp.json")
    rtp = next(r for r in read_capture(PCAPS / f"{name}.pcap")
               if r.payload[:1] == b"\x90" and r.payload[1] & 0x7F == 96)
    decryptor = SrtpDecryptor(keys)
    tampered = rtp.payload[:-1] + bytes([rtp.payload[-1] ^ 1])
    text = replay.decrypted_summary("RTP", tampered, rtp.src, rtp.dst, decryptor)
    assert text == " | undecodable: SRTP packet rejected: authentication failed"
    assert replay.decrypted_summary("RTP", rtp.payload, rtp.src, rtp.dst, decryptor).startswith(" | payload=")
    assert replay.decrypted_summary("RTP", rtp.payload, ("10.0.0.1", 1), ("10.0.0.2", 2), decryptor) == ""
    assert decryptor.counts == Counter({"srtp-failed": 1, "srtp": 1, "srtp-no-key": 1})


def test_bad_key_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "keys.json"
    bad.write_text('{"peer": "127.0.0.1:1"}')
    with pytest.raises(SystemExit) as exit_info:
        replay.main(["--srtp-keys", str(bad), str(PCAPS / f"{RECORDED[0]}.pcap")], out=io.StringIO())
    assert exit_info.value.code == 2
    assert "--srtp-keys" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        replay.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--srtp-keys", "--keylog", "--extmap", "--stats", "FILE"):
        assert option in text
    squeezed = re.sub(r"\s+", "", text)  # argparse wraps lines, also at hyphens
    assert "--srtp-keylog" in squeezed and "CLIENT_RANDOM" in squeezed


# -- the shared Chromium <-> aiortc captures -----------------------------------


@pytest.mark.parametrize("name", sorted(SHARED_COUNTS))
@pytest.mark.parametrize("key_option", ["--srtp-keys", "--keylog"])
def test_shared_webrtc_captures_decrypt(shared, name, key_option):
    base = shared / "pcaps" / "generated" / "webrtc" / name
    keys = base.with_suffix(".srtp.json" if key_option == "--srtp-keys" else ".keylog")
    stats = stats_of(run("--stats", key_option, keys, base.with_suffix(".pcap")))
    dtls, rtcp, rtp, stun = SHARED_COUNTS[name]
    assert (stats["DTLS"], stats["RTCP"], stats["RTP"], stats["STUN"]) == (dtls, rtcp, rtp, stun)
    assert (stats["srtcp"], stats["srtp"], stats["undecodable"]) == (rtcp, rtp, 0)


def test_keylog_derivation_matches_the_exporter_output_of_openssl(shared):
    """aiortc's OpenSSL exported the keying material; our PRF must give the same bytes."""
    base = shared / "pcaps" / "generated" / "webrtc" / "webrtc-chromium-aiortc-gcm-dtls-server"
    info = json.loads(base.with_suffix(".srtp.json").read_text())
    datagrams = [(r.src, r.dst, r.payload) for r in read_capture(base.with_suffix(".pcap"))
                 if r.payload[:1] == b"\x16"]
    (keys,) = derive_srtp_keys(datagrams, read_nss_keylog(base.with_suffix(".keylog")))
    assert keys.peer_write == (bytes.fromhex(info["client_write_srtp_master_key"]),
                               bytes.fromhex(info["client_write_srtp_master_salt"]))
    assert keys.other_write == (bytes.fromhex(info["server_write_srtp_master_key"]),
                                bytes.fromhex(info["server_write_srtp_master_salt"]))


def test_simulcast_rids_are_shown_with_extmap_names(shared):
    pcap = shared / "pcaps" / "generated" / "webrtc" / "webrtc-chromium-aiortc-simulcast.pcap"
    lines = run("--extmap", "10=rid", "--extmap", "11=rrid", "--extmap", "4=mid", pcap)
    rids = {m.group(1) for line in lines for m in [re.search(r' rid="(\w+)"', line)] if m}
    assert rids == {"f", "h", "q"}


# -- codecs: annotated bytes, malformed table, fuzzing -------------------------


def test_tls12_prf_sha256_vector():
    """The TLS 1.2 PRF (SHA-256) test vector circulated on the IETF TLS list."""
    out = tls12_prf(bytes.fromhex("9bbe436ba940f017b17652849a71db35"), b"test label",
                    bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out.hex() == (
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791"
        "e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b"
        "97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66")


def test_rtp_header_annotated():
    packet = bytes.fromhex(
        "90"        # V=2 P=0 X=1 CC=0
        "e0"        # M=1 PT=96
        "1234"      # sequence number 4660
        "00000064"  # timestamp 100
        "deadbeef"  # SSRC
        "bede0002"  # RFC 8285 one-byte form, 2 words
        "40" "31"   # id 4, len 1: mid "1"
        "a0" "66"   # id 10, len 1: rid "f"
        "22" "010203"  # id 2, len 3: abs-send-time 010203 (block ends on the word)
        "cafe"      # (encrypted) payload
    )
    assert summarize_rtp_header(packet, {4: "mid", 10: "rid"}) == (
        'pt=96 seq=4660 ts=100 ssrc=0xdeadbeef M ext=[mid="1" rid="f" 2=010203] size=26')
    assert summarize_rtp_header(packet) == (
        "pt=96 seq=4660 ts=100 ssrc=0xdeadbeef M ext=[4=31 10=66 2=010203] size=26")


def test_srtcp_header_and_clear_compound_annotated():
    srtcp = bytes.fromhex(
        "80" "c8" "0006"  # V=2 P=0 RC=0, PT=SR, length 6 words
        "0000abcd"        # sender SSRC (last clear field)
    ) + bytes(30)         # encrypted rest, E|index, tag
    assert summarize_rtcp_header(srtcp) == "first=SR length=6 ssrc=0x0000abcd encrypted=30"
    compound = bytes.fromhex(
        "80c80006" "0000abcd"                  # SR, SSRC
        "0000000100000002" "00000064"          # NTP 1.2, RTP ts 100
        "00000005" "00000190"                  # 5 packets, 400 octets
        "81ca0003" "0000abcd" "0103666f6f00"   # SDES, chunk: CNAME(1) len 3 "foo", end
        "0000"                                 # chunk padding
        "81cd0003" "0000abcd" "00001111" "00070000"  # RTPFB FMT=1 NACK media 0x1111 pid 7
    )
    assert summarize_rtcp_compound(compound) == (
        "SR ssrc=0x0000abcd ntp=0x0000000100000002 rtp_ts=100 packets=5 octets=400; "
        'SDES 0x0000abcd cname="foo"; NACK media=0x00001111 lost=[7]')


def test_dtls_records_annotated():
    datagram = bytes.fromhex(
        "16" "fefd" "0000" "000000000005" "001c"  # handshake, DTLS 1.2, epoch 0, seq 5, 28 bytes
        "0e" "000000" "0005" "000000" "000000"    # ServerHelloDone, length 0, message_seq 5
        "0b" "000010" "0002" "000000" "000004"    # Certificate (16 bytes), message_seq 2, [0:4]
        "01020304"                                # the first 4 body bytes
        "14" "fefd" "0000" "000000000006" "0001"  # ChangeCipherSpec, epoch 0, seq 6, 1 byte
        "01"
        "16" "fefd" "0001" "000000000000" "0003"  # handshake in epoch 1: encrypted Finished
        "aabbcc"
    )
    assert summarize_dtls(datagram) == (
        "handshake v=0xfefd epoch=0 seq=5 SERVER_HELLO_DONE#5,CERTIFICATE#2[0:4/16]; "
        "change_cipher_spec v=0xfefd epoch=0 seq=6 length=1; "
        "handshake v=0xfefd epoch=1 seq=0 length=3")


MALFORMED = [
    (summarize_rtp_header, "8060", Truncated, "RTP header truncated: need 2 bytes at offset 2, have 0"),
    (summarize_rtp_header, "4060000100000002000000ff", DecodeError, "RTP version must be 2, got 1"),
    (summarize_rtp_header, "8260000100000002000000ff00000001", Truncated,
     "RTP header truncated: need 4 bytes at offset 16, have 0"),
    (summarize_rtp_header, "9060000100000002000000ffbede", Truncated,
     "RTP header truncated: need 2 bytes at offset 14, have 0"),
    (summarize_rtp_header, "9060000100000002000000ffbede000210000000", Truncated,
     "RTP header truncated: need 8 bytes at offset 16, have 4"),
    (summarize_rtp_header, "9060000100000002000000ffbede000113000000", DecodeError,
     "one-byte header extension 1 overruns the block"),
    (summarize_rtcp_header, "80c80006", Truncated, "SRTCP header truncated: need 4 bytes at offset 4, have 0"),
    (summarize_rtcp_header, "00c8000600000001", DecodeError, "RTCP version must be 2, got 0"),
    (summarize_rtcp_compound, "80c8000600000001", Truncated,
     "RTCP length of 6 words overruns the datagram (4 bytes left)"),
    (summarize_dtls, "", DecodeError, "DTLS datagram is empty"),
    (summarize_dtls, "0ffefd00000000000000000000", DecodeError, "DTLS record content type 15 is not in 20..31"),
    (summarize_dtls, "16fefd0000000000000000000a0100", Truncated,
     "DTLS record truncated: need 10 bytes at offset 13, have 2"),
    (summarize_dtls, "16fefd00000000000000000004010000ff", Truncated,
     "DTLS handshake truncated: need 2 bytes at offset 4, have 0"),
]


@pytest.mark.parametrize(("summarizer", "data", "error", "message"), MALFORMED)
def test_malformed(summarizer, data, error, message):
    with pytest.raises(error) as exc_info:
        summarizer(bytes.fromhex(data))
    assert str(exc_info.value) == message


DTLS_PREFIX = st.sampled_from([b"", bytes.fromhex("16fefd0000000000000000"), b"\x80", b"\x90\x60"])


@settings(max_examples=300, deadline=None)
@given(DTLS_PREFIX, st.binary(max_size=120))
def test_summarizers_raise_only_decode_error(prefix, tail):
    data = prefix + tail
    for summarizer in (summarize_rtp_header, summarize_rtcp_header, summarize_rtcp_compound, summarize_dtls):
        try:
            assert isinstance(summarizer(data), str)
        except DecodeError:
            pass
    kind, text = replay.summarize(data)
    assert isinstance(text, str)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_derive_srtp_keys_skips_garbage(data):
    assert derive_srtp_keys([(("a", 1), ("b", 2), b"\x16" + data)], {}) == []


def test_srtp_keylog_entry_round_trips_through_the_key_reader():
    """``--srtp-keylog`` lines name the halves by DTLS role; the reader maps them to directions."""
    from types import SimpleNamespace

    from realtime.net.peers import srtp_keylog_entry
    from realtime.peer.connection import Connected
    from realtime.service import Options
    from realtime.testing.srtp_keys import keys_from_entry

    local, remote = (b"L" * 16, b"l" * 14), (b"R" * 16, b"r" * 14)
    connection = SimpleNamespace(dtls_role="server", srtp_keying=(local, remote))
    session = SimpleNamespace(session_id="s1", connection=connection)
    entry = srtp_keylog_entry(session, Connected(("127.0.0.1", 5000), "SRTP_AES128_CM_SHA1_80"))
    assert entry["server_write_srtp_master_key"] == (b"L" * 16).hex()  # we are the DTLS server
    assert entry["client_write_srtp_master_salt"] == (b"r" * 14).hex()
    keys = keys_from_entry(json.loads(json.dumps(entry)))
    assert keys.peer == ("127.0.0.1", 5000) and keys.profile == "SRTP_AES128_CM_HMAC_SHA1_80"
    assert (keys.peer_write, keys.other_write) == (remote, local)
    options = Options()
    options.parseOptions(["--srtp-keylog", "keys.jsonl"])
    assert options["srtp-keylog"] == "keys.jsonl"
