"""
The SFU's per-packet SRTP protect: libsrtp's ``srtp_protect`` without the wrapper's per-call work.

:meth:`OutboundSrtpContext.protect <realtime.srtp.context.OutboundSrtpContext.protect>`
is the reference: it goes through pylibsrtp's ``Session.protect``, which per
packet checks the type, allocates an ``int *`` for the length, copies the
packet into its 1500-octet buffer, calls ``srtp_protect`` and slices the
result out.  An SFU protects every forwarded packet once per subscriber, so
that wrapper is paid N times per received packet; on a 1 100-octet VP8
packet (AES-CM + HMAC-SHA1-80) it cost about as much as the cipher and the
MAC together (bench figures in docs/performance.md).

:class:`FastProtect` makes the same call on the *same* libsrtp session (so
the rollover counter and the "allow repeat" state of each SSRC, RFC 3711
§3.3.1, are shared with the reference: both may be used on one context in
any order) with the length cell and the packet buffer allocated once::

    reference:  isinstance, len, ffi.new("int *"), copy in, srtp_protect, copy out
    fast:                   len,                   copy in, srtp_protect, copy out

Nothing is computed here: the AES counter-mode keystream (RFC 3711 §4.1.1),
the HMAC-SHA1 tag over header || payload || ROC (§4.2) and the AEAD-GCM
variants (RFC 7714) are libsrtp's in both paths.  The tests
(``tests/srtp/test_fast.py``) require byte-identical output to the
reference and to the RFC 3711 B.3 keys' oracle for the same input.

Python alternatives were measured and rejected: a ``cryptography`` AES-CTR
encryptor built per packet (a new IV each packet) costs ~4.4 µs on its own,
one ECB encryptor over counter blocks plus a Python XOR ~3 µs, a keyed
``hmac`` copied per packet ~1.8 µs -- each above libsrtp's whole protect.
"""

from __future__ import annotations

from typing import Any

import pylibsrtp
from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]  # compiled, no stub

from realtime.errors import LocalProtocolError

#: pylibsrtp copies each packet into a 1500-octet buffer; so do we, same limits.
MAX_PACKET_SIZE = 1500
MAX_RTP_SIZE = MAX_PACKET_SIZE - pylibsrtp.SRTP_MAX_TRAILER_LEN

__all__ = ["FastProtect"]

_ERRORS: list = pylibsrtp.ERRORS  # libsrtp status code -> its wording


class FastProtect:
    """``protect(rtp)`` of an :class:`OutboundSrtpContext`, with the wrapper's allocations hoisted.

    Call it like the reference: ``fast(rtp) == context.protect(rtp)`` for
    every RTP packet (``bytes`` or ``bytearray``) of at most
    :data:`~realtime.srtp.context.MAX_RTP_SIZE` octets; what the reference
    refuses raises :class:`~realtime.errors.LocalProtocolError` here too.
    """

    __slots__ = ("_context", "_srtp", "_cdata", "_buffer", "_length", "_protect", "address")

    def __init__(self, context: Any) -> None:
        """``context``: the :class:`~realtime.srtp.context.OutboundSrtpContext` to protect with."""
        session = context._session
        self._context = context  # keeps the libsrtp session alive as long as we are
        self._srtp = session._srtp[0]
        self._cdata = ffi.new("char[]", MAX_PACKET_SIZE)
        self._buffer = ffi.buffer(self._cdata)
        self._length = ffi.new("int *")
        self._protect = lib.srtp_protect
        #: the ``srtp_t`` as an integer, for :func:`realtime.srtp.fanout.copy_protect`
        self.address = int(ffi.cast("uintptr_t", self._srtp))

    def __call__(self, rtp: bytes | bytearray) -> bytes:
        """Return the SRTP packet for ``rtp`` (same octets as the reference)."""
        size = len(rtp)
        if size > MAX_RTP_SIZE:
            return self._context.protect(bytes(rtp))  # the reference words the refusal
        buffer = self._buffer
        buffer[0:size] = rtp
        length = self._length
        length[0] = size
        status = self._protect(self._srtp, self._cdata, length)
        if status:
            raise LocalProtocolError(
                f"cannot protect RTP packet of {size} bytes: "
                f"{_ERRORS[status] if status < len(_ERRORS) else status}"
            )
        return buffer[0 : length[0]]
