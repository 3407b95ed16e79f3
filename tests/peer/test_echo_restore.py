"""An echo session rebuilt from its offer and answer (what a cluster node that did not make it does)."""

from __future__ import annotations

import re

import pytest

from realtime.dtls.certificate import Certificate
from realtime.dtls.endpoint import DtlsEndpoint
from realtime.peer.echo import create_echo_session, restore_echo_session
from realtime.peer.events import Connected
from realtime.sdp.errors import SdpError
from realtime.stun.message import StunClass, StunMessage
from tests.peer.test_connection import NOW, Client, deliver


def test_restored_session_is_the_one_that_was_answered() -> None:
    certificate = Certificate.generate(NOW)
    client = Client()
    made = create_echo_session("s1", client.offer, certificate=certificate,
                               address="127.0.0.1", port=10000)
    restored = restore_echo_session("s1", client.offer, made.answer.serialize(),
                                    certificate=certificate)
    assert restored.ice.local_ufrag == made.ice.local_ufrag
    assert restored.ice.local_pwd == made.ice.local_pwd
    assert restored.ice.remote_ufrag == "CLNT"
    assert restored.ssrc_map == made.ssrc_map and len(made.ssrc_map) == 3  # audio, video, RTX
    assert restored.connection.dtls_role == made.connection.dtls_role
    assert restored.connection.remote_fingerprints == made.connection.remote_fingerprints

    # ... and it completes ICE (MESSAGE-INTEGRITY with the answer's ice-pwd) and DTLS.
    [response] = deliver(restored, client.check(made))
    assert StunMessage.decode(response).message_class is StunClass.SUCCESS
    fingerprint = re.search(r"a=fingerprint:sha-256 (\S+)", made.answer.serialize()).group(1)
    dtls = DtlsEndpoint("client", client.certificate, [("sha-256", fingerprint)], now=NOW)
    for _ in range(10):
        for datagram in dtls.datagrams_to_send(NOW):
            for reply in deliver(restored, datagram):
                dtls.receive_datagram(reply, NOW)
    events = []
    while (event := restored.connection.next_event()) is not None:
        events.append(event)
    assert any(isinstance(e, Connected) for e in events), events


def test_restored_session_with_our_dtls_client_role() -> None:
    certificate = Certificate.generate(NOW)
    client = Client()
    made = create_echo_session("s1", client.offer, certificate=certificate,
                               address="127.0.0.1", port=10000, dtls_role="client")
    restored = restore_echo_session("s1", client.offer, made.answer.serialize(),
                                    certificate=certificate)
    assert str(restored.connection.dtls_role) == str(made.connection.dtls_role)
    assert "client" in str(made.connection.dtls_role)


def test_restore_refuses_an_answer_that_does_not_fit_the_offer() -> None:
    """A directory record whose answer names mids the offer lacks, or has no ICE
    credentials, raises SdpError (as documented), not an AttributeError."""
    certificate = Certificate.generate(NOW)
    client = Client()
    answer = create_echo_session("s1", client.offer, certificate=certificate,
                                 address="127.0.0.1", port=10000).answer.serialize()
    foreign = re.sub(r"a=mid:(\S+)", r"a=mid:x\1", answer).replace("a=group:BUNDLE ",
                                                                     "a=group:BUNDLE x")
    with pytest.raises(SdpError):
        restore_echo_session("s1", client.offer, foreign, certificate=certificate)
    bare = re.sub(r"a=ice-(ufrag|pwd):\S+\r\n", "", answer)
    with pytest.raises(SdpError):
        restore_echo_session("s1", client.offer, bare, certificate=certificate)
