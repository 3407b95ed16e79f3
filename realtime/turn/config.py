"""
The TURN server's knobs (RFC 8656 defaults, Cloudflare's published limits).

Kept apart from :mod:`realtime.turn.server` so that the method handlers
(:mod:`realtime.turn.methods`) can read them without importing the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from realtime.turn.allocation import Limits


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """The server's knobs; defaults follow RFC 8656 and Cloudflare's published limits.

    :ivar realm: the REALM of long-term credentials.
    :ivar software: the SOFTWARE attribute of responses (None: omit).
    :ivar default_lifetime: allocation lifetime when none (or less) is asked (§7.2: 600 s).
    :ivar max_lifetime: the longest lifetime granted (3600 s).
    :ivar max_allocations_per_user: allocations one username may hold (486 past it).
    :ivar max_allocations: allocations in all (508 past it).
    :ivar reservation_lifetime: seconds an EVEN-PORT R reservation is held (§7.2: 30 s).
    :ivar credential_grace: seconds between a credential going bad and deletion.
    :ivar limits: per-allocation rate limits.
    :ivar unauthorized_rate: 401 answers per second per client host to requests whose
        MESSAGE-INTEGRITY failed (unknown user, wrong key); challenges are not counted.
    :ivar unauthorized_burst: such 401 answers a host may get in a burst.
    """

    realm: str = "realtime"
    software: str | None = "realtime"
    default_lifetime: float = 600.0
    max_lifetime: float = 3600.0
    max_allocations_per_user: int = 16
    max_allocations: int = 50000
    reservation_lifetime: float = 30.0
    credential_grace: float = 10.0
    limits: Limits = field(default_factory=Limits)
    unauthorized_rate: float = 10.0
    unauthorized_burst: float = 64.0
