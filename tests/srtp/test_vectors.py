"""
SRTP through our contexts against RFC 3711, RFC 7714 and libsrtp's known answers.

libsrtp always derives session keys from a master key, while the RFC 3711
B.2 and RFC 7714 §16-17 vectors start from *session* keys.  So the RFC
vectors first validate a small independent oracle written here with
``cryptography`` (AES-CM keystream, the KDF, AES-GCM IV and AAD rules), and
the oracle then checks, byte for byte, what our contexts produce under the
master keys whose session keys the vectors publish (RFC 3711 B.3 and the
libsrtp GCM known answer).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings, strategies as st

from realtime.srtp.context import InboundSrtpContext, OutboundSrtpContext
from realtime.srtp.profiles import SrtpProtectionProfile as P

CM80 = P.SRTP_AES128_CM_HMAC_SHA1_80
GCM128 = P.SRTP_AEAD_AES_128_GCM
GCM256 = P.SRTP_AEAD_AES_256_GCM
h = bytes.fromhex


# --- the oracle ------------------------------------------------------------------

def aes_block(key: bytes, block: bytes) -> bytes:
    """Return AES_key(block)."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def aes_cm(key: bytes, iv: int, data: bytes) -> bytes:
    """XOR ``data`` with the AES counter-mode keystream starting at ``iv`` (RFC 3711 §4.1.1)."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def kdf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 §4.3.1 with kdr 0: AES-CM keyed by the master key, x = salt XOR label<<48."""
    salt = int.from_bytes(master_salt.ljust(14, b"\0"), "big")  # RFC 7714 §11 pads 12 to 14
    x = (salt ^ (label << 48)) << 16
    return aes_cm(master_key, x, bytes(length))


