"""ClusterAccounts against a real redis-server: usage sums, hostile values, Redis away."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor

from realtime.api.errors import ApiError
from realtime.cluster.accounts import ClusterAccounts
from realtime.cluster.directory import Directory
from realtime.cluster.keys import Keys
from realtime.storage import App, TurnKey

USER_A, USER_B = "a" * 96, "b" * 96
#: a recent minute (older than the 31 days kept are pruned at each write)
M = int(reactor.seconds()) // 60 * 60 - 3600


async def accounts(redis_server, node: str = "n1") -> ClusterAccounts:
    directory = Directory(reactor, redis_server.address, Keys("t"))
    await directory.start()
    return ClusterAccounts(directory, node, reactor)


@pytest_twisted.ensureDeferred
async def test_usage_of_two_nodes_is_summed_per_minute_user_and_identifier(redis_server) -> None:
    one, two = await accounts(redis_server, "n1"), await accounts(redis_server, "n2")
    try:
        one.record_usage([("k", USER_A, "alice", M, 100, 10), ("k", USER_A, "alice", M + 60, 1, 2)])
        two.record_usage([("k", USER_B, "", M, 1000, 20)])
        two.issued(USER_B, "bob", 1e10)   # issued through n2's API: n1's rows get it too
        await two.usage("k", 0, 1)         # (after the SET on n2's connection)
        one.record_usage([("k", USER_B, "", M, 5, 5), ("other", USER_A, "", M, 7, 7)])
        assert await one.usage("k", 0, M + 600) == [(M, 1105, 35), (M + 60, 1, 2)]
        assert await two.usage("k", 0, M + 600, username=USER_B) == [(M, 1005, 25)]
        assert await two.usage("k", 0, M + 600, custom_identifier="alice") == [
            (M, 100, 10), (M + 60, 1, 2)]
        assert await one.usage("k", 0, M + 600, custom_identifier="bob") == [(M, 5, 5)]
        assert await one.usage("k", M + 1, M + 600) == [(M + 60, 1, 2)]
        assert await one.usage("nothing", 0, 600) == []
    finally:
        await one.directory.stop()
        await two.directory.stop()


@pytest_twisted.ensureDeferred
async def test_hostile_directory_values_are_ignored(redis_server) -> None:
    one = await accounts(redis_server)
    try:
        redis = one.directory.redis
        await redis.execute("SADD", "t:turn-keys", "bad", "mismatch", "good")
        await redis.execute("SET", "t:turn-key:bad", b"\xff{not json")
        await redis.execute("SET", "t:turn-key:mismatch", b'{"key_id":"x","token":"t","created":1}')
        await one.publish([App("app1", "s" * 16)], [TurnKey("good", "t" * 16)])
        assert [k.key_id for k in await one.turn_keys()] == ["good"]
        assert one.directory.corrupt_records == 1
        await redis.execute("ZADD", "t:turn-usage-minutes:k", 60, b"junk", 120, 120)
        await redis.execute("HSET", "t:turn-usage:k:120", "i", b"lots", "e", 3)
        assert await one.usage("k", 0, 600) == [(120, 0, 3)]
        await redis.execute("SET", "t:app:evil", b"[]")
        assert await one.fetch_app("evil") is None
        assert (await one.fetch_app("app1")).secret == "s" * 16
        assert one.shared_app("app1").secret == "s" * 16
    finally:
        await one.directory.stop()


@pytest_twisted.ensureDeferred
async def test_usage_written_while_redis_is_away_is_kept_for_later(redis_server) -> None:
    one = await accounts(redis_server)
    try:
        redis_server.kill()
        one.record_usage([("k", USER_A, "", M, 10, 1)])
        with pytest.raises(ApiError) as raised:
            await one.usage("k", 0, 600)
        assert raised.value.status == 503
        assert len(one._pending) == 1
        redis_server.restart()
        for _ in range(100):
            if one.directory.available:
                break
            await _sleep(0.05)
        assert await one.usage("k", 0, M + 600) == [(M, 10, 1)]
    finally:
        await one.directory.stop()


def _sleep(seconds: float):
    from twisted.internet.defer import Deferred
    d: Deferred = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest_twisted.ensureDeferred
async def test_a_turn_request_for_an_unknown_key_has_the_keys_read_within_a_second(
        redis_server, tmp_path) -> None:
    from realtime.api.turn import TurnKeys
    from realtime.cluster.accounts import AccountSync
    from realtime.storage import StateStore
    from realtime.turn.credentials import TurnKeyCredentials

    other, here = await accounts(redis_server, "n2"), None
    store = StateStore(tmp_path / "state.sqlite3")
    sync = None
    try:
        here = ClusterAccounts(other.directory, "n1", reactor,
                               on_key_miss=lambda: sync.sync_soon())
        credentials = TurnKeyCredentials(unknown_key=here.key_missed)
        turn = TurnKeys(store, [TurnKey("mine", "m" * 16)], credentials)
        sync = AccountSync(here, lambda: [], turn, interval=60)  # no periodic help
        sync.startService()
        while sync.synced == 0:
            await _sleep(0.02)
        # another node's key, written after this node's sync
        await other.publish([], [TurnKey("theirs", "t" * 16)])
        username = TurnKeyCredentials({"theirs": "t" * 16}).issue("theirs", 600, 1e9).username
        assert credentials.credential(username, "realm", 1e9) is None  # 401 for this one
        assert here.key_misses == 1
        started = reactor.seconds()
        while credentials.credential(username, "realm", 1e9) is None:
            assert reactor.seconds() - started < 2.0, "the miss did not bring a sync"
            await _sleep(0.05)
        assert "theirs" in turn.keys
        misses = here.key_misses
        assert misses > 2  # every polled request above asked ...
        assert sync.synced <= 3  # ... but at most one sync a second followed
        assert credentials.credential("short", "realm", 1e9) is None  # not ours: no miss
        assert here.key_misses == misses
    finally:
        if sync is not None:
            sync.stopService()
        store.close()
        await other.directory.stop()
