"""
The layering rule of DESIGN.md §3, enforced by walking every module's AST.

* codecs and machines import only the stdlib and lower ``realtime`` packages;
* only ``realtime/dtls`` imports OpenSSL / cryptography
  (``realtime/net``, ``realtime/service.py`` and ``realtime/api`` may use them
  for the TLS listeners' certificates, ``realtime/cluster`` may use
  cryptography for the relay link's AES-GCM and HKDF);
* only ``realtime/srtp`` imports pylibsrtp;
* only ``realtime/net``, ``realtime/api``, ``realtime/cluster``,
  ``realtime/service.py`` (and the shipped ``realtime/testing`` tools) import
  Twisted or Klein.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "realtime"

ADAPTERS = ("net", "api", "cluster", "service.py", "testing")


def owner(path: Path) -> str:
    """Return the top-level part of ``realtime`` a module belongs to."""
    return path.relative_to(ROOT).parts[0]


def imported_roots(path: Path) -> set[str]:
    """Return the first component of every module imported by ``path``."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


RULES = {
    # imported package -> parts of realtime allowed to import it
    "twisted": ADAPTERS,
    "klein": ADAPTERS,
    "treq": ("testing",),
    "OpenSSL": ("dtls", "net", "api", "service.py"),
    "cryptography": ("dtls", "net", "api", "cluster", "service.py"),  # cluster: relay AEAD
    "pylibsrtp": ("srtp",),
    "scapy": ("testing",),
}


def forbidden_imports(path: Path) -> list[str]:
    """Return ``"module imports X"`` lines for every rule ``path`` breaks."""
    part = owner(path)
    return [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for name in sorted(imported_roots(path))
        if name in RULES and part not in RULES[name]
    ]


def test_no_forbidden_imports() -> None:
    problems = [line for path in sorted(ROOT.rglob("*.py")) for line in forbidden_imports(path)]
    assert problems == []


def test_rule_catches_a_forbidden_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A codec importing Twisted is reported (the test above can fail)."""
    fake_root = tmp_path / "realtime"
    (fake_root / "stun").mkdir(parents=True)
    bad = fake_root / "stun" / "bad.py"
    bad.write_text("from twisted.internet import reactor\nimport pylibsrtp\nimport struct\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake_root, raising=False)
    globals()["ROOT"] = fake_root
    try:
        assert forbidden_imports(bad) == [
            "realtime/stun/bad.py imports pylibsrtp",
            "realtime/stun/bad.py imports twisted",
        ]
    finally:
        globals()["ROOT"] = Path(__file__).resolve().parent.parent / "realtime"


def test_modules_stay_under_600_lines() -> None:
    long = [
        f"{p.relative_to(ROOT.parent)}: {n}"
        for p in sorted(ROOT.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert long == []
