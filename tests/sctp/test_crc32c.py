"""CRC-32C: RFC 3720 vectors, the catalogue check value, real SCTP packets, both implementations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.sctp import crc32c as module
from realtime.sctp.crc32c import crc32c, crc32c_reference, sctp_checksum

IMPLEMENTATIONS = [crc32c_reference, crc32c]


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=["reference", "fast"])
def test_check_value(function, vectors):
    params = vectors("crc32c_sctp")["parameters"]
    assert function(b"123456789") == int(params["check_123456789"], 16)


@pytest.mark.parametrize("function", IMPLEMENTATIONS, ids=["reference", "fast"])
def test_rfc3720_vectors(function, vectors):
    cases = vectors("crc32c_sctp")["rfc3720_b4_vectors"]
    assert len(cases) == 5
    for case in cases:
        value = function(bytes.fromhex(case["data_hex"]))
        assert value == int(case["crc_value_uint32"], 16), case["name"]
        # RFC 3720 prints the value least significant byte first, as SCTP stores it
        assert value.to_bytes(4, "little").hex() == case["crc_bytes_as_printed"]


def test_real_sctp_packets(vectors):
    packets = vectors("crc32c_sctp")["real_sctp_packets"]
    cases = [p for p in packets if "packet_hex" in p]
    cases += [p["example"] for p in packets if p.get("example")]
    assert len(cases) >= 19
    for case in cases:
        packet = bytes.fromhex(case["packet_hex"])
        assert sctp_checksum(packet).hex() == case["stored_checksum_bytes"]
        zeroed = packet[:8] + bytes(4) + packet[12:]
        assert crc32c_reference(zeroed) == int(case["crc32c_uint32"], 16)


def test_table_is_the_reflected_castagnoli_polynomial():
    assert module.TABLE[0] == 0
    assert module.TABLE[128] == module.POLYNOMIAL_REFLECTED == 0x82F63B78
    assert len(set(module.TABLE)) == 256


def test_fast_library_is_in_use():
    assert module.IMPLEMENTATION == "crc32c package"


@settings(max_examples=200)
@given(st.binary(max_size=2048), st.binary(max_size=64))
def test_fast_matches_reference_and_continues(data, more):
    assert crc32c(data) == crc32c_reference(data)
    assert crc32c_reference(more, crc32c_reference(data)) == crc32c(data + more)
