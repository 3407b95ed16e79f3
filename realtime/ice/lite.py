"""
The ICE-lite agent: answers connectivity checks, learns nominations, tracks consent.

A *lite* agent (RFC 8445 §2.5) only has host candidates and never sends
checks of its own: it is the STUN server end of the peer's (the browser's)
connectivity checks.  When one side is full and the other lite, the full
agent controls (RFC 8445 §6.1.1), so we start *controlled*.

One check, as this agent sees it (RFC 8445 §7.3, RFC 8489 §6.3, §9.1.3)::

    full agent (controlling)                          IceLiteAgent (controlled)
      |  Binding request                                      |
      |   USERNAME "<our ufrag>:<peer ufrag>"                 |
      |   PRIORITY, ICE-CONTROLLING, [USE-CANDIDATE]          |
      |   MESSAGE-INTEGRITY (HMAC-SHA1 keyed with our pwd)    |
      |   FINGERPRINT                                         |
      |------------------------------------------------------>|
      |                   FINGERPRINT bad/missing  -> drop     |
      |                   no USERNAME or MI        -> 400      |
      |                   USERNAME not ours        -> 401      |
      |                   MI does not verify       -> 401      |
      |                   malformed required attr  -> 400      |
      |                   unknown required attr    -> 420      |
      |                   role conflict, we lose   -> 487      |
      |                   else: pair valid (+ nominated)       |
      |  Binding success: XOR-MAPPED-ADDRESS,                 |
      |   MESSAGE-INTEGRITY (our pwd), FINGERPRINT            |
      |<------------------------------------------------------|

Each source address that passes a check becomes a valid *candidate pair*
(our host candidate, the peer-reflexive remote address; RFC 8445 §7.3.1.3).
Pair life::

             authenticated check                USE-CANDIDATE, or DTLS
    (none) ----------------------> VALIDATED ---------------------------> NOMINATED
                                       |    (first DTLS only while nothing   |
                                       |     is selected; docs/design.md §5)      |
                                       +------------------+------------------+
                                                          | no authenticated check
                                                          v for consent_timeout
                                                       REMOVED (CandidatePairRemoved;
                                                       ConsentExpired if it was selected)

Consent (RFC 7675).  RFC 7675 §4 asks nothing of lite agents, since they
send no checks: consent freshness is the full agent's job.  We still keep a
true timeout for silence: 30 s without proof of life from an address means
the peer has gone, and we stop sending there (:class:`ConsentExpired`).
Proof of life is an authenticated check, or authenticated traffic from the
pair -- SRTP/SRTCP that decrypted, DTLS application data -- reported with
:meth:`IceLiteAgent.notice_authenticated`: only the peer that holds the
keys of this session can produce it.  A peer that runs no consent checks
(libnice with consent freshness off, as webrtcbin 1.22 builds it, keeps
the pair alive with unauthenticated Binding Indications only) stays up as
long as its media flows.  Unauthenticated bytes (:meth:`notice_traffic`,
indications) never count.

Deliberate choices, all documented in docs/ice.md:

* A request without FINGERPRINT, or with a wrong one, is dropped silently:
  on a port shared with DTLS and SRTP it cannot be told from noise
  (RFC 8445 §7 mandates FINGERPRINT on checks, RFC 8489 §7.3).
* 400/401 responses carry FINGERPRINT but no MESSAGE-INTEGRITY: we cannot
  key them (RFC 8489 §9.1.3).
* Attributes after MESSAGE-INTEGRITY (except FINGERPRINT) are ignored
  (RFC 8489 §14.5): nobody can smuggle in a USE-CANDIDATE.
* The most recent USE-CANDIDATE wins the selection (renomination and
  network changes work); a DTLS record nominates only while nothing is
  selected yet.
* After :meth:`IceLiteAgent.restart`, the previous credentials stay valid
  until a check with the new ones succeeds, so consent checks in flight
  during renegotiation are not refused.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

from realtime.addresses import Address
from realtime.errors import LocalProtocolError
from realtime.ice.events import (
    CandidatePairNominated, CandidatePairRemoved, CandidatePairValidated, ConsentExpired,
    IceEvent, SelectedPairChanged,
)
from realtime.stun.attributes import (
    Attribute,
    ATTRIBUTE_CLASSES,
    ErrorCode,
    IceControlled,
    IceControlling,
    MessageIntegrity,
    Priority,
    RawAttribute,
    UnknownAttributes,
    UseCandidate,
    Username,
    XorMappedAddress,
    is_comprehension_required,
)
from realtime.stun.message import (
    StunClass,
    StunMessage,
    StunMethod,
    check_fingerprint,
    check_message_integrity,
    encode_message,
)

__all__ = [
    "IceLiteAgent",
    "CandidatePairValidated",
    "CandidatePairNominated",
    "SelectedPairChanged",
    "CandidatePairRemoved",
    "ConsentExpired",
    "IceEvent",
    "Address",
]


_T = TypeVar("_T")

_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")


@dataclass(slots=True)
class _Pair:
    """One valid candidate pair, keyed by the remote address."""

    addr: Address
    remote_priority: int
    consent_expires: float
    last_received: float
    nominated: bool = False


@dataclass(frozen=True, slots=True)
class _Credentials:
    """One generation of ICE credentials (RFC 8445 §5.3)."""

    local_ufrag: str
    key: bytes  # our ice-pwd, UTF-8: the short-term HMAC key (RFC 8489 §9.1.1)
    remote_ufrag: str | None
    remote_pwd: str | None = field(default=None, repr=False)


class IceLiteAgent:
    """Answer ICE connectivity checks for one session as a lite, controlled agent.

    Sans-I/O: give it datagrams with :meth:`receive_stun`, send back what it
    returns, drive :meth:`handle_timer` at :meth:`get_timer` and drain
    :meth:`next_event`.

    :param local_ufrag: our ``ice-ufrag`` (4..256 ice-chars, RFC 8839 §5.4).
    :param local_pwd: our ``ice-pwd`` (22..256 ice-chars); the check key.
    :param remote_ufrag: the peer's ``ice-ufrag``; when known, USERNAME must
        be exactly ``local:remote``.
    :param remote_pwd: the peer's ``ice-pwd`` (kept; a lite agent never uses it).
    :param tiebreaker: our 64-bit ICE tiebreaker (RFC 8445 §7.3.1.1), random.
    :param consent_timeout: seconds without an authenticated check or
        authenticated media after which a pair loses consent (RFC 7675 §5.1: 30).
    :param max_pairs: bound on valid pairs; the least recently active one
        that is not selected is evicted.
    :param controlling: start in the controlling role (lite-lite offerer only).
    """

    def __init__(
        self,
        local_ufrag: str,
        local_pwd: str,
        *,
        remote_ufrag: str | None = None,
        remote_pwd: str | None = None,
        tiebreaker: int,
        consent_timeout: float = 30.0,
        max_pairs: int = 8,
        controlling: bool = False,
    ) -> None:
        if not 0 <= tiebreaker < 1 << 64:
            raise LocalProtocolError(f"tiebreaker {tiebreaker} is not a 64-bit unsigned value")
        if max_pairs < 2:
            raise LocalProtocolError(f"max_pairs {max_pairs} is below 2")
        self.tiebreaker = tiebreaker
        self.consent_timeout = consent_timeout
        self.max_pairs = max_pairs
        #: True while we hold the controlling role (RFC 8445 §6.1.1).
        self.controlling = controlling
        self._credentials = [_new_credentials(local_ufrag, local_pwd, remote_ufrag, remote_pwd)]
        self._pairs: dict[Address, _Pair] = {}
        self._selected: Address | None = None
        self._events: deque[IceEvent] = deque()
        self._proof_addr: Address | None = None
        self._proof_time = 0.0

    # -- credentials ---------------------------------------------------------

    @property
    def local_ufrag(self) -> str:
        """Return our current ``ice-ufrag``."""
        return self._credentials[0].local_ufrag

    @property
    def local_pwd(self) -> str:
        """Return our current ``ice-pwd``."""
        return self._credentials[0].key.decode("utf-8")

    @property
    def remote_ufrag(self) -> str | None:
        """Return the peer's current ``ice-ufrag``, if known."""
        return self._credentials[0].remote_ufrag

    def set_remote_credentials(self, remote_ufrag: str, remote_pwd: str | None = None) -> None:
        """Learn the peer's ``ice-ufrag``/``ice-pwd`` (e.g. from a late SDP answer)."""
        current = self._credentials[0]
        self._credentials[0] = _Credentials(current.local_ufrag, current.key, remote_ufrag, remote_pwd)

    def restart(
        self,
        local_ufrag: str,
        local_pwd: str,
        remote_ufrag: str | None = None,
        remote_pwd: str | None = None,
    ) -> None:
        """Start an ICE restart (RFC 8445 §9) with new credentials.

        The selected pair keeps carrying media until the peer nominates again
        under the new credentials; nomination flags are cleared so that the
        new nomination is reported.  The previous credentials stay valid until
        the first check with the new ones succeeds.
        """
        fresh = _new_credentials(local_ufrag, local_pwd, remote_ufrag, remote_pwd)
        self._credentials = [fresh, self._credentials[0]]
        for pair in self._pairs.values():
            pair.nominated = False

    # -- state ---------------------------------------------------------------

    @property
    def selected_address(self) -> Address | None:
        """Return the remote address of the selected pair, or None."""
        return self._selected

    @property
    def valid_addresses(self) -> frozenset:
        """Return the remote addresses of all valid pairs."""
        return frozenset(self._pairs)

    def is_valid(self, addr: Address) -> bool:
        """Return True if ``addr`` is the remote end of a valid pair."""
        return addr in self._pairs

    # -- inputs --------------------------------------------------------------

    def receive_stun(
        self, data: bytes, addr: Address, now: float, message: StunMessage | None = None
    ) -> bytes | None:
        """Process one STUN datagram from ``addr``; return the response to send back.

        Send the returned bytes to ``addr`` at once (docs/design.md §5: a late
        answer to the first check delays nomination).  ``message`` may carry
        the already decoded ``data`` to save a second decode.

        :raises DecodeError: if ``data`` is not a STUN message.
        """
        if message is None:
            message = StunMessage.decode(data)
        if message.method != StunMethod.BINDING or message.message_class != StunClass.REQUEST:
            return None  # indications (keepalives, RFC 8445 §11) and responses: nothing to do
        if not check_fingerprint(data):
            return None  # RFC 8489 §7.3; also covers a missing FINGERPRINT
        attributes = _protected_attributes(message.attributes)
        username = _first(attributes, Username)
        has_integrity = _first(message.attributes, MessageIntegrity) is not None
        if username is None or not has_integrity:
            return _error(message, 400, "Bad Request")
        credentials = self._credentials_for(username.value)
        if credentials is None or not check_message_integrity(data, credentials.key):
            return _error(message, 401, "Unauthenticated")
        if _malformed_required(attributes):
            return _error(message, 400, "Bad Request", credentials.key)
        unknown = _unknown_required(attributes)
        if unknown:
            return _error(
                message, 420, "Unknown Attribute", credentials.key, UnknownAttributes(unknown)
            )
        if self._role_conflict_lost(attributes):
            return _error(message, 487, "Role Conflict", credentials.key)
        if credentials is self._credentials[0]:
            del self._credentials[1:]  # a restart is complete once the new credentials work
        self._accept(addr, attributes, now)
        return _success(message, addr, credentials.key)

    def notice_dtls(self, addr: Address, now: float) -> None:
        """Treat a DTLS record from a valid pair as its nomination (docs/design.md §5).

        Chrome sends its ClientHello before USE-CANDIDATE.  Only while no pair
        is selected; a USE-CANDIDATE seen later still moves the selection.
        """
        pair = self._pairs.get(addr)
        if pair is None:
            return
        pair.last_received = now
        if self._selected is None and not pair.nominated and not self.controlling:
            self._nominate(pair)

    def notice_authenticated(self, addr: Address, now: float) -> None:
        """Count authenticated SRTP/SRTCP/DTLS from ``addr`` as proof of life.

        Called per media packet, so it only records the sender and the time
        (two attribute stores); the pair's consent deadline is moved when the
        timer runs.  Only the most recent sender is remembered, which is the
        selected pair whenever media flows.
        """
        self._proof_addr = addr
        self._proof_time = now

    def notice_traffic(self, addr: Address, now: float) -> None:
        """Record non-STUN traffic from ``addr`` (orders eviction; never refreshes consent)."""
        pair = self._pairs.get(addr)
        if pair is not None:
            pair.last_received = now

    def handle_timer(self, now: float) -> None:
        """Remove pairs whose consent lapsed (RFC 7675 §5.1) and whose media fell silent."""
        self._apply_proof()
        for addr in [a for a, p in self._pairs.items() if p.consent_expires <= now]:
            self._remove(addr)
            if addr == self._selected:
                self._selected = None
                self._events.append(ConsentExpired(addr))
                self._events.append(SelectedPairChanged(None))

    # -- outputs -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """Return the earliest consent deadline, or None without pairs."""
        if not self._pairs:
            return None
        return min(p.consent_expires for p in self._pairs.values())

    def next_event(self) -> IceEvent | None:
        """Return the oldest pending event, or None."""
        return self._events.popleft() if self._events else None

    # -- internals -----------------------------------------------------------

    def _apply_proof(self) -> None:
        """Move the consent deadline of the pair :meth:`notice_authenticated` last saw."""
        addr = self._proof_addr
        pair = self._pairs.get(addr) if addr is not None else None
        if pair is None:
            return
        deadline = self._proof_time + self.consent_timeout
        if deadline > pair.consent_expires:
            pair.consent_expires = deadline
        if self._proof_time > pair.last_received:
            pair.last_received = self._proof_time

    def _credentials_for(self, username: str) -> _Credentials | None:
        """Return the credentials whose ufrags USERNAME names (RFC 8445 §7.3)."""
        local, colon, remote = username.partition(":")
        if not colon or not remote:
            return None
        for credentials in self._credentials:
            if local != credentials.local_ufrag:
                continue
            if credentials.remote_ufrag is None or remote == credentials.remote_ufrag:
                return credentials
        return None

    def _role_conflict_lost(self, attributes: tuple) -> bool:
        """Apply RFC 8445 §7.3.1.1; return True if the peer must get 487."""
        if self.controlling:
            claim = _first(attributes, IceControlling)
            if claim is None:
                return False
            if self.tiebreaker >= claim.tiebreaker:
                return True
            self.controlling = False
            return False
        controlled = _first(attributes, IceControlled)
        if controlled is None:
            return False
        if self.tiebreaker >= controlled.tiebreaker:
            self.controlling = True  # lite-lite or a confused peer: we take control
            return False
        return True

    def _accept(self, addr: Address, attributes: tuple, now: float) -> None:
        """Make ``addr`` a valid pair, refresh its consent, apply USE-CANDIDATE."""
        pair = self._pairs.get(addr)
        priority = _first(attributes, Priority)
        if pair is None:
            if len(self._pairs) >= self.max_pairs:
                self._evict()
            pair = _Pair(addr, priority.value if priority else 0, 0.0, now)
            self._pairs[addr] = pair
            self._events.append(CandidatePairValidated(addr))
        elif priority is not None:
            pair.remote_priority = priority.value
        pair.consent_expires = now + self.consent_timeout
        pair.last_received = now
        if not self.controlling and _first(attributes, UseCandidate) is not None:
            if not pair.nominated or self._selected != addr:
                self._nominate(pair)

    def _nominate(self, pair: _Pair) -> None:
        """Flag ``pair`` nominated and select it (RFC 8445 §7.3.1.5, §8.2)."""
        if not pair.nominated:
            pair.nominated = True
            self._events.append(CandidatePairNominated(pair.addr))
        if self._selected != pair.addr:
            self._selected = pair.addr
            self._events.append(SelectedPairChanged(pair.addr))

    def _evict(self) -> None:
        """Drop the least recently active pair that is not selected."""
        victims = [p for p in self._pairs.values() if p.addr != self._selected]
        self._remove(min(victims, key=lambda p: p.last_received).addr)

    def _remove(self, addr: Address) -> None:
        del self._pairs[addr]
        self._events.append(CandidatePairRemoved(addr))


