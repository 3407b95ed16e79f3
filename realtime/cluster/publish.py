"""
The API's side of the directory: every session and pushed track, written where other nodes look.

:class:`ClusterSessions` implements :class:`realtime.api.cluster_hooks.ClusterHooks`.
What it writes is exactly what a node that did not make a session needs to take
it over just in time (:mod:`realtime.cluster.jit`):

* an echo session (``/echo/new``): our ICE ufrag/pwd, our DTLS role and
  fingerprint, the peer's fingerprints, the offer and our answer -- written
  and *awaited* before the answer leaves, so no check can beat it to Redis;
* an SFU session (``sessions/new``, then every negotiation): the same
  parameters once negotiated, the last exchange's two SDPs raw and, as the
  media description, the plan of each mid (:mod:`realtime.sfu.restore`:
  pushed track name, pulled track, payload types), and one :class:`~realtime.cluster.records.TrackRecord`
  per pushed track (SSRCs, rids, codecs, status).  These writes are pipelined
  in the background: the API call first checks the directory is connected
  (the 503 otherwise) and the writes go out on that connection before the
  HTTP answer does.

Every record names this node as owner; ``last_seen`` is the write time.
While Redis is away every hook raises :class:`~realtime.api.errors.ApiError`
503 ``directory_unavailable`` whose description names the URL and the cause.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from realtime.api.errors import ApiError
from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.datachannels import DataChannelRelay
from realtime.cluster.directory import Directory
from realtime.cluster.track_media import media_to_json
from realtime.cluster.records import SessionRecord, TrackRecord
from realtime.cluster.resume import MediaKeyKeeper
from realtime.cluster.sealing import Sealer
from realtime.sfu.restore import plan_of
from realtime.sfu.session import unpack_sdp

log = Logger()

ECHO, SFU = "echo", "sfu"


def api_error(error: DirectoryUnavailable) -> ApiError:
    """Return the API's 503 for ``error`` (``errorDescription`` names URL and cause)."""
    return ApiError(error.status, error.error_code, str(error))


def _fingerprint(algorithm: str, value: str) -> str:
    return f"{algorithm} {value}"


