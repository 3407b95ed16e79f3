"""
SRTP and SRTCP (RFC 3711, RFC 7714) for WebRTC, keyed by DTLS-SRTP (RFC 5764).

* :mod:`realtime.srtp.profiles` -- the protection profiles registry (pure data).
* :mod:`realtime.srtp.context` -- inbound/outbound contexts over libsrtp
  (pylibsrtp; the only package here that imports it).

See ``docs/srtp.md`` for the packet layout, key derivation, rollover counter
and replay window.
"""

from realtime.srtp.context import (
    InboundSrtpContext,
    OutboundSrtpContext,
    SrtpError,
    SrtpReplayError,
    SrtpSession,
    from_dtls_keying,
)
from realtime.srtp.profiles import (
    DEFAULT_PROFILES,
    SrtpProtectionProfile,
    openssl_profile_list,
    split_keying_material,
)

__all__ = [
    "DEFAULT_PROFILES",
    "InboundSrtpContext",
    "OutboundSrtpContext",
    "SrtpError",
    "SrtpProtectionProfile",
    "SrtpReplayError",
    "SrtpSession",
    "from_dtls_keying",
    "openssl_profile_list",
    "split_keying_material",
]
