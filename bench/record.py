"""
bench/record.py: every bench run leaves one JSON file, so that figures can be traced.

A bench prints its rows through :class:`Record` (``record.print(line)``) and
ends with ``record.save(results)``, which writes ``bench/results/<bench>.json``
(or ``--json FILE``) holding:

* ``bench``, ``command`` (argv), ``parameters`` (the parsed options);
* ``commit`` (``git describe --always``, "-dirty" when code differs from it)
  and ``date`` (UTC, ISO 8601);
* ``machine``: cores, CPU model, kernel, Python, load average at start and end
  (a loaded machine is visible in the file, not only in the reader's memory);
* ``printed``: every line the bench printed, in order, exactly as printed;
* ``results``: the bench's figures as numbers (including the load
  generator's own CPU, so a saturated client shows).

``bench/report.py`` turns these files into the tables of ``bench/README.md``.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def commit() -> str:
    """Return the checkout's commit (``git describe --always``), "-dirty" if a tracked file
    other than the benches' own output (bench/results, bench/README.md) differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        described = git("describe", "--always", "--abbrev=10") or "unknown"
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      ":(exclude)bench/results", ":(exclude)bench/README.md")
        return described + ("-dirty" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model() -> str:
    """Return the first ``model name`` of /proc/cpuinfo (the machine's CPU as the kernel names it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict:
    """Return the versions of the peers a bench may use (None if absent)."""
    found = {"python": platform.python_version()}
    for module in ("aiortc", "aioice", "av", "twisted", "cryptography"):
        try:
            from importlib.metadata import version
            found[module] = version(module)
        except Exception:  # not installed: recorded as absent
            found[module] = None
    return found


def machine() -> dict:
    """Return what the figures depend on: cores, CPU model, kernel, Python, current load."""
    return {"cores": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release(),
            "load_average": list(os.getloadavg()), "versions": versions()}


def plain(value):
    """``value`` with every mapping key a string (tuple keys joined by spaces), for JSON."""
    if isinstance(value, dict):
        return {(" ".join(map(str, k)) if isinstance(k, tuple) else str(k)): plain(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Record:
    """Collect one bench run's printed lines and figures; :meth:`save` writes the JSON."""

    def __init__(self, bench: str, parameters: dict, path: str | None = None) -> None:
        self.bench = bench
        self.path = Path(path) if path else RESULTS / f"{bench}.json"
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.document = {"bench": bench, "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
                         "parameters": parameters, "commit": commit(),
                         "date": self.started.isoformat(timespec="seconds"),
                         "machine": machine(), "printed": [], "results": None}
        self._partial = ""

    def print(self, line: str = "", **kwargs) -> None:
        """Print ``line`` (one or more rows) and keep it, exactly as printed."""
        print(line, flush=True, **kwargs)
        self.document["printed"].extend(str(line).split("\n"))

    @contextlib.contextmanager
    def capture(self):
        """Within the block, everything written to stdout is also kept as printed lines."""
        record, stdout = self, sys.stdout

        class Tee(io.TextIOBase):
            def write(self, text: str) -> int:
                stdout.write(text)
                record._partial += text
                *lines, record._partial = record._partial.split("\n")
                record.document["printed"].extend(lines)
                return len(text)

            def flush(self) -> None:
                stdout.flush()

        with contextlib.redirect_stdout(Tee()):
            yield self
        if self._partial:
            self.document["printed"].append(self._partial)
            self._partial = ""

    def save(self, results) -> Path:
        """Write the JSON file (figures in ``results``); return its path."""
        finished = datetime.datetime.now(datetime.timezone.utc)
        self.document["results"] = plain(results)
        self.document["seconds"] = round((finished - self.started).total_seconds(), 1)
        self.document["machine"]["load_average_end"] = list(os.getloadavg())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.document, indent=1, default=str) + "\n")
        print(f"wrote {self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}",
              file=sys.stderr)
        return self.path


def loopback_only_aiortc() -> None:
    """Make aiortc/aioice gather host candidates on 127.0.0.1 only.

    aioice's ``get_host_addresses`` lists every interface address except
    loopback; a bench's aiortc peer must announce loopback only (and is
    given ``RTCConfiguration(iceServers=[])``, see :func:`aiortc_configuration`),
    so no check or STUN lookup ever leaves the machine.
    """
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def aiortc_configuration():
    """Return ``RTCConfiguration(iceServers=[])``: no ICE server (aiortc's default is Google's
    public STUN server), after restricting host candidates to loopback."""
    from aiortc import RTCConfiguration

    loopback_only_aiortc()
    return RTCConfiguration(iceServers=[])
