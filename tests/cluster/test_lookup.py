"""Holding first checks of unknown sessions: the machine alone, then against a real redis-server."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from realtime.cluster.directory import Directory
from realtime.cluster.finder import SessionFinder
from realtime.cluster.keys import Keys
from realtime.cluster.lookup import SessionLookups
from tests.cluster.test_directory import SESSION

ADDR = ("192.0.2.1", 5000)


def test_one_lookup_per_ufrag_and_held_checks_released() -> None:
    lookups = SessionLookups()
    assert lookups.check_arrived("U", b"1", ADDR, 0.0) is True
    assert lookups.check_arrived("U", b"2", ADDR, 0.01) is False
    assert lookups.check_arrived("V", b"3", ADDR, 0.02) is True
    assert lookups.lookup_finished("U", True, 0.1) == [(b"1", ADDR), (b"2", ADDR)]
    assert lookups.pending == 1 and lookups.get_timer() == 1.02


def test_a_miss_is_remembered_for_a_while() -> None:
    lookups = SessionLookups(negative_ttl=2.0)
    lookups.check_arrived("U", b"1", ADDR, 0.0)
    assert lookups.lookup_finished("U", False, 0.1) == []
    assert lookups.check_arrived("U", b"2", ADDR, 1.0) is False     # refused without asking
    assert lookups.dropped == {"unknown": 2}
    assert lookups.check_arrived("U", b"3", ADDR, 2.2) is True      # asked again later


def test_bounds() -> None:
    lookups = SessionLookups(max_pending=2, held_per_ufrag=2)
    for ufrag in "ABC":
        lookups.check_arrived(ufrag, b"x", ADDR, 0.0)
    for _ in range(3):
        lookups.check_arrived("A", b"y", ADDR, 0.0)
    assert lookups.pending == 2
    assert lookups.dropped == {"pending_full": 1, "held_full": 2}


def test_timeout_and_directory_loss_drop_without_remembering() -> None:
    lookups = SessionLookups(timeout=1.0)
    lookups.check_arrived("U", b"1", ADDR, 0.0)
    lookups.check_arrived("V", b"2", ADDR, 0.5)
    lookups.handle_timer(lookups.get_timer())
    assert lookups.lookup_finished("U", True, 1.1) == []            # too late
    lookups.lookup_failed("V")
    assert lookups.dropped == {"timeout": 1, "directory_unavailable": 1}
    assert lookups.check_arrived("V", b"3", ADDR, 1.2) is True      # no negative memory
    assert lookups.get_timer() == 2.2


def sleep(seconds: float) -> Deferred:
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest_twisted.ensureDeferred
async def test_finder_learns_a_session_from_redis(redis_server) -> None:
    directory = Directory(reactor, redis_server.address, Keys("l"))
    await directory.start()
    found = []
    finder = SessionFinder(directory, reactor, lambda record, held: found.append((record, held)))
    try:
        await directory.put_session(SESSION)
        for i in range(3):                                  # a burst of checks, one lookup
            finder.check_arrived(SESSION.ice_ufrag, bytes([i]), ADDR)
        finder.check_arrived("nobody", b"x", ADDR)
        for _ in range(100):
            if found and finder.lookups.pending == 0:
                break
            await sleep(0.01)
        assert found == [(SESSION, [(b"\x00", ADDR), (b"\x01", ADDR), (b"\x02", ADDR)])]
        assert (finder.started, finder.found) == (2, 1)
        assert finder.lookups.dropped == {"unknown": 1}
    finally:
        finder.stop()
        await directory.stop()


def test_a_flood_of_random_ufrags_is_rate_limited() -> None:
    """At most ``max_rate`` lookups a second (burst one second's worth), whatever arrives."""
    lookups = SessionLookups(max_rate=100.0, max_pending=10_000)
    started = sum(lookups.check_arrived(f"u{i}", b"x", ADDR, 0.0) for i in range(500))
    assert started == 100 and lookups.dropped["rate_limited"] == 400
    started = sum(lookups.check_arrived(f"v{i}", b"x", ADDR, 0.5) for i in range(500))
    assert started == 50                          # half a second refilled half the bucket
    started = sum(lookups.check_arrived(f"w{i}", b"x", ADDR, 10.0) for i in range(500))
    assert started == 100                         # never more than the burst
