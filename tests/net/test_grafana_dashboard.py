"""
docs/grafana/realtime.json: valid Grafana JSON whose every expression names exported metrics.

The exported names are read from a scrape of a real in-process service with
``--metrics`` (tests/net/test_metrics.py) plus the cluster collector over a
real :class:`~realtime.cluster.relay.RelayLink` (a ``--cluster`` node needs
Redis; its collector does not).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq

from realtime.cluster.relay import RelayLink
from realtime.net.metrics import ClusterCollector
from realtime.net.metrics_service import metrics_registry
from tests.net.test_metrics import request, started

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "realtime.json"

#: PromQL words that are not metric names
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset"}


def metric_names(expression: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    query = re.fullmatch(r"\s*label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)\s*", expression)
    if query:
        return {query.group(1)}
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)   # strings
    text = re.sub(r"\{[^}]*\}", " ", text)                    # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                   # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue                                           # a function or aggregation
        names.add(match.group())
    return names


def exported_names(text: str) -> set[str]:
    """Return every sample name a scrape's families can have (counter: _total; histogram)."""
    names = set()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def expressions(dashboard: dict) -> list[str]:
    found = [target["expr"] for panel in dashboard["panels"]
             for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["query"]["query"])
    return found


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('sum by (kind) (rate(a_total{x="y,z"}[5m]))') == {"a_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[1m])))") == {
        "h_bucket"}
    assert metric_names("8 * sum(rate(b_total[1m])) / ignoring (x) c") == {"b_total", "c"}
    assert metric_names("label_values(realtime_sessions, instance)") == {"realtime_sessions"}


def test_the_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["type"] == "timeseries" and panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))
        assert panel["datasource"]["uid"] == "${datasource}"


def test_every_expression_names_an_exported_metric(tmp_path) -> None:
    service, _, children = started(tmp_path)
    status, text = request(StubTreq(children["metrics"].factory.resource), "get",
                           "http://127.0.0.1:9464/metrics")
    assert status == 200
    cluster = metrics_registry([ClusterCollector("node-a", RelayLink("node-a", b"s" * 32, 1))],
                               process=False)
    exported = exported_names(text.decode()) | exported_names(generate_latest(cluster).decode())
    used = set()
    for expression in expressions(json.loads(DASHBOARD.read_text())):
        names = metric_names(expression)
        assert names, expression
        used |= names
    assert used - exported == set()
    # the dashboard shows every family the server exports (process_* only in part)
    assert {n for n in exported - used
            if not n.startswith("process_") and not n.endswith("_created")} == {
        "realtime_api_request_duration_seconds_count", "realtime_api_request_duration_seconds_sum",
        "realtime_reactor_lag_seconds_count", "realtime_reactor_lag_seconds_sum"}
    service.stopService()
