"""
DTLS 1.2 record decryption from a logged master secret (realtime.dtls.keylog).

The independent vector is the Wireshark test capture ``dtls12-aes128ccm8``
(GnuTLS client and server, secrets published by Wireshark), recomputed in
``../shared/vectors/dtls12_psk_ccm8_capture.json``: key expansion and
every protected record of it.  AES-GCM and ChaCha20-Poly1305 records are
built here field by field with ``cryptography`` and the nonce rules of RFC
5288 §3 / RFC 7905 §2 written out in the test, so the module's own nonce
code is checked against an independent construction.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.dtls.keylog import (
    AEAD_SUITES,
    KeyBlock,
    RecordDecryptionFailed,
    RecordProtection,
    UnsupportedSuite,
    lookup_suite,
    tls12_prf,
)
from realtime.dtls.record import Record, parse_records
from realtime.errors import DecodeError, LocalProtocolError

CCM8 = 0xC0A8
GCM128 = 0xC02B
CHACHA = 0xCCA9


@pytest.fixture(scope="module")
def ccm8(vectors):
    return vectors("dtls12_psk_ccm8_capture")


def test_key_expansion_matches_the_wireshark_vector(ccm8) -> None:
    master = bytes.fromhex(ccm8["master_secret"])
    client_random, server_random = (bytes.fromhex(ccm8[k]) for k in ("client_random", "server_random"))
    block = tls12_prf(master, b"key expansion", server_random + client_random, 40)
    assert block.hex() == ccm8["key_block"]
    keys = KeyBlock.derive(master, client_random, server_random, CCM8)
    assert keys.client_write_key.hex() == ccm8["client_write_key"]
    assert keys.server_write_key.hex() == ccm8["server_write_key"]
    assert keys.client_write_iv.hex() == ccm8["client_write_iv"]
    assert keys.server_write_iv.hex() == ccm8["server_write_iv"]


def test_master_secret_rule_uses_the_same_prf(ccm8) -> None:
    """The PRF also reproduces the published master secret from the PSK premaster."""
    seed = bytes.fromhex(ccm8["client_random"]) + bytes.fromhex(ccm8["server_random"])
    master = tls12_prf(bytes.fromhex(ccm8["premaster_secret"]), b"master secret", seed, 48)
    assert master.hex() == ccm8["master_secret"]


def test_every_protected_record_of_the_capture_decrypts(ccm8) -> None:
    keys = KeyBlock.derive(bytes.fromhex(ccm8["master_secret"]), bytes.fromhex(ccm8["client_random"]),
                           bytes.fromhex(ccm8["server_random"]), CCM8)
    client_port = int(ccm8["peers"]["client"].split("/")[0])
    expected = {r["frame"]: (r["content_type"], r["plaintext"]) for r in ccm8["decrypted_records"]}
    opened = {}
    for frame in ccm8["frames"]:
        for record in parse_records(bytes.fromhex(frame["udp_payload"])):
            if record.epoch:
                protection = keys.protection(client=frame["src_port"] == client_port)
                opened[frame["frame"]] = (record.content_type, protection.decrypt(record).hex())
    assert opened == expected


def test_wrong_direction_fails_authentication(ccm8) -> None:
    keys = KeyBlock.derive(bytes.fromhex(ccm8["master_secret"]), bytes.fromhex(ccm8["client_random"]),
                           bytes.fromhex(ccm8["server_random"]), CCM8)
    frame9 = next(f for f in ccm8["frames"] if f["frame"] == 9)  # client application data
    record = parse_records(bytes.fromhex(frame9["udp_payload"]))[0]
    with pytest.raises(RecordDecryptionFailed, match="^DTLS record epoch 1 seq 1 failed authentication$"):
        keys.protection(client=False).decrypt(record)


def test_gcm_record_layout_annotated() -> None:
    """An AES-128-GCM application_data record, built by hand (RFC 5288 §3, RFC 6347 §4.1.2.1)."""
    key, iv = bytes(range(16)), bytes.fromhex("a0a1a2a3")
    plaintext = b"sctp"
    explicit = bytes.fromhex("0001000000000007")  # any 8 bytes the sender chose
    aad = bytes.fromhex(
        "0001"  # epoch 1
        "000000000007"  # sequence_number 7
        "17"  # content type 23 application_data
        "fefd"  # version DTLS 1.2
        "0004"  # plaintext length 4
    )
    sealed = AESGCM(key).encrypt(iv + explicit, plaintext, aad)  # nonce = salt(4) | explicit(8)
    wire = bytes.fromhex(
        "17"  # content type
        "fefd"  # version
        "0001"  # epoch
        "000000000007"  # sequence number
        "001c"  # length 28 = 8 explicit + 4 ciphertext + 16 tag
    ) + explicit + sealed
    record = Record.decode(wire)
    protection = RecordProtection(lookup_suite(GCM128), key, iv)
    assert protection.decrypt(record) == plaintext
    assert protection.encrypt(23, 0xFEFD, 1, 7, plaintext).encode()[:13] == wire[:13]


def test_chacha20_record_nonce_annotated() -> None:
    """ChaCha20-Poly1305: no explicit nonce; IV XOR (0(4) | epoch(2) | seq(6)) (RFC 7905 §2)."""
    key, iv = bytes(range(32)), bytes.fromhex("000102030405060708090a0b")
    nonce = bytes.fromhex("00010203" "0405" "060708090a0b")  # IV ...
    nonce = bytes(a ^ b for a, b in zip(nonce, bytes.fromhex("00000000" "0002" "000000000105")))
    aad = bytes.fromhex("0002" "000000000105" "17" "fefd" "0002")
    sealed = ChaCha20Poly1305(key).encrypt(nonce, b"hi", aad)
    record = Record(23, 0xFEFD, 2, 0x105, sealed)
    protection = RecordProtection(lookup_suite(CHACHA), key, iv)
    assert protection.decrypt(record) == b"hi"
    assert protection.encrypt(23, 0xFEFD, 2, 0x105, b"hi") == record


@settings(max_examples=100, deadline=None)
@given(suite=st.sampled_from(sorted(AEAD_SUITES)), seed=st.binary(min_size=48, max_size=48),
       epoch=st.integers(1, 0xFFFF), seq=st.integers(0, 2**48 - 1),
       content_type=st.sampled_from([21, 22, 23]), plaintext=st.binary(max_size=300))
def test_encrypt_then_decrypt_round_trips(suite, seed, epoch, seq, content_type, plaintext) -> None:
    keys = KeyBlock.derive(seed, seed[:32], seed[16:], suite)
    for client in (True, False):
        record = keys.protection(client).encrypt(content_type, 0xFEFD, epoch, seq, plaintext)
        assert keys.protection(client).decrypt(Record.decode(record.encode())) == plaintext


@settings(max_examples=200, deadline=None)
@given(suite=st.sampled_from(sorted(AEAD_SUITES)), fragment=st.binary(max_size=80),
       epoch=st.integers(0, 0xFFFF), seq=st.integers(0, 2**48 - 1))
def test_hostile_records_raise_only_decode_error(suite, fragment, epoch, seq) -> None:
    keys = KeyBlock.derive(bytes(48), bytes(32), bytes(32), suite)
    with pytest.raises(DecodeError):
        keys.protection(True).decrypt(Record(23, 0xFEFD, epoch, seq, fragment))


@pytest.mark.parametrize("suite, fragment, message", [
    (GCM128, bytes(23), "DTLS record of 23 bytes is shorter than its 24-byte nonce and tag"),
    (CHACHA, bytes(15), "DTLS record of 15 bytes is shorter than its 16-byte nonce and tag"),
    (CCM8, bytes(15), "DTLS record of 15 bytes is shorter than its 16-byte nonce and tag"),
    (GCM128, bytes(24), "DTLS record epoch 1 seq 9 failed authentication"),
])
def test_malformed_records(suite, fragment, message) -> None:
    keys = KeyBlock.derive(bytes(48), bytes(32), bytes(32), suite)
    with pytest.raises(RecordDecryptionFailed) as caught:
        keys.protection(True).decrypt(Record(23, 0xFEFD, 1, 9, fragment))
    assert str(caught.value) == message


def test_a_cbc_suite_is_refused() -> None:
    with pytest.raises(UnsupportedSuite) as caught:
        KeyBlock.derive(bytes(48), bytes(32), bytes(32), 0xC00A)  # ECDHE-ECDSA-AES256-SHA
    assert str(caught.value) == "cipher suite 0xc00a is not an AEAD suite this replay decrypts"


def test_sha384_suites_expand_with_sha384() -> None:
    keys = KeyBlock.derive(b"m" * 48, b"c" * 32, b"s" * 32, 0xC02C)
    block = tls12_prf(b"m" * 48, b"key expansion", b"s" * 32 + b"c" * 32, 72, "sha384")
    assert keys.client_write_key + keys.server_write_key == block[:64]
    assert keys.client_write_iv + keys.server_write_iv == block[64:]


def test_key_of_the_wrong_size_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError):
        RecordProtection(lookup_suite(GCM128), bytes(32), bytes(4))
