"""
Who may allocate: TURN long-term credentials, ephemeral TURN-key credentials, nonces.

TURN authenticates every request but indications with the STUN long-term
credential mechanism (RFC 8489 §9.2, RFC 8656 §5).  The server never sees a
password: a request carries USERNAME, REALM, NONCE and a MESSAGE-INTEGRITY
keyed with ``MD5(username ":" realm ":" password)``.  The exchange::

    client                                         server
      | Allocate (no credentials)                    |
      |--------------------------------------------->|
      |            401 Unauthorized, REALM, NONCE    |
      |<---------------------------------------------|
      | Allocate USERNAME REALM NONCE MI(key)        |
      |--------------------------------------------->|  look the username up ->
      |           success ... MI(key)                |  key; check MI, NONCE
      |<---------------------------------------------|
      |      (NONCE expired later: 438 Stale Nonce + a fresh NONCE)

Three ways to know a username's password live here, each an
:class:`Authenticator`:

* :class:`StaticUsers` -- a fixed table (``alice:wonderland``), like
  coturn's ``--user``.
* :class:`SharedSecretUsers` -- the "TURN REST API" convention
  (draft-uberti-behave-turn-rest-00): username ``<expiry unix time>:<user>``,
  password ``base64(HMAC-SHA1(secret, username))``, as coturn's
  ``--use-auth-secret`` checks it.
* :class:`TurnKeyCredentials` -- the credentials Cloudflare's TURN key API
  issues (docs/cloudflare-api.md §1.5), in this server's own format::

      username   = hex( expiry (8 bytes, unix seconds, big endian)
                      | key tag (8 bytes, SHA-256(key id)[:8])
                      | random  (32 bytes) )                        96 hex chars
      credential = hex( HMAC-SHA384(SHA-256("realtime-turn\\0" token), username) )
                                                                    96 hex chars

  The username carries its expiry, so verification is stateless; the
  credential is an HMAC under the TURN key, so only the key's owner can mint
  one.  Revocation is a set of usernames kept until they expire anyway.

**Stateless nonces** (:class:`NonceIssuer`): ``NONCE = hex(expiry, 8) +
hex(HMAC-SHA256(secret, expiry "|" client host)[:12])``.  The server keeps
nothing per client; a nonce from another host, or past its expiry, answers
438 Stale Nonce (RFC 8489 §9.2.4).  Every comparison uses
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from realtime.stun.credentials import long_term_key

#: Longest TTL a TURN-key credential may have: 48 hours (docs/cloudflare-api.md §1.5).
MAX_TTL = 48 * 3600


@dataclass(frozen=True, slots=True)
class Credential:
    """A username the server accepts, with its long-term key and provenance.

    :ivar username: the USERNAME value.
    :ivar key: the long-term key of RFC 8489 §9.2.2 (MESSAGE-INTEGRITY key).
    :ivar expires: unix time after which the credential is void, or ``None``.
    :ivar key_id: the TURN key that issued it ("" for static users).
    :ivar custom_identifier: the ``customIdentifier`` given at issue time, if known.
    """

    username: str
    key: bytes
    expires: float | None = None
    key_id: str = ""
    custom_identifier: str = ""

    def __repr__(self) -> str:
        return (f"Credential(username={self.username!r}, key_id={self.key_id!r}, "
                f"expires={self.expires})")


class Authenticator(Protocol):
    """Look up the credential of a username (the server machine's only view of users)."""

    def credential(self, username: str, realm: str, now: float) -> Credential | None:
        """Return the credential of ``username`` valid at ``now``, or ``None``."""
        ...


class StaticUsers:
    """Accept a fixed table of usernames and passwords (long-term credentials).

    :param users: ``{username: password}``.
    """

    def __init__(self, users: dict[str, str]) -> None:
        self._passwords = dict(users)

    def credential(self, username: str, realm: str, now: float) -> Credential | None:
        """Return the credential of a known username, else ``None``."""
        password = self._passwords.get(username)
        if password is None:
            return None
        return Credential(username, long_term_key(username, realm, password))


def rest_password(secret: str, username: str) -> str:
    """Return ``base64(HMAC-SHA1(secret, username))``, the TURN REST API password."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class SharedSecretUsers:
    """Accept ``<expiry>:<user>`` usernames whose password is an HMAC of a shared secret.

    The TURN REST API convention (coturn ``--use-auth-secret``).  A username
    whose leading timestamp is past, or not a number, is refused.

    :param secret: the shared secret (``--static-auth-secret``).
    """

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def credential(self, username: str, realm: str, now: float) -> Credential | None:
        """Return the credential if the username's expiry is in the future."""
        stamp = username.split(":", 1)[0]
        if not stamp.isdigit() or int(stamp) < now:
            return None
        password = rest_password(self._secret, username)
        return Credential(username, long_term_key(username, realm, password), float(stamp))


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """What ``generate-ice-servers`` hands out: a username, its credential, its expiry."""

    username: str
    credential: str
    expires: float


def key_tag(key_id: str) -> bytes:
    """Return the 8-byte tag naming a TURN key inside its usernames."""
    return hashlib.sha256(key_id.encode()).digest()[:8]


def _signing_key(token: str) -> bytes:
    return hashlib.sha256(b"realtime-turn\0" + token.encode()).digest()


def turn_key_credential(token: str, username: str) -> str:
    """Return the credential (password) of ``username`` under a TURN key's ``token``."""
    return hmac.new(_signing_key(token), username.encode(), hashlib.sha384).hexdigest()


class TurnKeyCredentials:
    """Issue and verify the ephemeral credentials of TURN keys; remember revocations.

    :param keys: ``{key_id: token}`` of the TURN keys.
    :param random: the random source (``os.urandom``), injected for tests.
    :param unknown_key: called when a well-formed username names a key not known
        here (``--cluster``: another node's key, learned from the directory soon after).
    """

    def __init__(self, keys: dict[str, str] | None = None,
                 random: Callable[[int], bytes] = os.urandom,
                 unknown_key: Callable[[], object] | None = None) -> None:
        self._unknown_key = unknown_key
        self._tokens: dict[str, str] = {}
        self._by_tag: dict[bytes, str] = {}
        self._revoked: dict[str, float] = {}
        self._custom: dict[str, str] = {}
        self._random = random
        for key_id, token in (keys or {}).items():
            self.add_key(key_id, token)

    def add_key(self, key_id: str, token: str) -> None:
        """Accept credentials issued under ``key_id`` from now on."""
        self._tokens[key_id] = token
        self._by_tag[key_tag(key_id)] = key_id

    def has_key(self, key_id: str) -> bool:
        """Return True if ``key_id`` is a known TURN key."""
        return key_id in self._tokens

    def issue(self, key_id: str, ttl: int, now: float,
              custom_identifier: str = "") -> IssuedCredential:
        """Return a fresh credential of ``key_id`` valid for ``ttl`` seconds (at most 48 h).

        :raises KeyError: ``key_id`` is unknown.
        :raises ValueError: ``ttl`` is not in 1..172800.
        """
        token = self._tokens[key_id]
        if not 0 < ttl <= MAX_TTL:
            raise ValueError(f"ttl {ttl} is not between 1 and {MAX_TTL} seconds")
        expires = int(now) + int(ttl)
        raw = expires.to_bytes(8, "big") + key_tag(key_id) + self._random(32)
        username = raw.hex()
        if custom_identifier:
            self._custom[username] = custom_identifier
        return IssuedCredential(username, turn_key_credential(token, username), float(expires))

    def remember_custom_identifier(self, username: str, custom_identifier: str) -> None:
        """Record the ``customIdentifier`` a stored credential was issued with."""
        self._custom[username] = custom_identifier

    def revoke(self, username: str, now: float) -> bool:
        """Refuse ``username`` from now on; return False if it is not ours or expired."""
        parsed = self._parse(username)
        if parsed is None or parsed[0] < now:
            return False
        self._revoked[username] = parsed[0]
        return True

    def expiry(self, username: str) -> float | None:
        """Return when ``username`` (a credential of a known key) expires, or ``None``."""
        parsed = self._parse(username)
        return None if parsed is None else parsed[0]

    def is_revoked(self, username: str) -> bool:
        """Return True if ``username`` was revoked."""
        return username in self._revoked

    def forget_expired(self, now: float) -> None:
        """Drop revocations and custom identifiers of usernames past their expiry."""
        for table in (self._revoked,):
            for username in [u for u, expiry in table.items() if expiry < now]:
                del table[username]
        for username in [u for u in self._custom if (p := self._parse(u)) is None or p[0] < now]:
            del self._custom[username]

    def _parse(self, username: str) -> tuple[float, str] | None:
        if len(username) != 96:
            return None
        try:
            raw = bytes.fromhex(username)
        except ValueError:
            return None
        key_id = self._by_tag.get(raw[8:16])
        if key_id is None:
            return None
        return float(int.from_bytes(raw[:8], "big")), key_id

    def credential(self, username: str, realm: str, now: float) -> Credential | None:
        """Return the credential of a well-formed, unexpired, unrevoked username of a known key."""
        parsed = self._parse(username)
        if parsed is None:
            if self._unknown_key is not None and len(username) == 96:
                self._unknown_key()
            return None
        if parsed[0] < now or username in self._revoked:
            return None
        expires, key_id = parsed
        password = turn_key_credential(self._tokens[key_id], username)
        return Credential(username, long_term_key(username, realm, password), expires,
                          key_id, self._custom.get(username, ""))


class CredentialChain:
    """Ask several authenticators in turn; the first that knows the username wins."""

    def __init__(self, authenticators: Iterable[Authenticator]) -> None:
        self.authenticators = tuple(authenticators)

    def credential(self, username: str, realm: str, now: float) -> Credential | None:
        """Return the first credential found for ``username``, or ``None``."""
        for authenticator in self.authenticators:
            found = authenticator.credential(username, realm, now)
            if found is not None:
                return found
        return None


class NonceIssuer:
    """Mint and check stateless nonces bound to a client host and an expiry.

    :param secret: the HMAC key (random per server start is fine: a restart
        only makes clients retry once with 438).
    :param lifetime: seconds a nonce stays valid (coturn uses 600).
    """

    def __init__(self, secret: bytes, lifetime: float = 600.0) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def _mac(self, stamp: str, host: str) -> str:
        return hmac.new(self._secret, f"{stamp}|{host}".encode(), hashlib.sha256).hexdigest()[:24]

    def issue(self, host: str, now: float) -> str:
        """Return a nonce for ``host`` that expires ``lifetime`` seconds after ``now``."""
        stamp = f"{int(now + self.lifetime) & 0xFFFFFFFF:08x}"
        return stamp + self._mac(stamp, host)

    def check(self, nonce: str, host: str, now: float) -> bool:
        """Return True if ``nonce`` was issued to ``host`` and has not expired."""
        if len(nonce) != 32:
            return False
        stamp = nonce[:8]
        try:
            expiry = int(stamp, 16)
        except ValueError:
            return False
        if not hmac.compare_digest(self._mac(stamp, host), nonce[8:]):
            return False
        return expiry >= now


class AnyNonce:
    """Accept every nonce (capture replay, where the nonces are coturn's); issue a fixed one."""

    def issue(self, host: str, now: float) -> str:
        """Return ``"replay-nonce"``."""
        return "replay-nonce"

    def check(self, nonce: str, host: str, now: float) -> bool:
        """Return True."""
        return True
