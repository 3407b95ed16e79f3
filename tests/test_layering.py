"""
The layering rule of docs/design.md §3, enforced by walking every module's AST.

* codecs and machines import only the stdlib and lower ``realtime`` packages;
* only ``realtime/dtls`` imports OpenSSL / cryptography
  (``realtime/net``, ``realtime/service.py`` and ``realtime/api`` may use them
  for the TLS listeners' certificates, ``realtime/cluster`` may use
  cryptography for the relay link's AES-GCM and HKDF);
* only ``realtime/srtp`` imports pylibsrtp;
* only ``realtime/net``, ``realtime/api``, ``realtime/cluster``,
  ``realtime/service.py`` (and the shipped ``realtime/testing`` tools) import
  Twisted or Klein;
* inside ``realtime``, a package imports only packages of a lower rank in
  :data:`RANKS` (codecs < machines < adapters < the service);
* no import circle joins modules of one package, except a deliberate registry
  whose import line is preceded by a comment saying "Deliberate import circle",
  and the circles listed in :data:`KNOWN_CIRCLES`, which are waiting for their fix.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "realtime"

ADAPTERS = ("net", "api", "cluster", "options.py", "service.py", "testing")


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


#: Rank of each part of ``realtime`` (docs/design.md §3): a module may import only
#: parts of a strictly lower rank, or its own package.
RANKS = {
    # the ground floor
    "errors.py": 0, "addresses.py": 0,
    "wire.py": 1, "serial.py": 1, "demux.py": 1,
    # codecs, and machines that need no other protocol
    "stun": 2, "rtcp": 2, "srtp": 2, "dtls": 2, "sctp": 2, "datachannel": 2, "media": 2,
    # built on the above: RTP on RTCP, ICE and TURN on STUN
    "rtp": 3, "ice": 3, "turn": 3,
    # SDP carries ICE candidates
    "sdp": 4,
    # one PeerConnection, then the SFU over many
    "peer": 5,
    "sfu": 6,
    # WebSocket media adapters: the SFU's tracks in and out of PyAV's codecs
    "adapters": 7,
    # adapters and the service's state
    "storage": 7,
    "api": 8, "testing": 8,
    "net": 9, "cluster": 9,
    "options.py": 10,
    "service.py": 11,
}

#: Import circles inside a package that are known and scheduled (issue 11):
#: none may span files of ``api/``, ``sctp/``, ``sfu/`` or ``turn/`` (``api/`` had one
#: through all nine modules while routes registered themselves on import: RealtimeAPI
#: now mounts them from one table, realtime/api/app.py; ``sfu/`` session <->
#: datachannels ended when MediaRouting became a component).  Add an entry only for
#: a circle that is known and scheduled.
KNOWN_CIRCLES: set[tuple[str, ...]] = set()

DELIBERATE = "deliberate import circle"


def module_name(path: Path) -> str:
    """Return the dotted name of the module at ``path`` (a package for ``__init__.py``)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """Return the part of ``realtime`` a dotted module name belongs to (``"service.py"``...)."""
    part = module.split(".")[1]
    return part + ".py" if (ROOT / (part + ".py")).exists() else part


def realtime_imports(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Return ``(module, line)`` for every import of a ``realtime`` module in ``path``.

    ``from realtime.x import y`` counts as importing ``realtime.x.y`` when that
    is a module, else ``realtime.x``.  Imports under ``if TYPE_CHECKING:`` count
    too: they are circles for the reader and the type checker.  An import whose
    previous line holds a comment with "Deliberate import circle" is skipped.
    """
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in subs if n in known] or [node.module]
        else:
            continue
        before = " ".join(lines[max(0, node.lineno - 3):node.lineno - 1]).lower()
        if DELIBERATE in before:
            continue
        found += [(n, node.lineno) for n in names if n.startswith("realtime.") and n in known]
    return found


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Return module -> {imported realtime module: line} for every module under ``root``."""
    paths = {module_name(p): p for p in sorted(root.rglob("*.py"))}
    known = set(paths)
    return {m: dict(realtime_imports(p, known)) for m, p in paths.items()}


def rank_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    """Return ``"a imports b (line n)"`` for every import of an equal or higher rank."""
    problems = []
    for module, imports in sorted(graph.items()):
        if module == "realtime":
            continue
        mine = part_of(module)
        for target, line in sorted(imports.items()):
            theirs = part_of(target) if target != "realtime" else mine
            if theirs != mine and RANKS[theirs] >= RANKS[mine]:
                problems.append(f"{module} imports {target} (line {line}): "
                                f"{mine} rank {RANKS[mine]}, {theirs} rank {RANKS[theirs]}")
    return problems


def package_circles(graph: dict[str, dict[str, int]]) -> set[tuple[str, ...]]:
    """Return the import circles (strongly connected sets of 2+ modules) within a package."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = set()

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if part_of(target) != part_of(module) or target == "realtime":
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == module:
                    break
            if len(members) > 1:
                circles.add(tuple(sorted(members)))

    for module in graph:
        if module != "realtime" and module not in index:
            visit(module)
    return circles


def test_every_part_has_a_rank() -> None:
    parts = {p.relative_to(ROOT).parts[0] for p in ROOT.rglob("*.py")} - {"__init__.py"}
    assert parts - set(RANKS) == set()


def test_packages_import_only_lower_ranks() -> None:
    assert rank_violations(import_graph(ROOT)) == []


def test_no_import_circles_inside_a_package() -> None:
    assert package_circles(import_graph(ROOT)) == KNOWN_CIRCLES


def test_rank_and_circle_checks_can_fail(tmp_path: Path) -> None:
    """A codec importing the SFU, and two modules importing each other, are reported."""
    fake = tmp_path / "realtime"
    (fake / "stun").mkdir(parents=True)
    (fake / "sfu").mkdir()
    (fake / "rtcp").mkdir()
    for package in ("stun", "sfu", "rtcp"):
        (fake / package / "__init__.py").write_text("")
    (fake / "stun" / "a.py").write_text("from realtime.sfu import b\n")
    (fake / "sfu" / "b.py").write_text("import struct\n")
    (fake / "sfu" / "c.py").write_text("from realtime.sfu.d import X\n")
    (fake / "sfu" / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from realtime.sfu import c\n")
    (fake / "rtcp" / "e.py").write_text("from realtime.rtcp import f\n")
    (fake / "rtcp" / "f.py").write_text(
        "def g():\n    # Deliberate import circle: a registry.\n    from realtime.rtcp import e\n")
    global ROOT
    saved, ROOT = ROOT, fake
    try:
        graph = import_graph(fake)
        assert rank_violations(graph) == [
            "realtime.stun.a imports realtime.sfu.b (line 1): stun rank 2, sfu rank 6"]
        assert package_circles(graph) == {("realtime.sfu.c", "realtime.sfu.d")}
    finally:
        ROOT = saved


def test_modules_stay_under_600_lines() -> None:
    long = [
        f"{p.relative_to(ROOT.parent)}: {n}"
        for p in sorted(ROOT.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert long == []
