"""
Resume a connected PeerConnection on another node: take its media state out, put it back.

The node that ran a session's DTLS handshake keeps the session's sealed
:class:`~realtime.cluster.sealing.MediaKeys` in its directory record
(``sealed_media``), written when the session connects and refreshed every
:data:`REFRESH_INTERVAL` seconds while it lives there (:class:`MediaKeyKeeper`).
A node that takes the session over (:mod:`realtime.cluster.takeover`) opens
them and :func:`resume` makes the rebuilt session *connected* at once::

    record.sealed_media ──open──> MediaKeys
        ├─ connection.resume(profile, ours, theirs)   SRTP contexts, no DTLS
        └─ per SSRC we send (our forwarders' rewrite state):
              next seq = last written + elapsed × MAX_PACKET_RATE + margin  (< 2^15 ahead)
              next ts  = last written + elapsed × clock rate
              our outbound rollover counter brought up to it (RFC 3711 §3.3.1)

The client's SRTP receiver accepts a packet whose index is ahead of the last
it saw (RFC 3711 §3.3.2) and infers the rollover counter from a sequence
number less than 2^15 away (Appendix A), so the jump must stay below that:
a refresh every 5 s and a resume within ~25 s of it keep it there at the
assumed rate.
"""

from __future__ import annotations

from typing import Any, Callable

from realtime.cluster.sealing import MAX_PACKET_RATE, MediaKeys, Sealer
from realtime.srtp.context import OutboundSrtpContext

__all__ = ["MediaKeyKeeper", "media_keys", "resume", "REFRESH_INTERVAL"]

#: seconds between refreshes of a connected session's sealed media state
REFRESH_INTERVAL = 5.0
#: packets added to every resume jump (what a refresh could miss at once)
MARGIN = 500
#: the largest forward jump a receiver takes as "ahead" (RFC 3711 Appendix A)
MAX_JUMP = 0x7FFF - 1
#: SRTCP packets per second and SSRC assumed at most, and added to every walk
MAX_RTCP_RATE = 50
RTCP_MARGIN = 200
#: the most throw-away SRTCP packets one SSRC's walk protects (about a day of reports)
MAX_SRTCP_WALK = 1 << 20


def _forwarders(session: Any):
    for transceiver in session.transceivers:
        subscription = transceiver.subscription
        forwarder = None if subscription is None else getattr(subscription, "forwarder", None)
        if forwarder is not None:
            yield forwarder


def media_keys(session: Any, now: float) -> MediaKeys | None:
    """Return ``session``'s SRTP keys and our sending state, or None before DTLS is done."""
    connection = session.connection
    keying = None if connection is None else connection.srtp_keying
    if keying is None:
        return None
    (local_key, local_salt), (remote_key, remote_salt) = keying
    sent = []
    for forwarder in _forwarders(session):
        ext, ts = forwarder.continuation()
        sent.append((forwarder.ssrc, ext, ts))
    received = []
    rtcp = getattr(session, "rtcp", None)
    for ssrc, source in ({} if rtcp is None else rtcp.publisher.sources).items():
        if source.stats.received:
            received.append((ssrc, source.stats.extended_highest_sequence & 0xFFFFFFFFFFFF))
    return MediaKeys(str(connection.srtp_profile), local_key, local_salt, remote_key,
                     remote_salt, now, tuple(sent), tuple(received),
                     tuple(connection.rtcp_sent.items()))


def resume(session: Any, keys: MediaKeys, now: float) -> None:
    """Make the rebuilt ``session`` carry on with ``keys`` (module docstring)."""
    connection = session.connection
    connection.resume(keys.profile, (keys.local_key, keys.local_salt),
                      (keys.remote_key, keys.remote_salt))
    elapsed = max(0.0, now - keys.written)
    jump = min(MAX_JUMP, MARGIN + int(elapsed * MAX_PACKET_RATE))
    sent = {ssrc: (ext, ts) for ssrc, ext, ts in keys.sent}
    srtp = connection.srtp
    outbound = srtp.outbound
    # past the client's SRTCP replay window, for every SSRC we send RTCP under (those the
    # state names, and ours: a write made at connect time names none yet)
    counts = dict(keys.rtcp_sent)
    ours = [getattr(session, "rtcp_ssrc", None)] + [f.ssrc for f in _forwarders(session)]
    for ssrc in ours:
        if ssrc is not None:
            counts.setdefault(ssrc, 0)
    for ssrc, count in counts.items():
        walked = count + RTCP_MARGIN + int(elapsed * MAX_RTCP_RATE)
        _advance_srtcp(outbound, ssrc, walked)
        connection.rtcp_sent[ssrc] = walked
    if keys.received:                       # the client's rollover counters
        theirs = OutboundSrtpContext(srtp.profile, keys.remote_key, keys.remote_salt)
        for ssrc, ext in keys.received:
            _advance_rollover(theirs, ssrc, ext, srtp.inbound)
    for forwarder in _forwarders(session):
        last = sent.get(forwarder.ssrc)
        if last is None:
            continue
        ext, ts = last
        start = ext + jump
        forwarder.continue_from(start, (ts + int(elapsed * forwarder.clock_rate)) & 0xFFFFFFFF)
        _advance_rollover(outbound, forwarder.ssrc, start)


