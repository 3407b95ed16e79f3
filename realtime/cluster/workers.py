"""
``--workers N``: N ``twistd realtime`` processes on one machine acting as one.

The parent does not serve anything itself.  :class:`WorkerSupervisor`:

1. with no ``--cluster``, starts the private ``redis-server`` on a Unix socket
   in ``STATE_DIR/run`` (:mod:`realtime.cluster.launcher`; without the binary
   the start ends with one line saying what to install);
2. gives every worker the same DTLS certificate (``--dtls-certificate``, or
   ``STATE_DIR/cluster-dtls.pem``, made once, mode 0600) and the same
   ``REALTIME_CLUSTER_SECRET`` (from the environment, or a fresh one for
   this run), through the environment, never the command line;
3. starts the workers: the parent's own arguments (a ``--cluster`` given
   stays), plus ``--reuse-port``, ``--cluster unix://...`` of the private
   Redis when there is one, and ``--node-id NODE-wI``; every worker binds the same
   media, TURN and API ports with ``SO_REUSEPORT``
   (:mod:`realtime.cluster.reuseport`) and forwards its log lines here,
   prefixed with its id;
4. with ``--metrics``, serves that endpoint itself: each worker serves its
   registry on ``STATE_DIR/run/metrics-wI.sock`` and a scrape of the parent
   gathers them, labelled by worker (:mod:`realtime.cluster.worker_metrics`);
5. on stop, sends every worker SIGTERM, waits for them, then stops Redis.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.web.server import Site

from realtime.cluster.address import PASSWORD_VARIABLE, RedisAddress
from realtime.cluster.launcher import (
    PrivateRedis, RedisDidNotStart, RedisNotInstalled, start_private_redis,
)
from realtime.cluster.options import SECRET_VARIABLE, default_node_id
from realtime.cluster.worker_metrics import GatheredMetrics, worker_socket
from realtime.dtls.certificate import Certificate

log = Logger()

#: Options the parent replaces with its own values for each worker (``--cluster``
#: is never kept raw: its URL may hold a password).
REPLACED = ("--workers", "--node-id", "--dtls-certificate", "--reuse-port", "--cluster",
            "--metrics")
#: Of those, the flags (no value).
FLAGS = ("--reuse-port",)


def worker_arguments(argv: list[str], names: tuple[str, ...] = REPLACED) -> list[str]:
    """Return ``argv`` without options ``names`` (``--name VALUE`` or ``--name=VALUE``)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in names:
            skip = "=" not in arg and name not in FLAGS
            continue
        kept.append(arg)
    return kept


def cluster_certificate(path: Path, now: float) -> Path:
    """Return ``path``, writing a fresh certificate + key there (mode 0600) if it is missing."""
    if not path.exists():
        certificate = Certificate.generate(now)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(certificate.certificate_pem() + certificate.private_key_pem())
    return path


def load_dtls_certificate(path: str | None, now: float) -> Certificate:
    """Load ``--dtls-certificate`` (certificate and key in one PEM file), or make one."""
    if path is None:
        return Certificate.generate(now)
    pem = Path(path).read_bytes()
    try:
        return Certificate.from_pem(pem, pem)
    except (ValueError, TypeError) as error:
        raise SystemExit(f"realtime: --dtls-certificate {path}: not a PEM certificate "
                         f"with its unencrypted private key ({error})") from None


def supervise(reactor: Any, options: Any, state_dir: Path) -> MultiService:
    """Return the parent's service tree for ``--workers N`` (N > 1): the supervisor alone."""
    cluster = options.get("cluster-options")
    parent = MultiService()
    supervisor = WorkerSupervisor(reactor, options["argv"], options["workers"], state_dir,
                                  options["node-id"] or default_node_id(),
                                  None if cluster is None else cluster.address,
                                  options.get("dtls-certificate"),
                                  metrics=bool(options.get("metrics")))
    supervisor.setServiceParent(parent)  # type: ignore[no-untyped-call]
    if options.get("metrics"):
        gathered = GatheredMetrics(reactor, [(supervisor.name_of(i), supervisor.metrics_socket(i))
                                             for i in range(supervisor.count)])
        listener = strports.service(options["metrics"], Site(gathered), reactor=reactor)
        listener.setName("metrics")
        listener.setServiceParent(parent)
    return parent