class ClusterSessions:
    """Write sessions and tracks into the directory as the API makes them.

    :param directory: the connected :class:`Directory`.
    :param node_id: this node (the owner written into each record).
    :param clock: the reactor (``seconds()``).
    :param sealer: seals connected sessions' media keys into their records (None: not
        written, so no other node can resume them without a new handshake).
    """

    def __init__(self, directory: Directory, node_id: str, clock: Any,
                 remote: Any = None, relay_stats: Any = None,
                 datachannels: DataChannelRelay | None = None,
                 sealer: Sealer | None = None) -> None:
        self.directory = directory
        self.node_id = node_id
        self.clock = clock
        #: :class:`~realtime.cluster.remote_tracks.RemoteTracks` (cross-node pulls), or None
        self.remote = remote
        #: returns the relay link's counters (``ClusterNodeService.relay_stats``), or None
        self.relay_stats = relay_stats
        #: DataChannel publications across nodes (:mod:`realtime.cluster.datachannels`)
        self.datachannels = datachannels
        #: background writes that failed (Redis lost between the check and the write)
        self.failed_writes = 0
        #: writes connected sessions' sealed media keys (:mod:`realtime.cluster.resume`)
        self.keeper = None if sealer is None else MediaKeyKeeper(sealer, self.write_sealed, clock)

    def require(self) -> None:
        """Raise the API's 503 unless the directory is connected now."""
        error = self.directory.redis.unavailable()
        if error is not None:
            raise api_error(error)

    # -- echo ----------------------------------------------------------------

    def echo_record(self, session: Any, app_id: str, offer_sdp: str) -> SessionRecord:
        """Return the record of an echo session (offer and answer included)."""
        connection = session.connection
        now = self.clock.seconds()
        return SessionRecord(
            session_id=session.session_id, app_id=app_id,
            ice_ufrag=session.ice.local_ufrag, ice_pwd=session.ice.local_pwd,
            remote_ice_ufrag=session.ice.remote_ufrag or "",
            remote_fingerprints=tuple(_fingerprint(a, v)
                                      for a, v in connection.remote_fingerprints),
            local_fingerprint=_fingerprint("sha-256", connection.certificate.fingerprint()),
            dtls_role=str(connection.dtls_role), media_description=session.answer.serialize(),
            owner_node=self.node_id, created=now, last_seen=now,
            session_kind=ECHO, remote_description=offer_sdp)

    async def echo_created(self, session: Any, app_id: str, offer_sdp: str) -> None:
        """Store an echo session; the 503 if Redis cannot take it."""
        try:
            await self.directory.put_session(self.echo_record(session, app_id, offer_sdp))
        except DirectoryUnavailable as error:
            raise api_error(error) from None

    # -- SFU -------------------------------------------------------------------

    def session_created(self, session: Any) -> Deferred:
        """Store a new SFU session (nothing negotiated yet); the 503 at once if Redis is away.

        Return the write's ``Deferred`` (``None`` once Redis has it, or the write failed
        and was counted): ``sessions/new`` answers after it, so a call for the session
        that lands on another node at once finds its owner there.
        """
        self.require()
        return self._write(self.directory.put_session(self.sfu_record(session)))

    def session_negotiated(self, session: Any) -> None:
        """Store an SFU session's negotiated parameters and its pushed tracks."""
        self.require()
        self._write(self.directory.put_session(self.sfu_record(session)))
        for track in self.track_records(session):
            self._write(self.directory.put_track(track))

    def sfu_record(self, session: Any) -> SessionRecord:
        """Return the record of an SFU session as negotiated so far."""
        connection = session.connection
        negotiated = session.negotiated
        now = self.clock.seconds()
        remote = () if connection is None else tuple(
            _fingerprint(a, v) for a, v in connection.remote_fingerprints)
        exchange = session.exchange
        local_sdp, remote_sdp, local_offered = (
            ("", "", False) if exchange is None
            else (unpack_sdp(exchange[0]), unpack_sdp(exchange[1]), exchange[2]))
        return SessionRecord(
            session_id=session.session_id, app_id=session.app_id,
            ice_ufrag=session.ice.local_ufrag, ice_pwd=session.ice.local_pwd,
            remote_ice_ufrag=session.ice.remote_ufrag or "", remote_fingerprints=remote,
            local_fingerprint=_fingerprint("sha-256", session.certificate.fingerprint()),
            dtls_role="" if negotiated is None else str(negotiated.dtls_role),
            media_description=json.dumps(plan_of(session), separators=(",", ":")),
            owner_node=self.node_id, created=session.created, last_seen=now,
            session_kind=SFU, remote_description=remote_sdp,
            local_description=local_sdp, local_offered=local_offered,
            sealed_media="" if self.keeper is None else self.keeper.sealed(session))

    def track_records(self, session: Any) -> list[TrackRecord]:
        """Return one record per track ``session`` pushes (publish and bidirectional)."""
        records = []
        for transceiver in session.transceivers:
            track = transceiver.track
            if track is None or transceiver.track_name is None:
                continue
            media = track.media
            ssrcs = [s.ssrc for s in media.remote_streams]
            ssrcs += [s.rtx_ssrc for s in media.remote_streams if s.rtx_ssrc is not None]
            records.append(TrackRecord(
                session_id=session.session_id, track_name=transceiver.track_name,
                mid=transceiver.mid, media_kind=track.kind, owner_node=self.node_id,
                ssrcs=tuple(ssrcs), rids=tuple(media.remote_rids),
                codecs=tuple(_codec(c) for c in media.codecs),
                status="ended" if track.ended else "active", media=media_to_json(media)))
        return records

    # -- pulls of other nodes' tracks, counters ----------------------------------------

    async def find_track(self, board: Any, app_id: str, session_id: str,
                         name: str) -> Any | None:
        """Return a mirror of a track another node owns (see ``RemoteTracks.find_or_pull``)."""
        if self.remote is None:
            return None
        try:
            return await self.remote.find_or_pull(board, app_id, session_id, name)
        except DirectoryUnavailable as error:
            raise api_error(error) from None

    async def owned_elsewhere(self, session_id: str, name: str) -> bool:
        """Whether the directory names another node as the owner of that track (a take-over)."""
        try:
            record = await self.directory.get_track(session_id, name)
        except DirectoryUnavailable as error:
            raise api_error(error) from None
        return record is not None and record.owner_node != self.node_id

    def stats(self, app_id: str) -> dict[str, Any]:
        """Return the relay link's counters and app ``app_id``'s pulls' (``/diagnostics``)."""
        return {"node": self.node_id,
                "relay": None if self.relay_stats is None else self.relay_stats(),
                "pulls": None if self.remote is None else self.remote.stats(app_id)}

    # -- DataChannels (realtime/cluster/datachannels.py) ------------------------------

    def datachannel_feeds(self) -> tuple[Any, ...]:
        """Return the relay as the feed of a new publication (nothing without one)."""
        return () if self.datachannels is None else (self.datachannels,)

    def datachannel_published(self, channel: Any) -> None:
        """Write the publication's record (owner: this node, status ``active``)."""
        if self.datachannels is not None:
            self.datachannels.published(channel)

    async def remote_datachannel(self, app_id: str, session_id: str, name: str) -> Any | None:
        """Return another node's publication to subscribe to; the 503 if Redis is away."""
        if self.datachannels is None:
            return None
        try:
            return await self.datachannels.find(app_id, session_id, name)
        except DirectoryUnavailable as error:
            raise api_error(error) from None

    def known_remote_datachannel(self, session_id: str, name: str) -> Any | None:
        """Return another node's publication this node already relays, or None."""
        return None if self.datachannels is None else self.datachannels.known(session_id, name)

    def datachannel_stats(self) -> dict[str, Any] | None:
        """Return the DataChannel relay's node-wide counters, or None without one."""
        return None if self.datachannels is None else self.datachannels.counters()

    # -- WHIP streams (realtime/api/whip.py) ------------------------------------------

    async def stream_published(self, app_id: str, name: str, session_id: str) -> None:
        """Write ``rt:whip-stream:APP:NAME`` -> ``session_id``; the 503 if Redis is away."""
        try:
            await self.directory.put_stream(app_id, name, session_id)
        except DirectoryUnavailable as error:
            raise api_error(error) from None

    def stream_ended(self, app_id: str, name: str, session_id: str) -> None:
        """Forget the stream's name if ``session_id`` still holds it (background write)."""
        self._write(self.directory.delete_stream(app_id, name, session_id))

    async def stream_tracks(self, app_id: str, name: str,
                            by_id: bool = True) -> tuple[str, list[str]] | None:
        """Return the live session publishing ``name`` (``by_id``: else the session whose
        id is ``name``) and its active tracks' names."""
        try:
            session_id = await self.directory.get_stream(app_id, name) or (name if by_id else "")
            if not session_id:
                return None
            session = await self.directory.get_session(session_id)
            if session is None or session.app_id != app_id:
                return None
            tracks = await self.directory.session_tracks(session_id)
        except DirectoryUnavailable as error:
            raise api_error(error) from None
        return session_id, [t.track_name for t in tracks
                            if t.status == "active" and t.media_kind in ("audio", "video")]

    # -- connected, ended -----------------------------------------------------------

    def session_connected(self, session: Any) -> None:
        """Write ``last_seen`` = now when a session this node owns completes ICE + DTLS.

        With a :attr:`keeper`, its sealed media keys go with it (and are refreshed).
        """
        keeper = self.keeper
        sealed = None if keeper is None else keeper.sealed(session)
        self._write(self.touch(session.session_id, sealed or None))
        if keeper is not None:
            keeper.connected(session)

    def write_sealed(self, session_id: str, sealed: str) -> None:
        """Refresh ``session_id``'s sealed media state (the keeper's periodic write)."""
        self._write(self.touch(session_id, sealed))

    async def touch(self, session_id: str, sealed_media: str | None = None) -> bool:
        """Set ``last_seen`` of ``session_id`` to now if this node owns it; return whether it did.

        ``last_seen - created`` of a session just connected is its server-side connect
        time (answer written -> ICE and DTLS done), on whichever node it landed.
        """
        record = await self.directory.get_session(session_id)
        if record is None or record.owner_node != self.node_id:
            return False
        record = replace(record, last_seen=self.clock.seconds())
        if sealed_media is not None:
            record = replace(record, sealed_media=sealed_media)
        await self.directory.put_session(record)
        return True

    def session_removed(self, session: Any) -> None:
        """Forget a session that ended here, if this node still owns it (in the background)."""
        if self.keeper is not None:
            self.keeper.removed(session)
        self._write(self.forget(session.session_id))

    async def forget(self, session_id: str) -> bool:
        """Delete ``session_id`` from the directory if this node owns it; return whether it did.

        A copy dropped because another node took the session over is not the
        owner's any more (the new owner wrote itself first), so it deletes nothing.
        """
        record = await self.directory.get_session(session_id)
        if record is None or record.owner_node != self.node_id:
            return False
        await self.directory.delete_session(session_id)
        return True

    def _write(self, coroutine) -> Deferred:
        return Deferred.fromCoroutine(coroutine).addErrback(self._failed)

    def _failed(self, failure) -> None:
        failure.trap(DirectoryUnavailable)
        self.failed_writes += 1
        log.warn("cluster: a directory write failed: {error}", error=failure.getErrorMessage())


def _codec(codec: Any) -> str:
    """Return ``name/clock[/channels]`` (the rtpmap form, RFC 8866 §6.6)."""
    text = f"{codec.name}/{codec.clock_rate}"
    return f"{text}/{codec.channels}" if codec.channels else text
