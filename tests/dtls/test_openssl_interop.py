"""Interop: our DtlsEndpoint against the openssl command line tool over UDP on 127.0.0.1.

OpenSSL's ``s_server``/``s_client`` is an independent DTLS 1.2 stack that
prints the RFC 5764 §4.2 exporter output (``-keymatexport``), so the keys
we derive can be compared byte for byte.  Real sockets and real time: this
is the one place in tests/dtls that uses them.
"""

from __future__ import annotations

import re
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest

from realtime.dtls.certificate import Certificate
from realtime.dtls.endpoint import ApplicationDataReceived, DtlsEndpoint, HandshakeCompleted
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

PROFILE = "SRTP_AES128_CM_SHA1_80"
EXPORT = ["-keymatexport", "EXTRACTOR-dtls_srtp", "-keymatexportlen", "60"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pump(sock, endpoint_for, peer, until, timeout=5.0):
    """Move datagrams between ``sock`` and the endpoint until ``until(event)``."""
    endpoint = None if peer is None else endpoint_for(peer)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if endpoint is not None:
            for datagram in endpoint.datagrams_to_send(time.monotonic()):
                sock.sendto(datagram, peer)
        readable, _, _ = select.select([sock], [], [], 0.05)
        if readable:
            data, peer = sock.recvfrom(65536)
            if endpoint is None:
                endpoint = endpoint_for(peer)
            endpoint.receive_datagram(data, time.monotonic())
        if endpoint is not None:
            endpoint.handle_timer(time.monotonic())
            while (event := endpoint.next_event()) is not None:
                if until(event):
                    for datagram in endpoint.datagrams_to_send(time.monotonic()):
                        sock.sendto(datagram, peer)
                    return endpoint, peer, event
    pytest.fail("no event from the DTLS endpoint in time")


def exported_keys(output: str) -> bytes:
    match = re.search(r"Keying material: ([0-9A-F]+)", output)
    assert match, output
    return bytes.fromhex(match.group(1))


def expected_material(event: HandshakeCompleted, role: str) -> bytes:
    client, server = (
        (event.local_keying, event.remote_keying)
        if role == "client"
        else (event.remote_keying, event.local_keying)
    )
    return client[0] + server[0] + client[1] + server[1]


@pytest.fixture
def certificates(tmp_path: Path):
    ours, theirs = Certificate.generate(time.time()), Certificate.generate(time.time())
    (tmp_path / "cert.pem").write_bytes(theirs.certificate_pem())
    (tmp_path / "key.pem").write_bytes(theirs.private_key_pem())
    return ours, theirs


def finish(process: subprocess.Popen) -> str:
    try:
        output, _ = process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output.decode(errors="replace")


def test_our_client_against_openssl_s_server(tmp_path, certificates):
    openssl = require_tool("openssl")
    ours, theirs = certificates
    port = free_udp_port()
    server = subprocess.Popen(
        [openssl, "s_server", "-dtls1_2", "-accept", f"127.0.0.1:{port}", "-cert", "cert.pem",
         "-key", "key.pem", "-use_srtp", PROFILE, "-naccept", "1", "-verify", "1", *EXPORT],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            endpoint = DtlsEndpoint("client", ours, [("sha-256", theirs.fingerprint())],
                                    now=time.monotonic())
            endpoint, peer, done = pump(
                sock, lambda _: endpoint, ("127.0.0.1", port),
                lambda event: isinstance(event, HandshakeCompleted),
            )
            endpoint.send(b"hello from realtime\n")
            endpoint.close()
            for datagram in endpoint.datagrams_to_send(time.monotonic()):
                sock.sendto(datagram, peer)
            time.sleep(0.2)
    finally:
        output = finish(server)
    assert done.srtp_profile == PROFILE
    assert f"SRTP Extension negotiated, profile={PROFILE}" in output
    assert exported_keys(output) == expected_material(done, "client")
    assert "hello from realtime" in output


def test_openssl_s_client_against_our_server(tmp_path, certificates):
    openssl = require_tool("openssl")
    ours, theirs = certificates
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        client = subprocess.Popen(
            [openssl, "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}", "-cert", "cert.pem",
             "-key", "key.pem", "-use_srtp", PROFILE, *EXPORT],
            cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        try:
            make = lambda peer: DtlsEndpoint(  # noqa: E731
                "server", ours, [("sha-256", theirs.fingerprint())], now=time.monotonic(),
                peer_address=peer,
            )
            endpoint, peer, done = pump(sock, make, None,
                                        lambda event: isinstance(event, HandshakeCompleted))
            client.stdin.write(b"hello from openssl\n")
            client.stdin.flush()
            endpoint, peer, data = pump(sock, lambda _: endpoint, peer,
                                        lambda event: isinstance(event, ApplicationDataReceived))
        finally:
            output = finish(client)
    assert done.srtp_profile == PROFILE
    assert data.data == b"hello from openssl\n"
    assert exported_keys(output) == expected_material(done, "server")
