"""
Which API calls a node forwards, and the proof a forwarded call carries (pure, no I/O).

Any node answers any API call (issue 12 item 3): a call for a session this node
does not hold goes to the session's owner (:mod:`realtime.cluster.forward`).
This module holds the two decisions that need no socket:

* :func:`session_target` -- does a request name one session?  The session
  routes of the Cloudflare-compatible API (docs/cloudflare-api.md §1.2) and a
  usage query narrowed to one session::

      /v1/apps/{appId}/sessions/{sessionId}[/...]       (also /apps/{appId}/...)
      /v1/apps/{appId}/usage?sessionId={sessionId}

  ``sessions/new`` names no session: it is served where it lands.

* :class:`ForwardProof` -- the header that proves a request comes from a
  member of the cluster.  Every node derives one key from the cluster secret
  (``REALTIME_CLUSTER_SECRET``), separate from the relay link's keys::

      key = HMAC-SHA256(secret, "realtime api forward v1")
      Realtime-Forwarded: node=<sender>; t=<unix ms>; n=<nonce>; mac=<hex>
      mac = HMAC-SHA256(key, sender \\n t \\n nonce \\n METHOD \\n request-URI \\n
                             Authorization \\n hex(SHA-256(body)))

  The owner recomputes the MAC over the request it received (RFC 2104;
  compared with :func:`hmac.compare_digest`), refuses a time more than
  :data:`WINDOW` seconds from its own clock, and refuses a MAC it has already
  accepted within that window (a captured request replayed as is).  The nonce
  (64 random bits) keeps two identical calls forwarded in one millisecond apart.  The MAC
  covers the client's ``Authorization`` header and the body, so a forwarded
  request cannot be re-aimed at another app or session or given another body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

#: The request header carrying the proof (lower case, as Twisted stores headers).
HEADER = b"realtime-forwarded"
#: Seconds a proof stays valid either side of the receiver's clock (nodes run NTP).
WINDOW = 30.0
#: Accepted MACs remembered against replay; past this the oldest are forgotten.
MAX_REMEMBERED = 65536

_INFO = b"realtime api forward v1"
_PROOF = re.compile(
    rb"node=([A-Za-z0-9._-]{1,64}); t=(\d{1,16}); n=([0-9a-f]{16}); mac=([0-9a-f]{64})")
_PREFIXES = ((b"v1", b"apps"), (b"apps",))
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class SessionTarget:
    """The app and session a request is about."""

    app_id: str
    session_id: str


def session_target(path: bytes, args: dict[bytes, list[bytes]]) -> SessionTarget | None:
    """Return the session ``path`` (and its query ``args``) names, or ``None``.

    ``None`` for every other route (``sessions/new``, ``echo/new``, ``/usage``
    without ``sessionId``, TURN, OpenAPI) and for ids that are not plain text:
    those requests are served by the node they reach.
    """
    parts = path.split(b"/")
    if not parts or parts[0] != b"":
        return None
    parts = parts[1:]
    for prefix in _PREFIXES:
        if tuple(parts[:len(prefix)]) == prefix:
            rest = parts[len(prefix):]
            break
    else:
        return None
    if len(rest) >= 3 and rest[1] == b"sessions" and rest[2] not in (b"new", b""):
        session = rest[2]
    elif len(rest) == 4 and rest[1] in (b"ingest", b"play") and rest[3]:
        session = rest[3]               # a WHIP/WHEP resource: its id is the session's
    elif len(rest) == 2 and rest[1] == b"usage" and args.get(b"sessionId", [b""])[0]:
        session = args[b"sessionId"][0]
    else:
        return None
    try:
        app_id, session_id = rest[0].decode("ascii"), session.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not (_SESSION_ID.fullmatch(app_id) and _SESSION_ID.fullmatch(session_id)):
        return None
    return SessionTarget(app_id, session_id)


class ForwardProof:
    """Sign forwarded requests and check the proof on the receiving side.

    :param secret: the cluster secret every node shares.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _INFO, hashlib.sha256).digest()
        self._accepted: dict[bytes, float] = {}
        #: proofs refused, by reason (``missing``, ``malformed``, ``stale``, ``mac``, ``replay``)
        self.refused: dict[str, int] = {}

    def _mac(self, node_id: bytes, stamp: bytes, nonce: bytes, method: bytes, uri: bytes,
             authorization: bytes | None, body: bytes) -> bytes:
        message = b"\n".join((node_id, stamp, nonce, method, uri, authorization or b"",
                              hashlib.sha256(body).hexdigest().encode()))
        return hmac.new(self._key, message, hashlib.sha256).hexdigest().encode()

    def sign(self, node_id: str, now: float, method: bytes, uri: bytes,
             authorization: bytes | None, body: bytes, nonce: bytes | None = None) -> bytes:
        """Return the :data:`HEADER` value for a request ``node_id`` forwards at ``now``.

        :param nonce: 16 hex digits (default: random).
        """
        stamp = str(int(now * 1000)).encode()
        nonce = secrets.token_hex(8).encode() if nonce is None else nonce
        mac = self._mac(node_id.encode(), stamp, nonce, method, uri, authorization, body)
        return b"node=%s; t=%s; n=%s; mac=%s" % (node_id.encode(), stamp, nonce, mac)

    def verify(self, proof: bytes | None, now: float, method: bytes, uri: bytes,
               authorization: bytes | None, body: bytes) -> str | None:
        """Return the sending node's id if ``proof`` is valid for this request, else ``None``."""
        if proof is None:
            return self._refuse("missing")
        match = _PROOF.fullmatch(proof)
        if match is None:
            return self._refuse("malformed")
        node_id, stamp, nonce, mac = match.groups()
        if abs(int(stamp) / 1000 - now) > WINDOW:
            return self._refuse("stale")
        expected = self._mac(node_id, stamp, nonce, method, uri, authorization, body)
        if not hmac.compare_digest(expected, mac):
            return self._refuse("mac")
        self._forget(now)
        if mac in self._accepted:
            return self._refuse("replay")
        self._accepted[mac] = now + 2 * WINDOW
        return node_id.decode()

    def _forget(self, now: float) -> None:
        """Drop remembered MACs past their window (insertion order is expiry order)."""
        accepted = self._accepted
        while accepted:
            mac, expiry = next(iter(accepted.items()))
            if expiry > now and len(accepted) < MAX_REMEMBERED:
                break
            del accepted[mac]

    def _refuse(self, reason: str) -> str | None:
        """Count a refusal by ``reason``; return ``None`` (no sender)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        return None
