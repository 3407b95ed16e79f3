"""
The four-way handshake with a State Cookie (RFC 9260 §5.1, §5.2).

::

        A (connect)                                  Z (listening, no state)
        |  INIT [tag=Ta, TSN=Xa]  (packet tag 0) --> |
        |                                            | seal cookie(Ta, Xa, Tz, Xz)
        | <-- INIT ACK [tag=Tz, TSN=Xz, cookie] (Ta) |
        |  COOKIE ECHO [cookie]  (Tz) -------------> | open cookie: ESTABLISHED
        | <---------------------- COOKIE ACK (Ta) -- |
    ESTABLISHED

The answering side keeps nothing between INIT and COOKIE ECHO: the cookie
(:mod:`realtime.sctp.cookie`) carries both tags and both initial TSNs.

Unexpected INITs (§5.2.1, §5.2.2) and COOKIE ECHOs (§5.2.4) are decided by
comparing the cookie's tags with the association's::

    state              INIT answered with                 cookie case (§5.2.4 table)
    COOKIE-WAIT/ECHOED our own tag again (collision)      B/D: establish, COOKIE ACK
    ESTABLISHED ...    a new tag, tie-tags = current tags A:   peer restarted -> restart
                                                          D:   duplicate   -> COOKIE ACK

Each function takes the :class:`~realtime.sctp.association.Association` it
works on and mutates it; they live apart only to keep modules small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from realtime.sctp.chunks import CookieAckChunk, CookieEchoChunk, InitAckChunk, InitChunk
from realtime.sctp.cookie import CookieState
from realtime.sctp.events import AssociationEstablished, AssociationRestarted
from realtime.sctp.parameters import StateCookie

if TYPE_CHECKING:  # pragma: no cover
    from realtime.sctp.association import Association

_HANDSHAKING = ("closed", "cookie-wait", "cookie-echoed")


def answer_init(assoc: "Association", init: InitChunk, now: float) -> None:
    """Answer an INIT with an INIT ACK carrying a sealed State Cookie."""
    if init.initiate_tag == 0 or init.outbound_streams == 0 or init.inbound_streams == 0:
        assoc._drop("invalid-init")
        return
    local_tie = peer_tie = 0
    if assoc.state in ("cookie-wait", "cookie-echoed"):
        local_tag, local_tsn = assoc.local_tag, assoc.local_initial_tsn  # §5.2.1
        if assoc.state == "cookie-echoed":
            local_tie, peer_tie = assoc.local_tag, assoc.peer_tag
    elif assoc.state == "closed":
        local_tag, local_tsn = assoc._nonzero32(), assoc._random32()
    else:  # §5.2.2: a new tag; the tie-tags let §5.2.4 recognise a restart
        local_tag = assoc._nonzero32()
        while local_tag == assoc.local_tag:
            local_tag = assoc._nonzero32()
        local_tsn = assoc._random32()
        local_tie, peer_tie = assoc.local_tag, assoc.peer_tag
    cookie = CookieState(
        now, local_tag, local_tsn, init.initiate_tag, init.initial_tsn, init.a_rwnd,
        local_tie, peer_tie, init.outbound_streams, init.inbound_streams,
        assoc._features_of(init)).seal(assoc.secret)
    config = assoc.config
    ack = InitAckChunk(local_tag, config.a_rwnd, config.streams, config.streams, local_tsn,
                       (StateCookie(cookie),) + assoc._extension_parameters())
    assoc._control.append((init.initiate_tag, ack))


def accept_init_ack(assoc: "Association", ack: InitAckChunk, now: float) -> None:
    """Take the peer's tag and TSN from an INIT ACK and echo its cookie (§5.1 step C)."""
    if assoc.state != "cookie-wait":
        assoc._drop("unexpected-init-ack")
        return
    cookie = next((p for p in ack.parameters if isinstance(p, StateCookie)), None)
    if cookie is None or ack.initiate_tag == 0:
        assoc._drop("invalid-init-ack")
        return
    assoc.peer_tag = ack.initiate_tag
    assoc._peer_init = ack
    assoc._cookie_echo = CookieEchoChunk(cookie.cookie)
    assoc._control.append((assoc.peer_tag, assoc._cookie_echo))
    assoc.state = "cookie-echoed"
    assoc._t1, assoc._t1_count = now + assoc.config.rto_initial, 0


def accept_cookie_ack(assoc: "Association", now: float) -> None:
    """Enter ESTABLISHED when our COOKIE ECHO is acknowledged (§5.1 step E)."""
    if assoc.state != "cookie-echoed":
        return
    ack = assoc._peer_init
    assoc._establish(assoc.local_initial_tsn, ack.initial_tsn, ack.a_rwnd,
                     assoc._features_of(ack), AssociationEstablished())


def accept_cookie_echo(assoc: "Association", echo: CookieEchoChunk, tag: int,
                       now: float) -> bool:
    """Open the cookie and establish, restart or re-acknowledge (§5.1.5, §5.2.4).

    :returns: False if the packet must be dropped (bad cookie or tag).
    """
    state = CookieState.open(echo.cookie, assoc.secret, now, assoc.config.cookie_lifetime)
    if state is None:
        assoc._drop("cookie")
        return False
    if tag != state.local_tag:
        assoc._drop("verification-tag")
        return False
    if assoc.state in _HANDSHAKING:
        _establish_from(assoc, state, AssociationEstablished())
    elif state.local_tag == assoc.local_tag and state.peer_tag == assoc.peer_tag:
        pass  # case D: our COOKIE ACK was lost
    elif (state.local_tag != assoc.local_tag and state.peer_tag != assoc.peer_tag
          and state.local_tie_tag == assoc.local_tag and state.peer_tie_tag == assoc.peer_tag):
        _establish_from(assoc, state, AssociationRestarted())  # case A: peer restart
    elif state.local_tag == assoc.local_tag:
        assoc.peer_tag = state.peer_tag  # case B: collision, take the peer's new tag
    else:
        assoc._drop("stale-cookie")
        return False
    assoc._control.append((assoc.peer_tag, CookieAckChunk()))
    return True


def _establish_from(assoc: "Association", state: CookieState, event) -> None:
    assoc.local_tag = state.local_tag
    assoc.peer_tag = state.peer_tag
    assoc._establish(state.local_initial_tsn, state.peer_initial_tsn, state.peer_a_rwnd,
                     state.features, event)
