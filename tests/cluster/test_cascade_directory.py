"""Cascading trees in a real redis-server (realtime/cluster/cascade.py): compare-and-set, races,
departed nodes, hostile hashes, reparent notices."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from realtime.cluster.cascade import SCRIPT, TreeDirectory
from realtime.cluster.directory import Directory
from realtime.cluster.keys import Keys
from realtime.cluster.records import NodeRecord


async def started(redis_server) -> Directory:
    directory = Directory(reactor, redis_server.address, Keys("t"))
    await directory.start()
    return directory


async def register(directory: Directory, *nodes: str, load: float = 0.0) -> None:
    for node in nodes:
        await directory.heartbeat(NodeRecord(node, "127.0.0.1:1", "127.0.0.1:2", load, 0.0))


async def stored(directory: Directory, name: str = "cam") -> dict[str, str]:
    raw = await directory.redis.execute("HGETALL", directory.keys.tree("s1", name))
    return {k.decode(): v.decode() for k, v in zip(raw[0::2], raw[1::2])}


@pytest_twisted.ensureDeferred
async def test_attach_detach_and_reparent_notices(redis_server) -> None:
    directory = await started(redis_server)
    notices = []
    try:
        await register(directory, "a", "b", "c", "d")
        trees = {n: TreeDirectory(directory, n, fanout=1,
                                  notify=lambda *args, n=n: notices.append((n, *args)))
                 for n in "bcd"}
        for node in "bcd":
            tree = await trees[node].change("s1", "cam", "a", "attach")
            assert node in tree
        assert await stored(directory) == {"b": "a", "c": "b", "d": "c", "~v": "3"}
        assert await trees["d"].parent_of("s1", "cam") == "c"
        assert await trees["d"].change("s1", "cam", "a", "attach") is not None   # no-op
        assert trees["d"].counters["unchanged"] == 1
        # b's last subscriber leaves: c moves up under a, and is told so (d is not moved)
        await trees["b"].change("s1", "cam", "a", "detach")
        assert await stored(directory) == {"c": "a", "d": "c", "~v": "4"}
        assert notices == [("b", "c", "s1", "cam")]
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_departed_nodes_are_repaired_in_the_next_change(redis_server) -> None:
    directory = await started(redis_server)
    try:
        await register(directory, "a", "b", "c")
        for node in "bc":
            await TreeDirectory(directory, node, fanout=1).change("s1", "cam", "a", "attach")
        await directory.leave("b")
        tree = await TreeDirectory(directory, "c", fanout=1).change("s1", "cam", "a", "attach")
        assert tree.parent == {"c": "a"}
        assert await stored(directory) == {"c": "a", "~v": "3"}
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_concurrent_attaches_all_land_within_the_limits(redis_server) -> None:
    # 12 nodes attach at once through one connection: compare-and-set makes the
    # losers read again; every node ends up in one valid tree of fan-out 2.
    directory = await started(redis_server)
    nodes = [f"n{i:02}" for i in range(12)]
    try:
        await register(directory, "a", *nodes)
        trees = [TreeDirectory(directory, n, fanout=2) for n in nodes]
        await gatherResults([Deferred.fromCoroutine(t.change("s1", "cam", "a", "attach"))
                             for t in trees])
        held = await stored(directory)
        parents = {k: v for k, v in held.items() if k != "~v"}
        assert sorted(parents) == nodes
        children = {}
        for node, parent in parents.items():
            children.setdefault(parent, []).append(node)
        assert max(len(c) for c in children.values()) <= 2
        for node in nodes:                       # every node hangs from a
            seen = set()
            while node != "a":
                assert node not in seen
                seen.add(node)
                node = parents[node]
        assert sum(t.counters["conflicts"] for t in trees) > 0     # the races happened
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_a_hostile_hash_is_rebuilt(redis_server) -> None:
    directory = await started(redis_server)
    try:
        await register(directory, "a", "b", "c")
        key = directory.keys.tree("s1", "cam")
        await directory.redis.execute("HSET", key, "b", "c", "c", "b", "x" * 100, "a",
                                      b"\xff", b"\xfe", "~v", "7")
        tree = await TreeDirectory(directory, "c", fanout=2).change("s1", "cam", "a", "attach")
        tree.check()
        assert await stored(directory) == {"b": "a", "c": "a", "~v": "8"}
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_the_script_refuses_a_stale_version(redis_server) -> None:
    directory = await started(redis_server)
    try:
        key = directory.keys.tree("s1", "cam")
        assert await directory.redis.execute("EVAL", SCRIPT, 1, key, "0", 60000, "b", "a") == 1
        assert await directory.redis.execute("EVAL", SCRIPT, 1, key, "0", 60000, "c", "a") == 0
        assert await stored(directory) == {"b": "a", "~v": "1"}
        assert 0 < await directory.redis.execute("PTTL", key) <= 60000
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_a_silent_parent_is_moved_away_from_or_taken_out_but_never_the_root(redis_server):
    directory = await started(redis_server)
    try:
        await register(directory, "a", "b", "c")
        trees = {n: TreeDirectory(directory, n, fanout=1) for n in "bc"}
        for node in "bc":
            await trees[node].change("s1", "cam", "a", "attach")
        # c hears nothing from b, which is still registered: no other slot, b is taken out
        tree = await trees["c"].change("s1", "cam", "a", "move", avoid=frozenset({"b"}))
        assert tree.parent == {"c": "a"}
        assert await stored(directory) == {"c": "a", "~v": "3"}
        # c hears nothing from the root: there is nowhere else to go, and the root stays
        tree = await trees["c"].change("s1", "cam", "a", "move", avoid=frozenset({"a"}))
        assert tree.parent == {"c": "a"} and trees["c"].counters["unchanged"] == 1
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_attach_prefers_the_lower_rtt_parent_among_equally_loaded_ones(redis_server):
    # a (root) holds b and c (fan-out 2); d and e must go under b or c, equally loaded.
    # The ids alone would put d under b; the registry says d is nearer c (b measured
    # 9 ms to d, d measured 1 ms to c), and e nearer b (mean of both directions).
    directory = await started(redis_server)
    try:
        rtts = {"a": {}, "b": {"d": 9.0, "e": 2.0}, "c": {"e": 20.0},
                "d": {"c": 1.0}, "e": {"b": 4.0, "c": 10.0}}
        for node, measured in rtts.items():
            await directory.heartbeat(NodeRecord(node, "127.0.0.1:1", "127.0.0.1:2", 0.2, 0.0,
                                                 rtts=measured))
        for node in "bcde":
            await TreeDirectory(directory, node, fanout=2).change("s1", "cam", "a", "attach")
        assert await stored(directory) == {"b": "a", "c": "a", "d": "c", "e": "b", "~v": "4"}
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_load_still_comes_before_rtt(redis_server):
    directory = await started(redis_server)
    try:
        records = [("a", 0.0, {}), ("b", 0.9, {"d": 0.5}), ("c", 0.2, {"d": 30.0}),
                   ("d", 0.0, {})]
        for node, load, measured in records:
            await directory.heartbeat(NodeRecord(node, "127.0.0.1:1", "127.0.0.1:2", load, 0.0,
                                                 rtts=measured))
        for node in "bcd":
            await TreeDirectory(directory, node, fanout=2).change("s1", "cam", "a", "attach")
        assert (await stored(directory))["d"] == "c"
    finally:
        await directory.stop()
