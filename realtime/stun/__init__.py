"""
STUN (RFC 8489): the message codec, its attributes and the Binding service.

* :mod:`realtime.stun.message` -- header, method/class, integrity and fingerprint
* :mod:`realtime.stun.attributes` -- one codec per attribute (registry in
  :mod:`realtime.stun.registry`, layouts in :mod:`~realtime.stun.layout`,
  :mod:`~realtime.stun.address`, :mod:`~realtime.stun.relay_attributes`)
* :mod:`realtime.stun.credentials` -- long-term keys, SASLprep/OpaqueString
* :mod:`realtime.stun.binding` -- the stateless Binding responder
* :mod:`realtime.stun.stream` -- framing STUN and ChannelData on TCP/TLS (RFC 8489 §6.2.2)

This server only answers STUN (ICE-lite, TURN, Binding), so there is no client
transaction layer: retransmission (RFC 8489 §6.2.1) is the client's job.
"""
