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
