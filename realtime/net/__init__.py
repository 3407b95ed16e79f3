"""
The adapters: the only code that touches sockets or reads the clock.

* :mod:`realtime.net.media_port` -- :class:`MediaPort`, the one UDP socket of
  all PeerConnections (classify, route, reply, count drops);
* :mod:`realtime.net.turn_port` -- the TURN UDP/TCP/TLS listeners;
* :mod:`realtime.net.router` -- the router seam and :class:`BindingRouter`;
* :mod:`realtime.net.driver` -- :class:`MachineDriver`, one timer per machine;
* :mod:`realtime.net.certificate` -- the self-signed server TLS certificate.
"""
