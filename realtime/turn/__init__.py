"""
TURN (RFC 8656): relaying UDP for clients behind NATs, as a sans-I/O server.

* :mod:`realtime.turn.server` -- :class:`~realtime.turn.server.TurnServer`, the machine
* :mod:`realtime.turn.methods` -- Allocate, Refresh, CreatePermission, ChannelBind
* :mod:`realtime.turn.allocation` -- allocation state, permissions, channels, relay ports
* :mod:`realtime.turn.channel_data` -- the ChannelData codec (RFC 8656 §12.4)
* :mod:`realtime.turn.credentials` -- long-term, REST and TURN-key credentials; nonces
* :mod:`realtime.turn.policy` -- peer address filtering and token buckets
* :mod:`realtime.turn.responses` -- error codes and understood attributes
* :mod:`realtime.turn.accounting` -- usage per key, username and customIdentifier

The STUN attributes TURN adds are codecs in :mod:`realtime.stun.relay_attributes`.
"""
