"""
Replay an SFU session's last negotiation on a node that did not make it.

In a cluster (docs/cluster.md) the client's packets may land on any node.  A
node that receives the first STUN check of a session another node negotiated
rebuilds it from two things the making node stored:

* the last *completed* exchange, raw: our description and the client's,
  and which side offered (JSEP, RFC 8829 §5: either side may offer); that
  settles the same :class:`~realtime.sdp.negotiated.NegotiatedSession` the
  making node settled -- the client's ICE credentials and fingerprints, our
  DTLS role (RFC 8842 §5.1), every section's codecs, extensions, SSRCs;
* the *plan*: per mid, what the SDP cannot say::

    {"mid": "0", "kind": "audio", "role": "publish",   "trackName": "mic"}
    {"mid": "1", "kind": "video", "role": "subscribe", "trackName": null,
     "pull": ["<publisher session id>", "cam"],
     "offeredPayloadTypes": [[96, 96], [97, 97]],     (publisher's PT -> ours)
     "simulcast": {"preferredRid": "h", ...}}          (the pull's preferences, if any)

Our own sources (the SSRCs we send a subscriber, RFC 5576) are read back
from our description, so a subscriber keeps receiving the SSRCs it was told.
A pushed track is published again under the same (session, name); a pulled
track is looked up through ``find`` (this node's switchboard, then a
cross-node pull); a pull whose track is nowhere leaves its section silent.
The plan is stored again after ``tracks/update`` (a pull's preferences or the
track a section carries may change there).  Not replayed: DataChannel
publications/subscriptions of the API, ``#name`` pulls on a bidirectional
section.

Pure code: the session is given, nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from realtime.media.simulcast import SimulcastPreferences
from realtime.sdp.errors import NegotiationError
from realtime.sdp.negotiated import apply_answer
from realtime.sdp.negotiation import RtpStream
from realtime.sdp.session import SessionDescription
from realtime.sfu.session import pack_sdp
from realtime.sfu.transceiver import BIDIRECTIONAL, ROLES, SUBSCRIBE, Transceiver

if TYPE_CHECKING:  # pragma: no cover
    from realtime.sfu.session import SfuSession
    from realtime.sfu.track import PublishedTrack

__all__ = ["FindTrack", "plan_of", "replay"]

#: ``find(app_id, session_id, track_name)``: the live track to pull, or None
FindTrack = Callable[[str, str, str], "PublishedTrack | None"]


def plan_of(session: SfuSession) -> list[dict[str, Any]]:
    """Return the plan of ``session``: per negotiated mid, what it carries (module docstring)."""
    plan = []
    for transceiver in session.transceivers:
        if transceiver.pending:
            continue        # offered, not answered: not part of the last exchange
        media = transceiver.media
        entry: dict[str, Any] = {
            "mid": transceiver.mid, "kind": transceiver.kind, "role": transceiver.role,
            "trackName": transceiver.track_name,
            "codecs": [] if media is None else [_codec(c) for c in media.codecs]}
        subscription = transceiver.subscription
        if transceiver.role == SUBSCRIBE and subscription is not None:
            track = subscription.track
            entry["pull"] = [track.session.session_id, track.name]
            offered = subscription.offered_payload_types
            entry["offeredPayloadTypes"] = (None if offered is None
                                            else sorted([k, v] for k, v in offered.items()))
            if track.layers is not None:  # exact: ridNotAvailable may be leastBandwidth
                wishes = subscription.preferences
                entry["simulcast"] = {"preferredRid": wishes.preferred_rid or "",
                                      "priorityOrdering": wishes.priority_ordering,
                                      "ridNotAvailable": wishes.rid_not_available}
        plan.append(entry)
    return plan


def replay(session: SfuSession, local_sdp: str, remote_sdp: str, local_offered: bool,
           plan: list[dict[str, Any]], now: float, find: FindTrack) -> None:
    """Give the fresh ``session`` the transceivers and negotiation of ``plan`` and the exchange.

    :raises DecodeError: a description is not usable SDP, or they do not fit
        together (:class:`~realtime.sdp.errors.NegotiationError`).
    :raises ValueError: the plan is malformed.
    """
    local, remote = SessionDescription.parse(local_sdp), SessionDescription.parse(remote_sdp)
    offer, answer = (local, remote) if local_offered else (remote, local)
    negotiated = apply_answer(offer, answer, we_offered=local_offered)
    if not isinstance(plan, list):
        raise ValueError("the plan is not a list")
    for entry in plan:
        transceiver = _transceiver(session, local, entry, find)
        if transceiver is not None:
            session.transceivers.append(transceiver)
    # the same o= line, its version going on from the making node's (RFC 3264 §8)
    session.local = replace(session.local, session_id=local.origin.session_id,
                            session_version=local.origin.session_version)
    session._settle(negotiated, now)
    session.exchange = (pack_sdp(local_sdp), pack_sdp(remote_sdp), local_offered)


def _transceiver(session: SfuSession, local: SessionDescription, entry: Any,
                 find: FindTrack) -> Transceiver | None:
    if not isinstance(entry, dict):
        raise ValueError("a plan entry is not an object")
    mid, kind, role, name = (entry.get(k) for k in ("mid", "kind", "role", "trackName"))
    if not isinstance(mid, str) or not isinstance(kind, str) or role not in ROLES \
            or not (name is None or isinstance(name, str)):
        raise ValueError("a plan entry lacks mid, kind or role")
    media = local.media_by_mid(mid)
    if media is None:
        return None            # not in the last exchange
    if session.transceiver(mid) is not None:
        raise NegotiationError(f"mid {mid} appears twice in the plan")
    session._note_mid(mid)
    transceiver = Transceiver(mid, kind, role, track_name=name)
    if role in (SUBSCRIBE, BIDIRECTIONAL):
        streams = RtpStream.from_media(media)
        transceiver.send = streams[0] if streams else None
    pull = entry.get("pull")
    if role == SUBSCRIBE and transceiver.send is not None and isinstance(pull, list) \
            and len(pull) == 2 and all(isinstance(p, str) for p in pull):
        track = find(session.app_id, pull[0], pull[1])
        if track is not None and track.kind == kind:
            preferences = entry.get("simulcast")
            session._subscribe(transceiver, track, SimulcastPreferences.from_json(preferences)
                               if isinstance(preferences, dict) else None)
            offered = entry.get("offeredPayloadTypes")
            if offered is not None:
                if not isinstance(offered, list) or not all(
                        isinstance(p, list) and len(p) == 2
                        and all(type(x) is int for x in p) for p in offered):
                    raise ValueError("offeredPayloadTypes is not a list of pairs")
                subscription = transceiver.subscription
                assert subscription is not None  # _subscribe just made it
                subscription.offered_payload_types = {k: v for k, v in offered}
    return transceiver


def _codec(codec: Any) -> str:
    """Return ``name/clock[/channels]`` (the rtpmap form, RFC 8866 §6.6)."""
    text = f"{codec.name}/{codec.clock_rate}"
    return f"{text}/{codec.channels}" if codec.channels else text
