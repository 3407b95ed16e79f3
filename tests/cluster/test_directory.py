"""The directory's records in a real redis-server: round trips, indexes, registry, control."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from realtime.cluster.directory import Directory, NodeHeartbeat, NODE_TTL
from realtime.cluster.keys import Keys
from realtime.cluster.records import (
    AppRecord, ControlMessage, DataChannelRecord, NodeRecord, SessionRecord, TrackRecord,
    TurnKeyRecord,
)

SESSION = SessionRecord(
    session_id="5e55", app_id="app1", ice_ufrag="srvU", ice_pwd="p" * 24,
    remote_ice_ufrag="cliU",
    remote_fingerprints=("sha-256 " + ":".join(["AB"] * 32),),
    local_fingerprint="sha-256 " + ":".join(["CD"] * 32), dtls_role="server",
    media_description="v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n", owner_node="a",
    created=1.0, last_seen=2.0)


def sleep(seconds: float) -> Deferred:
    d = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


async def started(redis_server, namespace="t") -> Directory:
    directory = Directory(reactor, redis_server.address, Keys(namespace))
    await directory.start()
    return directory


@pytest_twisted.ensureDeferred
async def test_session_round_trip_and_ufrag_lookup(redis_server) -> None:
    directory = await started(redis_server)
    try:
        await directory.put_session(SESSION)
        assert await directory.get_session("5e55") == SESSION
        assert await directory.session_for_ufrag("srvU") == SESSION
        assert await directory.session_for_ufrag("nope") is None
        track = TrackRecord("5e55", "cam", "0", "video", "a", (1111, 2222), ("h", "l"),
                            ("VP8/90000",), "active")
        await directory.put_track(track)
        channel = DataChannelRecord("5e55", "chat", 1, "a", "open")
        await directory.put_datachannel(channel)
        assert await directory.session_tracks("5e55") == [track]
        assert await directory.get_track("5e55", "cam") == track
        assert await directory.get_datachannel("5e55", "chat") == channel
        await directory.delete_session("5e55")
        assert await directory.get_session("5e55") is None
        assert await directory.session_for_ufrag("srvU") is None
        assert await directory.get_track("5e55", "cam") is None
        assert await directory.redis.execute("KEYS", "t:*") == []
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_apps_turn_keys_revocations_usage(redis_server) -> None:
    directory = await started(redis_server)
    try:
        await directory.put_app(AppRecord("app1", "s" * 16, 1.0))
        await directory.put_turn_key(TurnKeyRecord("k1", "t" * 16, 1.0))
        assert await directory.get_app("app1") == AppRecord("app1", "s" * 16, 1.0)
        assert await directory.app_ids() == ["app1"]
        assert (await directory.get_turn_key("k1")).token == "t" * 16
        await directory.revoke_turn("1700000000:alice", lifetime=60)
        assert await directory.is_turn_revoked("1700000000:alice")
        assert not await directory.is_turn_revoked("1700000000:bob")
        await directory.add_turn_usage("k1", 10, 100)
        await directory.add_turn_usage("k1", 1, 1)
        usage = await directory.turn_usage("k1")
        assert (usage.ingress_bytes, usage.egress_bytes) == (11, 101)
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_a_corrupt_record_reads_as_absent_and_is_counted(redis_server) -> None:
    directory = await started(redis_server)
    try:
        await directory.redis.execute("SET", directory.keys.session("x"), b"\xff{not json")
        assert await directory.get_session("x") is None
        assert directory.corrupt_records == 1
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_rate_counter_is_shared_between_nodes(redis_server) -> None:
    a, b = await started(redis_server), await started(redis_server)
    try:
        counts = [await a.count_api_call("s", 100), await b.count_api_call("s", 100),
                  await a.count_api_call("s", 101)]
        assert counts == [1, 2, 1]
    finally:
        await a.stop()
        await b.stop()


def node(node_id: str) -> NodeRecord:
    return NodeRecord(node_id, "10.0.0.1:7000", "10.0.0.1:10000", 0.5, 1.0)


def test_default_ttl_leaves_within_10_seconds() -> None:
    assert NODE_TTL <= 10.0


@pytest_twisted.ensureDeferred
async def test_a_node_that_stops_heartbeating_leaves(redis_server) -> None:
    """With a 1 s TTL (the default is 10 s) a silent node is gone after 1 s; a live one stays."""
    directory = await started(redis_server)
    live = NodeHeartbeat(directory, lambda: node("live"), ttl=5.0)   # margin for a loaded CI
    silent = NodeHeartbeat(directory, lambda: node("silent"), ttl=1.0)
    try:
        live.start()
        silent.start()
        await sleep(0.2)
        assert [n.node_id for n in await directory.live_nodes()] == ["live", "silent"]
        silent._loop.stop()          # a crash: no leave()
        await sleep(1.5)
        assert [n.node_id for n in await directory.live_nodes()] == ["live"]
        assert await directory.redis.execute("SMEMBERS", directory.keys.nodes) == [b"live"]
        await live.stop()             # an orderly stop leaves at once
        assert await directory.live_nodes() == []
    finally:
        await directory.stop()


@pytest_twisted.ensureDeferred
async def test_control_messages_reach_the_addressed_node_only(redis_server) -> None:
    a, b = await started(redis_server), await started(redis_server)
    got_a, got_b = [], []
    arrived = Deferred()
    try:
        await a.listen_control("a", got_a.append)
        await b.listen_control("b", lambda m: (got_b.append(m), arrived.callback(None)))
        await a.redis.execute("PUBLISH", a.keys.control("b"), b"garbage")
        message = ControlMessage("keyframe_request", "a", "5e55", "cam", 3.0)
        assert await a.send_control("b", message) == 1
        await arrived
        assert got_b == [message] and got_a == []
        assert b.dropped_control == 1
    finally:
        await a.stop()
        await b.stop()
