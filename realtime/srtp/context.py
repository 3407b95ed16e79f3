"""
SRTP and SRTCP protection of one PeerConnection, through libsrtp.

SRTP (RFC 3711) encrypts the payload of every RTP packet and appends an
authentication tag; the header stays in the clear because routers and the
SFU read it.  SRTCP does the same for RTCP, after the first 8 octets, and
carries its own 31-bit packet index because RTCP has no sequence number::

    SRTP packet (RFC 3711 §3.1)              SRTCP packet (RFC 3711 §3.4)

    +--------------------------------+       +--------------------------------+
    | V|P|X|CC|M|PT | sequence number|       | V|P|RC| PT=SR/RR...| length    |
    | timestamp                      |       | SSRC of sender                 |
    | SSRC                           |       +--------------------------------+
    | CSRC list, header extension    |       | rest of the compound RTCP      |
    +--------------------------------+       | packet (encrypted)             |
    | payload (encrypted)            |       +--------------------------------+
    |                 +- RTP padding |       |E| SRTCP index (31 bits)        |
    +-----------------+--------------+       +--------------------------------+
    | [MKI]  authentication tag      |       | [MKI]  authentication tag      |
    +--------------------------------+       +--------------------------------+

With AEAD-GCM (RFC 7714 §7, §9) the header is the associated data and the
"tag" is the 16-octet GCM tag; the layout is the same.

Keys: both ends derive per-packet session keys from a *master key and
master salt* (RFC 3711 §4.3, RFC 7714 §11).  With DTLS-SRTP each side has its
own master key for what it sends (RFC 5764 §4.2), so a PeerConnection holds
two contexts::

      peer ──SRTP──> InboundSrtpContext ──RTP──> SFU     (peer's write key,
                                                         ssrc_any_inbound)
      peer <──SRTP── OutboundSrtpContext <──RTP── SFU    (our write key,
                                                         ssrc_any_outbound)

libsrtp keeps one *stream* per SSRC inside each context (its rollover
counter, RFC 3711 §3.3.1, and replay window, §3.3.2).  The wildcard policies
clone a stream from the template the first time an SSRC authenticates, so
unknown SSRCs need no signalling; that is why :class:`InboundSrtpContext`
bounds the number of streams and forgets the least recently used one.

Every failure to unprotect becomes :class:`SrtpError` (a
:class:`~realtime.errors.DecodeError`) so the adapter counts and drops it;
a failure to protect is our own bug and raises
:class:`~realtime.errors.LocalProtocolError`.
"""

from __future__ import annotations

import struct

import pylibsrtp

from realtime.errors import DecodeError, LocalProtocolError
from realtime.srtp.fast import FastProtect
from realtime.srtp.profiles import SrtpProtectionProfile

#: pylibsrtp copies each packet into a 1500-octet buffer: the largest packet it takes.
MAX_PACKET_SIZE = 1500
#: Largest RTP packet :meth:`OutboundSrtpContext.protect` accepts (room for tag and MKI).
MAX_RTP_SIZE = MAX_PACKET_SIZE - pylibsrtp.SRTP_MAX_TRAILER_LEN
#: Largest RTCP packet :meth:`OutboundSrtpContext.protect_rtcp` accepts.
MAX_RTCP_SIZE = MAX_PACKET_SIZE - pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN
#: libsrtp's default SRTP replay window (RFC 3711 §3.3.2 asks for at least 64).
DEFAULT_REPLAY_WINDOW = 128
#: Streams (SSRCs) an inbound context keeps before forgetting the least recent.
DEFAULT_MAX_STREAMS = 256

_SSRC = struct.Struct("!I").unpack_from
_RTP_HEADER = 12
_RTCP_HEADER = 8

