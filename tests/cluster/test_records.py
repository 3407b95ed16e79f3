"""Directory records: exact JSON, round trips, hostile bytes, the Redis URL."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from realtime.cluster.address import BadRedisUrl, RedisAddress, parse_redis_url
from realtime.cluster.records import (
    AppRecord, ControlMessage, DataChannelRecord, NodeRecord, RecordDecodeError, SessionRecord,
    TrackRecord, TurnKeyRecord,
)
from realtime.errors import DecodeError

text = st.text(max_size=30)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
RECORDS = st.one_of(
    st.builds(AppRecord, text, text, floats),
    st.builds(TurnKeyRecord, text, text, floats),
    st.builds(SessionRecord, text, text, text, text, text, st.lists(text, max_size=3).map(tuple),
              text, st.sampled_from(["client", "server"]), st.text(max_size=300),
              st.none() | text, floats, floats),
    st.builds(TrackRecord, text, text, text, text, text,
              st.lists(st.integers(0, 2**32 - 1), max_size=4).map(tuple),
              st.lists(text, max_size=3).map(tuple), st.lists(text, max_size=3).map(tuple), text),
    st.builds(DataChannelRecord, text, text, st.integers(0, 65535), text, text),
    st.builds(NodeRecord, text, text, text, floats, floats, text, text,
              st.dictionaries(text, floats, max_size=5)),
    st.builds(ControlMessage, st.sampled_from(["pull", "close", "keyframe_request"]), text, text,
              text, floats),
)


def test_exact_encoding() -> None:
    record = TrackRecord("s1", "cam", "0", "video", "a", (1, 2), ("h",), ("VP8/90000",), "active")
    assert record.encode() == (
        b'{"codecs":["VP8/90000"],"media":"","media_kind":"video","mid":"0","owner_node":"a",'
        b'"rids":["h"],"session_id":"s1","ssrcs":[1,2],"status":"active","track_name":"cam"}')


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(RECORDS)
def test_round_trip(record) -> None:
    assert type(record).decode(record.encode()) == record


@pytest.mark.parametrize("data, message", [
    (b"\xff", "node record is not JSON"),
    (b"[]", "node record is not a JSON object"),
    (b'{"node_id":"a"}', "node record has no 'relay_address'"),
    (b'{"node_id":1,"relay_address":"","media_address":"","load":0,"heartbeat":0}',
     "field 'node_id' is not a string of at most 1024 characters"),
    (b'{"node_id":"a","relay_address":"","media_address":"","load":"x","heartbeat":0}',
     "field 'load' is not a finite number"),
    (b'{"node_id":"a","relay_address":"","media_address":"","load":1e999,"heartbeat":0}',
     "field 'load' is not a finite number"),
    (b"[" * 100000 + b"]" * 100000, "node record is not JSON"),
    (b" " * (256 * 1024 + 1), "node record of 262145 bytes exceeds 262144"),
])
def test_malformed(data, message) -> None:
    with pytest.raises(RecordDecodeError) as caught:
        NodeRecord.decode(data)
    assert str(caught.value) == message


def test_track_ssrcs_must_be_integers() -> None:
    good = TrackRecord("s", "t", "0", "video", "a", (1,), (), (), "active").encode()
    with pytest.raises(RecordDecodeError, match="'ssrcs' is not a 64-bit integer"):
        TrackRecord.decode(good.replace(b"[1]", b"[true]"))


def test_unknown_control_action() -> None:
    data = ControlMessage("pull", "a", "s", "t", 1.0).encode().replace(b"pull", b"reboot")
    with pytest.raises(RecordDecodeError, match="control action 'reboot' is unknown"):
        ControlMessage.decode(data)


@settings(deadline=None)  # no per-example deadline: the machine is shared
@given(st.binary(max_size=300))
def test_hostile_bytes_raise_only_decode_error(data) -> None:
    for cls in (SessionRecord, TrackRecord, ControlMessage):
        try:
            cls.decode(data)
        except DecodeError:
            pass


@pytest.mark.parametrize("url, environ, expected, shown", [
    ("redis://127.0.0.1:6380/2", {}, RedisAddress("127.0.0.1", 6380, db=2),
     "redis://127.0.0.1:6380/2"),
    ("redis://redis.internal", {}, RedisAddress("redis.internal"), "redis://redis.internal:6379"),
    ("redis://:s3cret@h:1", {}, RedisAddress("h", 1, password="s3cret"), "redis://:***@h:1"),
    ("redis://bob:s%40c@h:1", {}, RedisAddress("h", 1, username="bob", password="s@c"),
     "redis://bob:***@h:1"),
    ("redis://h:1", {"REALTIME_REDIS_PASSWORD": "env"}, RedisAddress("h", 1, password="env"),
     "redis://:***@h:1"),
    ("redis://[::1]:7000", {}, RedisAddress("::1", 7000), "redis://[::1]:7000"),
    ("unix:///run/r.sock?db=1", {}, RedisAddress(unix_path="/run/r.sock", db=1),
     "unix:///run/r.sock?db=1"),
])
def test_redis_urls(url, environ, expected, shown) -> None:
    address = parse_redis_url(url, environ)
    assert address == expected
    assert address.redacted() == shown
    assert "s3cret" not in repr(address)


@pytest.mark.parametrize("url, message", [
    ("http://h:1", "'http://h:1': scheme must be redis:// (or unix:// for a socket)"),
    ("redis://", "'redis://' has no host"),
    ("redis://h:99999", "'redis://h:99999' is not a URL"),
    ("redis://h:1/x", "database 'x' is not a number"),
    ("redis://:pw@h:0", "'redis://:***@h:0': port 0 is not a Redis port"),
    ("redis://h_1:1", "'h_1' is not a host name"),
    ("redis://h:1?x=1", "has a query"),
    ("unix://rel.sock", "a unix URL is unix:///ABSOLUTE/PATH.sock"),
    ("redis://h:1/\u00b2", "database '\u00b2' is not a number"),      # str.isdigit() is True
    ("unix:///a.sock?db=\u0663", "database '\u0663' is not a number"),  # Arabic-Indic 3
])
def test_bad_redis_urls(url, message) -> None:
    with pytest.raises(BadRedisUrl, match=None) as caught:
        parse_redis_url(url)
    assert message in str(caught.value)
    assert "pw" not in str(caught.value)


@settings(deadline=None)
@given(st.text(max_size=60) | st.builds(lambda s: "redis://" + s, st.text(max_size=40)))
def test_any_url_raises_only_bad_redis_url(text) -> None:
    try:
        parse_redis_url(text, {})
    except BadRedisUrl:
        pass


@settings(deadline=None)
@given(st.text(max_size=40))
def test_any_relay_address_raises_only_the_option_error(text) -> None:
    from realtime.cluster.options import ClusterOptionError, parse_relay_address

    try:
        parse_relay_address(text)
    except ClusterOptionError:
        pass


def test_a_field_added_later_may_be_absent_but_a_required_one_may_not() -> None:
    """A rolling upgrade: a newer node reads what an older node wrote, without new fields."""
    import json
    record = TrackRecord("s1", "cam", "0", "video", "a", (1, 2), ("h",), ("VP8/90000",), "active")
    older = json.loads(record.encode())
    del older["media"]                      # a field with a default, added after issue 12
    assert TrackRecord.decode(json.dumps(older).encode()) == record
    del older["owner_node"]                 # required: still an error
    with pytest.raises(RecordDecodeError, match="has no 'owner_node'"):
        TrackRecord.decode(json.dumps(older).encode())


def test_node_rtts_round_trip_and_an_older_record_without_them_decodes() -> None:
    record = NodeRecord("a", "127.0.0.1:1", "127.0.0.1:2", 0.5, 1.0, rtts={"b": 0.123})
    data = record.encode()
    assert b'"rtts":{"b":0.123}' in data
    assert NodeRecord.decode(data) == record
    older = (b'{"api_address":"","api_certificate":"","heartbeat":1.0,"load":0.5,'
             b'"media_address":"127.0.0.1:2","node_id":"a","relay_address":"127.0.0.1:1"}')
    assert NodeRecord.decode(older).rtts == {}


@pytest.mark.parametrize("rtts, message", [
    (b'[]', "field 'rtts' is not an object of at most 256 items"),
    (b'{"b":"1"}', "field 'rtts' is not a finite number"),
    (b'{"b":null}', "field 'rtts' is not a finite number"),
    (b'{"b":1e999}', "field 'rtts' is not a finite number"),
    (b'{"' + b'x' * 1025 + b'":1}', "field 'rtts' is not a string of at most 1024 characters"),
    (b'{' + b','.join(b'"n%d":1' % i for i in range(257)) + b'}',
     "field 'rtts' is not an object of at most 256 items"),
])
def test_hostile_node_rtts(rtts, message) -> None:
    data = (b'{"node_id":"a","relay_address":"","media_address":"","load":0,"heartbeat":0,'
            b'"rtts":' + rtts + b'}')
    with pytest.raises(RecordDecodeError) as caught:
        NodeRecord.decode(data)
    assert str(caught.value) == message
