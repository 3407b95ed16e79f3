"""
Fresh ICE credentials for one session: ``ice-ufrag`` and ``ice-pwd``.

Each side of an ICE session picks a username fragment and a password and
announces them in SDP (RFC 8839 §5.4).  The agent answering checks uses them
twice: a check's USERNAME is ``<our ufrag>:<their ufrag>``, which is how the
port-wide demultiplexer finds the session, and its MESSAGE-INTEGRITY is keyed
with our password (RFC 8445 §7.2.2).  So the ufrag must be unique enough to
route by and the password unguessable::

    a=ice-ufrag:8f1c22d0                          4 random bytes, 8 hex chars
    a=ice-pwd:4b0e5a...(32 hex chars)...          16 random bytes

RFC 8445 §5.3 asks for at least 24 bits of randomness in the ufrag and 128
bits in the password; RFC 8839 §5.4 allows 4-256 and 22-256 ice-chars.  Hex
digits are ice-chars, so the values need no escaping anywhere.
"""

from __future__ import annotations

from collections.abc import Callable


def ice_credentials(random: Callable[[int], bytes]) -> tuple[str, str]:
    """Return a fresh ``(ice-ufrag, ice-pwd)``: 8 and 32 hex ice-chars (RFC 8839 §5.4).

    :param random: the injected source of random bytes (``os.urandom`` in the service).
    """
    return random(4).hex(), random(16).hex()
