"""
The pure half of API forwarding: which requests name a session, and the proof a forwarded
request carries (realtime/cluster/forward_auth.py).
"""

from __future__ import annotations

import pytest

from realtime.cluster.forward_auth import WINDOW, ForwardProof, SessionTarget, session_target

APP = "5ffbeb49557215a62594a882db644dc7"
SID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("path, args, expected", [
    (f"/v1/apps/{APP}/sessions/{SID}", {}, SessionTarget(APP, SID)),
    (f"/v1/apps/{APP}/sessions/{SID}/", {}, SessionTarget(APP, SID)),
    (f"/apps/{APP}/sessions/{SID}/tracks/new", {}, SessionTarget(APP, SID)),
    (f"/v1/apps/{APP}/sessions/{SID}/datachannels/new", {}, SessionTarget(APP, SID)),
    (f"/v1/apps/{APP}/usage", {b"sessionId": [SID.encode()]}, SessionTarget(APP, SID)),
    (f"/v1/apps/{APP}/ingest/cam/{SID}", {}, SessionTarget(APP, SID)),   # WHIP resource
    (f"/apps/{APP}/play/cam/{SID}", {}, SessionTarget(APP, SID)),        # WHEP resource
    (f"/v1/apps/{APP}/ingest/cam", {}, None),                  # a new WHIP publish
    (f"/v1/apps/{APP}/play/cam/", {}, None),
    (f"/v1/apps/{APP}/usage", {}, None),                       # app-wide: served here
    (f"/v1/apps/{APP}/sessions/new", {}, None),                # names no session yet
    (f"/v1/apps/{APP}/sessions/", {}, None),
    (f"/v1/apps/{APP}/echo/new", {}, None),
    (f"/v1/turn/keys/{APP}/credentials/generate-ice-servers", {}, None),
    ("/openapi.json", {}, None),
    (f"/v2/apps/{APP}/sessions/{SID}", {}, None),
    ("/v1/apps/%ff/sessions/x", {}, None),                     # not plain text: served here
    (f"/v1/apps/{APP}/sessions/a:b", {}, None),
    ("relative/path", {}, None),
])
def test_session_target(path, args, expected) -> None:
    assert session_target(path.encode("latin-1"), args) == expected


def request(**changes) -> dict:
    base = dict(method=b"PUT", uri=f"/v1/apps/{APP}/sessions/{SID}/renegotiate".encode(),
                authorization=b"Bearer s3cret", body=b'{"sessionDescription": {}}')
    return {**base, **changes}


def test_a_signed_request_verifies_once() -> None:
    sender, receiver = ForwardProof(b"the cluster secret!"), ForwardProof(b"the cluster secret!")
    proof = sender.sign("node-b", 1000.0, **request(), nonce=b"0123456789abcdef")
    assert proof.startswith(b"node=node-b; t=1000000; n=0123456789abcdef; mac=")
    assert receiver.verify(proof, 1001.0, **request()) == "node-b"
    assert receiver.verify(proof, 1001.5, **request()) is None      # replayed as is
    assert receiver.refused == {"replay": 1}


def test_a_changed_nonce_is_refused() -> None:
    sender, receiver = ForwardProof(b"the cluster secret!"), ForwardProof(b"the cluster secret!")
    proof = sender.sign("node-b", 1000.0, **request(), nonce=b"0123456789abcdef")
    forged = proof.replace(b"n=0123456789abcdef", b"n=fedcba9876543210")
    assert receiver.verify(forged, 1000.0, **request()) is None
    assert receiver.refused == {"mac": 1}


@pytest.mark.parametrize("reason, proof_changes, request_changes, now", [
    ("mac", {}, {"method": b"POST"}, 1000.0),
    ("mac", {}, {"uri": f"/v1/apps/{APP}/sessions/{'f' * 32}/renegotiate".encode()}, 1000.0),
    ("mac", {}, {"authorization": b"Bearer other"}, 1000.0),
    ("mac", {}, {"body": b"{}"}, 1000.0),
    ("mac", {"secret": b"another cluster's secret"}, {}, 1000.0),
    ("stale", {}, {}, 1000.0 + WINDOW + 1),
    ("stale", {}, {}, 1000.0 - WINDOW - 1),
])
def test_a_changed_request_or_another_secret_is_refused(reason, proof_changes, request_changes,
                                                       now) -> None:
    sender = ForwardProof(proof_changes.get("secret", b"the cluster secret!"))
    receiver = ForwardProof(b"the cluster secret!")
    proof = sender.sign("node-b", 1000.0, **request())
    assert receiver.verify(proof, now, **request(**request_changes)) is None
    assert receiver.refused == {reason: 1}


@pytest.mark.parametrize("proof, reason", [
    (None, "missing"),
    (b"", "malformed"),
    (b"node=node-b; t=1000000; n=0123456789abcdef; mac=" + b"0" * 63, "malformed"),
    (b"node=node b; t=1000000; n=0123456789abcdef; mac=" + b"0" * 64, "malformed"),
    (b"node=node-b; t=1000000; mac=" + b"0" * 64, "malformed"),
    (b"node=node-b; t=1000000; n=0123456789abcdef; mac=" + b"0" * 64, "mac"),
])
def test_a_missing_or_malformed_proof_is_refused(proof, reason) -> None:
    receiver = ForwardProof(b"the cluster secret!")
    assert receiver.verify(proof, 1000.0, **request()) is None
    assert receiver.refused == {reason: 1}


def test_identical_requests_signed_at_once_both_verify() -> None:
    """Two clients' identical calls forwarded in one millisecond are not a replay."""
    sender, receiver = ForwardProof(b"the cluster secret!"), ForwardProof(b"the cluster secret!")
    first, second = (sender.sign("node-b", 1000.0, **request()) for _ in range(2))
    assert first != second
    assert receiver.verify(first, 1000.0, **request()) == "node-b"
    assert receiver.verify(second, 1000.0, **request()) == "node-b"


def test_remembered_proofs_expire() -> None:
    sender, receiver = ForwardProof(b"the cluster secret!"), ForwardProof(b"the cluster secret!")
    for second in range(100):
        proof = sender.sign("node-b", 1000.0 + second, **request())
        assert receiver.verify(proof, 1000.0 + second, **request()) == "node-b"
    assert len(receiver._accepted) <= 2 * WINDOW + 1
