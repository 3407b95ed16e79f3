"""``--cluster``, ``--node-id``, ``--relay-address`` through ``twistd realtime``'s Options."""

from __future__ import annotations

import pytest
from twisted.python import usage

from realtime.cluster.address import RedisAddress
from realtime.cluster.options import ClusterOptions, SECRET_VARIABLE
from realtime.service import Options

SECRET = "0123456789abcdef0123"


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    monkeypatch.delenv("REALTIME_REDIS_PASSWORD", raising=False)


def test_without_cluster_nothing_changes() -> None:
    assert parse()["cluster-options"] is None


def test_cluster_options() -> None:
    options = parse("--cluster", "redis://:pw@10.0.0.5:6380/1", "--node-id", "node-a",
                    "--relay-address", "10.0.0.1:7000")["cluster-options"]
    assert options == ClusterOptions(RedisAddress("10.0.0.5", 6380, db=1, password="pw"),
                                     "node-a", "10.0.0.1", 7000, SECRET.encode())
    assert "pw" not in repr(options) and SECRET not in repr(options)


def test_defaults(monkeypatch) -> None:
    monkeypatch.setenv("REALTIME_REDIS_PASSWORD", "from-env")
    monkeypatch.setattr("socket.gethostname", lambda: "host_1.example")
    options = parse("--cluster", "redis://r", "--public-ip", "::1")["cluster-options"]
    assert options.address.password == "from-env"
    assert (options.node_id, options.relay_address) == ("host_1.example", "[::1]:0")
    assert options.cascade_fanout == 8


def test_cascade_fanout() -> None:
    options = parse("--cluster", "redis://h", "--cascade-fanout", "2")["cluster-options"]
    assert options.cascade_fanout == 2


def test_the_raw_url_with_its_password_is_not_kept() -> None:
    options = parse("--cluster", "redis://:pw@h:1")
    assert "pw" not in repr(dict(options))


@pytest.mark.parametrize("argv, message", [
    (["--node-id", "a"], "--node-id: only meaningful with --cluster"),
    (["--relay-address", "1.2.3.4:5"], "--relay-address: only meaningful with --cluster"),
    (["--cluster", "http://h"], "--cluster: 'http://h': scheme must be redis://"),
    (["--cluster", "redis://:pw@h:0"], "--cluster: 'redis://:***@h:0': port 0"),
    (["--cluster", "redis://h", "--node-id", "-a"], "--node-id: '-a' is not 1-64 of"),
    (["--cluster", "redis://h", "--node-id", "a" * 65], "--node-id: "),
    (["--cluster", "redis://h", "--relay-address", "h:1"], "--relay-address: 'h' is not an IP"),
    (["--cluster", "redis://h", "--relay-address", "1.2.3.4"],
     "--relay-address: '1.2.3.4' is not HOST:PORT"),
    (["--cluster", "redis://h", "--relay-address", "1.2.3.4:70000"],
     "--relay-address: '70000' is not a port number"),
    (["--cluster", "redis://h", "--relay-address", "1.2.3.4:\u00b2"],
     "--relay-address: '\u00b2' is not a port number"),
    (["--cluster", "redis://h", "--relay-address", "0.0.0.0:7000"],
     "--relay-address: '0.0.0.0' cannot receive relay traffic"),
    (["--cascade-fanout", "2"], "--cascade-fanout: only meaningful with --cluster"),
    (["--cluster", "redis://h", "--cascade-fanout", "0"], "--cascade-fanout: '0' is not"),
    (["--cluster", "redis://h", "--cascade-fanout", "65"], "--cascade-fanout: '65' is not"),
    (["--cluster", "redis://h", "--cascade-fanout", "two"], "--cascade-fanout: 'two' is not"),
])
def test_bad_values_name_the_option(argv, message) -> None:
    with pytest.raises(usage.UsageError) as raised:
        parse(*argv)
    assert str(raised.value).startswith(message)
    assert "pw" not in str(raised.value)


def test_the_cluster_secret_is_required(monkeypatch) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, "short")
    with pytest.raises(usage.UsageError, match=f"^--cluster: set {SECRET_VARIABLE} to the secret"):
        parse("--cluster", "redis://h")


def test_help_explains_the_cluster_options() -> None:
    text = str(Options())
    for name in ("--cluster", "--node-id", "--relay-address", "--cascade-fanout",
                 "REALTIME_REDIS_PASSWORD",
                 "REALTIME_CLUSTER_SECRET"):
        assert name in text
