"""
Where the cluster directory lives: ``--cluster redis://HOST:PORT[/DB]``.

Two URL forms are accepted (the scheme registered by IANA for Redis,
``redis://``, and the Unix-socket form the private launcher of ``--workers``
uses)::

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]     TCP, port 6379 by default
    unix://[[USER]:PASSWORD@]/PATH/TO/redis.sock[?db=DB]

The password comes from the URL or, when the URL has none, from the
environment variable :data:`PASSWORD_VARIABLE`.  It is never logged:
:meth:`RedisAddress.redacted` is what error messages and the log show, and
``repr`` hides it too.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

#: Environment variable holding the Redis password when the URL carries none.
PASSWORD_VARIABLE = "REALTIME_REDIS_PASSWORD"

_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class BadRedisUrl(ValueError):
    """Raised when a ``--cluster`` URL cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """A parsed Redis URL: a TCP host and port or a Unix socket, a database, credentials."""

    host: str | None = None
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def redacted(self, mask: str = "***") -> str:
        """Return the URL with the password replaced by ``mask`` (safe to log).

        ``mask=""`` gives the URL without its password (``--workers`` hands that
        to each worker and the password through ``REALTIME_REDIS_PASSWORD``).
        """
        user = self.username or ""
        auth = f"{user}:{mask}@" if self.password and mask else (f"{user}@" if user else "")
        if self.unix_path is not None:
            query = f"?db={self.db}" if self.db else ""
            return f"unix://{auth}{self.unix_path}{query}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        path = f"/{self.db}" if self.db else ""
        return f"redis://{auth}{host}:{self.port}{path}"


def parse_redis_url(url: str, environ: dict[str, str] | None = None) -> RedisAddress:
    """Parse ``redis://`` or ``unix://`` URL ``url``; raise :class:`BadRedisUrl` if unusable.

    :param environ: where to find :data:`PASSWORD_VARIABLE` (``os.environ`` in the service).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BadRedisUrl(f"{_shown(url)!r} is not a URL: {error}") from None
    password = unquote(parts.password) if parts.password else None
    if password is None and environ:
        password = environ.get(PASSWORD_VARIABLE) or None
    username = unquote(parts.username) if parts.username else None
    if parts.fragment:
        raise BadRedisUrl(f"{_shown(url)!r} has a fragment; expected redis://HOST:PORT[/DB]")
    if parts.scheme == "redis":
        return _tcp(url, parts, port, username, password)
    if parts.scheme == "unix":
        if not parts.path.startswith("/") or parts.hostname:
            raise BadRedisUrl(f"{_shown(url)!r}: a unix URL is unix:///ABSOLUTE/PATH.sock")
        query = parse_qs(parts.query, strict_parsing=False)
        db = _db(url, query.get("db", ["0"])[-1])
        return RedisAddress(unix_path=parts.path, db=db, username=username, password=password)
    raise BadRedisUrl(
        f"{_shown(url)!r}: scheme must be redis:// (or unix:// for a socket), "
        "e.g. redis://127.0.0.1:6379/0"
    )


def _tcp(url, parts, port, username, password) -> RedisAddress:
    host = parts.hostname
    if not host:
        raise BadRedisUrl(f"{_shown(url)!r} has no host; expected redis://HOST:PORT[/DB]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.fullmatch(host):
            raise BadRedisUrl(f"{_shown(url)!r}: {host!r} is not a host name") from None
    if port == 0:
        raise BadRedisUrl(f"{_shown(url)!r}: port 0 is not a Redis port")
    if parts.query:
        raise BadRedisUrl(f"{_shown(url)!r} has a query; expected redis://HOST:PORT[/DB]")
    path = parts.path.strip("/")
    db = _db(url, path) if path else 0
    return RedisAddress(host=host, port=port or 6379, db=db, username=username, password=password)


def _db(url: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise BadRedisUrl(f"{_shown(url)!r}: database {text!r} is not a number (0-15 by default)")
    return int(text)


def _shown(url: str) -> str:
    """Return ``url`` with any password masked, for error messages."""
    try:
        parts = urlsplit(url)
        if parts.password:
            return url.replace(":" + parts.password + "@", ":***@", 1)
    except ValueError:
        pass
    return re.sub(r":[^:@/]*@", ":***@", url)
