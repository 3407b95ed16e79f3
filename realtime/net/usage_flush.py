"""
The periodic usage flush: counters in memory -> rows in the state store.

The SFU counts usage with integer adds on objects it has anyway
(:mod:`realtime.sfu.usage`); this service turns those counters into SQLite
rows on a timer, and once more on the way down so a restart loses nothing::

    startService ──> LoopingCall(flush, clock.seconds()) every INTERVAL s
                         │   (first run one INTERVAL after start)
                         v
                     flush(now): drain the meter, sum rows into the store
    stopService  ──> stop the loop, flush(now) one last time
                     (RealtimeService closes the store only after its children stopped)

A failing flush (a full disk, a locked database) is logged and the loop
goes on; the counts stay in memory until a later flush succeeds.
"""

from __future__ import annotations

from typing import Callable

from twisted.application.service import Service
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()

#: seconds between flushes
INTERVAL = 10.0


class UsageFlush(Service):
    """Call ``flush(now)`` every ``interval`` seconds while running, and on stop.

    :param flush: writes the usage counted so far (:meth:`realtime.api.usage.SfuUsage.flush`
        or :meth:`realtime.api.turn.TurnKeys.flush`).
    :param clock: the reactor's clock (``task.Clock`` in tests).
    :param interval: seconds between flushes.
    """

    name = "usage-flush"

    def __init__(self, flush: Callable[[float], object], clock: IReactorTime,
                 interval: float = INTERVAL) -> None:
        self.flush = flush
        self.clock = clock
        self.interval = interval
        self.loop: task.LoopingCall | None = None

    def startService(self) -> None:
        """Start flushing every :attr:`interval` seconds (first flush after one interval)."""
        super().startService()  # type: ignore[no-untyped-call]  # Twisted's Service
        self.loop = task.LoopingCall(self.run)
        self.loop.clock = self.clock
        self.loop.start(self.interval, now=False)

    def stopService(self) -> Deferred[None] | None:
        """Stop the loop and flush once more, so nothing counted is lost."""
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None
        self.run()
        return super().stopService()  # type: ignore[no-untyped-call]  # Twisted's Service

    def run(self) -> None:
        """Flush now; log (never raise) a failure, keeping the counts for the next run."""
        try:
            self.flush(self.clock.seconds())
        except Exception:
            log.failure("usage flush failed; the counts stay in memory")
