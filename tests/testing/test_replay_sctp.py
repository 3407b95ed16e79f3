"""
``realtime-replay --keylog`` on DataChannels: DTLS decryption, SCTP chunks, DCEP.

The shared Chromium <-> aiortc captures (``../shared/pcaps/generated/webrtc``)
are the ground truth: their README and VERIFY.md list, from tshark, the SCTP
chunks and DCEP messages inside; the replay, through our own DTLS record
decryption and SCTP/DCEP codecs, must count exactly the same.  The summary
functions are checked on hand-built packets (a comment per field), malformed
input (one row per message) and Hypothesis fuzzing.
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

from realtime.dtls.keylog import KeyBlock
from realtime.dtls.record import Record
from realtime.errors import DecodeError
from realtime.sctp.packet import encode_packet
from realtime.testing import replay
from realtime.testing.dtls_plaintext import DtlsDecryptor, OpenedRecord, summarize_plaintext
from realtime.testing.sctp_summary import message_preview, summarize_dcep, summarize_sctp

WEBRTC = ["webrtc-chromium-aiortc-gcm-dtls-server", "webrtc-chromium-aiortc-simulcast-not-negotiated",
          "webrtc-chromium-aiortc-simulcast"]
PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def run(*args) -> list[str]:
    out = io.StringIO()
    assert replay.main([str(a) for a in args], out=out) == 0
    return out.getvalue().splitlines()


def stats_of(lines: list[str]) -> Counter:
    assert lines[-1].startswith("# ")
    return Counter({k: int(v) for k, v in (item.split("=") for item in lines[-1][2:].split())})


def readme_counts(shared: Path) -> Counter:
    """The SCTP/DCEP counts of the README's webrtc table: ``INIT ×2, ... ABORT ×1``."""
    text = (shared / "pcaps/generated/README.md").read_text()
    row = next(line for line in text.splitlines() if "DCEP OPEN ×" in line)
    counts = Counter()
    for name, count in re.findall(r"(?<![/A-Z_])([A-Z_]+(?: OPEN)?) ×(\d+)", row):
        counts["dcep-OPEN" if name == "DCEP OPEN" else f"sctp-{name}"] = int(count)
    counts["dcep-ACK"] = int(re.search(r"/ACK ×(\d+)", row).group(1))
    return counts


