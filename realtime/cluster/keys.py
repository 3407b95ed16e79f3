"""
The directory's Redis keys, in one place (``docs/cluster.md`` lists the same).

Every key starts with a *namespace* (default ``rt``) so one Redis can hold
several clusters (or test runs) side by side.  Ids are opaque strings chosen
by our own code (hex session ids, app ids matching the API's pattern); a
``:`` inside an id cannot collide with another key because each key has a
fixed number of leading parts and the id is last, or the parts are bounded.

==========================================  ========  ==================================
key                                         type      value
==========================================  ========  ==================================
``{ns}:app:{app_id}``                       string    :class:`AppRecord` JSON
``{ns}:apps``                               set       app ids
``{ns}:turn-key:{key_id}``                  string    :class:`TurnKeyRecord` JSON
``{ns}:turn-keys``                          set       TURN key ids
``{ns}:turn-revoked:{username}``            string    ``"1"``, TTL = credential lifetime left
``{ns}:turn-usage:{key_id}``                hash      ``ingress``/``egress`` byte counters
``{ns}:turn-usage:{key_id}:{minute}``       hash      ``i``/``e`` and ``u:{user}:i`` ... per minute
``{ns}:turn-usage-minutes:{key_id}``        zset      minutes with usage (score = minute)
``{ns}:turn-custom:{username}``             string    its ``customIdentifier``, TTL = its lifetime
``{ns}:turn-revocations``                   zset      revoked usernames (score = their expiry)
``{ns}:session:{session_id}``               string    :class:`SessionRecord` JSON
``{ns}:ufrag:{ice_ufrag}``                  string    session id (first-STUN lookup)
``{ns}:session-tracks:{session_id}``        set       track names
``{ns}:track:{session_id}:{track_name}``    string    :class:`TrackRecord` JSON
``{ns}:session-datachannels:{session_id}``  set       DataChannel names
``{ns}:datachannel:{session_id}:{name}``    string    :class:`DataChannelRecord` JSON
``{ns}:tree:{session_id}:{track_name}``     hash      node -> parent in the track's cascading
                                                      tree, ``~v`` its version (cascade.py)
``{ns}:node:{node_id}``                     string    :class:`NodeRecord` JSON, TTL = heartbeat TTL
``{ns}:nodes``                              set       node ids ever registered (pruned)
``{ns}:control:{node_id}``                  channel   :class:`ControlMessage` JSON (pub/sub)
``{ns}:rate:{session_id}:{second}``         string    API calls in that second (INCR, TTL 2 s)
==========================================  ========  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Build the directory's key names under ``namespace``."""

    namespace: str = "rt"

    def app(self, app_id: str) -> str:
        """Return the key of app ``app_id``."""
        return f"{self.namespace}:app:{app_id}"

    @property
    def apps(self) -> str:
        """Return the key of the set of app ids."""
        return f"{self.namespace}:apps"

    def turn_key(self, key_id: str) -> str:
        """Return the key of TURN key ``key_id``."""
        return f"{self.namespace}:turn-key:{key_id}"

    @property
    def turn_keys(self) -> str:
        """Return the key of the set of TURN key ids."""
        return f"{self.namespace}:turn-keys"

    def turn_revoked(self, username: str) -> str:
        """Return the key marking TURN credential ``username`` revoked."""
        return f"{self.namespace}:turn-revoked:{username}"

    def turn_usage(self, key_id: str) -> str:
        """Return the key of the TURN usage counters of ``key_id``."""
        return f"{self.namespace}:turn-usage:{key_id}"

    def session(self, session_id: str) -> str:
        """Return the key of session ``session_id``."""
        return f"{self.namespace}:session:{session_id}"

    def ufrag(self, ice_ufrag: str) -> str:
        """Return the key mapping our ICE ufrag to its session id."""
        return f"{self.namespace}:ufrag:{ice_ufrag}"

    def session_tracks(self, session_id: str) -> str:
        """Return the key of the set of track names ``session_id`` pushed."""
        return f"{self.namespace}:session-tracks:{session_id}"

    def track(self, session_id: str, track_name: str) -> str:
        """Return the key of track ``track_name`` of ``session_id``."""
        return f"{self.namespace}:track:{session_id}:{track_name}"

    def tree(self, session_id: str, track_name: str) -> str:
        """Return the key of the cascading tree of track ``track_name`` of ``session_id``."""
        return f"{self.namespace}:tree:{session_id}:{track_name}"

    def session_datachannels(self, session_id: str) -> str:
        """Return the key of the set of DataChannel names ``session_id`` published."""
        return f"{self.namespace}:session-datachannels:{session_id}"

    def datachannel(self, session_id: str, name: str) -> str:
        """Return the key of DataChannel ``name`` of ``session_id``."""
        return f"{self.namespace}:datachannel:{session_id}:{name}"

    def turn_usage_minute(self, key_id: str, minute: int) -> str:
        """Return the key of TURN key ``key_id``'s cluster-wide usage in ``minute``."""
        return f"{self.namespace}:turn-usage:{key_id}:{minute}"

    def turn_usage_minutes(self, key_id: str) -> str:
        """Return the key of the sorted set of minutes ``key_id`` has usage in."""
        return f"{self.namespace}:turn-usage-minutes:{key_id}"

    def turn_custom(self, username: str) -> str:
        """Return the key of the ``customIdentifier`` TURN credential ``username`` was issued with."""
        return f"{self.namespace}:turn-custom:{username}"

    @property
    def turn_revocations(self) -> str:
        """Return the key of the sorted set of revoked TURN usernames (score: expiry)."""
        return f"{self.namespace}:turn-revocations"

    def node(self, node_id: str) -> str:
        """Return the key of node ``node_id`` (expires unless heartbeated)."""
        return f"{self.namespace}:node:{node_id}"

    @property
    def nodes(self) -> str:
        """Return the key of the set of registered node ids."""
        return f"{self.namespace}:nodes"

    def control(self, node_id: str) -> str:
        """Return the pub/sub channel of control messages for ``node_id``."""
        return f"{self.namespace}:control:{node_id}"

    def whip_stream(self, app_id: str, name: str) -> str:
        """Return the key holding the session id of app ``app_id``'s WHIP stream ``name``."""
        return f"{self.namespace}:whip-stream:{app_id}:{name}"

    def rate(self, session_id: str, second: int) -> str:
        """Return the counter of API calls for ``session_id`` in wall-clock ``second``."""
        return f"{self.namespace}:rate:{session_id}:{second}"
