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

Each function here is a decision: it reads a :class:`HandshakeView` of the
association (state, tags, initial TSN) and the chunk, and returns what to do
-- :class:`Drop`, :class:`AnswerInit`, :class:`EchoCookie`,
:class:`Establish` or :class:`AcknowledgeCookie`.  It changes nothing;
:meth:`Association._apply <realtime.sctp.association.Association>` applies
the decision to the association's state and output::

    Association ──view, chunk──> answer_init / accept_* ──decision──> Association._apply
                                 (this module: pure)                  tags, state, T1,
                                                                      COOKIE ACK, events
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

from realtime.sctp.chunks import ChunkType, CookieEchoChunk, InitAckChunk, InitChunk
from realtime.sctp.cookie import FEATURE_FORWARD_TSN, FEATURE_RECONFIG, CookieState
from realtime.sctp.parameters import ForwardTsnSupported, StateCookie, SupportedExtensions
from realtime.sctp.states import AssociationState

_HANDSHAKING = (AssociationState.CLOSED, AssociationState.COOKIE_WAIT,
                AssociationState.COOKIE_ECHOED)

#: The optional features we announce in INIT and INIT ACK: PR-SCTP (RFC 3758 §3.3.1)
#: and stream reconfiguration (RFC 6525 §5.1), as Forward-TSN-Supported and
#: Supported Extensions parameters (RFC 5061 §4.2.7).
EXTENSION_PARAMETERS = (ForwardTsnSupported(),
                        SupportedExtensions((ChunkType.FORWARD_TSN, ChunkType.RE_CONFIG)))


def features_of(init: InitChunk | InitAckChunk) -> int:
    """Return the cookie feature bits for what the peer's INIT (ACK) announces."""
    features = 0
    for param in init.parameters:
        if isinstance(param, ForwardTsnSupported):
            features |= FEATURE_FORWARD_TSN
        elif isinstance(param, SupportedExtensions):
            if ChunkType.FORWARD_TSN in param.chunk_types:
                features |= FEATURE_FORWARD_TSN
            if ChunkType.RE_CONFIG in param.chunk_types:
                features |= FEATURE_RECONFIG
    return features


@dataclass(frozen=True, slots=True)
class HandshakeView:
    """What the handshake decisions read of the association."""

    state: AssociationState
    local_tag: int
    peer_tag: int
    local_initial_tsn: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Drop the chunk and count it under ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class AnswerInit:
    """Send ``init_ack`` (with its sealed cookie) under the peer's tag ``tag``; keep no state."""

    tag: int
    init_ack: InitAckChunk


@dataclass(frozen=True, slots=True)
class EchoCookie:
    """Take ``peer_tag``, remember ``init_ack``, send ``echo``, enter COOKIE-ECHOED, arm T1."""

    peer_tag: int
    init_ack: InitAckChunk
    echo: CookieEchoChunk


@dataclass(frozen=True, slots=True)
class Establish:
    """Take the cookie's tags and TSNs, enter ESTABLISHED (or restart), send COOKIE ACK."""

    cookie: CookieState
    restarted: bool


@dataclass(frozen=True, slots=True)
class AcknowledgeCookie:
    """Send COOKIE ACK under ``peer_tag`` (taking it as the peer's tag); nothing else changes."""

    peer_tag: int


#: What :func:`answer_init`, :func:`accept_init_ack` and :func:`accept_cookie_echo` return.
Decision = Union[Drop, AnswerInit, EchoCookie, Establish, AcknowledgeCookie]


def answer_init(view: HandshakeView, init: InitChunk, now: float, *, secret: bytes,
                a_rwnd: int, streams: int, new_tag: Callable[[], int],
                new_tsn: Callable[[], int]) -> Drop | AnswerInit:
    """Answer an INIT with an INIT ACK carrying a sealed State Cookie (§5.1 step B, §5.2).

    :param new_tag: returns a fresh non-zero verification tag.
    :param new_tsn: returns a fresh initial TSN.
    """
    if init.initiate_tag == 0 or init.outbound_streams == 0 or init.inbound_streams == 0:
        return Drop("invalid-init")
    local_tie = peer_tie = 0
    if view.state in (AssociationState.COOKIE_WAIT, AssociationState.COOKIE_ECHOED):
        local_tag, local_tsn = view.local_tag, view.local_initial_tsn  # §5.2.1
        if view.state == AssociationState.COOKIE_ECHOED:
            local_tie, peer_tie = view.local_tag, view.peer_tag
    elif view.state == AssociationState.CLOSED:
        local_tag, local_tsn = new_tag(), new_tsn()
    else:  # §5.2.2: a new tag; the tie-tags let §5.2.4 recognise a restart
        local_tag = new_tag()
        while local_tag == view.local_tag:
            local_tag = new_tag()
        local_tsn = new_tsn()
        local_tie, peer_tie = view.local_tag, view.peer_tag
    cookie = CookieState(
        now, local_tag, local_tsn, init.initiate_tag, init.initial_tsn, init.a_rwnd,
        local_tie, peer_tie, init.outbound_streams, init.inbound_streams,
        features_of(init)).seal(secret)
    ack = InitAckChunk(local_tag, a_rwnd, streams, streams, local_tsn,
                       (StateCookie(cookie),) + EXTENSION_PARAMETERS)
    return AnswerInit(init.initiate_tag, ack)


def accept_init_ack(view: HandshakeView, ack: InitAckChunk) -> Drop | EchoCookie:
    """Take the peer's tag and TSN from an INIT ACK and echo its cookie (§5.1 step C)."""
    if view.state != AssociationState.COOKIE_WAIT:
        return Drop("unexpected-init-ack")
    cookie = next((p for p in ack.parameters if isinstance(p, StateCookie)), None)
    if cookie is None or ack.initiate_tag == 0:
        return Drop("invalid-init-ack")
    return EchoCookie(ack.initiate_tag, ack, CookieEchoChunk(cookie.cookie))


def accept_cookie_echo(view: HandshakeView, echo: CookieEchoChunk, tag: int, now: float, *,
                       secret: bytes, lifetime: float) -> Drop | Establish | AcknowledgeCookie:
    """Open the cookie and establish, restart or re-acknowledge (§5.1.5, §5.2.4).

    :param tag: the verification tag of the packet that carried the COOKIE ECHO.
    """
    state = CookieState.open(echo.cookie, secret, now, lifetime)
    if state is None:
        return Drop("cookie")
    if tag != state.local_tag:
        return Drop("verification-tag")
    if view.state in _HANDSHAKING:
        return Establish(state, restarted=False)
    if state.local_tag == view.local_tag and state.peer_tag == view.peer_tag:
        return AcknowledgeCookie(view.peer_tag)  # case D: our COOKIE ACK was lost
    if (state.local_tag != view.local_tag and state.peer_tag != view.peer_tag
            and state.local_tie_tag == view.local_tag and state.peer_tie_tag == view.peer_tag):
        return Establish(state, restarted=True)  # case A: peer restart
    if state.local_tag == view.local_tag:
        return AcknowledgeCookie(state.peer_tag)  # case B: collision, take the peer's new tag
    return Drop("stale-cookie")