_P = SrtpProtectionProfile
_LIBSRTP_PROFILE = {
    _P.SRTP_AES128_CM_HMAC_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    _P.SRTP_AES128_CM_HMAC_SHA1_32: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    _P.SRTP_AEAD_AES_128_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    _P.SRTP_AEAD_AES_256_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


class SrtpError(DecodeError):
    """Raised when a received SRTP or SRTCP packet is rejected; the adapter drops it."""


class SrtpReplayError(SrtpError):
    """Raised when a received packet repeats an index, or is older than the replay window."""


# libsrtp's reason -> (our exception, our wording).  Only reached on failure.
_REASONS: dict[str, tuple[type[SrtpError], str]] = {
    "authentication failure": (SrtpError, "authentication failed"),
    # AEAD: the GCM tag is checked inside the cipher (RFC 7714 §9.2).
    "cipher failure": (SrtpError, "authentication failed"),
    "replay check failed (bad index)": (SrtpReplayError, "replayed packet"),
    "replay check failed (index too old)": (SrtpReplayError, "index older than the replay window"),
    # Version not 2, or CSRC list / header extension running past the end.
    "unsupported parameter": (SrtpError, "malformed header"),
    "error parsing data": (SrtpError, "malformed header"),
    # AES-CM sessions encrypt SRTCP, so E=0 is refused (RFC 3711 §3.4).
    "unable to perform desired validation": (SrtpError, "E flag clear on an encrypted session"),
}


def _rejected(kind: str, packet: bytes, minimum: int, exc: Exception) -> SrtpError:
    """Return the :class:`SrtpError` that explains why libsrtp refused ``packet``."""
    size = len(packet)
    if size > MAX_PACKET_SIZE:
        return SrtpError(f"{kind} packet rejected: {size} bytes, longer than {MAX_PACKET_SIZE}")
    if size < minimum:
        return SrtpError(f"{kind} packet rejected: {size} bytes, shorter than {minimum}")
    cls, why = _REASONS.get(str(exc), (SrtpError, f"libsrtp says {exc}"))
    return cls(f"{kind} packet rejected: {why}")


def _policy(
    profile: SrtpProtectionProfile, key: bytes, salt: bytes, ssrc_type: int, replay_window: int
) -> pylibsrtp.Policy:
    if len(key) != profile.key_length or len(salt) != profile.salt_length:
        raise LocalProtocolError(
            f"{profile.name} needs a {profile.key_length}-octet key and a "
            f"{profile.salt_length}-octet salt, got {len(key)} and {len(salt)}"
        )
    if not 64 <= replay_window <= 0x7FFF:
        raise LocalProtocolError(f"replay window {replay_window} is outside 64..32767")
    policy = pylibsrtp.Policy(
        key=bytes(key) + bytes(salt), ssrc_type=ssrc_type, srtp_profile=_LIBSRTP_PROFILE[profile]
    )
    policy.window_size = replay_window
    return policy


class InboundSrtpContext:
    """Unprotect the SRTP and SRTCP a peer sends, for any SSRC, with its write key.

    :param profile: the negotiated :class:`SrtpProtectionProfile` (or its id/name).
    :param key: the peer's master key.
    :param salt: the peer's master salt.
    :param replay_window: packets remembered per SSRC for replay protection.
    :param max_streams: SSRCs remembered before the least recently seen is forgotten.
    """

    __slots__ = (
        "profile", "_session", "_streams", "_max_streams", "_tick", "_min_srtp", "_min_srtcp"
    )

    def __init__(
        self,
        profile: SrtpProtectionProfile | int | str,
        key: bytes,
        salt: bytes,
        *,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        self.profile = SrtpProtectionProfile.lookup(profile)
        policy = _policy(
            self.profile, key, salt, pylibsrtp.Policy.SSRC_ANY_INBOUND, replay_window
        )
        self._session = pylibsrtp.Session(policy)
        self._streams: dict[int, int] = {}
        self._max_streams = max_streams
        self._tick = 0
        self._min_srtp = _RTP_HEADER + self.profile.srtp_overhead
        self._min_srtcp = _RTCP_HEADER + self.profile.srtcp_overhead

    def unprotect(self, srtp: bytes) -> bytes:
        """Return the RTP packet inside ``srtp`` after checking its tag and index.

        ``srtp`` must be ``bytes`` (what the reactor hands over), not a view.

        :raises SrtpReplayError: the packet was seen before or is too old.
        :raises SrtpError: any other reason (bad tag, malformed, oversized).
        """
        try:
            rtp = self._session.unprotect(srtp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _rejected("SRTP", srtp, self._min_srtp, exc) from None
        ssrc = _SSRC(rtp, 8)[0]
        streams = self._streams
        if ssrc not in streams and len(streams) >= self._max_streams:
            self._evict_least_recent()
        self._tick += 1
        streams[ssrc] = self._tick
        return rtp

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Return the compound RTCP packet inside ``srtcp`` after checking tag and index.

        :raises SrtpReplayError: the SRTCP index was seen before or is too old.
        :raises SrtpError: any other reason (bad tag, malformed, oversized).
        """
        try:
            rtcp = self._session.unprotect_rtcp(srtcp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise _rejected("SRTCP", srtcp, self._min_srtcp, exc) from None
        ssrc = _SSRC(rtcp, 4)[0]
        streams = self._streams
        if ssrc not in streams and len(streams) >= self._max_streams:
            self._evict_least_recent()
        self._tick += 1
        streams[ssrc] = self._tick
        return rtcp

    def _evict_least_recent(self) -> None:
        """Forget the SSRC that authenticated least recently (a new one is arriving)."""
        streams = self._streams
        self.remove_stream(min(streams, key=streams.__getitem__))

    def remove_stream(self, ssrc: int) -> bool:
        """Forget the rollover counter and replay window of ``ssrc``; return if it existed."""
        self._streams.pop(ssrc, None)
        try:
            self._session.remove_stream(ssrc)
        except pylibsrtp.Error:
            return False
        return True

    @property
    def stream_count(self) -> int:
        """Return how many SSRCs have authenticated and are remembered."""
        return len(self._streams)


class OutboundSrtpContext:
    """Protect the RTP and RTCP we send to a peer, for any SSRC, with our write key.

    :param profile: the negotiated :class:`SrtpProtectionProfile` (or its id/name).
    :param key: our master key.
    :param salt: our master salt.
    :param allow_repeat_tx: let the same sequence number be protected again
        (a NACK answered by resending the original packet, RFC 4585 §6.2.1).
    """

    __slots__ = ("profile", "_session")

    def __init__(
        self,
        profile: SrtpProtectionProfile | int | str,
        key: bytes,
        salt: bytes,
        *,
        allow_repeat_tx: bool = True,
    ) -> None:
        self.profile = SrtpProtectionProfile.lookup(profile)
        policy = _policy(
            self.profile, key, salt, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, DEFAULT_REPLAY_WINDOW
        )
        policy.allow_repeat_tx = allow_repeat_tx
        self._session = pylibsrtp.Session(policy)

    def protect(self, rtp: bytes) -> bytes:
        """Return ``rtp`` with its payload encrypted and the tag appended.

        :raises LocalProtocolError: ``rtp`` is not a packet we may send.
        """
        try:
            return self._session.protect(rtp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise LocalProtocolError(
                f"cannot protect RTP packet of {len(rtp)} bytes: {exc}"
            ) from None

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Return ``rtcp`` encrypted after its first 8 octets, with E|index and tag appended.

        :raises LocalProtocolError: ``rtcp`` is not a packet we may send.
        """
        try:
            return self._session.protect_rtcp(rtcp)
        except (pylibsrtp.Error, ValueError) as exc:
            raise LocalProtocolError(
                f"cannot protect RTCP packet of {len(rtcp)} bytes: {exc}"
            ) from None

    def remove_stream(self, ssrc: int) -> bool:
        """Forget the state of an SSRC we no longer send; return if it existed."""
        try:
            self._session.remove_stream(ssrc)
        except pylibsrtp.Error:
            return False
        return True


class SrtpSession:
    """Protect what we send and unprotect what we receive on one PeerConnection.

    :param inbound: the context keyed with the peer's write key.
    :param outbound: the context keyed with our write key.
    """

    __slots__ = ("inbound", "outbound", "profile", "_protect", "fast_protect")

    def __init__(self, inbound: InboundSrtpContext, outbound: OutboundSrtpContext) -> None:
        if inbound.profile is not outbound.profile:
            raise LocalProtocolError("inbound and outbound SRTP contexts use different profiles")
        self.inbound = inbound
        self.outbound = outbound
        self.profile = inbound.profile
        self._protect = FastProtect(outbound)
        #: the :class:`~realtime.srtp.fast.FastProtect` behind :meth:`protect`, for a
        #: caller that binds it once (:mod:`realtime.sfu.sendpath`)
        self.fast_protect = self._protect

    def protect(self, rtp: bytes | bytearray) -> bytes:
        """Return the SRTP packet for ``rtp``: :meth:`OutboundSrtpContext.protect`'s octets.

        This is the per-packet path of the SFU's fan-out, so it goes through
        :class:`~realtime.srtp.fast.FastProtect` (the same libsrtp call without
        pylibsrtp's per-call allocations; it also takes a ``bytearray``).
        """
        return self._protect(rtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Return the SRTCP packet for ``rtcp`` (see :meth:`OutboundSrtpContext.protect_rtcp`)."""
        return self.outbound.protect_rtcp(rtcp)

    def unprotect(self, srtp: bytes) -> bytes:
        """Return the RTP packet in ``srtp`` (see :meth:`InboundSrtpContext.unprotect`)."""
        return self.inbound.unprotect(srtp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        """Return the RTCP packet in ``srtcp`` (see :meth:`InboundSrtpContext.unprotect_rtcp`)."""
        return self.inbound.unprotect_rtcp(srtcp)


def from_dtls_keying(
    profile: SrtpProtectionProfile | int | str | bytes,
    local_keying: tuple[bytes, bytes],
    remote_keying: tuple[bytes, bytes],
    *,
    replay_window: int = DEFAULT_REPLAY_WINDOW,
    max_streams: int = DEFAULT_MAX_STREAMS,
) -> SrtpSession:
    """Build the :class:`SrtpSession` of a PeerConnection from DTLS-SRTP keying.

    ``local_keying`` is the ``(master_key, master_salt)`` we write with (the
    client_write pair if we were the DTLS client, RFC 5764 §4.2),
    ``remote_keying`` the peer's.  ``profile`` may be the member, its IANA id
    or any of its names (OpenSSL's ``get_selected_srtp_profile()`` bytes work).
    """
    profile = SrtpProtectionProfile.lookup(profile)
    inbound = InboundSrtpContext(
        profile, *remote_keying, replay_window=replay_window, max_streams=max_streams
    )
    outbound = OutboundSrtpContext(profile, *local_keying)
    return SrtpSession(inbound, outbound)
