"""
``--metrics ENDPOINT``: Prometheus' text format on a port of its own.

:func:`metrics_registry` gathers the collectors of :mod:`realtime.net.metrics`,
the API's request metrics (:class:`ApiMetrics`), the reactor's lag
(:class:`ReactorLag`) and prometheus-client's process collector into one
``CollectorRegistry`` (not the library's global one: two services in one test
process keep their figures apart).  :func:`metrics_services` serves it on the
endpoint given with :class:`MetricsPage` and runs the timers: the counter
sweep and the lag probe::

    GET http://127.0.0.1:9464/metrics    (any path answers the same text)

``MetricsPage`` renders with prometheus-client's ``generate_latest`` on the
reactor's thread.  The library's own Twisted resource
(``prometheus_client.twisted.MetricsResource``) is a ``WSGIResource``: it runs
the exposition in the reactor's thread pool, where the collectors would walk
the sessions' dictionaries while the reactor thread changes them
("dictionary changed size during iteration", counters read mid-update).  A
scrape of a few thousand sessions costs a few milliseconds of reactor time,
every scrape interval (see docs/operations.md for a measurement).

The API is wrapped, not edited: :class:`ApiMetrics` is a resource in front of
the API's root that times every request to its end and labels it with the
*route template* Klein matched (``POST /v1/apps/<app_id>/sessions/new``),
never the path itself, whose ids would make the label set unbounded.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, ProcessCollector, generate_latest,
)
from prometheus_client import Counter as RequestCounter
from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest
from werkzeug.exceptions import HTTPException

from realtime.net.metrics import (
    SWEEP_INTERVAL, ClusterCollector, MediaCollector, TurnCollector,
)

__all__ = ["ApiMetrics", "MetricsPage", "ReactorLag", "build_metrics", "metrics_registry", "metrics_services"]

#: API latency buckets, seconds (a sessions/new answers in a few ms; SDP work in tens)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: reactor lag buckets, seconds
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: seconds between two lag probes
LAG_INTERVAL = 0.25
#: the route label of a request that matched no route (404, probes, scanners)
UNMATCHED = "unmatched"


class ApiMetrics(Resource):
    """Count and time every API request by route template, method and status.

    :param root: the API's resource (a Klein app's, or the cluster's forwarder).
    :param url_map: the Klein app's ``url_map`` (werkzeug), to name the route template.
    :param registry: where the request counter and latency histogram are registered.
    :param clock: the reactor's clock (``task.Clock`` in tests).
    """

    isLeaf = True

    def __init__(self, root: IResource, url_map: Any, registry: CollectorRegistry,
                 clock: IReactorTime) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.root = root
        self.url_map = url_map
        self.clock = clock
        self.requests = RequestCounter(
            "realtime_api_requests", "API requests answered, by route template, method "
            "and status.", ["route", "method", "status"], registry=registry)
        self.latency = Histogram(
            "realtime_api_request_duration_seconds", "Time from a request's arrival to its "
            "last byte, by route template and method.", ["route", "method"],
            buckets=LATENCY_BUCKETS, registry=registry)
        self._adapter = url_map.bind("metrics")

    def render(self, request: Any) -> Any:  # a twisted.web.server.Request
        """Hand the request to the API and observe it when it finishes."""
        started = self.clock.seconds()
        method = request.method.decode("ascii", "replace")
        route = self.route_of(method, request.path)
        request.notifyFinish().addBoth(self._observe, request, route, method, started)
        return _render_leaf(self.root, request)

    def route_of(self, method: str, path: bytes) -> str:
        """Return the route template ``path`` matches (``unmatched`` if none)."""
        try:
            endpoint, _ = self._adapter.match(path.decode("utf-8", "replace"),
                                              method="GET" if method == "OPTIONS" else method)
        except (HTTPException, ValueError):  # no route (or the wrong method); a bad path
            return UNMATCHED
        return str(endpoint).partition(" ")[2] or str(endpoint)

    def _observe(self, passed: object, request: Any, route: str, method: str,
                 started: float) -> None:
        method = method if method in KNOWN_METHODS else "other"
        self.requests.labels(route, method, str(request.code)).inc()
        self.latency.labels(route, method).observe(max(0.0, self.clock.seconds() - started))


#: methods kept as label values (anything else is ``other``: a bounded set)
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"})


def _render_leaf(root: IResource, request: Any) -> Any:
    """Render ``request`` with ``root`` as twisted.web's Site would (walking its children)."""
    resource = getChildForRequest(root, request)
    return resource.render(request)