def _new_credentials(
    local_ufrag: str, local_pwd: str, remote_ufrag: str | None, remote_pwd: str | None
) -> _Credentials:
    """Validate our credentials against RFC 8839 §5.4 and bundle them."""
    if not _UFRAG.fullmatch(local_ufrag):
        raise LocalProtocolError(f"ice-ufrag {local_ufrag!r} is not 4..256 ice-chars")
    if not _PWD.fullmatch(local_pwd):
        raise LocalProtocolError("ice-pwd is not 22..256 ice-chars")
    return _Credentials(local_ufrag, local_pwd.encode("utf-8"), remote_ufrag, remote_pwd)


def _first(attributes: tuple, cls: type[_T]) -> _T | None:
    """Return the first attribute of class ``cls`` or None."""
    for attribute in attributes:
        if type(attribute) is cls:
            return attribute
    return None


def _protected_attributes(attributes: tuple) -> tuple:
    """Return the attributes before MESSAGE-INTEGRITY (RFC 8489 §14.5: later ones are ignored)."""
    for index, attribute in enumerate(attributes):
        if type(attribute) is MessageIntegrity:
            return attributes[:index]
    return attributes


def _malformed_required(attributes: tuple) -> bool:
    """Return True if a known comprehension-required attribute did not decode."""
    return any(
        type(a) is RawAttribute and a.type in ATTRIBUTE_CLASSES and is_comprehension_required(a.type)
        for a in attributes
    )


