"""PeerHost and PeerRouter: checks before the answer, and no unauthenticated answers to checks.

Issue 9, defect 5: a pull session's ufrag used to be registered only when
its answer arrived (``PUT renegotiate``).  The client's first checks came
earlier, fell through to the plain Binding service and got a success
without MESSAGE-INTEGRITY, which libnice discards (RFC 8489 §9.1.4): the
pull connected ~0.5 s late.  Now the agent answers from the moment the SFU
offers (RFC 8445 §7.3), DTLS that follows is held until the connection
exists, and a check for an unknown ufrag is never answered.
"""

from __future__ import annotations

from twisted.internet import task

from realtime.demux import PacketKind
from realtime.dtls.certificate import Certificate
from realtime.ice.lite import IceLiteAgent
from realtime.net.peers import PeerHost
from realtime.net.router import BindingRouter
from realtime.peer.connection import PeerConnection
from realtime.stun.attributes import MessageIntegrity
from realtime.stun.message import StunClass, StunMessage, check_message_integrity
from tests.ice.checks import ADDR, LOCAL_PWD, LOCAL_UFRAG, TIEBREAKER, check

#: a DTLS record's first bytes (content type 22 = handshake, DTLS 1.0 version)
CLIENT_HELLO = bytes.fromhex("16feff") + bytes(10) + b"\x00\x10" + bytes(16)


class Session:
    """What PeerHost runs (net.peers.HostedSession): an agent, a connection (None until
    answered), an id, and hooks that do nothing."""

    session_id = "0" * 32

    def __init__(self) -> None:
        self.ice = IceLiteAgent(LOCAL_UFRAG, LOCAL_PWD, tiebreaker=TIEBREAKER)
        self.connection = None

    def handle_event(self, event, now) -> None:
        pass

    def get_timer(self):
        return None

    def handle_timer(self, now) -> None:
        pass

    def take_touched(self):
        return ()


def make_host():
    clock = task.Clock()
    clock.advance(100.0)
    host = PeerHost(clock, BindingRouter(), certificate=Certificate.generate(0.0),
                    unconnected_timeout=60.0)
    return clock, host


def route(host, kind, data, addr=ADDR):
    return host.router.route(kind, data, addr, host.reactor.seconds())


def test_expected_session_answers_checks_with_message_integrity() -> None:
    clock, host = make_host()
    session = Session()
    host.expect(session)
    replies = route(host, PacketKind.STUN, check(use_candidate=True))
    [(response, addr)] = replies
    message = StunMessage.decode(response)
    assert addr == ADDR and message.message_class == StunClass.SUCCESS
    assert any(type(a) is MessageIntegrity for a in message.attributes)
    assert check_message_integrity(response, LOCAL_PWD.encode())


def test_check_for_unknown_ufrag_gets_no_answer_but_plain_binding_does() -> None:
    clock, host = make_host()
    assert route(host, PacketKind.STUN, check()) is None  # nobody expects srvA yet
    plain = check(username=None, key=None, controlling=None, priority=None)
    [(response, _)] = route(host, PacketKind.STUN, plain)  # server-reflexive discovery
    assert StunMessage.decode(response).message_class == StunClass.SUCCESS


def test_dtls_before_the_answer_is_held_and_replayed() -> None:
    clock, host = make_host()
    session = Session()
    host.expect(session)
    route(host, PacketKind.STUN, check(use_candidate=True))
    assert route(host, PacketKind.DTLS, CLIENT_HELLO) == []      # held, not unrouted
    session.connection = PeerConnection(session.ice, host.certificate, "server",
                                        [("sha-256", "00" * 32)])
    host.add(session)
    connection = session.connection
    assert connection.packets_received == 1 and connection.dtls is not None
    assert connection.state == "connecting"


def test_expected_session_is_forgotten_after_the_unconnected_timeout() -> None:
    clock, host = make_host()
    session = Session()
    host.expect(session)
    clock.advance(61.0)
    assert route(host, PacketKind.STUN, check()) is None
    host.expect(session)
    host.remove(session)
    assert route(host, PacketKind.STUN, check()) is None
    assert not clock.getDelayedCalls()
