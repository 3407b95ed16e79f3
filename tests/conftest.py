"""
Shared pytest fixtures.

* ``shared`` -- the ``../shared`` folder (captures and vectors), read in
  place; tests that need it skip when it is absent, and fail instead under
  ``REALTIME_INTEROP=required`` (CI must not pass with the oracles missing).
* :func:`shared_params` -- parametrize over files found in ``../shared``
  without the empty parameter set (a silent skip) when it is absent.
* ``traffic_guard`` (autouse) -- test traffic stays on this machine: a test
  fails if, in the test process, it resolves a name other than localhost or
  connects/sends to an address outside 127.0.0.0/8 and ::1, unless it
  declared that network with ``traffic_guard.allow("10.9.0.0/24")`` (its own
  namespace).  aioice (aiortc's ICE agent) gathers host candidates on
  loopback only, so no aiortc peer offers or checks another interface.
* :func:`require_tool` -- interop tests call it for every external program;
  under ``REALTIME_INTEROP=required`` (set by ``.ci/run``) a missing tool
  fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from realtime.testing.captures import shared_dir
from tests.traffic_guard import TrafficGuard, loopback_host_addresses

INTEROP_REQUIRED = os.environ.get("REALTIME_INTEROP") == "required"


def require_tool(name: str, path: str | None = None) -> str:
    """Return the path of executable ``name`` or skip (fail when required)."""
    found = path if path and os.path.exists(path) else shutil.which(name)
    if found:
        return found
    message = f"interop tool {name!r} is not installed"
    if INTEROP_REQUIRED:
        pytest.fail(message + " (REALTIME_INTEROP=required)")
    pytest.skip(message)


def require_module(name: str):
    """Import and return module ``name`` (a test peer such as aiortc), or skip.

    Unlike ``pytest.importorskip``, a missing module fails the run under
    ``REALTIME_INTEROP=required``, so an interop test can never skip in CI.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"interop module {name!r} is not installed"
        if INTEROP_REQUIRED:
            pytest.fail(message + " (REALTIME_INTEROP=required)", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def require(condition: bool, message: str) -> None:
    """Skip with ``message`` unless ``condition``; fail instead when interop is required."""
    if condition:
        return
    if INTEROP_REQUIRED:
        pytest.fail(message + " (REALTIME_INTEROP=required)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared/ folder with pcaps/ and vectors/, or skip."""
    path = shared_dir()
    require(path is not None, "../shared is absent (set REALTIME_SHARED or place it beside the project)")
    return path


def shared_params(make) -> list:
    """Return ``make(shared_path)`` as parameters, or one placeholder when absent.

    A ``parametrize`` over an empty list is skipped silently, even in CI;
    the placeholder ``shared-absent`` runs the test instead, whose ``shared``
    fixture then skips, or fails under ``REALTIME_INTEROP=required``.
    """
    path = shared_dir()
    if path is None:
        return [pytest.param(None, id="shared-absent")]
    return make(path)


@pytest.fixture(scope="session")
def vectors(shared: Path):
    """Return a loader: ``vectors("rfc5769_stun")`` -> parsed JSON."""

    def load(name: str):
        return json.loads((shared / "vectors" / f"{name}.json").read_text())

    return load


def _pin_aioice_to_loopback(monkeypatch) -> None:
    """aioice gathers on every non-loopback interface; make it gather on loopback only."""
    try:
        import aioice.ice
    except ImportError:
        return
    monkeypatch.setattr(aioice.ice, "get_host_addresses", loopback_host_addresses)


@pytest.fixture(autouse=True)
def traffic_guard(monkeypatch):
    """Fail the test if its process resolves or sends beyond this machine (see module doc)."""
    _pin_aioice_to_loopback(monkeypatch)
    guard = TrafficGuard()
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()
    violations = guard.take()
    if violations:
        pytest.fail("test traffic left this machine (or tried to): " + "; ".join(violations[:5]),
                    pytrace=False)
