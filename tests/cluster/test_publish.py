"""ClusterSessions against a real redis-server: an ended session is forgotten only by its owner."""

from __future__ import annotations

from dataclasses import replace

import pytest_twisted
from twisted.internet import reactor

from realtime.cluster.directory import Directory
from realtime.cluster.keys import Keys
from realtime.cluster.publish import ClusterSessions
from tests.cluster.test_directory import SESSION


@pytest_twisted.ensureDeferred
async def test_only_the_owner_forgets_a_session(redis_server) -> None:
    directory = Directory(reactor, redis_server.address, Keys("rt"))
    await directory.start()
    try:
        a = ClusterSessions(directory, "a", reactor)
        b = ClusterSessions(directory, "b", reactor)
        await directory.put_session(replace(SESSION, owner_node="b"))   # b took it over
        assert await a.forget(SESSION.session_id) is False                # a's copy ended
        assert await directory.get_session(SESSION.session_id) is not None
        assert await b.forget(SESSION.session_id) is True                 # b's call ended
        assert await directory.get_session(SESSION.session_id) is None
        assert await directory.session_for_ufrag(SESSION.ice_ufrag) is None
        assert await a.forget("unknown") is False
    finally:
        await directory.stop()
