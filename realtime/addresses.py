"""
The transport address: the one type every layer uses for "where a datagram came from".

RFC 8489 §3 defines a *transport address* as the combination of an IP
address and a port.  Here it is the pair Twisted hands a ``DatagramProtocol``
and ``socket.sendto`` takes::

    ("192.0.2.7", 50123)        IPv4
    ("2001:db8::7", 50123)      IPv6 (an IPv6 socket may add flowinfo and
                                scope id; adapters pass the first two on)

A machine never interprets an address beyond comparing and hashing it: it is
a dictionary key (which session, which allocation) and a destination handed
back with outgoing bytes.  Codecs that *encode* addresses (XOR-MAPPED-ADDRESS,
ICE candidates) have their own value types in :mod:`realtime.stun.address`
and :mod:`realtime.ice.candidate`.
"""

from __future__ import annotations

#: ``(host, port)``: an IP address in text form and a UDP or TCP port.
Address = tuple[str, int]
