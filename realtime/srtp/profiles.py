"""
The SRTP protection profiles a WebRTC endpoint can negotiate.

A *protection profile* fixes every cryptographic parameter of an SRTP
session: the cipher, the master key and master salt lengths, and the length
of the authentication tag that trails each packet.  DTLS-SRTP negotiates one
in the ``use_srtp`` extension (RFC 5764 §4.1.2); SDES names the same suites
in ``a=crypto`` lines (RFC 4568 §6.2).  The two-octet identifiers are the
IANA "DTLS-SRTP Protection Profiles" registry, and libsrtp's
``srtp_profile_t`` uses the very same numbers, so a member's value is both::

    use_srtp extension (RFC 5764 §4.1.1), inside ClientHello/ServerHello

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   extension type = 14 (use_srtp)  |    extension length      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | profiles length (2n)  | profile id 1  ...  | profile id n     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | MKI length | srtp_mki (ignored by WebRTC, always empty)       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The parameters (RFC 5764 §4.1.2 for AES-CM, RFC 7714 §14.2 for AEAD-GCM)::

    id      profile                      key  salt  SRTP tag  SRTCP tag
    0x0001  SRTP_AES128_CM_HMAC_SHA1_80  16   14    10        10
    0x0002  SRTP_AES128_CM_HMAC_SHA1_32  16   14    4         10
    0x0007  SRTP_AEAD_AES_128_GCM        16   12    16        16
    0x0008  SRTP_AEAD_AES_256_GCM        32   12    16        16

(lengths in octets).  The ``_32`` profile keeps an 80-bit tag on SRTCP
(RFC 5764 §4.1.2).  RFC 8827 §6.5 makes SRTP_AES128_CM_HMAC_SHA1_80
mandatory and recommends SRTP_AEAD_AES_128_GCM.  The NULL-cipher profiles
(0x0005, 0x0006) are left out on purpose: they give integrity without
confidentiality, which a media server must never agree to.

This module is pure data: it does not load libsrtp, so the DTLS layer may
use it to build its ``use_srtp`` offer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from realtime.errors import LocalProtocolError


@dataclass(frozen=True, slots=True)
class ProfileParameters:
    """The lengths and names that one protection profile fixes.

    :ivar key_length: master key length in octets.
    :ivar salt_length: master salt length in octets.
    :ivar srtp_tag_length: authentication tag appended to SRTP packets.
    :ivar srtcp_tag_length: authentication tag appended to SRTCP packets.
    :ivar aead: True for AEAD (GCM) profiles, whose tag is the GCM tag.
    :ivar openssl_name: the name OpenSSL's ``SSL_CTX_set_tlsext_use_srtp`` takes.
    :ivar sdes_name: the RFC 4568 / RFC 7714 crypto-suite name for ``a=crypto``.
    """

    key_length: int
    salt_length: int
    srtp_tag_length: int
    srtcp_tag_length: int
    aead: bool
    openssl_name: str
    sdes_name: str


#: SRTCP adds the E flag and the 31-bit SRTCP index after the payload (RFC 3711 §3.4).
SRTCP_INDEX_LENGTH = 4


class SrtpProtectionProfile(IntEnum):
    """The IANA "DTLS-SRTP Protection Profiles" registry, as far as WebRTC uses it.

    Values are the two-octet ``SRTPProtectionProfile`` identifiers of RFC
    5764 §4.1.2 / RFC 7714 §14.2; they equal libsrtp's ``srtp_profile_t``.
    """

    #: AES-128 counter mode, HMAC-SHA1 80-bit tag (RFC 5764 §4.1.2).
    SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001
    #: AES-128 counter mode, HMAC-SHA1 32-bit tag on SRTP (RFC 5764 §4.1.2).
    SRTP_AES128_CM_HMAC_SHA1_32 = 0x0002
    #: AES-128 Galois/counter mode, 16-octet tag (RFC 7714 §14.2).
    SRTP_AEAD_AES_128_GCM = 0x0007
    #: AES-256 Galois/counter mode, 16-octet tag (RFC 7714 §14.2).
    SRTP_AEAD_AES_256_GCM = 0x0008

    @property
    def parameters(self) -> ProfileParameters:
        """Return the :class:`ProfileParameters` this profile fixes."""
        return _PARAMETERS[self]

    @property
    def key_length(self) -> int:
        """Return the master key length in octets."""
        return _PARAMETERS[self].key_length

    @property
    def salt_length(self) -> int:
        """Return the master salt length in octets."""
        return _PARAMETERS[self].salt_length

    @property
    def srtp_overhead(self) -> int:
        """Return how many octets protection adds to an RTP packet (the tag)."""
        return _PARAMETERS[self].srtp_tag_length

    @property
    def srtcp_overhead(self) -> int:
        """Return how many octets protection adds to an RTCP packet (E|index and tag)."""
        return SRTCP_INDEX_LENGTH + _PARAMETERS[self].srtcp_tag_length

    @property
    def openssl_name(self) -> str:
        """Return the profile's name in OpenSSL's ``use_srtp`` profile list."""
        return _PARAMETERS[self].openssl_name

    @classmethod
    def from_name(cls, name: str | bytes) -> "SrtpProtectionProfile":
        """Return the profile called ``name`` (RFC, OpenSSL or SDES spelling).

        :raises LocalProtocolError: the name is not a supported profile.
        """
        if isinstance(name, bytes):
            name = name.decode("ascii", "replace")
        try:
            return _BY_NAME[name.upper()]
        except KeyError:
            raise LocalProtocolError(f"unsupported SRTP protection profile {name!r}") from None

    @classmethod
    def lookup(cls, value: "SrtpProtectionProfile | int | str | bytes") -> "SrtpProtectionProfile":
        """Return the profile for a member, an IANA id or any known name.

        :raises LocalProtocolError: the value names no supported profile.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise LocalProtocolError(
                    f"unsupported SRTP protection profile 0x{value:04x}"
                ) from None
        return cls.from_name(value)


