"""Credentials: static users, TURN REST secrets, TURN-key credentials, nonces."""

from __future__ import annotations

import hashlib

import pytest

from realtime.turn.credentials import (
    MAX_TTL, CredentialChain, NonceIssuer, SharedSecretUsers, StaticUsers, TurnKeyCredentials,
    key_tag, rest_password, turn_key_credential,
)

CAPTURE_TIME = 1795236000.0  # 2026-11-21, when ../shared/pcaps/generated/turn was recorded


def test_static_user_key_is_md5_of_user_realm_password():
    credential = StaticUsers({"alice": "wonderland"}).credential("alice", "example.org", 0)
    assert credential.key == hashlib.md5(b"alice:example.org:wonderland").digest()
    assert credential.expires is None
    assert StaticUsers({"alice": "x"}).credential("bob", "example.org", 0) is None


@pytest.mark.parametrize("username, password", [
    # the REST credentials uclient computed in the coturn captures (pcaps/generated/README.md)
    ("1795322887:alice", "nb2idjkkI2ZHzsOqHeEb9cOEklI="),
    ("1795322904:alice", "FXF2jPpESUFdetTwplBAyWjh/Ss="),
])
def test_rest_password_matches_coturn(username, password):
    assert rest_password("north-shared-secret", username) == password


def test_shared_secret_usernames_expire():
    users = SharedSecretUsers("north-shared-secret")
    credential = users.credential("1795322887:alice", "example.org", CAPTURE_TIME)
    assert credential.expires == 1795322887.0
    assert users.credential("1795322887:alice", "example.org", 1795322888.0) is None
    assert users.credential("alice", "example.org", 0) is None
    assert users.credential(":alice", "example.org", 0) is None


def test_turn_key_credentials_round_trip():
    keys = TurnKeyCredentials({"key1": "token-one"}, random=lambda n: b"\x07" * n)
    issued = keys.issue("key1", 3600, 1000.0, "user-42")
    assert len(issued.username) == 96 and len(issued.credential) == 96
    raw = bytes.fromhex(issued.username)
    assert int.from_bytes(raw[:8], "big") == 4600          # expiry
    assert raw[8:16] == key_tag("key1")                     # which key
    assert raw[16:] == b"\x07" * 32                         # random
    assert issued.credential == turn_key_credential("token-one", issued.username)
    credential = keys.credential(issued.username, "realm", 4599.0)
    assert credential.key_id == "key1" and credential.custom_identifier == "user-42"
    assert credential.expires == 4600.0
    assert keys.credential(issued.username, "realm", 4601.0) is None


@pytest.mark.parametrize("username", ["", "zz" * 48, "00" * 47, "00" * 48, "alice"])
def test_turn_key_credentials_refuse_foreign_usernames(username):
    assert TurnKeyCredentials({"key1": "t"}).credential(username, "realm", 0) is None


def test_turn_key_ttl_bounds_and_unknown_key():
    keys = TurnKeyCredentials({"key1": "t"})
    with pytest.raises(ValueError):
        keys.issue("key1", MAX_TTL + 1, 0)
    with pytest.raises(ValueError):
        keys.issue("key1", 0, 0)
    with pytest.raises(KeyError):
        keys.issue("nope", 60, 0)


def test_revocation_until_expiry():
    keys = TurnKeyCredentials({"key1": "t"})
    issued = keys.issue("key1", 60, 0)
    assert keys.revoke(issued.username, 1.0)
    assert keys.is_revoked(issued.username)
    assert keys.credential(issued.username, "realm", 1.0) is None
    assert not keys.revoke("alice", 1.0)
    keys.forget_expired(61.0)
    assert not keys.is_revoked(issued.username)


def test_credential_chain_first_match_wins():
    chain = CredentialChain([StaticUsers({"a": "1"}), StaticUsers({"a": "2", "b": "3"})])
    assert chain.credential("a", "r", 0).key == hashlib.md5(b"a:r:1").digest()
    assert chain.credential("b", "r", 0) is not None
    assert chain.credential("c", "r", 0) is None


def test_nonces_are_bound_to_host_and_expiry():
    nonces = NonceIssuer(b"k" * 32, lifetime=600)
    nonce = nonces.issue("192.0.2.1", 1000.0)
    assert len(nonce) == 32 and nonce[:8] == f"{1600:08x}"
    assert nonces.check(nonce, "192.0.2.1", 1600.0)
    assert not nonces.check(nonce, "192.0.2.1", 1601.0)
    assert not nonces.check(nonce, "192.0.2.2", 1000.0)
    assert not NonceIssuer(b"x" * 32).check(nonce, "192.0.2.1", 1000.0)
    for bad in ["", "zzzzzzzz" + nonce[8:], nonce[:-1], f"{99999:08x}" + nonce[8:]]:
        assert not nonces.check(bad, "192.0.2.1", 1000.0)
