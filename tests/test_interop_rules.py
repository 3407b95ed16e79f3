"""The interop helpers fail instead of skipping when REALTIME_INTEROP=required."""

from __future__ import annotations

import pytest

import tests.conftest as rules


@pytest.mark.parametrize("call", [
    lambda: rules.require_module("no_such_module_for_realtime"),
    lambda: rules.require_tool("no-such-tool-for-realtime"),
    lambda: rules.require(False, "missing"),
])
def test_missing_peer_fails_when_required(monkeypatch, call) -> None:
    monkeypatch.setattr(rules, "INTEROP_REQUIRED", True)
    with pytest.raises(pytest.fail.Exception, match="REALTIME_INTEROP=required"):
        call()


@pytest.mark.parametrize("call", [
    lambda: rules.require_tool("no-such-tool-for-realtime"),
    lambda: rules.require(False, "missing"),
])
def test_missing_peer_skips_otherwise(monkeypatch, call) -> None:
    monkeypatch.setattr(rules, "INTEROP_REQUIRED", False)
    with pytest.raises(pytest.skip.Exception):
        call()


def test_present_module_is_returned() -> None:
    assert rules.require_module("json").dumps([]) == "[]"


def test_realtime_shared_is_the_only_place_looked_at(monkeypatch, tmp_path) -> None:
    """An empty REALTIME_SHARED hides ../shared (no fallback), so its absence can be tested."""
    from realtime.testing.captures import shared_dir

    monkeypatch.setenv("REALTIME_SHARED", str(tmp_path))
    assert shared_dir() is None
    (tmp_path / "pcaps").mkdir()
    assert shared_dir() == tmp_path


def test_absent_shared_gives_a_placeholder_parameter(monkeypatch, tmp_path) -> None:
    """Parametrizing over ../shared files never yields the silently skipped empty set."""
    monkeypatch.setenv("REALTIME_SHARED", str(tmp_path))
    (param,) = rules.shared_params(lambda root: [])
    assert param.id == "shared-absent"
