"""The parent's merge of its workers' Prometheus expositions (realtime/cluster/worker_metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from realtime.cluster.worker_metrics import merge_expositions, with_label


def exposition(packets: int, lag: float, extra: bool = False) -> str:
    """A worker's registry as the workers serve it (a counter, a histogram, maybe a gauge)."""
    registry = CollectorRegistry()
    counter = Counter("realtime_packets", "Packets.", ["kind"], registry=registry)
    counter.labels("rtp").inc(packets)
    Histogram("realtime_lag_seconds", "Lag.", buckets=(0.01, 0.1),
              registry=registry).observe(lag)
    if extra:
        Gauge("realtime_only_here", "Only on one worker.", registry=registry).set(3)
    return generate_latest(registry).decode()


def test_with_label_goes_first_in_the_braces_or_makes_them() -> None:
    assert with_label("up 1", "worker", "w0") == 'up{worker="w0"} 1'
    assert with_label('x{a="b"} 2', "worker", "w0") == 'x{worker="w0",a="b"} 2'
    assert with_label("x{} 2", "worker", "w0") == 'x{worker="w0"} 2'
    assert with_label('x{a="} {"} 2 1700000000', "worker", "w1") == \
        'x{worker="w1",a="} {"} 2 1700000000'


def test_every_family_once_with_every_workers_samples_labelled() -> None:
    text = merge_expositions([("box-w0", exposition(5, 0.05)),
                              ("box-w1", exposition(7, 0.5, extra=True))])
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) >= {"realtime_packets", "realtime_lag_seconds", "realtime_only_here"}
    packets = {s.labels["worker"]: s.value for s in families["realtime_packets"].samples
               if s.name == "realtime_packets_total"}
    assert packets == {"box-w0": 5.0, "box-w1": 7.0}
    lag = families["realtime_lag_seconds"]
    assert lag.type == "histogram"
    counts = {s.labels["worker"]: s.value for s in lag.samples if s.name.endswith("_count")}
    assert counts == {"box-w0": 1.0, "box-w1": 1.0}
    assert [s.labels for s in families["realtime_only_here"].samples] == [{"worker": "box-w1"}]
    # one HELP and one TYPE per family, samples kept together under them
    for kind in ("# TYPE ", "# HELP "):
        named = [line.split()[2] for line in text.splitlines() if line.startswith(kind)]
        assert len(named) == len(set(named)) == len(families), named


def test_a_worker_that_sent_nothing_or_garbage_does_not_break_the_page() -> None:
    text = merge_expositions([("w0", exposition(1, 0.0)), ("w1", ""),
                              ("w2", "# just a comment\n\n")])
    families = list(text_string_to_metric_families(text))
    assert {f.name for f in families} >= {"realtime_packets", "realtime_lag_seconds"}
    assert {s.labels["worker"] for f in families for s in f.samples} == {"w0"}