def cm_iv(salt: bytes, ssrc: int, index: int) -> int:
    """IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)  (RFC 3711 §4.1.1)."""
    return (int.from_bytes(salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)


def gcm_iv(salt: bytes, ssrc: int, roc_or_zero: int, low: int, low_bytes: int) -> bytes:
    """RFC 7714 §8.1/§9.1: 0x0000 || SSRC || ROC || SEQ (or 0x0000 || index), XOR salt."""
    if low_bytes == 2:
        block = b"\0\0" + struct.pack("!IIH", ssrc, roc_or_zero, low)
    else:
        block = b"\0\0" + struct.pack("!IHI", ssrc, 0, low)
    return bytes(a ^ b for a, b in zip(block, salt))


def header_length(rtp: bytes) -> int:
    """Return the RTP header length incl. CSRCs and extension (RFC 3550 §5.1, §5.3.1)."""
    length = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10:
        length += 4 + 4 * int.from_bytes(rtp[length + 2 : length + 4], "big")
    return length


# --- RFC 3711 ----------------------------------------------------------------------

def test_rfc3711_b2_keystream(vectors):
    """B.2: AES-CM keystream blocks at counters 0, 1, 2 and 0xFEFF..0xFF01."""
    case = vectors("rfc3711_srtp_aes_cm")["aes_cm_keystream"]
    key, salt = h(case["session_key"]), h(case["session_salt"])
    iv = cm_iv(salt, 0, 0)
    assert iv.to_bytes(16, "big") == h(case["initial_counter_block"])
    for block in case["keystream_blocks"]:
        assert aes_block(key, h(block["counter"])) == h(block["keystream"])
        assert aes_cm(key, iv + block["block_index"], bytes(16)) == h(block["keystream"])


def test_rfc3711_b3_key_derivation(vectors):
    """B.3: the session cipher key, salt and auth key from the master key."""
    case = vectors("rfc3711_srtp_aes_cm")
    kd = case["key_derivation"]
    mk, ms = h(kd["master_key"]), h(kd["master_salt"])
    assert kdf(mk, ms, 0x00, 16) == h(kd["cipher_key"]["value"])
    assert kdf(mk, ms, 0x02, 14) == h(kd["cipher_salt"]["value"])
    assert kdf(mk, ms, 0x01, 94) == h(kd["auth_key"]["value_94_octets"])
    srtcp = case["derived_not_in_rfc"]
    assert kdf(mk, ms, 0x03, 16) == h(srtcp["srtcp_cipher_key"])
    assert kdf(mk, ms, 0x05, 14) == h(srtcp["srtcp_cipher_salt"])
    assert kdf(mk, ms, 0x04, 20) == h(srtcp["srtcp_auth_key_20"])


def check_cm_srtp(keys: dict, plain: bytes, protected: bytes, roc: int) -> None:
    """Assert ``protected`` is ``plain`` under RFC 3711 AES-CM + HMAC-SHA1-80 with ``keys``."""
    hl = header_length(plain)
    seq, ssrc = struct.unpack_from("!H", plain, 2)[0], struct.unpack_from("!I", plain, 8)[0]
    body, tag = protected[:-10], protected[-10:]
    assert body[:hl] == plain[:hl]
    iv = cm_iv(keys["salt"], ssrc, (roc << 16) | seq)
    assert aes_cm(keys["cipher"], iv, body[hl:]) == plain[hl:]
    mac = hmac.new(keys["auth"], body + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:10]
    assert mac == tag


@pytest.fixture(scope="module")
def b3(vectors):
    kd = vectors("rfc3711_srtp_aes_cm")["key_derivation"]
    return {
        "master": (h(kd["master_key"]), h(kd["master_salt"])),
        "cipher": h(kd["cipher_key"]["value"]),
        "salt": h(kd["cipher_salt"]["value"]),
        "auth": h(kd["auth_key"]["value_first_20_octets_used_by_HMAC_SHA1"]),
    }


@settings(max_examples=100, deadline=None)
@given(
    seq=st.integers(0, 0xFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    csrcs=st.integers(0, 3),
    payload=st.binary(max_size=300),
)
def test_our_protect_matches_rfc3711_b3_keys(b3, seq, ssrc, csrcs, payload):
    """Our outbound context encrypts and tags exactly as RFC 3711 prescribes under the B.3 keys."""
    header = struct.pack("!BBHII", 0x80 | csrcs, 0, seq, 0, ssrc) + bytes(4 * csrcs)
    plain = header + payload
    check_cm_srtp(b3, plain, OutboundSrtpContext(CM80, *b3["master"]).protect(plain), roc=0)


def test_rollover_counter_enters_iv_and_tag(b3):
    """After 65535 the ROC is 1 (RFC 3711 §3.3.1): it is in the IV and appended for the HMAC."""
    out = OutboundSrtpContext(CM80, *b3["master"])
    inb = InboundSrtpContext(CM80, *b3["master"])
    for seq in (65534, 65535, 0, 1):
        plain = struct.pack("!BBHII", 0x80, 96, seq, 0, 0xDECAFBAD) + b"payload"
        protected = out.protect(plain)
        check_cm_srtp(b3, plain, protected, roc=0 if seq > 1 else 1)
        assert inb.unprotect(protected) == plain


# --- RFC 7714 ----------------------------------------------------------------------

def gcm_srtp(key: bytes, salt: bytes, plain: bytes, roc: int) -> bytes:
    """RFC 7714 §7-8: header as AAD, payload encrypted, 16-octet tag appended."""
    hl = header_length(plain)
    seq, ssrc = struct.unpack_from("!H", plain, 2)[0], struct.unpack_from("!I", plain, 8)[0]
    iv = gcm_iv(salt, ssrc, roc, seq, 2)
    return plain[:hl] + AESGCM(key).encrypt(iv, plain[hl:], plain[:hl])


def gcm_srtcp(key: bytes, salt: bytes, plain: bytes, index: int, encrypt: bool = True) -> bytes:
    """RFC 7714 §9, §17: ciphertext and tag, then the E|index word."""
    ssrc = struct.unpack_from("!I", plain, 4)[0]
    word = struct.pack("!I", (0x80000000 if encrypt else 0) | index)
    iv = gcm_iv(salt, ssrc, 0, index, 4)
    if encrypt:
        return plain[:8] + AESGCM(key).encrypt(iv, plain[8:], plain[:8] + word) + word
    return plain + AESGCM(key).encrypt(iv, b"", plain + word) + word


@pytest.mark.parametrize("i", [0, 1])
def test_rfc7714_16_srtp(vectors, i):
    data = vectors("rfc7714_srtp_aes_gcm")
    case, common = data["srtp"][i], data["common"]
    key = h(common["session_key_128" if case["suite"].endswith("128_GCM") else "session_key_256"])
    salt = h(common["session_salt"])
    iv = gcm_iv(salt, int(case["ssrc"], 16), case["roc"], int(case["seq"], 16), 2)
    assert iv == h(case["iv"])
    assert gcm_srtp(key, salt, h(case["rtp_plain"]), case["roc"]) == h(case["srtp_protected"])


@pytest.mark.parametrize("i", [0, 1, 2, 3])
def test_rfc7714_17_srtcp(vectors, i):
    data = vectors("rfc7714_srtp_aes_gcm")
    case, common = data["srtcp"][i], data["common"]
    key = h(common["session_key_128" if case["suite"].endswith("128_GCM") else "session_key_256"])
    encrypt = case["mode"].startswith("encrypt")
    out = gcm_srtcp(key, h(common["session_salt"]), h(case["rtcp_plain"]), 0x5D4, encrypt)
    assert out == h(case["srtcp_protected"])


@pytest.fixture(scope="module")
def gcm_kat(vectors):
    return vectors("libsrtp_known_answer")["aead_aes_128_gcm"]


def test_gcm_kdf_gives_the_published_session_keys(gcm_kat):
    """RFC 7714 §11: the RFC 3711 KDF with the 12-octet salt (zero-padded)."""
    mk, ms = h(gcm_kat["master_key"]), h(gcm_kat["master_salt_12"])
    d = gcm_kat["derived"]
    assert kdf(mk, ms, 0x00, 16) == h(d["srtp_cipher_key"])
    assert kdf(mk, ms, 0x02, 12) == h(d["srtp_salt"])
    assert kdf(mk, ms, 0x03, 16) == h(d["srtcp_cipher_key"])
    assert kdf(mk, ms, 0x05, 12) == h(d["srtcp_salt"])


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(0, 0xFFFF), ssrc=st.integers(0, 0xFFFFFFFF), payload=st.binary(max_size=300),
       rtcp_body=st.binary(max_size=200).map(lambda b: b[: len(b) // 4 * 4]))
def test_our_gcm_matches_rfc7714(gcm_kat, seq, ssrc, payload, rtcp_body):
    """Our GCM contexts build RFC 7714 packets (IV, AAD, tag, SRTCP trailer) byte for byte."""
    d = gcm_kat["derived"]
    out = OutboundSrtpContext(GCM128, h(gcm_kat["master_key"]), h(gcm_kat["master_salt_12"]))
    plain = struct.pack("!BBHII", 0x80, 111, seq, 1234, ssrc) + payload
    assert out.protect(plain) == gcm_srtp(h(d["srtp_cipher_key"]), h(d["srtp_salt"]), plain, 0)
    rtcp = struct.pack("!BBHI", 0x80, 201, 1 + len(rtcp_body) // 4, ssrc) + rtcp_body
    expected = gcm_srtcp(h(d["srtcp_cipher_key"]), h(d["srtcp_salt"]), rtcp, 1)
    assert out.protect_rtcp(rtcp) == expected


def test_rfc7714_tag_only_srtcp_is_accepted(gcm_kat):
    """E=0 (authentication only) SRTCP is legal with GCM (RFC 7714 §9.2) and unprotects."""
    d = gcm_kat["derived"]
    rtcp = bytes.fromhex("81c8000bcafebabe") + b"\xab" * 40
    sealed = gcm_srtcp(h(d["srtcp_cipher_key"]), h(d["srtcp_salt"]), rtcp, 7, encrypt=False)
    inb = InboundSrtpContext(GCM128, h(gcm_kat["master_key"]), h(gcm_kat["master_salt_12"]))
    assert inb.unprotect_rtcp(sealed) == rtcp


# --- libsrtp known answers ---------------------------------------------------------

@pytest.mark.parametrize(
    "name,profile,salt_field",
    [
        ("aes_cm_128_hmac_sha1_80", CM80, "master_salt"),
        ("aead_aes_128_gcm", GCM128, "master_salt_12"),
    ],
)
def test_libsrtp_known_answers(vectors, name, profile, salt_field):
    case = vectors("libsrtp_known_answer")[name]
    key, salt = h(case["master_key"]), h(case[salt_field])
    out = OutboundSrtpContext(profile, key, salt)
    inb = InboundSrtpContext(profile, key, salt)
    assert out.protect(h(case["rtp_plain"])) == h(case["srtp"])
    assert out.protect_rtcp(h(case["rtcp_plain"])) == h(case["srtcp"])  # first SRTCP index 1
    assert inb.unprotect(h(case["srtp"])) == h(case["rtp_plain"])
    assert inb.unprotect_rtcp(h(case["srtcp"])) == h(case["rtcp_plain"])


def test_gcm256_round_trip_with_oracle():
    """AEAD_AES_256_GCM has no master-key vector: check ours against the oracle's KDF + GCM."""
    mk, ms = bytes(range(32)), bytes(range(0xA0, 0xAC))
    header = struct.pack("!BBHII", 0x80, 111, 0xF17B, 0x8041F8D3, 0x5501A0B2)
    plain = header + b"Gallia est omnis divisa"
    expected = gcm_srtp(kdf(mk, ms, 0x00, 32), kdf(mk, ms, 0x02, 12), plain, 0)
    assert OutboundSrtpContext(GCM256, mk, ms).protect(plain) == expected