def _advance_rollover(outbound: Any, ssrc: int, ext: int, inbound: Any = None) -> None:
    """Bring an SRTP rollover counter for ``ssrc`` up to ``ext >> 16``.

    libsrtp gives a new SSRC rollover counter 0 and moves it as sequence
    numbers wrap; protecting throw-away headers in steps under 2^15 walks
    it there (a few per wrap; nothing is sent).  With ``inbound`` (our
    receiver; ``outbound`` then holds the *client's* key) each is also
    unprotected there, ending at ``ext`` itself: the receiver's counter and
    window then stand where the old node's did, and the client's next
    packets are ahead of it.
    """
    if ext < 0x10000 and inbound is not None:
        return                      # rollover counter 0: a fresh stream guesses it
    header = bytearray(12)
    header[0] = 0x80
    header[8:12] = ssrc.to_bytes(4, "big")
    indexes = list(range(0x7000, ext, 0x7000))    # steps under 2^15: each wrap is seen
    if inbound is not None:
        indexes.append(ext)
    for index in indexes:
        header[2:4] = (index & 0xFFFF).to_bytes(2, "big")
        packet = outbound.protect(bytes(header))
        if inbound is not None:
            inbound.unprotect(packet)


def _advance_srtcp(outbound: Any, ssrc: int, count: int) -> None:
    """Protect ``count`` throw-away RTCP packets under ``ssrc``: its SRTCP index moves past."""
    report = b"\x80\xc9\x00\x01" + ssrc.to_bytes(4, "big")   # an empty RR (RFC 3550 §6.4.2)
    for _ in range(min(count, MAX_SRTCP_WALK)):
        outbound.protect_rtcp(report)


class MediaKeyKeeper:
    """Write the sealed media state of the sessions connected on this node, and refresh it.

    :param sealer: seals under the cluster key.
    :param write: ``write(session_id, sealed_text)``: store it in the session's record
        (in the background; only if this node owns it).
    :param clock: the reactor (``seconds``, ``callLater``).
    """

    def __init__(self, sealer: Sealer, write: Callable[[str, str], Any], clock: Any,
                 interval: float = REFRESH_INTERVAL) -> None:
        self.sealer = sealer
        self.write = write
        self.clock = clock
        self.interval = interval
        self.sessions: dict[str, Any] = {}
        self._call: Any = None
        #: sealed states written
        self.written = 0

    def sealed(self, session: Any) -> str:
        """Return ``session``'s sealed state now ("" before its keys exist, or an echo session)."""
        if getattr(session, "transceivers", None) is None:
            return ""
        keys = media_keys(session, self.clock.seconds())
        return "" if keys is None else self.sealer.seal(session.session_id, keys)

    def connected(self, session: Any) -> None:
        """Keep ``session``'s state fresh from now on (its first write is the caller's)."""
        if getattr(session, "transceivers", None) is None:
            return                      # an echo session: nothing to resume
        self.sessions[session.session_id] = session
        if self._call is None or not self._call.active():
            self._call = self.clock.callLater(self.interval, self._refresh)

    def removed(self, session: Any) -> None:
        self.sessions.pop(session.session_id, None)

    def _refresh(self) -> None:
        for session_id, session in list(self.sessions.items()):
            sealed = self.sealed(session)
            if sealed:
                self.written += 1
                self.write(session_id, sealed)
        self._call = self.clock.callLater(self.interval, self._refresh) if self.sessions \
            else None

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
