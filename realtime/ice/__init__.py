"""
ICE-lite (RFC 8445 §2.5) for a server on one public UDP port.

* :mod:`realtime.ice.candidate` -- the SDP ``candidate`` attribute (RFC 8839
  §5.1), priorities and foundations (RFC 8445 §5.1.2, §5.1.1.3).
* :mod:`realtime.ice.lite` -- :class:`IceLiteAgent`, the sans-I/O agent of one
  session: answers checks, learns nominations, tracks consent (RFC 7675).
* :mod:`realtime.ice.credentials` -- fresh ``ice-ufrag`` / ``ice-pwd`` (RFC 8839 §5.4).
* :mod:`realtime.ice.demultiplexer` -- :class:`SessionDemultiplexer`, the
  port-wide map from remote address and local ufrag to session.

See docs/ice.md for the whole picture.
"""