class MetricsPage(Resource):
    """Answer any GET with the registry's metrics in Prometheus' text format.

    :param registry: the collectors to expose.
    """

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = registry

    def render_GET(self, request: IRequest) -> bytes:  # noqa: N802 (Twisted)
        """Collect every metric now, on the reactor thread, and return the text."""
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self.registry)


class ReactorLag:
    """How late the reactor runs a timer: a probe every :data:`LAG_INTERVAL` seconds.

    A call scheduled ``LAG_INTERVAL`` from now that runs later than that was
    held up by other work (a long callback, a flood of datagrams): the excess
    is the lag every packet and every API call saw at that moment.
    """

    def __init__(self, clock: IReactorTime, registry: CollectorRegistry) -> None:
        self.clock = clock
        self.lag = Histogram("realtime_reactor_lag_seconds", "How much later than asked the "
                             "reactor ran a timer (probed every 0.25 s).",
                             buckets=LAG_BUCKETS, registry=registry)
        self._expected: float | None = None

    def probe(self) -> None:
        """Observe how late this call came, and expect the next one."""
        now = self.clock.seconds()
        if self._expected is not None:
            self.lag.observe(max(0.0, now - self._expected))
        self._expected = now + LAG_INTERVAL

    def reset(self) -> None:
        """Forget the expectation (the timer stopped)."""
        self._expected = None


def metrics_registry(collectors: Iterable[Any], process: bool = True) -> CollectorRegistry:
    """Return a registry holding ``collectors`` (and the process collector)."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry


def metrics_services(clock: IReactorTime, registry: CollectorRegistry,
                     sweeps: Iterable[Callable[[], None]],
                     listener: Callable[[Resource], Service]) -> list[Service]:
    """Return the metrics listener and its timers (sweep, lag probe), named for the tree.

    :param listener: makes the listening service from the resource to serve.
    """
    lag = ReactorLag(clock, registry)
    sweeps = tuple(sweeps)

    def sweep() -> None:
        for each in sweeps:
            each()

    services: list[Service] = [listener(MetricsPage(registry))]
    for name, interval, work in (("metrics-sweep", SWEEP_INTERVAL, sweep),
                                 ("metrics-lag", LAG_INTERVAL, lag.probe)):
        timer = TimerService(interval, work)
        timer.clock = clock
        timer.setName(name)
        services.append(timer)
    services[0].setName("metrics")
    return services



def build_metrics(description: str, clock: IReactorTime, *, peers: Any, switchboard: Any,
                  turn_server: Any, ports: dict[str, Any], api_root: IResource, url_map: Any,
                  cluster: tuple[str, Any, Any, Any] | None,
                  listen: Callable[[str, Resource], Service]) -> tuple[IResource, list[Service]]:
    """Return the API root wrapped by :class:`ApiMetrics` and the ``--metrics`` services.

    :param description: the ``--metrics`` endpoint string.
    :param cluster: ``(node_id, relay_link, datachannel_relay, rtts)`` with ``--cluster``,
        else None.
    :param listen: makes the listener service of ``description`` serving a resource.
    """
    media = MediaCollector(peers, switchboard, ports)
    turn = TurnCollector(turn_server)
    collectors: list[Any] = [media, turn]
    if cluster is not None:
        collectors.append(ClusterCollector(*cluster))
    registry = metrics_registry(collectors)
    root = ApiMetrics(api_root, url_map, registry, clock)
    services = metrics_services(clock, registry, (media.sweep, turn.sweep),
                                lambda resource: listen(description, resource))
    return root, services