def verify_sections(shared: Path) -> dict[str, str]:
    """VERIFY.md split into ``NAME -> section text`` per webrtc capture."""
    text = (shared / "pcaps/generated/VERIFY.md").read_text()
    parts = re.split(r"^## webrtc/(\S+)\.pcap$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("name", WEBRTC)
def test_shared_capture_chunks_and_dcep_match_readme_and_verify(shared, name):
    base = shared / "pcaps/generated/webrtc" / name
    lines = run("--stats", "--keylog", f"{base}.keylog", f"{base}.pcap")
    stats = stats_of(lines)
    ours = Counter({k: v for k, v in stats.items() if k.startswith(("sctp-", "dcep-"))})
    expected = readme_counts(shared)  # INIT 2, INIT_ACK 2, COOKIE_ECHO 2, OPEN 3/ACK 3, DATA 26 ...
    assert expected["sctp-DATA"] == 26 and expected["dcep-OPEN"] == 3
    assert {k: ours[k] for k in expected} == dict(expected)
    section = verify_sections(shared)[name]
    block = re.search(r"SCTP chunks:\n```\n(.*?)```", section, re.S).group(1)
    tshark = Counter({f"sctp-{n}": int(c) for c, n in re.findall(r"(\d+)\s+(\S+)", block)})
    assert Counter({k: v for k, v in ours.items() if k.startswith("sctp-")}) == tshark
    # every protected record opened; nothing undecodable
    assert stats["dtls-decrypted"] > 60 and stats["undecodable"] == 0
    assert not [k for k in stats if k in ("dtls-failed", "dtls-no-key")]
    # DCEP OPEN labels and channel types, as tshark saw them
    opens = re.findall(r"label='([^']*)' channel_type=(\d+)", section)
    shown = [line for line in lines if "DCEP OPEN" in line]
    types = {"0": "RELIABLE", "129": "PARTIAL_RELIABLE_REXMIT_UNORDERED"}
    assert sorted((label, types[t]) for label, t in opens) == sorted(
        re.search(r'label="([^"]*)" type=(\S+)', line).groups() for line in shown)
    # user messages: tshark's list, in the same order, by sid and ppid
    messages = re.findall(r"sid=0x([0-9a-f]{4}) ppid=(5[13]) (.*)", section)
    ours_messages = [re.search(r"sid=(\d+) ssn=\d+ ppid=(5[13]) (?:U )?len=\d+ (.*)$", line).groups()
                     for line in lines if re.search(r"ppid=5[13] ", line)]
    assert len(ours_messages) == len(messages) == 20
    for (sid, ppid, text), (our_sid, our_ppid, preview) in zip(messages, ours_messages):
        assert (int(sid, 16), ppid) == (int(our_sid), our_ppid)
        if ppid == "53":
            assert preview == text  # binary: hex
        else:
            assert preview.startswith(json.dumps(text[:20])[:-1])  # quoted, JSON-escaped


def test_shared_capture_lines_show_alerts_finished_and_reconfig(shared):
    base = shared / "pcaps/generated/webrtc" / WEBRTC[2]
    lines = run("--keylog", f"{base}.keylog", f"{base}.pcap")
    assert sum(" | FINISHED#" in line for line in lines) == 2
    assert any(line.endswith("| alert warning close_notify") for line in lines)
    assert any("RE_CONFIG OUT_RESET" in line and "streams=[1]" in line for line in lines)
    assert any("RE_CONFIG RESPONSE" in line and "result=SUCCESS_PERFORMED" in line for line in lines)
    assert any("ABORT causes=[USER_INITIATED_ABORT(" in line for line in lines)
    assert any('ppid=51 len=17 "hello from aiortc"' in line for line in lines)


def test_a_foreign_keylog_counts_no_key(shared, tmp_path):
    base = shared / "pcaps/generated/webrtc"
    lines = run("--stats", "--keylog", base / f"{WEBRTC[0]}.keylog", base / f"{WEBRTC[1]}.pcap")
    stats = stats_of(lines)
    assert stats["dtls-no-key"] == 70 and "dtls-decrypted" not in stats
    assert any("| undecrypted: no key log line for this handshake" in line for line in lines)


def test_decryptor_opens_the_wireshark_ccm8_capture(vectors):
    """DtlsDecryptor learns the randoms from the hellos of an independent capture."""
    vector = vectors("dtls12_psk_ccm8_capture")
    secrets = {bytes.fromhex(vector["client_random"]): bytes.fromhex(vector["master_secret"])}
    decryptor = DtlsDecryptor(secrets)
    client, server = ("127.0.0.1", 54273), ("127.0.0.1", 4433)
    opened = {}
    for frame in vector["frames"]:
        src, dst = (client, server) if frame["src_port"] == 54273 else (server, client)
        for item in decryptor.open_datagram(src, dst, bytes.fromhex(frame["udp_payload"])):
            opened[frame["frame"]] = (item.record.content_type, item.plaintext.hex())
    assert opened == {r["frame"]: (r["content_type"], r["plaintext"]) for r in vector["decrypted_records"]}
    assert decryptor.counts == Counter({"dtls-decrypted": 7})


def test_a_tampered_record_is_counted_as_failed(vectors):
    vector = vectors("dtls12_psk_ccm8_capture")
    secrets = {bytes.fromhex(vector["client_random"]): bytes.fromhex(vector["master_secret"])}
    decryptor = DtlsDecryptor(secrets)
    client, server = ("127.0.0.1", 54273), ("127.0.0.1", 4433)
    for frame in vector["frames"][:5]:  # hellos only
        src, dst = (client, server) if frame["src_port"] == 54273 else (server, client)
        decryptor.open_datagram(src, dst, bytes.fromhex(frame["udp_payload"]))
    data = bytearray.fromhex(vector["frames"][8]["udp_payload"])  # frame 9, client app data
    data[-1] ^= 1
    [item] = decryptor.open_datagram(client, server, bytes(data))
    assert item.plaintext is None and item.error == "DTLS record epoch 1 seq 1 failed authentication"
    assert summarize_plaintext(item) == "undecrypted: DTLS record epoch 1 seq 1 failed authentication"
    assert decryptor.counts == Counter({"dtls-failed": 1})
    [unknown] = DtlsDecryptor({}).open_datagram(client, server, bytes(data))
    assert unknown.error == "no handshake seen for this pair"


# -- summaries of hand-built packets --------------------------------------------

DCEP_OPEN = bytes.fromhex(
    "03"  # message type DATA_CHANNEL_OPEN
    "81"  # channel type PARTIAL_RELIABLE_REXMIT_UNORDERED
    "0100"  # priority 256
    "00000000"  # reliability parameter: 0 retransmissions
    "0004"  # label length 4
    "0000"  # protocol length 0
) + b"chat"  # label


def data_chunk(flags: int, tsn: int, sid: int, ssn: int, ppid: int, user_data: bytes) -> bytes:
    return (bytes([0, flags]) + (16 + len(user_data)).to_bytes(2, "big")  # type 0, flags, length
            + tsn.to_bytes(4, "big") + sid.to_bytes(2, "big")  # TSN, stream identifier
            + ssn.to_bytes(2, "big") + ppid.to_bytes(4, "big") + user_data)  # SSN, PPID, data


def test_data_chunk_with_dcep_open_annotated():
    packet = encode_packet(5000, 5000, 0x01020304, [  # ports 5000, verification tag
        data_chunk(0x03, 7, 1, 0, 50, DCEP_OPEN),  # flags B|E, TSN 7, sid 1, ssn 0, PPID 50
        bytes.fromhex("0300" "0010" "00000006" "00010000" "0000" "0000"),  # SACK cum 6 rwnd 65536
    ])
    counts: Counter = Counter()
    assert summarize_sctp(packet, counts) == (
        "SCTP 5000>5000 vtag=0x01020304 DATA tsn=7 sid=1 ssn=0 ppid=50 len=16 DCEP OPEN "
        'label="chat" type=PARTIAL_RELIABLE_REXMIT_UNORDERED priority=256 reliability=0 '
        'protocol=""; SACK cum_tsn=6 a_rwnd=65536')
    assert counts == Counter({"sctp-DATA": 1, "sctp-SACK": 1, "dcep-OPEN": 1})


def test_fragmented_and_unordered_messages():
    big = b"x" * 50
    packet = encode_packet(5000, 5000, 1, [
        data_chunk(0x06, 1, 2, 0, 51, big),  # U|B: first piece, unordered
        data_chunk(0x04, 2, 2, 0, 51, big),  # U: middle piece
        data_chunk(0x05, 3, 2, 0, 51, b"yz"),  # U|E: last piece
        data_chunk(0x0B, 4, 0, 1, 53, bytes(range(20))),  # I|B|E binary, immediate
    ])
    assert summarize_sctp(packet).split("; ") == [
        'SCTP 5000>5000 vtag=0x00000001 DATA tsn=1 sid=2 ssn=0 ppid=51 U len=50 frag=B "' + "x" * 40 + '"…',
        "DATA tsn=2 sid=2 ssn=0 ppid=51 U len=50 frag=M",
        "DATA tsn=3 sid=2 ssn=0 ppid=51 U len=2 frag=E",
        "DATA tsn=4 sid=0 ssn=1 ppid=53 I len=20 000102030405060708090a0b0c0d0e0f…",
    ]


@pytest.mark.parametrize("ppid, data, shown", [
    (51, "héllo".encode(), '"héllo"'),
    (56, b"\0", '""'),
    (57, b"\0", 'b""'),
    (53, b"\xde\xad", "dead"),
    (54, b"part", '"part"'),
    (51, b"\xff", '"\ufffd"'),  # invalid UTF-8 is shown, not raised
])
def test_message_preview(ppid, data, shown):
    assert message_preview(ppid, data) == shown


@pytest.mark.parametrize("data, message", [
    (b"", "SCTP packet of 0 bytes is shorter than its 12-byte common header"),
    (bytes(12), "SCTP CRC-32C checksum mismatch: packet says 00000000, computed 5db5602b"),
    (encode_packet(1, 2, 3, [bytes.fromhex("0000 0008 00000000")]),
     "DATA chunk value of 4 bytes is shorter than 12"),
    (encode_packet(1, 2, 3, [bytes.fromhex("0b00 0003")]),
     "SCTP chunk length 3 is shorter than its 4-byte header"),
])
def test_malformed_sctp(data, message):
    with pytest.raises(DecodeError) as caught:
        summarize_sctp(data)
    assert str(caught.value) == message


def test_malformed_dcep_inside_data_is_shown_not_raised():
    packet = encode_packet(5000, 5000, 1, [data_chunk(0x03, 1, 0, 0, 50, b"\x07")])
    assert summarize_sctp(packet).endswith("ppid=50 len=1 DCEP undecodable: unknown DCEP message type 0x07")
    with pytest.raises(DecodeError, match="^empty DCEP message$"):
        summarize_dcep(b"")


def test_plaintext_of_other_record_types():
    def opened(content_type: int, plaintext: bytes) -> str:
        return summarize_plaintext(OpenedRecord(Record(content_type, 0xFEFD, 1, 0, b""), plaintext))

    assert opened(21, b"\x02\x28") == "alert fatal handshake_failure"
    assert opened(22, bytes.fromhex("14 00000c 0005 000000 00000c") + bytes(12)) == "FINISHED#5"
    assert opened(22, b"\x14") == "undecodable: DTLS handshake truncated: need 3 bytes at offset 1, have 0"
    assert opened(23, b"\x00") == "undecodable: SCTP packet of 1 bytes is shorter than its 12-byte common header"
    assert opened(24, b"hb") == "type24 plaintext=2"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)),
                min_size=1, max_size=4))
def test_sctp_summary_raises_only_decode_error(chunks):
    """Valid checksums, hostile chunks: a summary or a DecodeError, nothing else."""
    raw = [bytes([t, f]) + (4 + len(v)).to_bytes(2, "big") + v for t, f, v in chunks]
    try:
        assert summarize_sctp(encode_packet(5000, 5000, 0, raw)).startswith("SCTP 5000>5000 ")
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 3))
def test_decryptor_never_raises_on_hostile_datagrams(data, epoch):
    keys = KeyBlock.derive(bytes(48), bytes(32), bytes(32), 0xC02B)
    decryptor = DtlsDecryptor({})
    decryptor._keys[(("a", 1), ("b", 2))] = keys
    datagram = bytes([23, 0xFE, 0xFD, 0, epoch]) + data
    for item in decryptor.open_datagram(("a", 1), ("b", 2), datagram):
        assert summarize_plaintext(item).startswith("undecrypted: ")
    decryptor.open_datagram(("a", 1), ("b", 2), bytes([22, 0xFE, 0xFD, 0, 0]) + data)
