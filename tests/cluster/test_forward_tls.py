"""
The private API's TLS (realtime/cluster/forward_tls.py): a fresh certificate per process,
trusted by forwarders for exactly the address the registry gives it.
"""

from __future__ import annotations

import time

import pytest
from cryptography import x509

from realtime.cluster.forward_tls import (
    MAX_PINS, SERVER_NAME, PinnedCertificates, private_certificate, server_options, split_address,
)


def test_a_private_certificate_names_the_server_name_and_loads() -> None:
    certificate_pem, key_pem = private_certificate(time.time())
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [SERVER_NAME]
    assert server_options(certificate_pem, key_pem) is not None
    assert private_certificate(time.time())[0] != certificate_pem   # fresh per process


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:4433", ("127.0.0.1", 4433)),
    ("[::1]:4433", ("::1", 4433)),
])
def test_split_address(address, expected) -> None:
    assert split_address(address) == expected


def test_only_a_pinned_address_gets_tls_options() -> None:
    pins = PinnedCertificates()
    certificate_pem, _ = private_certificate(time.time())
    pins.pin("127.0.0.1:4433", certificate_pem)
    assert pins.creatorForNetloc(b"127.0.0.1", 4433) is not None
    with pytest.raises(ValueError):
        pins.creatorForNetloc(b"127.0.0.1", 4434)
    pins.pin("[::1]:4433", certificate_pem)
    assert pins.creatorForNetloc(b"::1", 4433) is not None


def test_pins_are_bounded() -> None:
    pins = PinnedCertificates()
    certificate_pem, _ = private_certificate(time.time())
    for port in range(1, MAX_PINS + 11):
        pins.pin(f"127.0.0.1:{port}", certificate_pem)
    assert len(pins._pins) == MAX_PINS
    with pytest.raises(ValueError):
        pins.creatorForNetloc(b"127.0.0.1", 1)      # the oldest went first