def _unknown_required(attributes: tuple) -> tuple[int, ...]:
    """Return comprehension-required attribute types we have no codec for (RFC 8489 §6.3.1)."""
    return tuple(
        a.type
        for a in attributes
        if type(a) is RawAttribute
        and a.type not in ATTRIBUTE_CLASSES
        and is_comprehension_required(a.type)
    )


def _xor_mapped(addr: Address) -> XorMappedAddress:
    """Return XOR-MAPPED-ADDRESS for ``addr`` (IPv6 scope IDs dropped)."""
    host, port = addr[0], addr[1]
    host = host.partition("%")[0]
    return XorMappedAddress(2 if ":" in host else 1, host, port)


def _success(message: StunMessage, addr: Address, key: bytes) -> bytes:
    """Return the Binding success response (RFC 8445 §7.3.1.2)."""
    return encode_message(
        StunMethod.BINDING,
        StunClass.SUCCESS,
        message.transaction_id,
        (_xor_mapped(addr),),
        integrity_key=key,
        fingerprint=True,
    )


def _error(
    message: StunMessage, code: int, reason: str, key: bytes | None = None, *extra: Attribute
) -> bytes:
    """Return a Binding error response; keyed only when the request authenticated."""
    return encode_message(
        StunMethod.BINDING,
        StunClass.ERROR,
        message.transaction_id,
        (ErrorCode(code, reason), *extra),
        integrity_key=key,
        fingerprint=True,
    )
