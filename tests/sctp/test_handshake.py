"""
The handshake's decisions (RFC 9260 §5.1, §5.2.4) on their own: a view and a
chunk in, a decision out, the association untouched.
"""

from __future__ import annotations

from realtime.sctp.chunks import CookieEchoChunk, InitAckChunk, InitChunk
from realtime.sctp.cookie import CookieState
from realtime.sctp.handshake import (
    EXTENSION_PARAMETERS, AcknowledgeCookie, AnswerInit, Drop, EchoCookie, Establish,
    HandshakeView, accept_cookie_echo, accept_init_ack, answer_init,
)
from realtime.sctp.parameters import StateCookie
from realtime.sctp.states import AssociationState

SECRET = b"k" * 32
INIT = InitChunk(0xA1, 65536, 10, 10, 1000, EXTENSION_PARAMETERS)


def cookie(local_tag: int, peer_tag: int, local_tie: int = 0, peer_tie: int = 0) -> CookieEchoChunk:
    state = CookieState(0.0, local_tag, 5, peer_tag, 6, 65536, local_tie, peer_tie, 10, 10, 0)
    return CookieEchoChunk(state.seal(SECRET))


def echo(view: HandshakeView, chunk: CookieEchoChunk, tag: int):
    return accept_cookie_echo(view, chunk, tag, 1.0, secret=SECRET, lifetime=60.0)


def test_closed_answers_init_with_fresh_tag_and_keeps_nothing() -> None:
    tags = iter([0x7777])
    decision = answer_init(HandshakeView(AssociationState.CLOSED, 0, 0, 0), INIT, 0.0, secret=SECRET,
                           a_rwnd=1 << 20, streams=65535, new_tag=lambda: next(tags),
                           new_tsn=lambda: 42)
    assert type(decision) is AnswerInit and decision.tag == 0xA1
    ack = decision.init_ack
    assert (ack.initiate_tag, ack.initial_tsn) == (0x7777, 42)
    sealed = next(p for p in ack.parameters if isinstance(p, StateCookie)).cookie
    opened = CookieState.open(sealed, SECRET, 1.0, 60.0)
    assert (opened.local_tag, opened.peer_tag, opened.peer_initial_tsn) == (0x7777, 0xA1, 1000)


def test_invalid_init_is_dropped() -> None:
    bad = InitChunk(0, 65536, 10, 10, 1000, ())
    decision = answer_init(HandshakeView(AssociationState.CLOSED, 0, 0, 0), bad, 0.0, secret=SECRET,
                           a_rwnd=1, streams=1, new_tag=lambda: 1, new_tsn=lambda: 1)
    assert decision == Drop("invalid-init")


def test_init_ack_only_in_cookie_wait() -> None:
    ack = InitAckChunk(0xB2, 65536, 10, 10, 7, (StateCookie(b"c" * 8),))
    decision = accept_init_ack(HandshakeView(AssociationState.COOKIE_WAIT, 0xA1, 0, 5), ack)
    assert decision == EchoCookie(0xB2, ack, CookieEchoChunk(b"c" * 8))
    assert accept_init_ack(HandshakeView(AssociationState.ESTABLISHED, 0xA1, 0xB2, 5), ack) == Drop(
        "unexpected-init-ack")


def test_cookie_echo_cases_of_rfc_9260_5_2_4() -> None:
    established = HandshakeView(AssociationState.ESTABLISHED, 0x10, 0x20, 5)
    # case D: same tags, our COOKIE ACK was lost -> acknowledge again, change nothing
    assert echo(established, cookie(0x10, 0x20), 0x10) == AcknowledgeCookie(0x20)
    # case B: our tag, a new peer tag (INIT collision) -> take the peer's tag
    assert echo(established, cookie(0x10, 0x21), 0x10) == AcknowledgeCookie(0x21)
    # case A: both tags new, tie-tags are the current ones -> the peer restarted
    restart = echo(established, cookie(0x11, 0x21, 0x10, 0x20), 0x11)
    assert type(restart) is Establish and restart.restarted
    # neither: a stale cookie from an older association
    assert echo(established, cookie(0x11, 0x21), 0x11) == Drop("stale-cookie")
    # handshaking: establish
    fresh = echo(HandshakeView(AssociationState.CLOSED, 0, 0, 0), cookie(0x10, 0x20), 0x10)
    assert type(fresh) is Establish and not fresh.restarted
    # packet tag must be the cookie's local tag; a forged cookie fails to open
    assert echo(established, cookie(0x10, 0x20), 0x99) == Drop("verification-tag")
    assert echo(established, CookieEchoChunk(b"x" * 40), 0x10) == Drop("cookie")
