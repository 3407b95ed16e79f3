"""
STUN credentials: string preparation and the long-term key (RFC 8489 §9).

Short-term credentials (ICE, RFC 8445 §7.2.2) key MESSAGE-INTEGRITY with
the password itself.  Long-term credentials (TURN) key it with a hash of
``username ":" realm ":" password`` (RFC 8489 §9.2.2)::

    MD5 (algorithm 0x0001):     key = MD5(username ":" OpaqueString(realm)
                                          ":" OpaqueString(password))      16 bytes
    SHA-256 (algorithm 0x0002): key = SHA-256(the same string)               32 bytes

RFC 8489 prepares realm and password with the PRECIS OpaqueString profile
(RFC 8265 §4.2); RFC 5389 used SASLprep (RFC 4013), and the RFC 5769 §2.4
test vector needs SASLprep ("The\\u00adM\\u00aatr\\u2168" -> "TheMatrIX":
the soft hyphen vanishes, "ª" and "Ⅸ" are folded by NFKC).  Both are here;
:func:`opaque_string` is the default.  For ASCII input -- every deployed
TURN credential we know of -- they agree.

Simplification: :func:`opaque_string` implements the width mapping and NFC
normalisation of OpaqueString and rejects control characters, but not the
full PRECIS FreeformClass property tables.
"""

from __future__ import annotations

import hashlib
import stringprep
import unicodedata
from typing import Callable

from realtime.errors import LocalProtocolError

MD5 = 0x0001
"""PASSWORD-ALGORITHM code of MD5 (RFC 8489 §18.5)."""
SHA256 = 0x0002
"""PASSWORD-ALGORITHM code of SHA-256 (RFC 8489 §18.5)."""


def opaque_string(text: str) -> str:
    """Return ``text`` prepared with PRECIS OpaqueString (RFC 8265 §4.2), simplified.

    Non-ASCII spaces become U+0020, the result is NFC-normalised; empty
    strings and control characters raise :class:`LocalProtocolError`.
    """
    text = "".join(" " if stringprep.in_table_c12(ch) else ch for ch in text)
    text = unicodedata.normalize("NFC", text)
    if not text:
        raise LocalProtocolError("OpaqueString: empty string")
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise LocalProtocolError("OpaqueString: control character")
    return text


def saslprep(text: str) -> str:
    """Return ``text`` prepared with SASLprep (RFC 4013), the RFC 5389 preparation.

    Maps "commonly mapped to nothing" characters away and non-ASCII spaces to
    U+0020, applies NFKC, and raises :class:`LocalProtocolError` for the
    prohibited characters of RFC 4013 §2.3 and bidi violations (§2.4).
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in text
        if not stringprep.in_table_b1(ch)
    )
    mapped = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22,
        stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
        stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8,
        stringprep.in_table_c9, stringprep.in_table_a1,
    )
    for ch in mapped:
        if any(table(ch) for table in prohibited):
            raise LocalProtocolError(f"SASLprep: prohibited character U+{ord(ch):04X}")
    if any(stringprep.in_table_d1(ch) for ch in mapped):
        if any(stringprep.in_table_d2(ch) for ch in mapped) or not (
            stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])
        ):
            raise LocalProtocolError("SASLprep: bidirectional rule violated")
    return mapped


def long_term_key(
    username: str,
    realm: str,
    password: str,
    *,
    algorithm: int = MD5,
    prepare: Callable[[str], str] = opaque_string,
) -> bytes:
    """Return the long-term credential key of RFC 8489 §9.2.2 (MD5 by default).

    :param prepare: string preparation for realm and password;
        :func:`opaque_string` (RFC 8489) or :func:`saslprep` (RFC 5389).
    """
    text = f"{username}:{prepare(realm)}:{prepare(password)}".encode("utf-8")
    if algorithm == MD5:
        return hashlib.md5(text).digest()
    if algorithm == SHA256:
        return hashlib.sha256(text).digest()
    raise LocalProtocolError(f"unknown password algorithm {algorithm}")
