"""
A :class:`~realtime.api.app.RealtimeAPI` composed for tests the way ``makeService`` composes it.

Real collaborators on a ``task.Clock``: a :class:`~realtime.net.peers.PeerHost`
without a port, a switchboard whose sessions are metered, the limiters.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import TimerService
from twisted.internet.task import Clock

from realtime.api.app import RealtimeAPI
from realtime.api.sessions import COLLECT_INTERVAL
from realtime.api.usage import SfuUsage
from realtime.net.peers import PeerHost
from realtime.net.router import BindingRouter
from realtime.sfu.limits import RateLimiter
from realtime.sfu.switchboard import Switchboard
from realtime.storage import ServerConfig, StateStore
from tests.sfu.client import certificate


def compose(store: StateStore, config: ServerConfig, clock: Clock, **given: Any) -> RealtimeAPI:
    """Return an API over real collaborators; ``given`` replaces any (``turn=``, ``api_class=``)."""
    api_class = given.pop("api_class", RealtimeAPI)
    usage = given.pop("usage", None) or SfuUsage(store)
    board = given.pop("switchboard", None) or Switchboard()
    board.observers.append(usage.meter.observe)
    collaborators: dict[str, Any] = {
        "peers": PeerHost(clock, BindingRouter(), certificate=certificate()),
        "rate_limiter": RateLimiter(),
        "session_limiter": RateLimiter(config.session_rate, config.session_burst,
                                       max_keys=10_000),
        **given,
    }
    return api_class(store, config, clock, switchboard=board, usage=usage, **collaborators)


def finish(treq: Any, clock: Clock, deferred: Any, wait: float = 0.0) -> tuple[Any, bytes]:
    """Run a StubTreq request to its end, advancing ``clock`` up to ``wait`` seconds in
    50 ms steps while it is pending; return (response, body bytes)."""
    results: list = []
    deferred.addBoth(results.append)
    steps = 0
    while True:
        treq.flush()
        if results or steps * 0.05 > wait:
            break
        clock.advance(0.05)
        steps += 1
    assert results, "request did not finish"
    response = results[0]
    content: list = []
    response.content().addBoth(content.append)
    treq.flush()
    return response, content[0]


def collector(api: RealtimeAPI, clock: Clock) -> TimerService:
    """Return the ``sfu-collect`` service of ``makeService``, started on ``clock``."""
    timer = TimerService(COLLECT_INTERVAL, api.sessions.collect)
    timer.clock = clock
    timer.startService()
    return timer