_P = SrtpProtectionProfile
_PARAMETERS: dict[SrtpProtectionProfile, ProfileParameters] = {
    _P.SRTP_AES128_CM_HMAC_SHA1_80: ProfileParameters(
        16, 14, 10, 10, False, "SRTP_AES128_CM_SHA1_80", "AES_CM_128_HMAC_SHA1_80"
    ),
    _P.SRTP_AES128_CM_HMAC_SHA1_32: ProfileParameters(
        16, 14, 4, 10, False, "SRTP_AES128_CM_SHA1_32", "AES_CM_128_HMAC_SHA1_32"
    ),
    _P.SRTP_AEAD_AES_128_GCM: ProfileParameters(
        16, 12, 16, 16, True, "SRTP_AEAD_AES_128_GCM", "AEAD_AES_128_GCM"
    ),
    _P.SRTP_AEAD_AES_256_GCM: ProfileParameters(
        32, 12, 16, 16, True, "SRTP_AEAD_AES_256_GCM", "AEAD_AES_256_GCM"
    ),
}

_BY_NAME: dict[str, SrtpProtectionProfile] = {}
for _profile, _params in _PARAMETERS.items():
    _BY_NAME[_profile.name] = _profile
    _BY_NAME[_params.openssl_name] = _profile
    _BY_NAME[_params.sdes_name] = _profile
del _profile, _params

#: What a WebRTC endpoint offers, most preferred first: GCM (one AEAD pass
#: instead of a cipher plus an HMAC, RFC 7714 §1) before the
#: mandatory-to-implement AES-CM/HMAC-SHA1-80 (RFC 8827 §6.5).
DEFAULT_PROFILES: tuple[SrtpProtectionProfile, ...] = (
    _P.SRTP_AEAD_AES_128_GCM,
    _P.SRTP_AEAD_AES_256_GCM,
    _P.SRTP_AES128_CM_HMAC_SHA1_80,
)


def openssl_profile_list(profiles: tuple[SrtpProtectionProfile, ...] = DEFAULT_PROFILES) -> bytes:
    """Return ``profiles`` as the colon-separated list OpenSSL's ``use_srtp`` takes."""
    return b":".join(p.openssl_name.encode("ascii") for p in profiles)


def split_keying_material(
    profile: SrtpProtectionProfile, material: bytes
) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    """Split DTLS exporter output into ``(client_write, server_write)`` key/salt pairs.

    RFC 5764 §4.2: the ``EXTRACTOR-dtls_srtp`` exporter yields
    ``2 * (key_length + salt_length)`` octets laid out as::

        client_write_SRTP_master_key | server_write_SRTP_master_key |
        client_write_SRTP_master_salt | server_write_SRTP_master_salt

    The client protects what it sends with ``client_write``; the server with
    ``server_write``.

    :raises LocalProtocolError: ``material`` has the wrong length for ``profile``.
    """
    k, s = profile.key_length, profile.salt_length
    if len(material) != 2 * (k + s):
        raise LocalProtocolError(
            f"{profile.name} needs {2 * (k + s)} octets of keying material, got {len(material)}"
        )
    client = (material[:k], material[2 * k : 2 * k + s])
    server = (material[k : 2 * k], material[2 * k + s :])
    return client, server
