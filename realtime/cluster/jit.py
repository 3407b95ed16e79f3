"""
Just in time: serve a PeerConnection another node made, from its first STUN check.

The media port's router asks its fallback about every STUN datagram no local
session claims (:class:`realtime.peer.router.PeerRouter`).  With ``--cluster``
that fallback is :class:`JustInTime`::

    STUN Binding request, USERNAME "srvU:cliU", srvU unknown here
        │  (RFC 8445 §7.2.2: the USERNAME starts with the ufrag of our answer)
        v
    SessionFinder.check_arrived("srvU", check)   one directory lookup per ufrag,
        │                                          later checks held (lookup.py)
        v   ... Redis: GET rt:ufrag:srvU, GET rt:session:ID  (never blocks the reactor)
    on_found(record, held checks)
        ├─ our certificate is not the one the answer pinned ─> refuse (counted)
        ├─ rebuild the session from the record (offer + answer)
        ├─ admit(session, held): register its ufrag, answer every held check
        │     (MESSAGE-INTEGRITY keyed with the record's ice-pwd, RFC 8489 §14.5)
        └─ claim it: SET rt:session:ID with owner_node = this node (background)

Everything else goes to the inner fallback (the plain Binding service).  A
check for a ufrag the directory does not know gets no answer, as on one node.
Echo sessions are rebuilt from their offer and answer; SFU sessions by the
``restore_sfu`` collaborator (:mod:`realtime.cluster.takeover`: the pulls it
needs mirrored first, then the session rebuilt, resumed already connected when
its record holds sealed media state, :mod:`realtime.cluster.resume`).  Without
that collaborator an SFU session's record is counted in
``refused["sfu_not_rebuilt"]``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Callable, Protocol, Sequence

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from realtime.addresses import Address
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import Directory
from realtime.cluster.finder import SessionFinder
from realtime.cluster.publish import ECHO
from realtime.cluster.records import ControlMessage, SessionRecord, TrackRecord
from realtime.cluster.takeover import NotNegotiated
from realtime.demux import PacketKind
from realtime.dtls.certificate import Certificate
from realtime.errors import DecodeError, LocalProtocolError
from realtime.peer.echo import restore_echo_session
from realtime.stun.attributes import Username
from realtime.stun.message import StunClass, StunMessage, StunMethod

log = Logger()

#: seconds between looks at a session whose first exchange has not reached Redis yet,
#: and how many looks at most (about 3 s in all)
RETRY_DELAY = 0.1
RETRIES = 30

#: ``admit(session, held_checks)``: add the session to the media port, route the checks.
Admit = Callable[[Any, list[tuple[bytes, Address]]], None]
#: ``release(session_id)``: drop this node's copy of a session unless it is connected here;
#: return whether a copy was dropped.
Release = Callable[[str], bool]


class RestoreSfu(Protocol):
    """Rebuilds SFU sessions here (:class:`~realtime.cluster.takeover.SfuTakeOver`)."""

    async def prepare(self, record: SessionRecord) -> None:
        """Fetch what the rebuild needs from other nodes (mirrors of pulled tracks)."""

    def __call__(self, record: SessionRecord) -> tuple[Any, list[TrackRecord]]:
        """Rebuild ``record``'s session here; return it and its pushed tracks' records
        (owned by this node).  Raises DecodeError/ValueError if it does not replay."""
        ...


class JustInTime:
    """The media port's fallback router when the node belongs to a cluster.

    :param directory: the cluster directory.
    :param reactor: the reactor (time, the lookups' timer).
    :param inner: the fallback for everything else (the Binding service).
    :param node_id: this node, written as owner when it takes a session.
    :param certificate: the cluster's DTLS certificate (the one answers pin).
    :param admit: adds a rebuilt session to the media port and routes its held checks.
    :param release: drops this node's unconnected copy of a session another node took.
    :param restore_sfu: rebuilds an SFU session from its record (None: refused).
    """

    def __init__(self, directory: Directory, reactor: Any, inner: Any, node_id: str,
                 certificate: Certificate, admit: Admit, release: Release,
                 keylog: Callable[[bytes], None] | None = None,
                 restore_sfu: RestoreSfu | None = None) -> None:
        self.directory = directory
        self.reactor = reactor
        self.inner = inner
        self.node_id = node_id
        self.certificate = certificate
        self.fingerprint = f"sha-256 {certificate.fingerprint()}"
        self.admit = admit
        self.release = release
        self.restore_sfu = restore_sfu
        #: copies of sessions dropped because another node took them over
        self.released = 0
        self.keylog = keylog
        self.finder = SessionFinder(directory, reactor, self.found)
        #: per ufrag: second looks taken after ``not_negotiated``; their pending calls
        self._retries: dict[str, int] = {}
        self._later: list[Any] = []
        #: sessions taken over, and records found but not taken, by reason
        self.taken = 0
        self.refused: Counter[str] = Counter()
        #: per session id: (first check seen, taken) times, for connect-time figures
        self.timings: dict[str, tuple[float, float]] = {}
        self._first_seen: dict[str, float] = {}

    def route(self, kind: PacketKind, data: bytes, addr: Address, now: float):
        """Start (or join) a lookup for an unknown ufrag's check; pass anything else on."""
        if kind is PacketKind.STUN:
            ufrag = check_ufrag(data)
            if ufrag is not None:
                if ufrag not in self._first_seen:
                    if len(self._first_seen) >= 4096:   # misses never pop theirs
                        self._first_seen.clear()
                    self._first_seen[ufrag] = now
                self.finder.check_arrived(ufrag, data, addr)
                return []
        return self.inner.route(kind, data, addr, now)

    def found(self, record: SessionRecord, held: list[tuple[bytes, Address]]) -> None:
        """Rebuild the session of ``record``, answer its held checks, claim it.

        An SFU session whose pulls name tracks of other nodes first has them
        mirrored here (``restore_sfu.prepare``: a few Redis round trips); its
        held checks wait for that.
        """
        if record.session_kind != ECHO and self.restore_sfu is not None:
            Deferred.fromCoroutine(self.restore_sfu.prepare(record)).addCallbacks(
                lambda _: self._rebuild(record, held), self._unprepared)
        else:
            self._rebuild(record, held)

    def _unprepared(self, failure: Failure) -> None:
        failure.trap(DirectoryUnavailable)
        self.refused["directory_unavailable"] += 1

    def _rebuild(self, record: SessionRecord, held: list[tuple[bytes, Address]]) -> None:
        first = self._first_seen.pop(record.ice_ufrag, self.reactor.seconds())
        if record.local_fingerprint != self.fingerprint:
            self.refused["certificate_mismatch"] += 1
            return
        tracks: list[TrackRecord] = []
        try:
            if record.session_kind == ECHO:
                session = restore_echo_session(
                    record.session_id, record.remote_description, record.media_description,
                    certificate=self.certificate, keylog=self.keylog)
                session.app_id = record.app_id
            elif self.restore_sfu is None:
                self.refused["sfu_not_rebuilt"] += 1
                return
            else:
                session, tracks = self.restore_sfu(record)
        except NotNegotiated:       # its first exchange is still on its way to Redis
            self.refused["not_negotiated"] += 1
            self._look_again(record.ice_ufrag, held)
            return
        except (DecodeError, ValueError, TypeError, LocalProtocolError):
            self.refused["bad_description"] += 1
            return
        # Claim first, then answer the held checks: the client sees ICE (and DTLS) done only
        # after that, so by then the directory names this node as the owner of the session
        # and its tracks, and the previous owner has been told (a pull made at once through
        # the previous owner's API must find the tracks here, not its stale copy).  Redis
        # away: the claim is skipped, the session still runs here.
        claim = replace(record, owner_node=self.node_id, last_seen=self.reactor.seconds())
        Deferred.fromCoroutine(self._claim(claim, record.owner_node, tracks)).addErrback(
            _unclaimed).addBoth(lambda _: self._admit(record, session, held, first))

    def _admit(self, record: SessionRecord, session: Any, held: list[tuple[bytes, Address]],
               first: float) -> None:
        try:
            self.admit(session, held)
        except ValueError:          # its ufrag is registered here already
            self.refused["already_here"] += 1
            return
        self.taken += 1
        self._retries.pop(record.ice_ufrag, None)
        if len(self.timings) < 4096:
            self.timings[record.session_id] = (first, self.reactor.seconds())

    async def _claim(self, claim: SessionRecord, previous: str | None,
                     tracks: Sequence[TrackRecord] = ()) -> None:
        """Record this node as owner (session, pushed tracks), then tell the previous owner.

        All go over the same Redis connection, so the owner is written before
        the previous owner hears ``close`` and looks.
        """
        await self.directory.put_session(claim)
        for track in tracks:
            await self.directory.put_track(track)
        if previous is not None and previous != self.node_id:
            await self.directory.send_control(previous, ControlMessage(
                "close", self.node_id, claim.session_id, "", claim.last_seen))

    def control(self, message: ControlMessage) -> None:
        """Act on a control message to this node (``close``: another node took the session)."""
        if message.action == "close" and self.release(message.session_id):
            self.released += 1
            log.info("cluster: session {session} was taken over by {node}",
                     session=message.session_id, node=message.from_node)

    def _look_again(self, ufrag: str, held: list[tuple[bytes, Address]]) -> None:
        """Look ``ufrag`` up again soon with its held checks (at most :data:`RETRIES` times).

        A pull's client checks as soon as it has applied the SFU's offer, before
        its answer (``PUT renegotiate``) has reached the making node and Redis;
        waiting for the browser's next retransmission (up to seconds later) would
        add that to its connect time.
        """
        tries = self._retries.get(ufrag, 0)
        if tries >= RETRIES:
            self._retries.pop(ufrag, None)
            return
        self._retries[ufrag] = tries + 1
        if len(self._retries) > 4096:   # bounded: a flood of half-made sessions
            self._retries.pop(next(iter(self._retries)))
        self._later.append(self.reactor.callLater(RETRY_DELAY, self._retry, ufrag, held))

    def _retry(self, ufrag: str, held: list[tuple[bytes, Address]]) -> None:
        self._later = [call for call in self._later if call.active()]
        for data, addr in held:
            self.finder.check_arrived(ufrag, data, addr)

    def stop(self) -> None:
        """Cancel the lookups' timer and pending second looks."""
        self.finder.stop()
        for call in self._later:
            if call.active():
                call.cancel()
        self._later.clear()


def _unclaimed(failure: Failure) -> None:
    """The claim is best effort: the session runs here whether Redis heard of it or not."""
    failure.trap(DirectoryUnavailable)


def check_ufrag(data: bytes) -> str | None:
    """Return our ufrag from a Binding request's USERNAME (``ours:theirs``), or None.

    :raises DecodeError: if ``data`` is not well-formed STUN (the port counts it).
    """
    message = StunMessage.decode(data)
    if message.method != StunMethod.BINDING or message.message_class is not StunClass.REQUEST:
        return None
    for attribute in message.attributes:
        if type(attribute) is Username:
            ufrag, colon, _ = attribute.value.partition(":")
            return ufrag if colon and ufrag else None
    return None
