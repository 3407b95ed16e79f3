"""
The Twisted side of :mod:`realtime.cluster.lookup`: ask the directory about unknown ufrags.

The media router calls :meth:`SessionFinder.check_arrived` for a STUN check
whose ufrag names no local session (today it drops those; wiring the call is
the next step, see ``docs/cluster.md``).  The finder asks
:meth:`~realtime.cluster.directory.Directory.session_for_ufrag` once per
ufrag, and when the session exists calls ``on_found(record, held_checks)``:
the caller builds the session from the record and routes the held checks to
it.  Nothing here runs per media packet, only for checks of unknown ufrags.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred

from realtime.cluster.client import DirectoryUnavailable
from realtime.cluster.directory import Directory
from realtime.cluster.lookup import Address, SessionLookups
from realtime.cluster.records import SessionRecord

FoundCallback = Callable[[SessionRecord, list[tuple[bytes, Address]]], None]


class SessionFinder:
    """Run :class:`SessionLookups` against the directory, with one timer.

    :param on_found: called with the session record and the checks held for it.
    """

    def __init__(self, directory: Directory, reactor, on_found: FoundCallback,
                 lookups: SessionLookups | None = None) -> None:
        self.directory = directory
        self.reactor = reactor
        self.on_found = on_found
        self.lookups = lookups or SessionLookups()
        self._timer = None
        #: Lookups started, and lookups that found a session.
        self.started = 0
        self.found = 0

    def check_arrived(self, ufrag: str, data: bytes, addr: Address) -> None:
        """Take a check for an unknown ``ufrag``; look it up unless one lookup is running."""
        if self.lookups.check_arrived(ufrag, data, addr, self.reactor.seconds()):
            self.started += 1
            Deferred.fromCoroutine(self._lookup(ufrag))
        self._arm()

    async def _lookup(self, ufrag: str) -> None:
        try:
            record = await self.directory.session_for_ufrag(ufrag)
        except DirectoryUnavailable:
            self.lookups.lookup_failed(ufrag)
        else:
            held = self.lookups.lookup_finished(ufrag, record is not None, self.reactor.seconds())
            if record is not None and held:
                self.found += 1
                self.on_found(record, held)
        self._arm()

    def _arm(self) -> None:
        deadline = self.lookups.get_timer()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self.reactor.seconds())
            self._timer = self.reactor.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self.lookups.handle_timer(self.reactor.seconds())
        self._arm()

    def stop(self) -> None:
        """Cancel the timer (held checks are simply forgotten)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
