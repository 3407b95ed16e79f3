"""
``--metrics`` with ``--workers N``: one scrape answers for every worker.

Prometheus scrapes one target per address.  With ``--workers`` the workers
share their ports (``SO_REUSEPORT``), so a scrape of a shared metrics port
would reach whichever worker the kernel picked and show a different process's
counters each time: rates computed from them are nonsense.  Instead the
parent owns ``--metrics`` and every worker serves its own registry on a Unix
socket in the state directory; a scrape of the parent gathers all of them::

    Prometheus ──GET──▶ parent (--metrics tcp:9464)
                          ├─ GET unix:STATE_DIR/run/metrics-w0.sock  ─▶ worker 0's registry
                          └─ GET unix:STATE_DIR/run/metrics-w1.sock  ─▶ worker 1's registry
                        ◀── one exposition: each sample labelled worker="NODE-wI"

Merging the text format (Prometheus "Exposition formats", text-based format):
a *family* is introduced by its ``# HELP`` and ``# TYPE`` lines and all of its
samples must follow them together; a histogram's ``_bucket``, ``_sum`` and
``_count`` samples belong to the family of the ``# TYPE`` before them.  So
:func:`merge_expositions` keeps each family's comment lines once (from the
first worker that has the family) and lists the samples of every worker
under them, each with a ``worker`` label added.  Figures are not summed:
``sum without (worker) (...)`` in PromQL does that, and per-worker series
show an unbalanced kernel spread.  One more family tells which workers
answered: ``realtime_worker_scrape_up{worker=...}`` (1 or 0) -- a worker that
did not answer within :data:`SCRAPE_TIMEOUT` is left out of that scrape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

__all__ = ["SCRAPE_TIMEOUT", "GatheredMetrics", "merge_expositions", "with_label",
           "worker_socket"]

#: seconds a worker has to answer the parent's scrape
SCRAPE_TIMEOUT = 5.0
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def worker_socket(state_dir: Path, index: int) -> Path:
    """Where worker ``index`` serves its metrics (``STATE_DIR/run/metrics-wI.sock``)."""
    return state_dir / "run" / f"metrics-w{index}.sock"


def with_label(sample: str, name: str, value: str) -> str:
    """Return the sample line ``sample`` with the label ``name="value"`` first.

    ``up 1`` -> ``up{worker="w0"} 1``; ``x{a="b"} 2`` -> ``x{worker="w0",a="b"} 2``.
    A metric name holds neither ``{`` nor a space, so the first of them ends it.
    """
    label = f'{name}="{value}"'
    for index, char in enumerate(sample):
        if char == "{":
            rest = sample[index + 1:]
            return f"{sample[:index + 1]}{label}{'' if rest.startswith('}') else ','}{rest}"
        if char == " ":
            return f"{sample[:index]}{{{label}}}{sample[index:]}"
    return sample   # no value: not a sample line, left as it is


def merge_expositions(parts: Iterable[tuple[str, str]], label: str = "worker") -> str:
    """Merge ``(worker, exposition text)`` pairs into one exposition (see the module docstring)."""
    comments: dict[str, list[str]] = {}     # family -> its HELP/TYPE lines
    owner: dict[str, str] = {}              # family -> the worker whose comments are kept
    samples: dict[str, list[str]] = {}      # family -> every worker's samples, labelled
    for worker, text in parts:
        family = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                words = line.split(None, 3)
                if len(words) >= 3 and words[1] in ("HELP", "TYPE"):
                    family = words[2]
                    samples.setdefault(family, [])
                    if owner.setdefault(family, worker) == worker:
                        comments.setdefault(family, []).append(line)
                continue                      # other comments are dropped
            samples.setdefault(family, []).append(with_label(line, label, worker))
    out: list[str] = []
    for family, lines in samples.items():
        out += comments.get(family, [])
        out += lines
    return "\n".join(out) + "\n"


class _SocketEndpoints:
    """``Agent.usingEndpointFactory``: the URI's host names the worker's Unix socket."""

    def __init__(self, reactor: Any, sockets: dict[bytes, Path]) -> None:
        self.reactor = reactor
        self.sockets = sockets

    def endpointForURI(self, uri: Any) -> UNIXClientEndpoint:  # noqa: N802 (Twisted name)
        return UNIXClientEndpoint(self.reactor, str(self.sockets[uri.host]), timeout=2)


class GatheredMetrics(Resource):
    """The parent's ``--metrics`` page: every worker's registry, labelled, in one answer.

    :param reactor: the parent's reactor (connections and timeouts).
    :param workers: ``(worker name, its metrics socket)`` for every worker.
    """

    isLeaf = True

    def __init__(self, reactor: Any, workers: list[tuple[str, Path]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.reactor = reactor
        self.workers = workers
        hosts = {f"w{index}".encode(): path for index, (_, path) in enumerate(workers)}
        self.agent = Agent.usingEndpointFactory(reactor, _SocketEndpoints(reactor, hosts))

    def _scrape(self, index: int) -> Deferred:
        answer = self.agent.request(b"GET", f"http://w{index}/metrics".encode())
        answer.addCallback(readBody)
        answer.addTimeout(SCRAPE_TIMEOUT, self.reactor)
        return answer

    def gather(self) -> Deferred:
        """Fire with the merged exposition of every worker that answered."""
        scrapes = DeferredList([self._scrape(i) for i in range(len(self.workers))],
                               consumeErrors=True)

        def merge(results: list[tuple[bool, Any]]) -> bytes:
            parts = [(name, body.decode("utf-8", "replace"))
                     for (name, _), (ok, body) in zip(self.workers, results) if ok]
            up = ["# HELP realtime_worker_scrape_up Whether the worker answered this scrape.",
                  "# TYPE realtime_worker_scrape_up gauge"]
            up += [f'realtime_worker_scrape_up{{worker="{name}"}} {1 if ok else 0}'
                   for (name, _), (ok, _) in zip(self.workers, results)]
            return (merge_expositions(parts) + "\n".join(up) + "\n").encode("utf-8")

        return scrapes.addCallback(merge)

    def render_GET(self, request: Any) -> Any:  # noqa: N802 (Twisted name)
        """Answer when every worker has answered or timed out."""
        def send(body: bytes) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.setHeader(b"content-type", CONTENT_TYPE)
            request.write(body)
            request.finish()

        self.gather().addCallback(send)
        return NOT_DONE_YET