class _Worker(ProcessProtocol):
    """One worker: forward its output line by line; fire ``ended`` when it exits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ended: Deferred = Deferred()
        self._partial = b""

    def outReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted name)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            log.info("{worker}: {line}", worker=self.name,
                     line=line.decode("utf-8", "replace"))

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:  # noqa: N802 (Twisted name)
        log.info("{worker} exited: {reason}", worker=self.name, reason=reason.getErrorMessage())
        self.ended.callback(None)


class WorkerSupervisor(Service):
    """Start ``count`` workers sharing the ports; the directory makes them act as one.

    :param argv: the parent's ``twistd realtime`` arguments.
    :param directory: the ``--cluster`` address, or None to start the private Redis.
    :param certificate: ``--dtls-certificate`` if given (else the state dir's cluster one).
    :param metrics: ``--metrics`` was given: each worker serves its registry on its socket.
    """

    name = "workers"

    def __init__(self, reactor: Any, argv: list[str], count: int, state_dir: Path,
                 node_id: str, directory: RedisAddress | None = None,
                 certificate: str | None = None, metrics: bool = False) -> None:
        self.reactor = reactor
        self.metrics = metrics
        self.argv = worker_arguments(argv)
        self.count = count
        self.state_dir = state_dir
        self.node_id = node_id
        self.directory = directory
        self.certificate = certificate
        self.redis: PrivateRedis | None = None
        self.workers: list[_Worker] = []
        self.transports: list[Any] = []

    def privilegedStartService(self) -> None:  # noqa: N802 (Twisted name)
        """Start the private Redis if needed and make the cluster certificate."""
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        if self.directory is None:
            try:
                self.redis = start_private_redis(self.state_dir / "run")
            except (RedisNotInstalled, RedisDidNotStart) as error:
                raise SystemExit(f"realtime: --workers needs a cluster directory: {error}") from None
        if self.certificate is None:
            path = cluster_certificate(self.state_dir / "cluster-dtls.pem", self.reactor.seconds())
            self.certificate = str(path)

    def name_of(self, index: int) -> str:
        """Worker ``index``'s node id."""
        return f"{self.node_id}-w{index}"

    def metrics_socket(self, index: int) -> Path:
        """Where worker ``index`` serves its metrics."""
        return worker_socket(self.state_dir, index)

    def command(self, index: int) -> list[str]:
        """Return worker ``index``'s command line."""
        url = self.redis.url if self.redis is not None else (
            self.directory.redacted("") if self.directory is not None else "")
        directory = ["--cluster", url]
        certificate = [] if self.certificate is None else ["--dtls-certificate", self.certificate]
        metrics = [] if not self.metrics else [
            "--metrics", f"unix:{self.metrics_socket(index)}:mode=600"]
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "-n", "--pidfile=", "realtime", *self.argv, "--reuse-port", *directory,
                "--node-id", self.name_of(index), *certificate, *metrics]

    def startService(self) -> None:  # noqa: N802 (Twisted name)
        """Start every worker."""
        super().startService()  # type: ignore[no-untyped-call]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.setdefault(SECRET_VARIABLE, secrets.token_hex(32))
        if self.directory is not None and self.directory.password is not None:
            env[PASSWORD_VARIABLE] = self.directory.password
        for index in range(self.count):
            if self.metrics:   # a socket left by a worker that was killed
                self.metrics_socket(index).parent.mkdir(mode=0o700, exist_ok=True)
                self.metrics_socket(index).unlink(missing_ok=True)
            worker = _Worker(self.name_of(index))
            command = self.command(index)
            self.transports.append(self.reactor.spawnProcess(
                worker, command[0], command, env=env, path=os.getcwd()))
            self.workers.append(worker)
        log.info("realtime: {count} workers started, directory: {where}", count=self.count,
                 where="--cluster" if self.redis is None else f"private {self.redis.url}")
        log.warn("realtime: each API call and each PeerConnection reaches whichever worker "
                 "the kernel picks: a session's media is taken over by the worker it reaches "
                 "and its API calls are forwarded to that worker (docs/cluster.md)")

    def stopService(self) -> Deferred:  # noqa: N802 (Twisted name)
        """Stop every worker (SIGTERM), then the private Redis."""
        super().stopService()  # type: ignore[no-untyped-call]
        for transport in self.transports:
            try:
                transport.signalProcess("TERM")
            except Exception:      # already gone
                pass
        done = DeferredList([w.ended for w in self.workers])

        def stop_redis(result: object) -> object:
            if self.redis is not None:
                self.redis.stop()
            return result

        return done.addBoth(stop_redis)
