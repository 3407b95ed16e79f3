"""
One subscriber's SRTP copy of a forwarded packet in one C call (the optional ``_fanout`` helper).

The SFU's bound send path (:mod:`realtime.sfu.sendpath`) decides, in Python,
everything about a subscriber's copy of a packet: the forwarder's window,
the outgoing sequence number and timestamp, the payload type, the VP8
deltas and the transport-wide number.  What is left per copy is byte work
that does not depend on Python objects::

    template (ExtensionRewrite's memoised output, shared) --copy--> scratch
    octet 1 (marker | PT), seq, timestamp, SSRC        RFC 3550 §5.1
    VP8 PictureID / TL0PICIDX + deltas                  RFC 7741 §4.2   (when not zero)
    transport-wide sequence number                      draft-holmer-...-01 §2 (when stamped)
    srtp_protect (libsrtp, in place)                    RFC 3711 §3.3
    -> bytes of the SRTP packet

In Python those steps are a ``bytearray`` copy, a ``pack_into``, item
stores, :class:`~realtime.srtp.fast.FastProtect`'s copy in and slice out:
about 1.5 µs per copy at 100 subscribers (docs/performance.md).
:func:`copy_protect` (``realtime/srtp/_fanout.c``) does them in one call on
the *same* libsrtp session: the function pointer and the ``srtp_t`` are
pylibsrtp's (:data:`FastProtect.address <realtime.srtp.fast.FastProtect>`),
so rollover counters are shared with the reference path and either may
protect the next packet.

:data:`configure_sender` makes the bound send path's whole in-order copy
one call (``_fanout_send.h``: the decisions and the Python attribute writes
of :mod:`realtime.sfu.sendpath`, then the same byte work).

The helper is compiled when the package is installed (``setup.py``,
``optional``); where it is missing :data:`AVAILABLE` is False,
:data:`copy_protect` is None and the send path does the same steps in
Python.  ``tests/sfu/test_sendpath.py`` requires identical datagrams from
the reference, the Python send path and this one.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pylibsrtp
from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]  # compiled, no stub

from realtime.errors import LocalProtocolError
from realtime.srtp.fast import MAX_RTP_SIZE

__all__ = ["AVAILABLE", "MAX_RTP_SIZE", "configure_sender", "copy_protect"]

#: ``copy_protect(srtp, template, seq, ts, ssrc, octet1, vp8_at, picture_delta, tl0_delta,
#: stamp_at, stamp) -> bytes`` (see ``_fanout.c``), or None without the C helper.
copy_protect: Callable[..., bytes] | None = None


def _load() -> Callable[..., bytes] | None:
    """Return the C helper's ``copy_protect`` bound to pylibsrtp's ``srtp_protect``, or None.

    ``REALTIME_FANOUT_C=0`` in the environment disables it (the tests compare both paths).
    """
    if os.environ.get("REALTIME_FANOUT_C", "1") == "0":
        return None
    try:
        from realtime.srtp import _fanout  # type: ignore[attr-defined]  # built by setup.py
    except ImportError:
        return None
    address = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    _fanout.bind(address, MAX_RTP_SIZE, LocalProtocolError, list(pylibsrtp.ERRORS))
    function: Callable[..., bytes] = _fanout.copy_protect
    return function


copy_protect = _load()
AVAILABLE = copy_protect is not None
"""True when the C helper is built and in use."""

#: ``configure_sender(fallback, forwarder, session, template, ...) -> Sender`` (see
#: ``_fanout_send.h``): a subscriber's whole in-order copy in one C call, for
#: :func:`realtime.sfu.sendpath.bind_send_path`; None without the C helper.
configure_sender: Callable[..., Any] | None = None
if copy_protect is not None:
    from realtime.srtp import _fanout as _module  # type: ignore[attr-defined]
    configure_sender = getattr(_module, "configure_sender", None)  # None: a build before it


def helper() -> Any:
    """Return the loaded C module (or None): for tests that call it directly."""
    if copy_protect is None:
        return None
    from realtime.srtp import _fanout  # type: ignore[attr-defined]
    return _fanout
