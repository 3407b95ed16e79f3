"""Tests for realtime.dtls.endpoint: two endpoints over an in-memory network, fake time."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.dtls.certificate import Certificate
from realtime.dtls.endpoint import (
    MAX_RETRANSMISSIONS,
    ApplicationDataReceived,
    ConnectionClosed,
    DtlsEndpoint,
    DtlsRole,
    DtlsState,
    HandshakeCompleted,
    HandshakeFailed,
    split_srtp_keying,
)
from realtime.dtls.record import HandshakeType, Record, parse_records
from realtime.errors import DecodeError, LocalProtocolError

NOW = 1_700_000_000.0
MISMATCH = HandshakeFailed("peer certificate does not match the SDP fingerprint")
CLIENT_ADDRESS = ("192.0.2.1", 50000)


@pytest.fixture(scope="module")
def certificates() -> tuple[Certificate, Certificate]:
    return Certificate.generate(NOW), Certificate.generate(NOW)


def make_pair(certificates, client_fp=None, server_fp=None, client_profiles=None,
              server_profiles=None, **server_options):
    client_cert, server_cert = certificates
    client_kwargs = {"srtp_profiles": client_profiles} if client_profiles else {}
    server_kwargs = {"srtp_profiles": server_profiles} if server_profiles else {}
    server = DtlsEndpoint(
        "server",
        server_cert,
        [("sha-256", client_cert.fingerprint())] if client_fp is None else client_fp,
        now=NOW,
        peer_address=CLIENT_ADDRESS,
        **server_kwargs,
        **server_options,
    )
    client = DtlsEndpoint(
        "client",
        client_cert,
        [("sha-256", server_cert.fingerprint())] if server_fp is None else server_fp,
        now=NOW,
        **client_kwargs,
    )
    return client, server


def first_handshake_types(datagram: bytes) -> list[int]:
    """Return the msg_type of each plaintext handshake message in a datagram."""
    types = []
    for record in parse_records(datagram):
        if isinstance(record, Record) and record.content_type == 22 and record.epoch == 0:
            types += [fragment.msg_type for fragment in record.handshake_fragments()]
    return types


class FakeNetwork:
    """Carries datagrams between two endpoints; ``drop`` decides per datagram."""

    def __init__(self, client, server, now=NOW):
        self.client, self.server, self.now = client, server, now
        self.log: list[tuple[str, bytes]] = []
        self.drop = lambda direction, datagram: False

    def deliver(self, rounds=10):
        for _ in range(rounds):
            moved = False
            for source, target, direction in (
                (self.client, self.server, "c->s"),
                (self.server, self.client, "s->c"),
            ):
                for datagram in source.datagrams_to_send(self.now):
                    moved = True
                    self.log.append((direction, datagram))
                    if not self.drop(direction, datagram):
                        target.receive_datagram(datagram, self.now)
            if not moved:
                return

    def fire_timers(self):
        deadlines = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
        assert deadlines, "no timer armed"
        self.now = min(deadlines)
        self.client.handle_timer(self.now)
        self.server.handle_timer(self.now)


def events(endpoint):
    found = []
    while (event := endpoint.next_event()) is not None:
        found.append(event)
    return found


def test_handshake_completes_with_mirrored_keys(certificates):
    client, server = make_pair(certificates)
    network = FakeNetwork(client, server)
    network.deliver()
    (done_client,) = events(client)
    (done_server,) = events(server)
    assert isinstance(done_client, HandshakeCompleted)
    assert done_client.srtp_profile == done_server.srtp_profile == "SRTP_AEAD_AES_128_GCM"
    assert done_client.local_keying == done_server.remote_keying
    assert done_client.remote_keying == done_server.local_keying
    assert [len(part) for part in done_client.local_keying] == [16, 12]
    assert done_client.local_keying != done_client.remote_keying
    assert done_client.peer_fingerprint == certificates[1].fingerprint()
    assert done_server.peer_fingerprint == certificates[0].fingerprint()
    assert client.get_timer() is None and server.get_timer() is None
    # Flights: CH, HVR, CH+cookie, SH..SHD, Cert..Finished, CCS+Finished.
    assert [d for d, _ in network.log] == ["c->s", "s->c", "c->s", "s->c", "c->s", "s->c"]
    assert all(len(datagram) <= 1200 for _, datagram in network.log)


def test_hello_verify_request_cookie_is_hmac_of_address(certificates):
    secret = b"s" * 32
    client, server = make_pair(certificates, cookie_secret=secret)
    (hello,) = client.datagrams_to_send(NOW)
    assert first_handshake_types(hello) == [HandshakeType.CLIENT_HELLO]
    server.receive_datagram(hello, NOW)
    (verify,) = server.datagrams_to_send(NOW)
    assert first_handshake_types(verify) == [HandshakeType.HELLO_VERIFY_REQUEST]
    assert server.get_timer() is None  # the server keeps no retransmission state
    (fragment,) = parse_records(verify)[0].handshake_fragments()
    cookie = fragment.body[3 : 3 + fragment.body[2]]
    assert cookie == hmac.new(secret, repr(CLIENT_ADDRESS).encode(), hashlib.sha256).digest()
    client.receive_datagram(verify, NOW)
    (hello_with_cookie,) = client.datagrams_to_send(NOW)
    assert cookie in hello_with_cookie

    server.receive_datagram(hello_with_cookie, NOW)
    flight = server.datagrams_to_send(NOW)
    assert first_handshake_types(flight[0])[0] == HandshakeType.SERVER_HELLO

    # A server that sent its own HelloVerifyRequest to another address rejects the cookie.
    other = DtlsEndpoint("server", certificates[1], now=NOW, peer_address=("192.0.2.9", 1),
                         cookie_secret=secret)
    other.receive_datagram(hello, NOW)
    assert other.datagrams_to_send(NOW) != [verify]  # a different cookie
    other.receive_datagram(hello_with_cookie, NOW)
    assert events(other) == [HandshakeFailed("handshake failed: cookie mismatch")]


@pytest.mark.parametrize(
    "client_profiles, server_profiles, selected",
    [
        (["SRTP_AES128_CM_SHA1_80"], None, "SRTP_AES128_CM_SHA1_80"),
        (None, ["SRTP_AEAD_AES_256_GCM", "SRTP_AES128_CM_SHA1_80"], "SRTP_AEAD_AES_256_GCM"),
        # The server's order decides among profiles both offer (OpenSSL, RFC 5764 §4.1.1).
        (["SRTP_AEAD_AES_256_GCM", "SRTP_AEAD_AES_128_GCM"], None, "SRTP_AEAD_AES_128_GCM"),
        (["SRTP_AES128_CM_SHA1_32"], None, ""),
    ],
)
def test_selected_profile_follows_preferences(
    certificates, client_profiles, server_profiles, selected
):
    client, server = make_pair(certificates, client_profiles=client_profiles,
                               server_profiles=server_profiles)
    FakeNetwork(client, server).deliver()
    (done_client,), (done_server,) = events(client), events(server)
    assert done_client.srtp_profile == done_server.srtp_profile == selected
    if selected == "SRTP_AEAD_AES_256_GCM":
        assert [len(part) for part in done_client.local_keying] == [32, 12]
    if not selected:
        assert done_client.local_keying == (b"", b"")


def test_application_data_both_ways_and_close(certificates):
    client, server = make_pair(certificates)
    network = FakeNetwork(client, server)
    network.deliver()
    events(client), events(server)
    client.send(b"ping")
    server.send(b"pong")
    network.deliver()
    assert events(server) == [ApplicationDataReceived(b"ping")]
    assert events(client) == [ApplicationDataReceived(b"pong")]
    client.close()
    network.deliver()
    assert events(server) == [ConnectionClosed()]
    with pytest.raises(LocalProtocolError, match="while closed"):
        client.send(b"late")


def test_send_before_handshake_is_local_error(certificates):
    client, _ = make_pair(certificates)
    with pytest.raises(LocalProtocolError, match="while handshaking"):
        client.send(b"x")
    with pytest.raises(LocalProtocolError):
        DtlsEndpoint("peer", certificates[0])
    with pytest.raises(LocalProtocolError):
        DtlsEndpoint("client", certificates[0], srtp_profiles=["SRTP_NULL"])


def test_fingerprint_mismatch_fails_with_alert(certificates):
    wrong = [("sha-256", certificates[1].fingerprint())]  # the server's own, not the client's
    client, server = make_pair(certificates, client_fp=wrong)
    network = FakeNetwork(client, server)
    network.deliver()
    assert events(server) == [MISMATCH]
    (failed,) = events(client)
    assert isinstance(failed, HandshakeFailed) and "alert" in failed.reason  # OpenSSL's alert
    assert server.get_timer() is None
    server.receive_datagram(network.log[0][1], NOW)  # ignored after failure
    assert server.datagrams_to_send(NOW) == [] and server.next_event() is None


def test_late_fingerprint_checked_at_completion(certificates):
    client, server = make_pair(certificates, server_fp=[])
    network = FakeNetwork(client, server)
    client.set_remote_fingerprints([("sha-1", "00:" * 19 + "00")])
    network.deliver()
    assert events(client) == [MISMATCH]
    assert client.state == "failed"


def test_lost_client_hello_is_retransmitted(certificates):
    client, server = make_pair(certificates)
    network = FakeNetwork(client, server)
    network.drop = lambda direction, datagram: len(network.log) == 1
    network.deliver()
    assert server.next_event() is None
    assert client.get_timer() == pytest.approx(NOW + 1.0, abs=0.01)
    network.fire_timers()
    assert client.get_timer() == pytest.approx(network.now + 2.0)  # doubled
    network.deliver()
    assert isinstance(client.next_event(), HandshakeCompleted)
    assert isinstance(server.next_event(), HandshakeCompleted)
    assert network.log[1][1] == network.log[0][1]  # resent records


def test_lost_server_flight_is_retransmitted_by_the_server(certificates):
    client, server = make_pair(certificates)
    network = FakeNetwork(client, server)
    lost = []

    def drop(direction, datagram):
        if direction == "s->c" and HandshakeType.SERVER_HELLO in first_handshake_types(datagram):
            if not lost:
                lost.append(datagram)
                return True
        return False

    network.drop = drop
    network.deliver()
    assert lost and client.next_event() is None
    assert server.get_timer() is not None
    network.fire_timers()
    network.deliver()
    assert isinstance(client.next_event(), HandshakeCompleted)
    assert isinstance(server.next_event(), HandshakeCompleted)


def test_handshake_times_out(certificates):
    client, server = make_pair(certificates)
    network = FakeNetwork(client, server)
    network.drop = lambda direction, datagram: True
    network.deliver()
    deadlines = []
    while client.get_timer() is not None:
        deadlines.append(client.get_timer() - network.now)
        network.fire_timers()
        network.deliver()
    assert deadlines == pytest.approx([1, 2, 4, 8, 16, 32, 60, 60], abs=0.01)
    assert len(deadlines) == MAX_RETRANSMISSIONS + 1
    assert events(client) == [HandshakeFailed("handshake timed out")]


def test_keylog_lines(certificates):
    lines = []
    client, server = make_pair(certificates)
    client = DtlsEndpoint("client", certificates[0], [("sha-256", certificates[1].fingerprint())],
                          now=NOW, keylog=lines.append)
    FakeNetwork(client, server).deliver()
    assert isinstance(client.next_event(), HandshakeCompleted)
    assert lines and all(line.startswith(b"CLIENT_RANDOM ") for line in lines)
    assert len(lines[0].split()) == 3


def test_garbage_is_decode_error_and_harmless(certificates):
    client, server = make_pair(certificates)
    network = FakeNetwork(client, server)
    for junk in (b"", b"\x80\x00", b"\x16\xfe\xfd\x00"):
        with pytest.raises(DecodeError):
            server.receive_datagram(junk, NOW)
    # Record-shaped junk reaches OpenSSL, which discards it.
    server.receive_datagram(Record(23, 0xFEFD, 3, 9, b"junk").encode(), NOW)
    network.deliver()
    assert isinstance(server.next_event(), HandshakeCompleted)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), max_size=4))
def test_random_datagrams_raise_only_decode_error(certificates, datagrams):
    server = DtlsEndpoint("server", certificates[1], now=NOW)
    for datagram in datagrams:
        try:
            server.receive_datagram(datagram, NOW)
        except DecodeError:
            pass
        server.datagrams_to_send(NOW)
        server.handle_timer(NOW + 100)


def test_split_srtp_keying_layout():
    material = bytes(range(60))  # AES_CM: 16-byte keys, 14-byte salts (RFC 5764 §4.2)
    client, server = split_srtp_keying(material, 16, 14)
    assert client == (material[0:16], material[32:46])  # client_write key, salt
    assert server == (material[16:32], material[46:60])  # server_write key, salt
    with pytest.raises(LocalProtocolError):
        split_srtp_keying(material[:59], 16, 14)


def test_role_and_state_are_enums(certificates):
    """Roles and states are DtlsRole / DtlsState members that still read as their names."""
    client, server = make_pair(certificates)
    assert client.role is DtlsRole.CLIENT and server.role is DtlsRole.SERVER
    assert server.state is DtlsState.HANDSHAKING
    FakeNetwork(client, server).deliver()
    assert client.state is server.state is DtlsState.ESTABLISHED
    assert server.state == "established" and f"{server.role}" == "server"
    client.close()
    assert client.state is DtlsState.CLOSED
    with pytest.raises(LocalProtocolError, match="neither 'client' nor 'server'"):
        DtlsEndpoint("active", certificates[0])
