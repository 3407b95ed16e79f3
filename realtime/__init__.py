"""
realtime: a clean-room, Twisted-based reference implementation of the WebRTC
media stack (STUN, ICE-lite, DTLS-SRTP, RTP/RTCP, SCTP DataChannels, TURN) and
an SFU + TURN service behind a Cloudflare Realtime compatible HTTPS API.

The package is layered (see ``docs/architecture.md``):

* codecs (pure): ``stun``, ``rtp``, ``rtcp``, ``sdp`` ... bytes <-> frozen values;
* machines (sans-I/O): bytes, address and ``now`` in; datagrams, events and
  one deadline out;
* adapters (Twisted): ``net``, ``api``, ``service`` move bytes between sockets
  and machines.
"""

__version__ = "0.1.0"
